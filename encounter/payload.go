package encounter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/evidenceledger/evidence/ledger"
)

// PayloadVersion is the version of the JSON payload encodings below. Each
// payload carries it as "v".
const PayloadVersion = 1

// Opened is the payload of an encounter entry, the first of every chain.
type Opened struct {
	V          int    `json:"v"`
	Title      string `json:"title,omitempty"`
	PatientRef string `json:"patient_ref,omitempty"`
}

// Word is one word of a segment with its audio times.
type Word struct {
	Text    string `json:"text"`
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
}

// Speaker roles.
const (
	RoleClinician = "clinician"
	RolePatient   = "patient"
	RoleOther     = "other"
)

// Segment is the payload of a segment entry: one transcript segment.
type Segment struct {
	V            int     `json:"v"`
	ID           string  `json:"segment_id"`
	Role         string  `json:"role"`
	SpeakerLabel string  `json:"speaker_label,omitempty"`
	Text         string  `json:"text"`
	StartMS      int64   `json:"start_ms"`
	EndMS        int64   `json:"end_ms"`
	Words        []Word  `json:"words,omitempty"`
	ASRModel     string  `json:"asr_model,omitempty"`
	Confidence   float64 `json:"confidence,omitempty"`
}

// Audio is the payload of an audio entry. The bytes are a blob addressed by
// their SHA-256.
type Audio struct {
	V            int    `json:"v"`
	BlobSHA256   string `json:"blob_sha256"`
	SizeBytes    int64  `json:"size_bytes"`
	MediaType    string `json:"media_type"`
	Codec        string `json:"codec,omitempty"`
	SampleRateHz int32  `json:"sample_rate_hz,omitempty"`
	Channels     int32  `json:"channels,omitempty"`
	DurationMS   int64  `json:"duration_ms,omitempty"`
	StartMS      int64  `json:"start_ms,omitempty"`
}

// Model names a model and its version.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// DraftSentence and DraftSection make up a Draft, a note as a model wrote it.
type DraftSentence struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// DraftSection is one section of a Draft.
type DraftSection struct {
	Name      string          `json:"name"`
	Sentences []DraftSentence `json:"sentences"`
}

// Draft is a note as a model wrote it.
type Draft struct {
	Sections []DraftSection `json:"sections"`
}

// ModelOutput is the payload of a model_output entry: one model call.
type ModelOutput struct {
	V                int               `json:"v"`
	Model            Model             `json:"model"`
	Backend          string            `json:"backend,omitempty"`
	PromptSHA256     string            `json:"prompt_sha256,omitempty"`
	Parameters       map[string]string `json:"parameters,omitempty"`
	Inputs           []int64           `json:"inputs,omitempty"`
	Note             *Draft            `json:"note,omitempty"`
	LatencyMS        int64             `json:"latency_ms"`
	PromptTokens     int64             `json:"prompt_tokens,omitempty"`
	CompletionTokens int64             `json:"completion_tokens,omitempty"`
	Error            string            `json:"error,omitempty"`
}

// Edit actions.
const (
	ActionReplace = "replace"
	ActionAdd     = "add"
	ActionDelete  = "delete"
)

// Edit is the payload of an edit entry: a clinician's change to one
// sentence. The text it replaces stays in the earlier entry.
type Edit struct {
	V          int    `json:"v"`
	Action     string `json:"action"`
	SentenceID string `json:"sentence_id"`
	Section    string `json:"section,omitempty"`
	After      string `json:"after_sentence_id,omitempty"`
	Text       string `json:"text,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Base is the leaf index of the sentence version the edit changes, so
	// a reader sees exactly what it replaced; 0 for an added sentence.
	Base int64 `json:"base,omitempty"`
}

// Span is one piece of evidence in an Alignment.
type Span struct {
	SegmentID    string  `json:"segment_id"`
	SegmentIndex int64   `json:"segment_index"`
	CharStart    int     `json:"char_start"`
	CharEnd      int     `json:"char_end"`
	StartMS      int64   `json:"start_ms"`
	EndMS        int64   `json:"end_ms"`
	Score        float64 `json:"score"`
}

// SentenceAlignment is the evidence for one sentence version and its
// verdict.
type SentenceAlignment struct {
	SentenceID string `json:"sentence_id"`
	// Version is the leaf index of the model output or edit whose text
	// was aligned.
	Version int64  `json:"version"`
	Spans   []Span `json:"spans"`
	// Verdict is one of the Verdict constants. Entries written before
	// verdicts were recorded have none; see SentenceAlignment.Checked.
	Verdict string `json:"verdict,omitempty"`
	// Severity is set for a flagged verdict (contradicted, unmentioned).
	Severity string `json:"severity,omitempty"`
	// Conflicts, for a contradicted sentence, name each contradicted claim
	// and the transcript words that say otherwise.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Unsupported, for an unmentioned sentence, are the byte ranges of the
	// sentence's text that nothing in the transcript supports.
	Unsupported []TextRange `json:"unsupported,omitempty"`
}

// Verdicts of a sentence version (package align). Contradicted and
// unmentioned sentences are flagged: the note cannot be signed until a
// clinician resolves them.
const (
	VerdictSupported    = "supported"
	VerdictInferred     = "inferred"
	VerdictContradicted = "contradicted"
	VerdictUnmentioned  = "unmentioned"
)

// Severities of a flagged verdict.
const (
	SeverityMajor   = "major"
	SeverityMinor   = "minor"
	SeverityMinimal = "minimal"
)

// Flagged reports whether a verdict needs a clinician's resolution before
// the note can be signed.
func Flagged(verdict string) bool {
	return verdict == VerdictContradicted || verdict == VerdictUnmentioned
}

// Checked returns the verdict, severity and unsupported ranges of the
// sentence version with the given text. An entry written before verdicts
// were recorded states none; its verdict is the one its method decided by
// retrieval alone: supported with evidence, unmentioned (minor, the whole
// sentence) without.
func (sa *SentenceAlignment) Checked(text string) (verdict, severity string, unsupported []TextRange) {
	if sa.Verdict != "" {
		return sa.Verdict, sa.Severity, sa.Unsupported
	}
	if len(sa.Spans) > 0 {
		return VerdictSupported, "", nil
	}
	return VerdictUnmentioned, SeverityMinor, []TextRange{{0, len(text)}}
}

// TextRange is a half-open byte range [Start, End) of a sentence's text.
type TextRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Conflict is one claim of a sentence that the transcript contradicts:
// the claim's byte range in the sentence, and the transcript words that
// say otherwise (a byte range of a segment's text, with audio times).
type Conflict struct {
	Kind         string    `json:"kind"`
	Claim        TextRange `json:"claim"`
	SegmentID    string    `json:"segment_id"`
	SegmentIndex int64     `json:"segment_index"`
	CharStart    int       `json:"char_start"`
	CharEnd      int       `json:"char_end"`
	StartMS      int64     `json:"start_ms"`
	EndMS        int64     `json:"end_ms"`
	Words        string    `json:"words"`
}

// Alignment is the payload of an alignment entry.
type Alignment struct {
	V      int    `json:"v"`
	Method string `json:"method"`
	// Segments is how many transcript segments the alignment considered.
	Segments  int                 `json:"segments"`
	Sentences []SentenceAlignment `json:"sentences"`
}

// Resolution actions.
const (
	// ResolveConfirmed: the clinician kept the sentence as written and
	// gave a reason.
	ResolveConfirmed = "confirmed"
	// ResolveEdited: the clinician replaced the sentence; the edit entry
	// and the alignment that re-verified it precede the resolution.
	ResolveEdited = "edited"
)

// Resolution is the payload of a resolution entry: a clinician resolved a
// flagged sentence version. Who and when are the entry's actor and time.
type Resolution struct {
	V          int    `json:"v"`
	SentenceID string `json:"sentence_id"`
	// Version is the leaf index of the sentence version resolved, and
	// Alignment that of the alignment entry whose verdict the clinician
	// saw; Verdict and Severity repeat that verdict.
	Version   int64  `json:"version"`
	Alignment int64  `json:"alignment"`
	Verdict   string `json:"verdict"`
	Severity  string `json:"severity,omitempty"`
	// Action is ResolveConfirmed or ResolveEdited.
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
	// For ResolveEdited: the edit entry that replaced the sentence, the
	// alignment entry that re-verified the new text, and the new text's
	// verdict (which may be flagged again, and then needs its own
	// resolution).
	Edit       int64  `json:"edit,omitempty"`
	Realigned  int64  `json:"realigned,omitempty"`
	NewVerdict string `json:"new_verdict,omitempty"`
}

// Signoff is the payload of a signoff entry.
type Signoff struct {
	V            int      `json:"v"`
	NoteHash     string   `json:"note_hash"` // hex
	Head         int64    `json:"head"`      // the last leaf the signed projection included
	Acknowledged []string `json:"acknowledged,omitempty"`
	Statement    string   `json:"statement,omitempty"`
}

func encodePayload(v any) ([]byte, error) {
	return json.Marshal(v)
}

// decodePayload parses a payload strictly: unknown fields, trailing data and
// other versions are errors.
func decodePayload(data []byte, v any, version func() int) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("encounter: payload: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("encounter: payload: trailing data")
	}
	if got := version(); got != PayloadVersion {
		return fmt.Errorf("encounter: payload version %d, want %d", got, PayloadVersion)
	}
	return nil
}

// DecodePayload decodes the payload of an entry of the given kind into its
// type: *Opened, *Segment, *Audio, *ModelOutput, *Edit, *Alignment,
// *Signoff or *Resolution. Other kinds return an error.
func DecodePayload(kind ledger.Kind, data []byte) (any, error) {
	var v any
	var version func() int
	switch kind {
	case ledger.KindEncounter:
		p := new(Opened)
		v, version = p, func() int { return p.V }
	case ledger.KindSegment:
		p := new(Segment)
		v, version = p, func() int { return p.V }
	case ledger.KindAudio:
		p := new(Audio)
		v, version = p, func() int { return p.V }
	case ledger.KindModelOutput:
		p := new(ModelOutput)
		v, version = p, func() int { return p.V }
	case ledger.KindEdit:
		p := new(Edit)
		v, version = p, func() int { return p.V }
	case ledger.KindAlignment:
		p := new(Alignment)
		v, version = p, func() int { return p.V }
	case ledger.KindSignoff:
		p := new(Signoff)
		v, version = p, func() int { return p.V }
	case ledger.KindResolution:
		p := new(Resolution)
		v, version = p, func() int { return p.V }
	default:
		return nil, fmt.Errorf("encounter: no payload type for kind %s", kind)
	}
	if err := decodePayload(data, v, version); err != nil {
		return nil, err
	}
	return v, nil
}
