// Package batch runs the alignment engine over the JSON Lines batch format shared with the
// alignscore scorer: segments.jsonl (one encounter per line) and sentences.jsonl (one note
// sentence per line) in, predictions.jsonl (one sentence per line) out.
//
// Formats (UTF-8, one compact JSON object per line, blank lines ignored, unknown fields
// allowed):
//
//	segments.jsonl     {"encounter_id", "segments": [{"segment_id", "speaker", "start_ms",
//	                    "end_ms", "text", "words"?: [{"text", "start_ms", "end_ms"}]}]}
//	sentences.jsonl    {"encounter_id", "sentence_id", "section", "text"}
//	predictions.jsonl  {"sentence_id", "spans": [{"segment_id", "start_ms", "end_ms", "score"}],
//	                    "verdict", "severity"?, "conflicts"?: [{"kind", "claim_start", "claim_end",
//	                    "segment_id", "char_start", "char_end", "start_ms", "end_ms", "words"}],
//	                    "unsupported_ranges"?: [{"start", "end"}], "method"}
//
// Predictions are written in the order of sentences.jsonl, spans best first, "spans": [] when
// no evidence was found. The verdict fields are those of align.Result (docs/align.md); they are
// written when the aligner checks claims (align.Index does; the TF-IDF baseline does not). Offsets
// are bytes: claim ranges into the sentence's text, char ranges into the segment's. Malformed input stops the run with an error naming the file and line
// ("sentences.jsonl:17: missing sentence_id"); messages never quote transcript or note text.
package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/evidenceledger/evidence/align"
)

// MaxLineBytes caps one JSON Lines line (an encounter's segments are one line).
const MaxLineBytes = 256 << 20

// Aligner aligns the sentences of one note against the segments of its encounter;
// *align.Index is one. When it also has the method CheckNote([]align.Sentence) []align.Result,
// as *align.Index does, Run uses that and writes verdicts too.
type Aligner interface {
	AlignNote([]align.Sentence) [][]align.Span
}

type checker interface {
	CheckNote([]align.Sentence) []align.Result
}

// Options adjust Run. The zero value is ready to use.
type Options struct {
	// SegmentsName and SentencesName name the inputs in error messages
	// (default "segments.jsonl" and "sentences.jsonl").
	SegmentsName, SentencesName string
	// NewAligner builds the aligner for one encounter (default: align.NewIndex).
	NewAligner func([]align.Segment) (Aligner, error)
}

// LineError reports malformed input at a line of a named file.
type LineError struct {
	File string
	Line int // 1-based; 0 when the problem is not at one line
	Err  error
}

func (e *LineError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

type wordJSON struct {
	Text    *string `json:"text"`
	StartMS *int64  `json:"start_ms"`
	EndMS   *int64  `json:"end_ms"`
}

type segmentJSON struct {
	SegmentID *string    `json:"segment_id"`
	Speaker   *string    `json:"speaker"`
	StartMS   *int64     `json:"start_ms"`
	EndMS     *int64     `json:"end_ms"`
	Text      *string    `json:"text"`
	Words     []wordJSON `json:"words"`
}

type encounterJSON struct {
	EncounterID *string        `json:"encounter_id"`
	Segments    *[]segmentJSON `json:"segments"`
}

type sentenceJSON struct {
	EncounterID *string `json:"encounter_id"`
	SentenceID  *string `json:"sentence_id"`
	Section     *string `json:"section"`
	Text        *string `json:"text"`
}

// SpanJSON is one span of a prediction line.
type SpanJSON struct {
	SegmentID string  `json:"segment_id"`
	StartMS   int64   `json:"start_ms"`
	EndMS     int64   `json:"end_ms"`
	Score     float64 `json:"score"`
}

// ConflictJSON is one conflict of a contradicted sentence (align.Conflict).
type ConflictJSON struct {
	Kind       string `json:"kind"`
	ClaimStart int    `json:"claim_start"`
	ClaimEnd   int    `json:"claim_end"`
	SegmentID  string `json:"segment_id"`
	CharStart  int    `json:"char_start"`
	CharEnd    int    `json:"char_end"`
	StartMS    int64  `json:"start_ms"`
	EndMS      int64  `json:"end_ms"`
	Words      string `json:"words"`
}

// RangeJSON is a byte range of a sentence's text.
type RangeJSON struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// PredictionJSON is one line of predictions.jsonl.
type PredictionJSON struct {
	SentenceID  string         `json:"sentence_id"`
	Spans       []SpanJSON     `json:"spans"`
	Verdict     string         `json:"verdict,omitempty"`
	Severity    string         `json:"severity,omitempty"`
	Conflicts   []ConflictJSON `json:"conflicts,omitempty"`
	Unsupported []RangeJSON    `json:"unsupported_ranges,omitempty"`
	Method      string         `json:"method,omitempty"`
}

type encounter struct {
	line     int
	segments []align.Segment
}

// Run reads all encounters from segments and all sentences from sentences, aligns the
// sentences of each encounter (its note) against that encounter's segments and writes one
// prediction line per sentence to out, in input order. It checks ctx between encounters.
func Run(ctx context.Context, segments, sentences io.Reader, out io.Writer, opts Options) error {
	segName, sentName := opts.SegmentsName, opts.SentencesName
	if segName == "" {
		segName = "segments.jsonl"
	}
	if sentName == "" {
		sentName = "sentences.jsonl"
	}
	newAligner := opts.NewAligner
	if newAligner == nil {
		newAligner = func(s []align.Segment) (Aligner, error) { return align.NewIndex(s) }
	}
	encs, err := readSegments(segName, segments)
	if err != nil {
		return err
	}
	type pending struct {
		sent align.Sentence
		enc  string
	}
	var all []pending
	seen := map[string]int{}
	err = eachLine(sentName, sentences, func(ln int, b []byte) error {
		var s sentenceJSON
		if err := decodeObject(b, &s); err != nil {
			return err
		}
		switch {
		case s.SentenceID == nil:
			return errors.New("missing sentence_id")
		case *s.SentenceID == "":
			return errors.New("empty sentence_id")
		case s.EncounterID == nil:
			return errors.New("missing encounter_id")
		case s.Text == nil:
			return errors.New("missing text")
		case len(*s.Text) > align.MaxSentenceBytes:
			return fmt.Errorf("text of %d bytes, more than %d", len(*s.Text), align.MaxSentenceBytes)
		}
		if prev, dup := seen[*s.SentenceID]; dup {
			return fmt.Errorf("duplicate sentence_id %q (first on line %d)", *s.SentenceID, prev)
		}
		seen[*s.SentenceID] = ln
		if _, ok := encs[*s.EncounterID]; !ok {
			return fmt.Errorf("encounter_id %q not in %s", *s.EncounterID, segName)
		}
		sent := align.Sentence{ID: *s.SentenceID, Text: *s.Text}
		if s.Section != nil {
			sent.Section = *s.Section
		}
		all = append(all, pending{sent, *s.EncounterID})
		return nil
	})
	if err != nil {
		return err
	}
	// The sentences of one encounter form its note; align them together.
	byEnc := map[string][]int{}
	var encOrder []string
	for i, p := range all {
		if _, ok := byEnc[p.enc]; !ok {
			encOrder = append(encOrder, p.enc)
		}
		byEnc[p.enc] = append(byEnc[p.enc], i)
	}
	results := make([]align.Result, len(all))
	if err := alignAll(ctx, encOrder, func(e string) error {
		enc := encs[e]
		a, err := newAligner(enc.segments)
		if err != nil {
			return &LineError{File: segName, Line: enc.line, Err: err}
		}
		note := make([]align.Sentence, len(byEnc[e]))
		for k, i := range byEnc[e] {
			note[k] = all[i].sent
		}
		if c, ok := a.(checker); ok {
			for k, r := range c.CheckNote(note) {
				results[byEnc[e][k]] = r
			}
			return nil
		}
		for k, spans := range a.AlignNote(note) {
			results[byEnc[e][k]] = align.Result{SentenceID: note[k].ID, Spans: spans}
		}
		return nil
	}); err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	for i, p := range all {
		line, err := json.Marshal(prediction(p.sent.ID, results[i]))
		if err != nil {
			return err
		}
		bw.Write(line)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// alignAll runs fn for every encounter, on up to GOMAXPROCS goroutines, and returns the error
// of the first encounter (in input order) that failed. It checks ctx before each encounter.
func alignAll(ctx context.Context, encs []string, fn func(string) error) error {
	errs := make([]error, len(encs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(encs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if errs[i] = ctx.Err(); errs[i] == nil {
					errs[i] = fn(encs[i])
				}
			}
		}()
	}
	for i := range encs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// prediction turns one Result into its output line.
func prediction(id string, r align.Result) PredictionJSON {
	p := PredictionJSON{SentenceID: id, Spans: []SpanJSON{}, Verdict: string(r.Verdict), Severity: string(r.Severity)}
	if r.Verdict != "" {
		p.Method = r.MethodVersion
	}
	for _, sp := range r.Spans {
		p.Spans = append(p.Spans, SpanJSON{SegmentID: sp.SegmentID, StartMS: sp.StartMS, EndMS: sp.EndMS, Score: round(sp.Score)})
	}
	for _, c := range r.Conflicts {
		p.Conflicts = append(p.Conflicts, ConflictJSON{Kind: string(c.Kind), ClaimStart: c.Claim.Start, ClaimEnd: c.Claim.End,
			SegmentID: c.SegmentID, CharStart: c.CharStart, CharEnd: c.CharEnd, StartMS: c.StartMS, EndMS: c.EndMS, Words: c.Words})
	}
	for _, u := range r.Unsupported {
		p.Unsupported = append(p.Unsupported, RangeJSON{Start: u.Start, End: u.End})
	}
	return p
}

// round keeps six decimals so that output bytes are stable across platforms.
func round(f float64) float64 {
	return float64(int64(f*1e6+0.5)) / 1e6
}

// readSegments reads segments.jsonl into encounters keyed by encounter_id. name is used in
// error messages.
func readSegments(name string, r io.Reader) (map[string]*encounter, error) {
	encs := map[string]*encounter{}
	err := eachLine(name, r, func(ln int, b []byte) error {
		var e encounterJSON
		if err := decodeObject(b, &e); err != nil {
			return err
		}
		if e.EncounterID == nil || *e.EncounterID == "" {
			return errors.New("missing encounter_id")
		}
		if e.Segments == nil {
			return errors.New("missing segments")
		}
		if prev, dup := encs[*e.EncounterID]; dup {
			return fmt.Errorf("duplicate encounter_id %q (first on line %d)", *e.EncounterID, prev.line)
		}
		if len(*e.Segments) > align.MaxSegments {
			return fmt.Errorf("%d segments, more than %d", len(*e.Segments), align.MaxSegments)
		}
		segs := make([]align.Segment, len(*e.Segments))
		for i, s := range *e.Segments {
			switch {
			case s.SegmentID == nil:
				return fmt.Errorf("segments[%d]: missing segment_id", i)
			case s.StartMS == nil || s.EndMS == nil:
				return fmt.Errorf("segments[%d]: missing start_ms or end_ms", i)
			case s.Text == nil:
				return fmt.Errorf("segments[%d]: missing text", i)
			}
			seg := align.Segment{ID: *s.SegmentID, StartMS: *s.StartMS, EndMS: *s.EndMS, Text: *s.Text}
			if s.Speaker != nil {
				seg.Speaker = *s.Speaker
			}
			for j, w := range s.Words {
				if w.Text == nil || w.StartMS == nil || w.EndMS == nil {
					return fmt.Errorf("segments[%d].words[%d]: missing text, start_ms or end_ms", i, j)
				}
				seg.Words = append(seg.Words, align.Word{Text: *w.Text, StartMS: *w.StartMS, EndMS: *w.EndMS})
			}
			segs[i] = seg
		}
		encs[*e.EncounterID] = &encounter{line: ln, segments: segs}
		return nil
	})
	return encs, err
}

// eachLine calls fn for every non-blank line with its 1-based number and wraps fn's errors
// in a *LineError.
func eachLine(name string, r io.Reader, fn func(line int, b []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), MaxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(n, b); err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			var le *LineError
			if errors.As(err, &le) {
				return err
			}
			return &LineError{File: name, Line: n, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &LineError{File: name, Line: n + 1, Err: fmt.Errorf("line longer than %d bytes", MaxLineBytes)}
		}
		return &LineError{File: name, Err: err}
	}
	return nil
}

// decodeObject decodes one JSON object line; errors do not quote the input.
func decodeObject(b []byte, v any) error {
	if b[0] != '{' {
		return errors.New("line is not a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("invalid JSON at byte %d", se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("field %q: wrong JSON type %s", te.Field, te.Value)
		}
		return errors.New("invalid JSON")
	}
	return nil
}
