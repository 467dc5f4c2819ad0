package encounter

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/ledger"
)

// Recorded reports the entries a note-changing write appended.
type Recorded struct {
	// Appended is the write's last append: its Checkpoint covers every
	// entry of the write, and it proves them (InclusionProof).
	Appended *ledger.Appended
	// Indexes are the leaf indexes of all entries, in order.
	Indexes []int64
	// Change is the model output or edit entry, and Alignment the
	// alignment entry that followed it (-1 when none was recorded).
	// Resolution is the resolution entry of ResolveSentence, else -1.
	Change, Alignment, Resolution int64
	SentenceID                    string
	Note                          *Note
}

func validateDraft(d *Draft) error {
	if d == nil || len(d.Sections) == 0 {
		return invalid("note.sections", "a note needs at least one section")
	}
	ids := make(map[string]bool)
	total := 0
	for i, sec := range d.Sections {
		f := fmt.Sprintf("note.sections[%d]", i)
		if err := checkLabel(f+".name", sec.Name, true); err != nil {
			return err
		}
		for j, t := range sec.Sentences {
			g := fmt.Sprintf("%s.sentences[%d]", f, j)
			if err := checkLabel(g+".sentence_id", t.ID, true); err != nil {
				return err
			}
			if ids[t.ID] {
				return invalid(g+".sentence_id", "repeats an earlier sentence id")
			}
			ids[t.ID] = true
			if err := checkText(g+".text", t.Text, align.MaxSentenceBytes, true); err != nil {
				return err
			}
			total++
		}
	}
	if total > MaxSentences {
		return &ledger.InvalidError{Field: "note", Reason: fmt.Sprintf("more than %d sentences", MaxSentences), Err: ledger.ErrTooLarge}
	}
	return nil
}

// Limits on a model output's fields, shared with the proxies, which fit
// what a client sent into them (see FitModelOutput).
const (
	MaxParameterBytes = 1024 // bytes of one parameter's value
	MaxErrorBytes     = 4096 // bytes of a failed call's error
)

// validateModelOutput checks a model output and sets its version. A
// successful call has a note when noteRequired; a failed one has none.
// field prefixes the fields named in errors.
func validateModelOutput(field string, o *ModelOutput, noteRequired bool) error {
	o.V = PayloadVersion
	if err := checkLabel(field+"model.name", o.Model.Name, true); err != nil {
		return err
	}
	if err := checkLabel(field+"model.version", o.Model.Version, false); err != nil {
		return err
	}
	if err := checkLabel(field+"backend", o.Backend, false); err != nil {
		return err
	}
	if o.PromptSHA256 != "" {
		if b, err := hex.DecodeString(o.PromptSHA256); err != nil || len(b) != 32 {
			return invalid(field+"prompt_sha256", "must be 64 hex digits")
		}
	}
	if len(o.Parameters) > MaxParameters {
		return invalid(field+"parameters", "more than %d parameters", MaxParameters)
	}
	for k, v := range o.Parameters {
		if err := checkLabel(field+"parameters.key", k, true); err != nil {
			return err
		}
		if err := checkText(field+"parameters["+strconv.Quote(k)+"]", v, MaxParameterBytes, false); err != nil {
			return err
		}
	}
	if o.LatencyMS < 0 || o.PromptTokens < 0 || o.CompletionTokens < 0 {
		return invalid(field+"latency_ms", "latency and token counts must not be negative")
	}
	if err := checkText(field+"error", o.Error, MaxErrorBytes, false); err != nil {
		return err
	}
	switch {
	case o.Error == "" && (noteRequired || o.Note != nil):
		if err := validateDraft(o.Note); err != nil {
			return err
		}
	case o.Error != "" && o.Note != nil && len(o.Note.Sections) > 0:
		return invalid(field+"note", "a failed call has no note")
	case o.Error != "":
		o.Note = nil
	}
	if len(o.Inputs) > MaxInputs {
		return invalid(field+"input_indexes", "more than %d inputs", MaxInputs)
	}
	return nil
}

// FitModelOutput makes what a proxy saw of a model call acceptable as a
// model output, whatever the client and the model sent: labels and values
// are cut to their limits and stripped of control characters, at most
// MaxParameters-reserve parameters are kept (reserve leaves room for the
// caller's own), a negative latency becomes 0 and a failed call loses its
// note.
func FitModelOutput(o *ModelOutput, reserve int) {
	o.Model.Name = Fit(o.Model.Name, MaxIDBytes)
	if strings.TrimSpace(o.Model.Name) == "" {
		o.Model.Name = "unknown"
	}
	o.Model.Version = Fit(o.Model.Version, MaxIDBytes)
	o.Backend = Fit(o.Backend, MaxIDBytes)
	o.Error = Fit(o.Error, MaxErrorBytes)
	params := make(map[string]string, len(o.Parameters)+reserve)
	for _, k := range slices.Sorted(maps.Keys(o.Parameters)) {
		if len(params) >= MaxParameters-reserve {
			break
		}
		ck := Fit(k, MaxIDBytes)
		if strings.TrimSpace(ck) == "" {
			continue
		}
		if _, ok := params[ck]; !ok {
			params[ck] = Fit(o.Parameters[k], MaxParameterBytes)
		}
	}
	o.Parameters = params
	if o.LatencyMS < 0 {
		o.LatencyMS = 0
	}
	if o.Error != "" {
		o.Note = nil
	}
}

// Fit makes s valid UTF-8 without control characters and at most max
// bytes long, as FitModelOutput does with a model output's labels.
func Fit(s string, max int) string {
	if len(s) <= max && plainASCII(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// RecordCalls records model calls whose output is not a note, such as a
// proxied reply that is not a SOAP note, in one append: each is checked as
// RecordModelOutput checks one, except that a successful call needs no
// note, and none may carry one. They do not change the note. It returns the
// append.
func (svc *Service) RecordCalls(ctx context.Context, c Caller, id string, outputs []ModelOutput) (*ledger.Appended, error) {
	if len(outputs) == 0 {
		return nil, invalid("outputs", "at least one call is required")
	}
	if len(outputs) > MaxSegmentsPerRequest {
		return nil, &ledger.InvalidError{Field: "outputs", Reason: fmt.Sprintf("more than %d calls in one request", MaxSegmentsPerRequest), Err: ledger.ErrTooLarge}
	}
	for i := range outputs {
		field := ""
		if len(outputs) > 1 {
			field = fmt.Sprintf("outputs[%d].", i)
		}
		if outputs[i].Note != nil {
			return nil, invalid(field+"note", "a call recorded with RecordCalls has no note (RecordModelOutput records one)")
		}
		if err := validateModelOutput(field, &outputs[i], false); err != nil {
			return nil, err
		}
	}
	var a *ledger.Appended
	err := svc.with(c, id, func(s *state) error {
		var err error
		if a, err = svc.replayed(ctx, c, s); a != nil || err != nil {
			return err
		}
		for i := range outputs {
			for j, x := range outputs[i].Inputs {
				if x < 0 || x > s.head || !s.has(x) {
					return invalid(fmt.Sprintf("outputs[%d].input_indexes[%d]", i, j), "is not an entry of this encounter")
				}
			}
		}
		payloads, err := encodeAll(outputs)
		if err != nil {
			return err
		}
		values := make([]any, len(outputs))
		for i := range outputs {
			values[i] = &outputs[i]
		}
		a, err = svc.appendDecoded(ctx, c, s, repeat(ledger.KindModelOutput, len(outputs)), payloads, values)
		return err
	})
	return a, err
}

// RecordModelOutput records one model call. When it produced a note, the
// note is aligned to the transcript and the alignment recorded after it.
func (svc *Service) RecordModelOutput(ctx context.Context, c Caller, id string, o ModelOutput) (*Recorded, error) {
	if err := validateModelOutput("", &o, true); err != nil {
		return nil, err
	}
	var rec *Recorded
	err := svc.with(c, id, func(s *state) error {
		var err error
		if rec, err = svc.replay(ctx, c, s); rec != nil || err != nil {
			return err
		}
		for i, x := range o.Inputs {
			if x < 0 || x > s.head || !s.has(x) {
				return invalid(fmt.Sprintf("input_indexes[%d]", i), "is not an entry of this encounter")
			}
		}
		p, err := encodePayload(o)
		if err != nil {
			return err
		}
		// Check the note before appending anything, so that a sentence
		// the engine rejects writes nothing.
		var sents []align.Sentence
		var results []align.Result
		if o.Note != nil {
			for _, sec := range o.Note.Sections {
				for _, t := range sec.Sentences {
					sents = append(sents, align.Sentence{ID: t.ID, Section: sec.Name, Text: t.Text})
				}
			}
			if results, err = svc.alignSentences(s, sents); err != nil {
				return err
			}
		}
		a, err := svc.append(ctx, c, s, []ledger.Kind{ledger.KindModelOutput}, [][]byte{p})
		if err != nil {
			return err
		}
		rec = &Recorded{Appended: a, Indexes: []int64{a.First}, Change: a.First, Alignment: -1, Resolution: -1}
		if o.Note != nil {
			if err := svc.recordAlignment(ctx, c, s, sents, results, a.First, rec); err != nil {
				return err
			}
		}
		rec.Note = s.project()
		return nil
	})
	return rec, err
}

// has reports whether x is the index of one of the encounter's entries.
func (s *state) has(x int64) bool {
	for _, g := range s.segments {
		if g.Index == x {
			return true
		}
	}
	for _, a := range s.audio {
		if a.Index == x {
			return true
		}
	}
	for _, e := range s.events {
		if e.Index == x {
			return true
		}
	}
	return false
}

// replay reports the earlier write of a retried request (see replayed)
// as its first attempt did: the change, the alignment recorded after it,
// if any, and the current note. It returns nil for a new request.
func (svc *Service) replay(ctx context.Context, c Caller, s *state) (*Recorded, error) {
	a, err := svc.replayed(ctx, c, s)
	if a == nil || err != nil {
		return nil, err
	}
	rec := &Recorded{Appended: a, Indexes: []int64{a.First}, Change: a.First, Alignment: -1, Resolution: -1}
	for _, ev := range s.events {
		switch {
		case ev.edit != nil && ev.Index == a.First:
			rec.SentenceID = ev.edit.SentenceID
		case ev.alignment != nil && ev.Index > a.First && rec.Alignment < 0 &&
			len(ev.alignment.Sentences) > 0 && ev.alignment.Sentences[0].Version == a.First:
			rec.Alignment = ev.Index
			rec.Indexes = append(rec.Indexes, ev.Index)
		case ev.resolution != nil && rec.Resolution < 0 && (ev.Index == a.First || ev.Index > a.First && ev.resolution.Edit == a.First):
			rec.Resolution, rec.SentenceID = ev.Index, ev.resolution.SentenceID
			if ev.Index == a.First {
				rec.Change = -1 // a confirmation changes no text
			} else {
				rec.Indexes = append(rec.Indexes, ev.Index)
			}
		}
	}
	rec.Note = s.project()
	return rec, nil
}

// recordAlignment appends the alignment entry of sentences (all of one
// version, the leaf at version) and their results from alignSentences.
func (svc *Service) recordAlignment(ctx context.Context, c Caller, s *state, sents []align.Sentence, results []align.Result, version int64, rec *Recorded) error {
	a := Alignment{V: PayloadVersion, Method: methodOf(results), Segments: len(s.segments)}
	for i, r := range results {
		a.Sentences = append(a.Sentences, s.sentenceAlignment(sents[i], version, r))
	}
	p, err := encodePayload(a)
	if err != nil {
		return err
	}
	app, err := svc.append(ctx, c, s, []ledger.Kind{ledger.KindAlignment}, [][]byte{p})
	if err != nil {
		return err
	}
	rec.Alignment = app.First
	rec.Indexes = append(rec.Indexes, app.First)
	// The later append's checkpoint covers both.
	rec.Appended = app
	return nil
}

// methodOf returns the method version that produced results.
func methodOf(results []align.Result) string {
	for _, r := range results {
		if r.MethodVersion != "" {
			return r.MethodVersion
		}
	}
	return align.MethodVersion
}

// sentenceAlignment is the recorded form of one sentence's result.
func (s *state) sentenceAlignment(t align.Sentence, version int64, r align.Result) SentenceAlignment {
	sa := SentenceAlignment{SentenceID: t.ID, Version: version, Spans: []Span{},
		Verdict: string(r.Verdict), Severity: string(r.Severity)}
	for _, sp := range r.Spans {
		sa.Spans = append(sa.Spans, Span{SegmentID: sp.SegmentID, SegmentIndex: s.segmentIndex(sp.SegmentID),
			CharStart: sp.CharStart, CharEnd: sp.CharEnd, StartMS: sp.StartMS, EndMS: sp.EndMS, Score: sp.Score})
	}
	for _, c := range r.Conflicts {
		sa.Conflicts = append(sa.Conflicts, Conflict{Kind: string(c.Kind), Claim: TextRange{c.Claim.Start, c.Claim.End},
			SegmentID: c.SegmentID, SegmentIndex: s.segmentIndex(c.SegmentID), CharStart: c.CharStart, CharEnd: c.CharEnd,
			StartMS: c.StartMS, EndMS: c.EndMS, Words: c.Words})
	}
	for _, u := range r.Unsupported {
		sa.Unsupported = append(sa.Unsupported, TextRange{u.Start, u.End})
	}
	return sa
}

// Checker aligns note sentences to an encounter's transcript and gives
// each its verdict: align.Align, unless WithChecker replaced it. segs is
// in time order and never empty.
type Checker func(segs []align.Segment, sents []align.Sentence) ([]align.Result, error)

// WithChecker replaces align.Align, for tests of what the service does
// with verdicts the engine may give.
func WithChecker(c Checker) Option {
	return func(svc *Service) { svc.check = c }
}

// checkResults rejects results that do not answer sents one to one with
// well-formed verdicts, so that nothing malformed is recorded.
func checkResults(sents []align.Sentence, results []align.Result) error {
	if len(results) != len(sents) {
		return fmt.Errorf("encounter: the checker returned %d results for %d sentences", len(results), len(sents))
	}
	for i, r := range results {
		text := sents[i].Text
		bad := func(what string) error {
			return fmt.Errorf("encounter: the checker's result %d (sentence %q): %s", i, sents[i].ID, what)
		}
		switch string(r.Verdict) {
		case VerdictSupported, VerdictInferred:
			if r.Severity != "" || len(r.Conflicts) > 0 || len(r.Unsupported) > 0 {
				return bad("a supported or inferred verdict with a severity, conflicts or unsupported ranges")
			}
		case VerdictContradicted, VerdictUnmentioned:
			switch string(r.Severity) {
			case SeverityMajor, SeverityMinor, SeverityMinimal:
			default:
				return bad("a flagged verdict without a valid severity")
			}
		default:
			return bad("an unknown verdict")
		}
		for _, c := range r.Conflicts {
			if c.Claim.Start < 0 || c.Claim.Start > c.Claim.End || c.Claim.End > len(text) {
				return bad("a conflict's claim lies outside the sentence")
			}
		}
		for _, u := range r.Unsupported {
			if u.Start < 0 || u.Start > u.End || u.End > len(text) {
				return bad("an unsupported range lies outside the sentence")
			}
		}
	}
	return nil
}

func (svc *Service) alignSentences(s *state, sents []align.Sentence) ([]align.Result, error) {
	if len(s.segments) == 0 {
		// Nothing can support any sentence, and nothing has checked one.
		out := make([]align.Result, len(sents))
		for i := range sents {
			out[i] = align.Result{SentenceID: sents[i].ID, MethodVersion: align.MethodVersion,
				Verdict: align.Unmentioned, Severity: align.Major, Unsupported: []align.Range{{Start: 0, End: len(sents[i].Text)}}}
		}
		return out, nil
	}
	segs := make([]align.Segment, len(s.segments))
	for i, g := range s.segments {
		words := make([]align.Word, len(g.Words))
		for j, w := range g.Words {
			words[j] = align.Word{Text: w.Text, StartMS: w.StartMS, EndMS: w.EndMS}
		}
		segs[i] = align.Segment{ID: g.ID, Speaker: g.Role, StartMS: g.StartMS, EndMS: g.EndMS, Text: g.Text, Words: words}
	}
	// The aligner expects segments in time order; the chain holds them in
	// the order they were recorded.
	slices.SortStableFunc(segs, func(a, b align.Segment) int {
		switch {
		case a.StartMS < b.StartMS:
			return -1
		case a.StartMS > b.StartMS:
			return 1
		}
		return 0
	})
	check := svc.check
	if check == nil {
		check = align.Align
	}
	results, err := check(segs, sents)
	if err != nil {
		return nil, err
	}
	if err := checkResults(sents, results); err != nil {
		return nil, err
	}
	return results, nil
}

func (s *state) segmentIndex(id string) int64 {
	for _, g := range s.segments {
		if g.ID == id {
			return g.Index
		}
	}
	return -1
}

// EditRequest is a clinician's change to the note.
type EditRequest struct {
	Action     string
	SentenceID string // for replace and delete
	Section    string // for add
	After      string // for add: the sentence to follow, or "" for the start
	Text       string
	Reason     string
}

// RecordEdit records an edit of the current note and re-aligns the
// sentence it changes (only that one).
func (svc *Service) RecordEdit(ctx context.Context, c Caller, id string, r EditRequest) (*Recorded, error) {
	switch r.Action {
	case ActionReplace, ActionAdd:
		if err := checkText("text", r.Text, align.MaxSentenceBytes, true); err != nil {
			return nil, err
		}
	case ActionDelete:
		if r.Text != "" {
			return nil, invalid("text", "a delete has no text")
		}
	default:
		return nil, invalid("action", "must be replace, add or delete")
	}
	if err := checkText("reason", r.Reason, 1024, false); err != nil {
		return nil, err
	}
	var rec *Recorded
	err := svc.with(c, id, func(s *state) error {
		var err error
		if rec, err = svc.replay(ctx, c, s); rec != nil || err != nil {
			return err
		}
		rec, err = svc.recordEditLocked(ctx, c, s, r)
		return err
	})
	return rec, err
}

// recordEditLocked records a validated edit and re-aligns the sentence it
// changes; s.mu is held.
func (svc *Service) recordEditLocked(ctx context.Context, c Caller, s *state, r EditRequest) (*Recorded, error) {
	n := s.project()
	if n.ModelOutput < 0 {
		return nil, fmt.Errorf("%w: the encounter has no note to edit yet", ErrPrecondition)
	}
	d := Edit{V: PayloadVersion, Action: r.Action, Text: r.Text, Reason: r.Reason}
	if r.Action == ActionAdd {
		if err := checkLabel("section", r.Section, true); err != nil {
			return nil, err
		}
		if r.After != "" {
			if sec, ok := n.find(r.After); !ok || sec != r.Section {
				return nil, fmt.Errorf("%w: sentence %q is not in section %q", ledger.ErrNotFound, r.After, r.Section)
			}
		}
		d.Section, d.After = r.Section, r.After
		d.SentenceID = fmt.Sprintf("added-%d", s.added+1)
	} else {
		if err := checkLabel("sentence_id", r.SentenceID, true); err != nil {
			return nil, err
		}
		sec, ok := n.find(r.SentenceID)
		if !ok {
			return nil, fmt.Errorf("%w: sentence %q", ledger.ErrNotFound, r.SentenceID)
		}
		t := n.sentence(r.SentenceID)
		if r.Action == ActionReplace && t.Text == r.Text {
			return nil, fmt.Errorf("%w: the new text is the same as the current text", ErrPrecondition)
		}
		d.SentenceID, d.Section = r.SentenceID, sec
		d.Base = t.Versions[len(t.Versions)-1].Index
	}
	p, err := encodePayload(d)
	if err != nil {
		return nil, err
	}
	var sents []align.Sentence
	var results []align.Result
	if d.Action != ActionDelete {
		// Checked before anything is appended, as in RecordModelOutput.
		sents = []align.Sentence{{ID: d.SentenceID, Section: d.Section, Text: d.Text}}
		if results, err = svc.alignSentences(s, sents); err != nil {
			return nil, err
		}
	}
	a, err := svc.append(ctx, c, s, []ledger.Kind{ledger.KindEdit}, [][]byte{p})
	if err != nil {
		return nil, err
	}
	rec := &Recorded{Appended: a, Indexes: []int64{a.First}, Change: a.First, Alignment: -1, Resolution: -1, SentenceID: d.SentenceID}
	if d.Action != ActionDelete {
		if err := svc.recordAlignment(ctx, c, s, sents, results, a.First, rec); err != nil {
			return nil, err
		}
	}
	rec.Note = s.project()
	return rec, nil
}

// find returns the section holding sentence id.
func (n *Note) find(id string) (string, bool) {
	for _, sec := range n.Sections {
		for _, t := range sec.Sentences {
			if t.ID == id {
				return sec.Name, true
			}
		}
	}
	return "", false
}

func (n *Note) sentence(id string) *NoteSentence {
	for _, sec := range n.Sections {
		for _, t := range sec.Sentences {
			if t.ID == id {
				return t
			}
		}
	}
	return nil
}

// Sign signs the current note. noteHash must be the hash of the version the
// clinician reviewed, and every flagged sentence (contradicted or
// unmentioned) must be resolved (ResolveSentence); otherwise Sign returns
// an *UnresolvedError and writes nothing. acknowledged is recorded with the
// sign-off as before resolutions existed; it no longer stands in for a
// resolution.
func (svc *Service) Sign(ctx context.Context, c Caller, id string, noteHash []byte, acknowledged []string, statement string) (*Recorded, error) {
	if len(noteHash) != 32 {
		return nil, invalid("note_hash", "must be a 32-byte SHA-256")
	}
	if err := checkText("statement", statement, 1024, false); err != nil {
		return nil, err
	}
	var rec *Recorded
	err := svc.with(c, id, func(s *state) error {
		var err error
		if rec, err = svc.replay(ctx, c, s); rec != nil || err != nil {
			return err
		}
		n := s.project()
		if n.ModelOutput < 0 {
			return fmt.Errorf("%w: the encounter has no note to sign", ErrPrecondition)
		}
		if hex.EncodeToString(noteHash) != hexHash(n.Hash) {
			return fmt.Errorf("%w: the note changed since the reviewed version; fetch it again", ErrPrecondition)
		}
		for i, sid := range acknowledged {
			if n.sentence(sid) == nil {
				return invalid(fmt.Sprintf("acknowledged_sentence_ids[%d]", i), "is not a sentence of the note")
			}
		}
		var unresolved UnresolvedError
		for _, sec := range n.Sections {
			for _, t := range sec.Sentences {
				if t.NeedsResolution() {
					unresolved.Sentences = append(unresolved.Sentences, UnresolvedSentence{ID: t.ID, Verdict: t.Verdict, Severity: t.Severity})
				}
			}
		}
		if len(unresolved.Sentences) > 0 {
			return &unresolved
		}
		p, err := encodePayload(Signoff{V: PayloadVersion, NoteHash: hexHash(n.Hash), Head: n.Head, Acknowledged: acknowledged, Statement: statement})
		if err != nil {
			return err
		}
		a, err := svc.append(ctx, c, s, []ledger.Kind{ledger.KindSignoff}, [][]byte{p})
		if err != nil {
			return err
		}
		rec = &Recorded{Appended: a, Indexes: []int64{a.First}, Change: a.First, Alignment: -1, Resolution: -1, Note: s.project()}
		return nil
	})
	return rec, err
}

// Note returns the current note of an encounter.
func (svc *Service) Note(ctx context.Context, c Caller, id string) (*Note, error) {
	var n *Note
	err := svc.with(c, id, func(s *state) error { n = s.project(); return nil })
	if err != nil {
		return nil, err
	}
	if err := svc.audit(ctx, c, id, Access{Action: AccessNote, Head: n.Head}); err != nil {
		return nil, err
	}
	return n, nil
}

// AlignedSentence is the evidence found for one ad hoc sentence and its
// verdict.
type AlignedSentence struct {
	ID                string
	Evidence          []Evidence
	Verdict           string
	Severity          string
	Conflicts         []ConflictEvidence
	UnsupportedRanges []SentenceRange
	Method            string
}

// Align aligns ad hoc sentences against an encounter's transcript and
// records nothing.
func (svc *Service) Align(ctx context.Context, c Caller, id string, sents []align.Sentence) ([]AlignedSentence, error) {
	if len(sents) == 0 {
		return nil, invalid("sentences", "at least one sentence is required")
	}
	if len(sents) > MaxSentences {
		return nil, &ledger.InvalidError{Field: "sentences", Reason: fmt.Sprintf("more than %d sentences", MaxSentences), Err: ledger.ErrTooLarge}
	}
	for i := range sents {
		if sents[i].ID == "" {
			sents[i].ID = strconv.Itoa(i)
		}
		if err := checkLabel(fmt.Sprintf("sentences[%d].sentence_id", i), sents[i].ID, true); err != nil {
			return nil, err
		}
		if err := checkText(fmt.Sprintf("sentences[%d].text", i), sents[i].Text, align.MaxSentenceBytes, true); err != nil {
			return nil, err
		}
	}
	var out []AlignedSentence
	head := int64(-1)
	err := svc.with(c, id, func(s *state) error {
		head = s.head
		results, err := svc.alignSentences(s, sents)
		if err != nil {
			return err
		}
		segs := make(map[int64]*storedSegment, len(s.segments))
		for i := range s.segments {
			segs[s.segments[i].Index] = &s.segments[i]
		}
		for i, r := range results {
			sa := s.sentenceAlignment(sents[i], -1, r)
			t := &NoteSentence{Text: sents[i].Text}
			applyVerdict(t, &sa, segs)
			a := AlignedSentence{ID: sents[i].ID, Verdict: t.Verdict, Severity: t.Severity, Conflicts: t.Conflicts,
				UnsupportedRanges: t.UnsupportedRanges, Method: methodOf(results)}
			for _, sp := range sa.Spans {
				a.Evidence = append(a.Evidence, evidenceFor(sp, segs[sp.SegmentIndex]))
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := svc.audit(ctx, c, id, Access{Action: AccessAlign, Head: head, Count: len(sents)}); err != nil {
		return nil, err
	}
	return out, nil
}
