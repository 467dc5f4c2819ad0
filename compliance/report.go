package compliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// ReportVersion names the JSON report format this package writes. v2
// adds each sentence's verdict and resolutions; ParseReport and
// VerifyReport also take v1 reports, which have neither.
const ReportVersion = "evidence-provenance-report/v2"

// ReportVersionV1 is the format before verdicts.
const ReportVersionV1 = "evidence-provenance-report/v1"

// Report is the provenance report of an encounter's current note: every
// claim in it (sentence texts, origins, edits, evidence, sign-offs,
// accesses) is backed by an entry in Entries, which carries the leaf data,
// the opened payload with its salt, and an inclusion proof against the one
// signed checkpoint in Log. VerifyReport checks all of that offline.
type Report struct {
	Format      string          `json:"format"`
	GeneratedAt time.Time       `json:"generated_at"`
	Log         ReportLog       `json:"log"`
	Encounter   ReportEncounter `json:"encounter"`
	Note        ReportNote      `json:"note"`
	Audio       []ReportAudio   `json:"audio"`
	Accesses    []AccessEvent   `json:"accesses"`
	Entries     []ReportEntry   `json:"entries"`
}

// ReportLog identifies the log and the checkpoint every proof is against.
type ReportLog struct {
	Origin string `json:"origin"`
	// VerifierKey is the key the server reported. A verifier pins its own
	// copy (evidencectl verify-report --verifier-key) rather than trust it.
	VerifierKey string           `json:"verifier_key"`
	Checkpoint  ReportCheckpoint `json:"checkpoint"`
}

// ReportCheckpoint is a signed checkpoint: Note is the C2SP signed note,
// verbatim; TreeSize and RootHash repeat what it says.
type ReportCheckpoint struct {
	TreeSize int64  `json:"tree_size"`
	RootHash string `json:"root_hash"` // hex
	Note     string `json:"note"`
}

// ReportEncounter describes the encounter. Title and PatientRef are PHI.
type ReportEncounter struct {
	Tenant     string    `json:"tenant"`
	ID         string    `json:"encounter_id"`
	Title      string    `json:"title,omitempty"`
	PatientRef string    `json:"patient_ref,omitempty"`
	OpenedLeaf int64     `json:"opened_leaf"`
	OpenedBy   string    `json:"opened_by"`
	OpenedAt   time.Time `json:"opened_at"`
}

// ReportNote is the current note.
type ReportNote struct {
	Hash            string          `json:"note_hash"` // hex, encounter.NoteHash
	Head            int64           `json:"head"`
	ModelOutputLeaf int64           `json:"model_output_leaf"` // -1 for none
	Signed          bool            `json:"signed"`
	Sections        []ReportSection `json:"sections"`
	Signoffs        []ReportSignoff `json:"signoffs"`
}

// ReportSection is a section of the note.
type ReportSection struct {
	Name      string           `json:"name"`
	Sentences []ReportSentence `json:"sentences"`
}

// ReportSentence is one sentence of the current note with its provenance.
type ReportSentence struct {
	ID           string           `json:"sentence_id"`
	Text         string           `json:"text"`
	Origin       ReportOrigin     `json:"origin"`
	Edits        []ReportEdit     `json:"edits"`
	Alignment    *ReportAlignment `json:"alignment,omitempty"`
	Evidence     []ReportEvidence `json:"evidence"`
	Unsupported  bool             `json:"unsupported"`
	Acknowledged bool             `json:"acknowledged"`
	// Verdict is the current text's verdict (v2 reports): from the
	// alignment entry in Alignment, or, when none covers the current
	// version, unmentioned and major, since nothing has checked it.
	Verdict *ReportVerdict `json:"verdict,omitempty"`
	// Resolutions are the clinicians' resolutions of the sentence's
	// flagged versions, oldest first; Resolved says one covers the
	// current version (v2 reports).
	Resolutions []ReportResolution `json:"resolutions,omitempty"`
	Resolved    bool               `json:"resolved,omitempty"`
}

// ReportVerdict says whether the transcript supports a sentence
// (docs/align.md): supported, inferred, contradicted or unmentioned, with a
// severity for the last two.
type ReportVerdict struct {
	Verdict  string `json:"verdict"`
	Severity string `json:"severity,omitempty"`
	// Conflicts, for a contradicted sentence: each claim and the
	// transcript words that say otherwise.
	Conflicts []ReportConflict `json:"conflicts,omitempty"`
	// Unsupported, for an unmentioned sentence: the parts of the text
	// nothing supports, as byte ranges and their text.
	Unsupported []ReportRange `json:"unsupported,omitempty"`
}

// ReportRange is a half-open byte range of a sentence's text, and that
// text.
type ReportRange struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Text  string `json:"text"`
}

// ReportConflict is one contradicted claim.
type ReportConflict struct {
	Kind        string          `json:"kind"`
	Claim       ReportRange     `json:"claim"`
	SegmentID   string          `json:"segment_id"`
	SegmentLeaf int64           `json:"segment_leaf"`
	SpeakerRole string          `json:"speaker_role,omitempty"`
	CharStart   int             `json:"char_start"`
	CharEnd     int             `json:"char_end"`
	Words       string          `json:"words"`
	StartMS     int64           `json:"start_ms"`
	EndMS       int64           `json:"end_ms"`
	Audio       *ReportAudioRef `json:"audio,omitempty"`
}

// ReportResolution is a clinician's resolution of a flagged version of a
// sentence: who and when, the verdict they saw (from the alignment entry
// Alignment, or -1 when none covered the version), and what they did.
type ReportResolution struct {
	Leaf      int64     `json:"leaf"`
	Actor     string    `json:"actor"`
	Time      time.Time `json:"time"`
	Version   int64     `json:"version"`
	Alignment int64     `json:"alignment"`
	Verdict   string    `json:"verdict"`
	Severity  string    `json:"severity,omitempty"`
	Action    string    `json:"action"`
	Reason    string    `json:"reason,omitempty"`
	// For an edit: the edit entry, the alignment that re-verified the new
	// text, and its verdict.
	Edit       int64  `json:"edit,omitempty"`
	Realigned  int64  `json:"realigned,omitempty"`
	NewVerdict string `json:"new_verdict,omitempty"`
	// Current: the resolution covers the sentence's current version.
	Current bool `json:"current"`
}

// Origin kinds.
const (
	OriginModel     = "model_output" // drafted by a model
	OriginClinician = "clinician"    // added by a clinician's edit
)

// ReportOrigin is where a sentence first came from: a model output entry,
// or a clinician's edit that added it.
type ReportOrigin struct {
	Kind  string    `json:"kind"`
	Leaf  int64     `json:"leaf"`
	Actor string    `json:"actor"`
	Time  time.Time `json:"time"`
	Text  string    `json:"text"`
	// For model outputs.
	Model            *encounter.Model `json:"model,omitempty"`
	Backend          string           `json:"backend,omitempty"`
	PromptSHA256     string           `json:"prompt_sha256,omitempty"`
	ParametersSHA256 string           `json:"parameters_sha256,omitempty"`
	LatencyMS        int64            `json:"latency_ms,omitempty"`
	Inputs           []int64          `json:"inputs,omitempty"`
}

// ReportEdit is one edit of a sentence, oldest first.
type ReportEdit struct {
	Leaf   int64     `json:"leaf"`
	Actor  string    `json:"actor"`
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	Before string    `json:"before"`
	After  string    `json:"after"`
	Reason string    `json:"reason,omitempty"`
}

// ReportAlignment is the alignment entry that supports the current text.
type ReportAlignment struct {
	Leaf   int64  `json:"leaf"`
	Method string `json:"method"`
}

// ReportEvidence is one evidence span with its transcript text and audio.
type ReportEvidence struct {
	SegmentID   string          `json:"segment_id"`
	SegmentLeaf int64           `json:"segment_leaf"`
	SpeakerRole string          `json:"speaker_role,omitempty"`
	CharStart   int             `json:"char_start"`
	CharEnd     int             `json:"char_end"`
	Text        string          `json:"text"`
	StartMS     int64           `json:"start_ms"` // in the visit's time line
	EndMS       int64           `json:"end_ms"`
	Score       float64         `json:"score"`
	Audio       *ReportAudioRef `json:"audio,omitempty"`
}

// ReportAudioRef places an evidence span in a recording.
type ReportAudioRef struct {
	Leaf       int64  `json:"leaf"`
	BlobSHA256 string `json:"blob_sha256"`
	StartMS    int64  `json:"start_ms"` // from the start of the recording
	EndMS      int64  `json:"end_ms"`
}

// ReportSignoff is a sign-off of the note.
type ReportSignoff struct {
	Leaf         int64     `json:"leaf"`
	Actor        string    `json:"actor"`
	Time         time.Time `json:"time"`
	NoteHash     string    `json:"note_hash"`
	Head         int64     `json:"head"`
	Statement    string    `json:"statement,omitempty"`
	Acknowledged []string  `json:"acknowledged,omitempty"`
	// Current: this sign-off covers exactly the current note.
	Current bool `json:"current"`
}

// ReportAudio is a recording of the encounter.
type ReportAudio struct {
	Leaf         int64  `json:"leaf"`
	BlobSHA256   string `json:"blob_sha256"`
	SizeBytes    int64  `json:"size_bytes"`
	MediaType    string `json:"media_type"`
	Codec        string `json:"codec,omitempty"`
	SampleRateHz int32  `json:"sample_rate_hz,omitempty"`
	Channels     int32  `json:"channels,omitempty"`
	DurationMS   int64  `json:"duration_ms,omitempty"`
	StartMS      int64  `json:"start_ms"`
}

// ReportEntry is one ledger entry the report relies on.
type ReportEntry struct {
	Leaf       int64     `json:"leaf_index"`
	Kind       string    `json:"kind"`
	Tenant     string    `json:"tenant"`
	Encounter  string    `json:"encounter_id"`
	Actor      string    `json:"actor"`
	Time       time.Time `json:"time"`
	Seq        uint64    `json:"chain_seq"`
	Commitment string    `json:"commitment"` // hex
	// LeafData is the exact leaf encoding (docs/formats.md); LeafHash is
	// SHA-256(0x00 || LeafData), hex.
	LeafData []byte `json:"leaf_data"`
	LeafHash string `json:"leaf_hash"`
	// Salt and Payload open the commitment: SHA-256(Salt || Payload).
	Salt    []byte `json:"salt"`
	Payload []byte `json:"payload"`
	// InclusionProof proves the leaf in the checkpoint's tree (RFC 6962),
	// hex hashes from the bottom.
	InclusionProof []string `json:"inclusion_proof"`
}

// ParametersSHA256 is the hash the report gives for a model's parameters:
// SHA-256 of their JSON object as Go's encoding/json writes it (keys
// sorted, no spaces), hex; empty when there are none.
func ParametersSHA256(params map[string]string) string {
	if len(params) == 0 {
		return ""
	}
	b, _ := json.Marshal(params)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Provenance builds the provenance report of an encounter's current note.
// Every entry is proved against the latest checkpoint, which covers the
// export's own access entry. format is recorded in that access entry.
// Roles: clinician, auditor, admin.
func (s *Service) Provenance(ctx context.Context, c encounter.Caller, encounterID, format string) (*Report, error) {
	if err := allow(c, "exporting a provenance report", rolesProvenance...); err != nil {
		return nil, err
	}
	x, err := s.cfg.Encounters.Export(ctx, c, encounterID, format)
	if err != nil {
		return nil, err
	}
	l := s.cfg.Log
	cp := l.Checkpoint()
	b := &reportBuilder{log: l, cp: cp, openings: map[int64]*ledger.Opening{}}
	r := &Report{
		Format:      ReportVersion,
		GeneratedAt: s.cfg.Now().UTC(),
		Log: ReportLog{Origin: l.Origin(), VerifierKey: l.VerifierKey(),
			Checkpoint: ReportCheckpoint{TreeSize: cp.Size, RootHash: hex.EncodeToString(cp.Root[:]), Note: string(cp.Note)}},
		Encounter: ReportEncounter{Tenant: c.Tenant, ID: x.Info.ID, Title: x.Info.Title, PatientRef: x.Info.PatientRef,
			OpenedBy: x.Info.Created.Actor, OpenedAt: x.Info.Created.Time},
		Accesses: []AccessEvent{},
		Audio:    []ReportAudio{},
	}
	idx, err := l.EncounterIndexes(c.Tenant, encounterID)
	if err != nil {
		return nil, err
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("%w: encounter", ledger.ErrNotFound)
	}
	r.Encounter.OpenedLeaf = idx[0]
	b.use(idx[0])

	for _, a := range x.Audio {
		r.Audio = append(r.Audio, ReportAudio{Leaf: a.Index, BlobSHA256: a.BlobSHA256, SizeBytes: a.SizeBytes, MediaType: a.MediaType,
			Codec: a.Codec, SampleRateHz: a.SampleRateHz, Channels: a.Channels, DurationMS: a.DurationMS, StartMS: a.StartMS})
		b.use(a.Index)
	}
	n := x.Note
	r.Note = ReportNote{Hash: hex.EncodeToString(n.Hash[:]), Head: n.Head, ModelOutputLeaf: n.ModelOutput, Signed: n.Signed,
		Sections: []ReportSection{}, Signoffs: []ReportSignoff{}}
	for _, sec := range n.Sections {
		rs := ReportSection{Name: sec.Name, Sentences: []ReportSentence{}}
		for _, t := range sec.Sentences {
			st, err := b.sentence(t, r.Audio)
			if err != nil {
				return nil, err
			}
			rs.Sentences = append(rs.Sentences, st)
		}
		r.Note.Sections = append(r.Note.Sections, rs)
	}
	for i, g := range n.Signoffs {
		r.Note.Signoffs = append(r.Note.Signoffs, ReportSignoff{Leaf: g.Index, Actor: g.Actor, Time: g.Time, NoteHash: g.NoteHash,
			Head: g.Head, Statement: g.Statement, Acknowledged: g.Acknowledged, Current: n.Signed && i == len(n.Signoffs)-1})
		b.use(g.Index)
	}
	err = s.walkAccesses(ctx, c.Tenant, encounterID, cp.Size, func(ev AccessEvent) error {
		r.Accesses = append(r.Accesses, ev)
		b.use(ev.Leaf)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.Entries, err = b.entries(); err != nil {
		return nil, err
	}
	return r, nil
}

// reportBuilder collects the entries a report relies on.
type reportBuilder struct {
	log      *ledger.Log
	cp       *ledger.Checkpoint
	used     []int64
	openings map[int64]*ledger.Opening
}

func (b *reportBuilder) use(leaf int64) {
	if leaf >= 0 && !slices.Contains(b.used, leaf) {
		b.used = append(b.used, leaf)
	}
}

func (b *reportBuilder) opening(leaf int64) (*ledger.Opening, error) {
	if op, ok := b.openings[leaf]; ok {
		return op, nil
	}
	op, err := b.log.Opening(leaf)
	if err != nil {
		return nil, err
	}
	b.openings[leaf] = op
	return op, nil
}

func (b *reportBuilder) sentence(t *encounter.NoteSentence, audio []ReportAudio) (ReportSentence, error) {
	st := ReportSentence{ID: t.ID, Text: t.Text, Edits: []ReportEdit{}, Evidence: []ReportEvidence{},
		Unsupported: t.Unsupported(), Acknowledged: t.Acknowledged}
	if len(t.Versions) == 0 {
		return st, fmt.Errorf("compliance: sentence %q has no versions", t.ID)
	}
	v0 := t.Versions[0]
	st.Origin = ReportOrigin{Leaf: v0.Index, Actor: v0.Actor, Time: v0.Time, Text: v0.Text}
	b.use(v0.Index)
	if v0.Kind == ledger.KindModelOutput {
		st.Origin.Kind = OriginModel
		op, err := b.opening(v0.Index)
		if err != nil {
			return st, err
		}
		p, err := encounter.DecodePayload(ledger.KindModelOutput, op.Payload)
		if err != nil {
			return st, &ledger.CorruptionError{What: "payload", Index: v0.Index, Detail: "model output does not decode"}
		}
		o := p.(*encounter.ModelOutput)
		m := o.Model
		st.Origin.Model, st.Origin.Backend, st.Origin.PromptSHA256 = &m, o.Backend, o.PromptSHA256
		st.Origin.ParametersSHA256, st.Origin.LatencyMS, st.Origin.Inputs = ParametersSHA256(o.Parameters), o.LatencyMS, o.Inputs
	} else {
		st.Origin.Kind = OriginClinician
	}
	prev := v0.Text
	for _, v := range t.Versions[1:] {
		st.Edits = append(st.Edits, ReportEdit{Leaf: v.Index, Actor: v.Actor, Time: v.Time, Action: v.Action, Before: prev, After: v.Text, Reason: v.Reason})
		b.use(v.Index)
		prev = v.Text
	}
	if t.Aligned {
		st.Alignment = &ReportAlignment{Leaf: t.AlignmentIndex, Method: t.AlignmentMethod}
		b.use(t.AlignmentIndex)
	}
	for _, e := range t.Evidence {
		ev := ReportEvidence{SegmentID: e.SegmentID, SegmentLeaf: e.SegmentIndex, SpeakerRole: e.Role, CharStart: e.CharStart, CharEnd: e.CharEnd,
			Text: e.Text, StartMS: e.StartMS, EndMS: e.EndMS, Score: e.Score}
		ev.Audio = audioRef(audio, e.StartMS, e.EndMS)
		st.Evidence = append(st.Evidence, ev)
		b.use(e.SegmentIndex)
	}
	st.Verdict = &ReportVerdict{Verdict: t.Verdict, Severity: t.Severity}
	for _, r := range t.UnsupportedRanges {
		st.Verdict.Unsupported = append(st.Verdict.Unsupported, textRange(t.Text, r.Start, r.End))
	}
	for _, c := range t.Conflicts {
		st.Verdict.Conflicts = append(st.Verdict.Conflicts, ReportConflict{Kind: c.Kind, Claim: textRange(t.Text, c.Claim.Start, c.Claim.End),
			SegmentID: c.SegmentID, SegmentLeaf: c.SegmentIndex, SpeakerRole: c.Role, CharStart: c.CharStart, CharEnd: c.CharEnd, Words: c.Words,
			StartMS: c.StartMS, EndMS: c.EndMS, Audio: audioRef(audio, c.StartMS, c.EndMS)})
		b.use(c.SegmentIndex)
	}
	current := t.Versions[len(t.Versions)-1].Index
	for _, r := range t.Resolutions {
		st.Resolutions = append(st.Resolutions, ReportResolution{Leaf: r.Index, Actor: r.Actor, Time: r.Time, Version: r.Version,
			Alignment: r.Alignment, Verdict: r.Verdict, Severity: r.Severity, Action: r.Action, Reason: r.Reason, Edit: r.Edit,
			Realigned: r.Realigned, NewVerdict: r.NewVerdict, Current: r.Version == current})
		b.use(r.Index)
		b.use(r.Alignment) // the alignment whose verdict they saw
		b.use(r.Version)
		if r.Edit > 0 {
			b.use(r.Edit)
			b.use(r.Realigned)
		}
	}
	st.Resolved = t.Resolved
	return st, nil
}

// textRange is the range [start, end) of text with the text it covers
// (empty when the range is not within text).
func textRange(text string, start, end int) ReportRange {
	r := ReportRange{Start: start, End: end}
	if start >= 0 && start <= end && end <= len(text) {
		r.Text = text[start:end]
	}
	return r
}

// audioRef places a stretch of the visit's time line in the latest
// recording that covers it, or returns nil.
func audioRef(audio []ReportAudio, start, end int64) *ReportAudioRef {
	a := audioFor(audio, start, end)
	if a == nil {
		return nil
	}
	return &ReportAudioRef{Leaf: a.Leaf, BlobSHA256: a.BlobSHA256, StartMS: start - a.StartMS, EndMS: end - a.StartMS}
}

// audioFor returns the latest recording that covers [start, end] of the
// visit's time line, or nil.
func audioFor(audio []ReportAudio, start, end int64) *ReportAudio {
	var best *ReportAudio
	for i := range audio {
		a := &audio[i]
		if a.StartMS <= start && (a.DurationMS == 0 || end <= a.StartMS+a.DurationMS) {
			best = a
		}
	}
	return best
}

func (b *reportBuilder) entries() ([]ReportEntry, error) {
	slices.Sort(b.used)
	out := make([]ReportEntry, 0, len(b.used))
	for _, x := range b.used {
		op, err := b.opening(x)
		if err != nil {
			return nil, err
		}
		proof, err := b.log.InclusionProof(x, b.cp.Size)
		if err != nil {
			return nil, err
		}
		e, l := op.Entry, op.Entry.Leaf
		re := ReportEntry{Leaf: x, Kind: l.Kind.String(), Tenant: l.Tenant, Encounter: l.Encounter, Actor: l.Actor, Time: l.Time,
			Seq: l.Seq, Commitment: hex.EncodeToString(l.Commitment[:]), LeafData: e.Data, LeafHash: hex.EncodeToString(e.Hash[:]),
			Salt: op.Salt, Payload: op.Payload, InclusionProof: make([]string, len(proof))}
		for i, h := range proof {
			re.InclusionProof[i] = hex.EncodeToString(h[:])
		}
		out = append(out, re)
	}
	return out, nil
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
