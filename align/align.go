// Package align maps the sentences of a clinical note to the transcript spans that support
// them: for each sentence, a ranked list of evidence spans (segment, byte range, audio times,
// score), or an empty list when the transcript holds no support.
//
// The method (see docs/align.md) is lexical and deterministic: texts are normalized with
// package clinicaltext (stems, numbers, durations, clinical abbreviations, lay synonyms),
// bridged to related words with package termassoc, and segments are ranked with BM25 plus
// conversational context — neighbouring turns, a question followed by its short answer,
// negation agreement, speaker roles, first mentions and recaps, temporal coherence — and a
// small linear reranker turns these features into a probability. Within each note section
// (see SplitNote) the evidence of consecutive sentences is decoded jointly. Spans whose
// probability clears thresholds chosen on the training parts are returned.
//
// Use NewIndex once per encounter and then Index.Align for each sentence, or the convenience
// function Align. An Index is immutable after NewIndex returns and is safe for concurrent use
// by multiple goroutines. The package does no I/O; package align/batch reads and writes the
// JSON Lines batch format.
package align

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MethodVersion names the alignment method and its parameters. It is recorded with every
// Result and changes whenever the output for some input may change.
const MethodVersion = "align-2026.12-bm25ctx-note-qa-roles-bridges-joint-lr3-claims2"

// Limits on inputs. NewIndex and Align reject inputs beyond them with ErrTooLarge.
const (
	MaxSegments       = 50_000    // segments per encounter (about 20 hours of conversation)
	MaxSegmentBytes   = 64 << 10  // bytes of text per segment
	MaxWordsPerSeg    = 10_000    // word timings per segment
	MaxSentences      = 20_000    // sentences per Align call
	MaxSentenceBytes  = 8 << 10   // bytes of text per sentence
	MaxTranscriptSize = 100 << 20 // total bytes of segment text per encounter
)

// Word is the timing of one word of a segment, when the speech recognizer provides it.
// Words are listed in the order they appear in Segment.Text.
type Word struct {
	Text           string
	StartMS, EndMS int64
}

// Segment is one transcript segment (a turn or utterance) of an encounter.
type Segment struct {
	ID      string
	Speaker string
	// StartMS and EndMS are audio times in milliseconds; EndMS >= StartMS >= 0.
	StartMS, EndMS int64
	Text           string
	// Words optionally gives word timings; when present, spans narrow to the matched words.
	Words []Word
}

// Sentence is one sentence of a note.
type Sentence struct {
	ID      string
	Section string
	Text    string
}

// Span is one piece of evidence for a sentence.
type Span struct {
	SegmentID string
	// CharStart and CharEnd are byte offsets, half-open, into the segment's Text: the
	// stretch from the first to the last matched word, or the whole text for a turn that
	// supports the sentence through its context (a "No." answering a matching question).
	CharStart, CharEnd int
	// StartMS and EndMS are the audio times of the span: the times of the words in
	// [CharStart, CharEnd) when the segment has word timings, else the segment's times.
	StartMS, EndMS int64
	// Score is the reranker's estimate, in [0, 1], of the probability that this segment is
	// evidence a human annotator would link to the sentence. It is calibrated on the
	// align-dev training split (AMI meetings); treat it as a ranking signal with a rough
	// probabilistic meaning, not as a guarantee.
	Score float64
}

// Result is the alignment and verdict of one sentence.
type Result struct {
	SentenceID string
	// Spans are ranked best first. An empty list means no evidence was found.
	Spans []Span
	// Verdict says whether the conversation supports the sentence. Severity is set when
	// the verdict is flagged (Contradicted or Unmentioned).
	Verdict  Verdict
	Severity Severity
	// Conflicts, for a Contradicted sentence, name each contradicted claim and the
	// transcript words that say otherwise.
	Conflicts []Conflict
	// Unsupported, for an Unmentioned sentence, are the byte ranges of the sentence that
	// nothing in the conversation supports.
	Unsupported   []Range
	MethodVersion string
}

// Errors returned by NewIndex and Align, wrapped in a *InputError.
var (
	// ErrInvalidInput marks input that breaks a documented rule.
	ErrInvalidInput = errors.New("align: invalid input")
	// ErrTooLarge marks input beyond one of the Max limits.
	ErrTooLarge = errors.New("align: input too large")
)

// InputError describes one rejected input. It names the item by kind, position and id and
// never quotes its text, so it is safe to log. errors.Is(err, ErrInvalidInput) or
// errors.Is(err, ErrTooLarge) tells which kind of problem it is.
type InputError struct {
	Item    string // "segment", "sentence", "segments" or "sentences"
	Index   int    // position of the item in its list, or -1 for the list as a whole
	ID      string // the item's id, if it has one
	Problem string // what is wrong
	Err     error  // ErrInvalidInput or ErrTooLarge
}

func (e *InputError) Error() string {
	switch {
	case e.Index < 0:
		return fmt.Sprintf("align: %s: %s", e.Item, e.Problem)
	case e.ID != "":
		return fmt.Sprintf("align: %s %d (id %q): %s", e.Item, e.Index, e.ID, e.Problem)
	default:
		return fmt.Sprintf("align: %s %d: %s", e.Item, e.Index, e.Problem)
	}
}

func (e *InputError) Unwrap() error { return e.Err }

func invalid(item string, i int, id, format string, args ...any) error {
	return &InputError{Item: item, Index: i, ID: id, Problem: fmt.Sprintf(format, args...), Err: ErrInvalidInput}
}

func tooLarge(item string, i int, id, format string, args ...any) error {
	return &InputError{Item: item, Index: i, ID: id, Problem: fmt.Sprintf(format, args...), Err: ErrTooLarge}
}

// validateSegments checks the rules documented on Segment and the Max limits.
func validateSegments(segs []Segment) error {
	if len(segs) == 0 {
		return invalid("segments", -1, "", "no segments")
	}
	if len(segs) > MaxSegments {
		return tooLarge("segments", -1, "", "%d segments, more than %d", len(segs), MaxSegments)
	}
	seen := make(map[string]int, len(segs))
	total := 0
	for i, s := range segs {
		switch {
		case s.ID == "":
			return invalid("segment", i, "", "empty id")
		case s.StartMS < 0:
			return invalid("segment", i, s.ID, "negative start_ms %d", s.StartMS)
		case s.EndMS < s.StartMS:
			return invalid("segment", i, s.ID, "end_ms %d before start_ms %d", s.EndMS, s.StartMS)
		case len(s.Text) > MaxSegmentBytes:
			return tooLarge("segment", i, s.ID, "text of %d bytes, more than %d", len(s.Text), MaxSegmentBytes)
		case len(s.Words) > MaxWordsPerSeg:
			return tooLarge("segment", i, s.ID, "%d word timings, more than %d", len(s.Words), MaxWordsPerSeg)
		case !utf8.ValidString(s.Text):
			return invalid("segment", i, s.ID, "text is not valid UTF-8")
		}
		if prev, dup := seen[s.ID]; dup {
			return invalid("segment", i, s.ID, "duplicate id (first at segment %d)", prev)
		}
		seen[s.ID] = i
		for j, w := range s.Words {
			if w.StartMS < 0 || w.EndMS < w.StartMS {
				return invalid("segment", i, s.ID, "word %d: times %d..%d out of order or negative", j, w.StartMS, w.EndMS)
			}
		}
		total += len(s.Text)
		if total > MaxTranscriptSize {
			return tooLarge("segments", -1, "", "more than %d bytes of text", MaxTranscriptSize)
		}
	}
	return nil
}

// validateSentences checks sentence ids, sizes and counts.
func validateSentences(sents []Sentence) error {
	if len(sents) == 0 {
		return invalid("sentences", -1, "", "no sentences")
	}
	if len(sents) > MaxSentences {
		return tooLarge("sentences", -1, "", "%d sentences, more than %d", len(sents), MaxSentences)
	}
	seen := make(map[string]int, len(sents))
	for i, s := range sents {
		if s.ID == "" {
			return invalid("sentence", i, "", "empty id")
		}
		if prev, dup := seen[s.ID]; dup {
			return invalid("sentence", i, s.ID, "duplicate id (first at sentence %d)", prev)
		}
		seen[s.ID] = i
		if len(s.Text) > MaxSentenceBytes {
			return tooLarge("sentence", i, s.ID, "text of %d bytes, more than %d", len(s.Text), MaxSentenceBytes)
		}
		if !utf8.ValidString(s.Text) {
			return invalid("sentence", i, s.ID, "text is not valid UTF-8")
		}
	}
	return nil
}

// Align aligns and checks the sentences of one note against the segments of its encounter,
// as Index.CheckNote does. It validates both lists and returns one Result per sentence, in the
// order of sentences.
func Align(segments []Segment, sentences []Sentence) ([]Result, error) {
	if err := validateSentences(sentences); err != nil {
		return nil, err
	}
	idx, err := NewIndex(segments)
	if err != nil {
		return nil, err
	}
	return idx.CheckNote(sentences), nil
}
