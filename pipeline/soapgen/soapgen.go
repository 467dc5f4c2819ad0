// Package soapgen is the embedded default note generator of the inference
// wrapper: it turns the transcript segments of one primary-care encounter into
// a SOAP-structured clinical note (Subjective, Objective, Assessment, Plan)
// without a model server, so that the whole pipeline runs on one machine.
//
// It is a deterministic, rule-based extractor, not a language model. It finds
// symptoms, durations, history items, measurements, the clinician's stated
// impression and the clinician's stated plan with small lexicons and token
// patterns, pairs clinician questions with the patient's yes/no answers, and
// renders what it found in a terse third-person clinical register. Every
// sentence it writes is a rewording of something said in the transcript; the
// only exceptions are the fixed placeholders that state an absence (for
// example "No examination findings recorded."). docs/generator.md describes
// the method, the lexicons and the known failure modes.
//
// # Contract
//
// Generate is a pure function of its arguments and of Version: the same
// segments and options always give the same note, byte for byte. It reads no
// clock, no randomness and no environment, and no output depends on map
// iteration order. It is safe for concurrent use. Whenever the rules or the
// lexicons change in a way that can change any output, Version MUST change,
// because the ledger records Name and Version as the model identity of every
// note this package produced.
//
// # Sentence ids
//
// Each sentence id is the section letter followed by the 1-based ordinal of
// the sentence within its section: "S1", "S2", ... for Subjective, "O1" for
// Objective, "A1" for Assessment and "P1" for Plan. Ids are therefore unique
// within a note and stable: regenerating the note from the same input with the
// same Version gives the same id for the same sentence.
//
// # Privacy
//
// Transcript text is PHI. Errors returned by this package never contain
// transcript text or segment ids; they name the offending segment by its
// position in the input and the field at fault.
package soapgen

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/evidenceledger/evidence/align"
)

// Model identity, to be recorded with every note this package generates.
const (
	// Name identifies the generator.
	Name = "soapgen"
	// Version is the version of the rules and lexicons (semantic versioning).
	Version = "1.0.0"
	// ModelID is Name and Version in the "name/version" form used in ledger
	// model_output entries.
	ModelID = Name + "/" + Version
)

// Section names, in the order in which they appear in every Note.
const (
	SectionSubjective = "Subjective"
	SectionObjective  = "Objective"
	SectionAssessment = "Assessment"
	SectionPlan       = "Plan"
)

// Default input limits. They bound the work Generate does for one call; a
// real consultation is far below them (a 20-minute visit is a few hundred
// segments and some 20 KB of text).
const (
	DefaultMaxSegments     = 20000
	DefaultMaxSegmentBytes = 64 << 10
	DefaultMaxTextBytes    = 2 << 20
)

// A transcript segment is an align.Segment. Speaker is the speaker role:
// "clinician" and "doctor" (and a few synonyms such as "physician" and
// "nurse") are the clinician; "patient" and roles starting with "patient"
// (such as "patient_guest") are the patient side. Matching is
// case-insensitive. Other roles are allowed but their words are not used
// as evidence. Segments are processed in StartMS order (ties keep input
// order), so transcripts without times (all zero) keep their input order.
// Transcriber markup such as <UNSURE>..</UNSURE>, <UNIN/> and
// <INAUDIBLE_SPEECH/> is stripped from Text; word timings are not used.

// Note is a SOAP-structured clinical note.
type Note struct {
	// Sections always holds the four SOAP sections in order: Subjective,
	// Objective, Assessment, Plan. None of them is empty.
	Sections []Section
}

// Section is one SOAP section.
type Section struct {
	Name      string
	Sentences []Sentence
}

// Sentence is one note sentence with its stable id (see the package comment).
type Sentence struct {
	ID   string
	Text string
}

// Options bounds the input Generate accepts. The zero value is ready to use.
// No option changes the content of a note; they only decide which inputs are
// rejected.
type Options struct {
	// MaxSegments caps the number of segments. Zero or less means
	// DefaultMaxSegments.
	MaxSegments int
	// MaxSegmentBytes caps the length of one segment's text. Zero or less
	// means DefaultMaxSegmentBytes.
	MaxSegmentBytes int
	// MaxTextBytes caps the summed length of all segment texts. Zero or less
	// means DefaultMaxTextBytes.
	MaxTextBytes int
}

func (o Options) withDefaults() Options {
	if o.MaxSegments <= 0 {
		o.MaxSegments = DefaultMaxSegments
	}
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if o.MaxTextBytes <= 0 {
		o.MaxTextBytes = DefaultMaxTextBytes
	}
	return o
}

var (
	// ErrEmptyInput is returned when there are no segments, or when no
	// segment has any text left once markup is stripped.
	ErrEmptyInput = errors.New("soapgen: empty transcript")
	// ErrInputTooLarge is returned when the input exceeds a limit in Options.
	ErrInputTooLarge = errors.New("soapgen: transcript too large")
)

// SegmentError reports a malformed segment. It names the segment by its
// index in the input and never includes the segment's text or id.
type SegmentError struct {
	// Index is the position of the segment in the slice passed to Generate.
	Index int
	// Field is the segment field at fault: "start_ms", "end_ms" or "text".
	Field string
	// Reason says what is wrong, for a person to act on.
	Reason string
	// Err is ErrInputTooLarge when the segment breaks a size limit, else nil.
	Err error
}

func (e *SegmentError) Error() string {
	return fmt.Sprintf("soapgen: segments[%d].%s: %s", e.Index, e.Field, e.Reason)
}

// Unwrap lets errors.Is(err, ErrInputTooLarge) see through a size violation.
func (e *SegmentError) Unwrap() error { return e.Err }

// Generate writes a SOAP note for the encounter whose transcript is segments.
//
// It returns ErrEmptyInput (possibly wrapped) when there is nothing to
// summarise, an error wrapping ErrInputTooLarge when a limit in opts is
// exceeded, and a *SegmentError when a segment is malformed. On success the
// note has the four sections in order, none empty, with ids as described in
// the package comment.
func Generate(segments []align.Segment, opts Options) (Note, error) {
	if err := validate(segments, opts.withDefaults()); err != nil {
		return Note{}, err
	}
	d := newDialogue(segments)
	if len(d.utts) == 0 {
		return Note{}, fmt.Errorf("%w: no text left in %d segments after removing transcriber markup", ErrEmptyInput, len(segments))
	}
	return render(extract(d)), nil
}

// validate checks limits and times. It reports sizes and positions only, so
// that no transcript text can reach a log through an error message.
func validate(segments []align.Segment, opts Options) error {
	if len(segments) == 0 {
		return fmt.Errorf("%w: no segments", ErrEmptyInput)
	}
	if len(segments) > opts.MaxSegments {
		return fmt.Errorf("%w: %d segments, limit %d", ErrInputTooLarge, len(segments), opts.MaxSegments)
	}
	total := 0
	for i, s := range segments {
		switch {
		case s.StartMS < 0:
			return &SegmentError{Index: i, Field: "start_ms", Reason: "negative time"}
		case s.EndMS < s.StartMS:
			return &SegmentError{Index: i, Field: "end_ms", Reason: "ends before it starts"}
		case len(s.Text) > opts.MaxSegmentBytes:
			return &SegmentError{Index: i, Field: "text",
				Reason: fmt.Sprintf("%d bytes, limit %d", len(s.Text), opts.MaxSegmentBytes), Err: ErrInputTooLarge}
		}
		total += len(s.Text)
	}
	if total > opts.MaxTextBytes {
		return fmt.Errorf("%w: %d bytes of text, limit %d", ErrInputTooLarge, total, opts.MaxTextBytes)
	}
	if total == 0 || allBlank(segments) {
		return fmt.Errorf("%w: all %d segments are blank", ErrEmptyInput, len(segments))
	}
	return nil
}

func allBlank(segments []align.Segment) bool {
	for _, s := range segments {
		if strings.TrimSpace(s.Text) != "" {
			return false
		}
	}
	return true
}

// validUTF8 replaces invalid bytes so that matching and output never carry
// broken encodings into the ledger.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
