// Package demo provides the demonstration visit that ships with Evidence
// Ledger, so that the product can be tried without any dataset on the machine:
// one mock primary-care consultation with a recording, its time-aligned
// transcript, the consulting clinician's real note, three clinician edits to
// replay against an AI-drafted note, and a second draft in the form of a
// language model's reply with two deliberate errors (see LLMModel) for the
// claim checker to flag.
//
// The visit is adapted from PriMock57 (github.com/babylonhealth/primock57;
// Papadopoulos Korfiatis et al., "PriMock57: A Dataset Of Primary Care Mock
// Consultations", ACL 2022), licensed CC BY 4.0. The recording is not the
// original: it was synthesized from the transcript with espeak-ng, one voice
// per speaker, each utterance placed at its transcript start time. The source,
// licence notice and full list of changes are in visit/ATTRIBUTION.md, also
// returned as [Visit.Attribution]; anything that shows the demo must show or
// link that text. demo/make-demo.sh rebuilds every file in visit/ and
// demo/README.md explains the choices it makes.
//
// The files are embedded in the binary and validated by [Load]; this package
// does no other I/O.
package demo

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline/prompt"
)

//go:embed visit/*
var visitFS embed.FS

// Names of the embedded files, relative to the package's visit/ folder.
const (
	SegmentsFile    = "segments.json"
	AudioFile       = "audio.opus"
	NoteFile        = "clinician_note.json"
	EditsFile       = "edits.json"
	LLMReplyFile    = "llm_reply.json"
	AttributionFile = "ATTRIBUTION.md"
)

const (
	opusSampleRateHz  = 48000 // Ogg/Opus granule positions always count 48 kHz samples (RFC 7845, section 4)
	oggCapturePattern = "OggS"
)

// Section is a SOAP section of a clinical note.
type Section string

// The four SOAP sections an edit can target.
const (
	Subjective Section = "Subjective"
	Objective  Section = "Objective"
	Assessment Section = "Assessment"
	Plan       Section = "Plan"
)

// EditAction is what a clinician edit does to the drafted note.
type EditAction string

const (
	// Add appends the edit's text as a new sentence of its section.
	Add EditAction = "add"
	// Replace replaces the first sentence of the section that contains
	// [Edit.Match] (case-insensitively) with the edit's text.
	Replace EditAction = "replace"
)

// Visit is the demonstration visit. Every call to [Load] returns a new Visit
// that the caller owns and may modify.
type Visit struct {
	EncounterID string // PriMock57 consultation id, e.g. "day1_consultation01"
	Title       string
	Audio       Audio
	// Segments are the transcript's utterances, sorted by StartMS, then ID,
	// as the encounter records them: Role is encounter.RoleClinician or
	// encounter.RolePatient, times are milliseconds from the start of the
	// recording, and the text has the transcriber's markup removed.
	// Segments of different speakers may overlap in time.
	Segments []encounter.Segment
	Note     Note
	Edits    []Edit
	// LLMReply is the text of the second draft's model reply
	// (visit/llm_reply.json): hand-written, with two deliberate errors;
	// see LLMModel.
	LLMReply string
	// Attribution is the Markdown text of visit/ATTRIBUTION.md: source,
	// licence notice and the changes made to the source material.
	Attribution string
}

// Audio is the visit's recording and its description.
type Audio struct {
	Codec        string `json:"codec"`     // always "opus"
	Container    string `json:"container"` // always "ogg"
	SampleRateHz int    `json:"sample_rate_hz"`
	Channels     int    `json:"channels"`
	// DurationMS is the length of the recording, equal to the end of the
	// transcript's timeline. Segment times are offsets into the recording.
	DurationMS int64 `json:"duration_ms"`
	// Data is the Ogg/Opus file (RFC 7845); it starts with "OggS".
	Data []byte `json:"-"`
}

// MediaType is the media type to serve [Audio.Data] with (RFC 7845, section 9).
const MediaType = "audio/ogg; codecs=opus"

// Note is the note the consulting clinician wrote, split into sentences. The
// text is the clinician's, shorthand included (e.g. "3/7 hx" for a 3-day
// history).
type Note struct {
	PresentingComplaint string         `json:"presenting_complaint"`
	Sentences           []NoteSentence `json:"sentences"`
}

// NoteSentence is one sentence (or one shorthand line) of the clinician's note.
type NoteSentence struct {
	Text string `json:"text"`
}

// Edit is a correction a clinician makes to an AI-drafted note, taken from the
// clinician's real note.
type Edit struct {
	Section Section    `json:"section"`
	Action  EditAction `json:"action"`
	// Match holds the keyword(s) that find the drafted sentence to replace. It is
	// set for Replace and empty for Add.
	Match  string `json:"match,omitempty"`
	Text   string `json:"text"`
	Reason string `json:"reason"`
}

// A DataError reports an embedded file that does not parse or validate. It can
// only happen if the files in visit/ were edited by hand; rebuilding them with
// make-demo.sh fixes it.
type DataError struct {
	File string // one of the *File constants
	Err  error
}

func (e *DataError) Error() string { return "demo: " + e.File + ": " + e.Err.Error() }

func (e *DataError) Unwrap() error { return e.Err }

// Load parses and validates the embedded visit. It returns a *[DataError] if
// the embedded files are inconsistent. Load is safe for concurrent use.
func Load() (*Visit, error) {
	sub, err := fs.Sub(visitFS, "visit")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return load(sub)
}

// segmentsDoc is segments.json. Pointers mark fields that must be present even
// though their zero value is valid.
type segmentsDoc struct {
	EncounterID string        `json:"encounter_id"`
	Title       string        `json:"title"`
	Audio       *Audio        `json:"audio"`
	Segments    []wireSegment `json:"segments"`
}

type wireSegment struct {
	ID      string `json:"segment_id"`
	Speaker string `json:"speaker"`
	StartMS *int64 `json:"start_ms"`
	EndMS   *int64 `json:"end_ms"`
	Text    string `json:"text"`
}

func load(fsys fs.FS) (*Visit, error) {
	var doc segmentsDoc
	if err := decodeFile(fsys, SegmentsFile, &doc); err != nil {
		return nil, err
	}
	v := &Visit{EncounterID: doc.EncounterID, Title: doc.Title}
	if doc.Audio != nil {
		v.Audio = *doc.Audio
	}
	if err := checkSegmentsDoc(&doc, v); err != nil {
		return nil, &DataError{File: SegmentsFile, Err: err}
	}

	data, err := fs.ReadFile(fsys, AudioFile)
	if err != nil {
		return nil, &DataError{File: AudioFile, Err: err}
	}
	if len(data) == 0 {
		return nil, &DataError{File: AudioFile, Err: errors.New("empty")}
	}
	if !bytes.HasPrefix(data, []byte(oggCapturePattern)) {
		return nil, &DataError{File: AudioFile, Err: errors.New(`does not start with the Ogg capture pattern "OggS"`)}
	}
	v.Audio.Data = data

	if err := decodeFile(fsys, NoteFile, &v.Note); err != nil {
		return nil, err
	}
	if err := checkNote(&v.Note); err != nil {
		return nil, &DataError{File: NoteFile, Err: err}
	}

	if err := decodeFile(fsys, EditsFile, &v.Edits); err != nil {
		return nil, err
	}
	if err := checkEdits(v.Edits); err != nil {
		return nil, &DataError{File: EditsFile, Err: err}
	}

	reply, err := fs.ReadFile(fsys, LLMReplyFile)
	if err != nil {
		return nil, &DataError{File: LLMReplyFile, Err: err}
	}
	if _, err := prompt.Parse(string(reply)); err != nil {
		return nil, &DataError{File: LLMReplyFile, Err: err}
	}
	v.LLMReply = string(reply)

	attribution, err := fs.ReadFile(fsys, AttributionFile)
	if err != nil {
		return nil, &DataError{File: AttributionFile, Err: err}
	}
	if len(bytes.TrimSpace(attribution)) == 0 {
		return nil, &DataError{File: AttributionFile, Err: errors.New("empty")}
	}
	v.Attribution = string(attribution)
	return v, nil
}

// decodeFile decodes exactly one JSON value from name into dst, rejecting
// unknown fields and trailing data.
func decodeFile(fsys fs.FS, name string, dst any) error {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return &DataError{File: name, Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return &DataError{File: name, Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &DataError{File: name, Err: errors.New("data after the JSON value")}
	}
	return nil
}

// checkSegmentsDoc validates doc and copies its segments into v.
func checkSegmentsDoc(doc *segmentsDoc, v *Visit) error {
	if strings.TrimSpace(doc.EncounterID) == "" {
		return errors.New("encounter_id is empty")
	}
	if strings.TrimSpace(doc.Title) == "" {
		return errors.New("title is empty")
	}
	if doc.Audio == nil {
		return errors.New("audio is missing")
	}
	a := doc.Audio
	switch {
	case a.Codec != "opus" || a.Container != "ogg":
		return fmt.Errorf("audio is %s in %s, want opus in ogg", a.Codec, a.Container)
	case a.SampleRateHz != opusSampleRateHz:
		return fmt.Errorf("audio sample_rate_hz is %d, want %d", a.SampleRateHz, opusSampleRateHz)
	case a.Channels < 1 || a.Channels > 255:
		return fmt.Errorf("audio channels is %d, want 1 to 255", a.Channels)
	case a.DurationMS <= 0:
		return fmt.Errorf("audio duration_ms is %d, want > 0", a.DurationMS)
	}
	if len(doc.Segments) == 0 {
		return errors.New("no segments")
	}
	seen := make(map[string]bool, len(doc.Segments))
	v.Segments = make([]encounter.Segment, 0, len(doc.Segments))
	for i, w := range doc.Segments {
		if w.ID == "" {
			return fmt.Errorf("segment %d: segment_id is empty", i)
		}
		if seen[w.ID] {
			return fmt.Errorf("segment %s: duplicate segment_id", w.ID)
		}
		seen[w.ID] = true
		if w.Speaker != encounter.RoleClinician && w.Speaker != encounter.RolePatient {
			return fmt.Errorf("segment %s: speaker %q, want %q or %q", w.ID, w.Speaker, encounter.RoleClinician, encounter.RolePatient)
		}
		if w.StartMS == nil || w.EndMS == nil {
			return fmt.Errorf("segment %s: start_ms or end_ms missing", w.ID)
		}
		s := encounter.Segment{ID: w.ID, Role: w.Speaker, StartMS: *w.StartMS, EndMS: *w.EndMS, Text: w.Text}
		switch {
		case s.StartMS < 0:
			return fmt.Errorf("segment %s: start_ms %d is negative", s.ID, s.StartMS)
		case s.EndMS < s.StartMS:
			return fmt.Errorf("segment %s: end_ms %d before start_ms %d", s.ID, s.EndMS, s.StartMS)
		case s.EndMS > a.DurationMS:
			return fmt.Errorf("segment %s: end_ms %d after the end of the audio (%d ms)", s.ID, s.EndMS, a.DurationMS)
		case strings.TrimSpace(s.Text) == "":
			return fmt.Errorf("segment %s: text is empty", s.ID)
		}
		if i > 0 {
			prev := v.Segments[i-1]
			if s.StartMS < prev.StartMS || (s.StartMS == prev.StartMS && s.ID < prev.ID) {
				return fmt.Errorf("segment %s: not sorted by start_ms, then segment_id", s.ID)
			}
		}
		v.Segments = append(v.Segments, s)
	}
	return nil
}

func checkNote(n *Note) error {
	if strings.TrimSpace(n.PresentingComplaint) == "" {
		return errors.New("presenting_complaint is empty")
	}
	if len(n.Sentences) == 0 {
		return errors.New("no sentences")
	}
	for i, s := range n.Sentences {
		if strings.TrimSpace(s.Text) == "" {
			return fmt.Errorf("sentence %d: text is empty", i)
		}
	}
	return nil
}

func checkEdits(edits []Edit) error {
	if len(edits) == 0 {
		return errors.New("no edits")
	}
	for i, e := range edits {
		switch e.Section {
		case Subjective, Objective, Assessment, Plan:
		default:
			return fmt.Errorf("edit %d: section %q is not a SOAP section", i, e.Section)
		}
		switch e.Action {
		case Add:
			if e.Match != "" {
				return fmt.Errorf("edit %d: add has a match", i)
			}
		case Replace:
			if strings.TrimSpace(e.Match) == "" {
				return fmt.Errorf("edit %d: replace without a match", i)
			}
		default:
			return fmt.Errorf("edit %d: action %q, want %q or %q", i, e.Action, Add, Replace)
		}
		if strings.TrimSpace(e.Text) == "" || strings.TrimSpace(e.Reason) == "" {
			return fmt.Errorf("edit %d: text or reason is empty", i)
		}
	}
	return nil
}
