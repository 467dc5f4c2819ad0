package encounter

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// resolveAll confirms every flagged sentence of n, as a clinician would
// after checking each against the visit.
func resolveAll(t *testing.T, svc *Service, id string, n *Note) {
	t.Helper()
	for _, sec := range n.Sections {
		for _, s := range sec.Sentences {
			if s.NeedsResolution() {
				if _, err := svc.ResolveSentence(ctx, alice, id, ResolveRequest{SentenceID: s.ID, Verdict: s.Verdict, Action: ResolveConfirmed, Reason: "checked against the visit"}); err != nil {
					t.Fatalf("resolve %s: %v", s.ID, err)
				}
			}
		}
	}
}

// A sentence the fake checker contradicts: the patient answered "No." (s4)
// to "Any trouble swallowing?" (s3).
const wrongSwallow = "Difficulty swallowing."

// fakeChecker is align.Align's retrieval with fixed verdicts: it calls
// wrongSwallow contradicted (its conflict: the whole claim against the
// patient's "No."), any sentence starting "Amoxicillin" unmentioned and
// major, with the drug name as the unsupported part, and every other
// sentence supported. It stands in for the engine's claim checker so that
// these tests of the plumbing see each verdict whatever the engine
// decides.
func fakeChecker(segs []align.Segment, sents []align.Sentence) ([]align.Result, error) {
	res, err := align.Align(segs, sents)
	if err != nil {
		return nil, err
	}
	for i, t := range sents {
		res[i].Verdict, res[i].Severity, res[i].Conflicts, res[i].Unsupported = align.Supported, "", nil, nil
		switch {
		case t.Text == wrongSwallow:
			res[i].Verdict, res[i].Severity, res[i].Unsupported = align.Contradicted, align.Major, nil
			res[i].Conflicts = []align.Conflict{{Kind: align.ConflictNegation, Claim: align.Range{Start: 0, End: len("Difficulty swallowing")},
				SegmentID: "s4", CharStart: 0, CharEnd: 2, StartMS: 7600, EndMS: 8000, Words: "No"}}
		case strings.HasPrefix(t.Text, "Amoxicillin"):
			res[i].Verdict, res[i].Severity, res[i].Conflicts = align.Unmentioned, align.Major, nil
			res[i].Unsupported = []align.Range{{Start: 0, End: len("Amoxicillin")}}
		}
	}
	return res, nil
}

func newCheckedService(t *testing.T, c Checker) (*Service, *ledger.Appender) {
	t.Helper()
	kv := memstore.New()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "encounter.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(kv, ledger.Options{Origin: "encounter.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return New(l.Log, l, blob.New(kv, nil), WithChecker(c)), l
}

var flaggedDraft = &Draft{Sections: []DraftSection{
	{Name: "Subjective", Sentences: []DraftSentence{
		{ID: "S1", Text: "Sore throat for 3 days with a temperature."},
		{ID: "S2", Text: wrongSwallow},
	}},
	{Name: "Plan", Sentences: []DraftSentence{
		{ID: "P1", Text: "Paracetamol and fluids."},
		{ID: "P2", Text: "Amoxicillin 500 mg three times a day."},
	}},
}}

func TestVerdictsAreRecordedAndProjected(t *testing.T) {
	svc, l := newCheckedService(t, fakeChecker)
	id := newVisit(t, svc)
	rec, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: flaggedDraft})
	if err != nil {
		t.Fatal(err)
	}
	// The alignment entry records each sentence's verdict.
	p, _, err := l.Payload(rec.Alignment)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodePayload(ledger.KindAlignment, p)
	if err != nil {
		t.Fatal(err)
	}
	al := v.(*Alignment)
	if al.Method != align.MethodVersion {
		t.Errorf("method %q, want %q", al.Method, align.MethodVersion)
	}
	byID := map[string]SentenceAlignment{}
	for _, sa := range al.Sentences {
		byID[sa.SentenceID] = sa
	}
	s2 := byID["S2"]
	segs, _, _ := svc.Transcript(ctx, alice, id)
	var s4Leaf int64 = -1
	for _, g := range segs {
		if g.ID == "s4" {
			s4Leaf = g.Index
		}
	}
	want := Conflict{Kind: "negation", Claim: TextRange{0, 21}, SegmentID: "s4", SegmentIndex: s4Leaf, CharStart: 0, CharEnd: 2, StartMS: 7600, EndMS: 8000, Words: "No"}
	if s2.Verdict != "contradicted" || s2.Severity != "major" || len(s2.Conflicts) != 1 || s2.Conflicts[0] != want {
		t.Errorf("recorded S2: %+v, want contradicted, major, conflict %+v", s2, want)
	}
	if p2 := byID["P2"]; p2.Verdict != "unmentioned" || p2.Severity != "major" || len(p2.Unsupported) != 1 || p2.Unsupported[0] != (TextRange{0, 11}) {
		t.Errorf("recorded P2: %+v", p2)
	}
	if s1 := byID["S1"]; s1.Verdict != "supported" || s1.Severity != "" {
		t.Errorf("recorded S1: %+v", s1)
	}
	// The projection carries them, with the conflict's words located for
	// the page.
	n := rec.Note
	x := sentence(t, n, "S2")
	if x.Verdict != VerdictContradicted || !x.Flagged() || !x.NeedsResolution() || len(x.Conflicts) != 1 {
		t.Fatalf("projected S2: %+v", x)
	}
	c := x.Conflicts[0]
	if c.Role != RolePatient || c.UTF16Start != 0 || c.UTF16End != 2 || c.ClaimRange.UTF16End != 21 || c.Words != "No" {
		t.Errorf("projected conflict %+v", c)
	}
	if y := sentence(t, n, "P2"); y.Verdict != VerdictUnmentioned || len(y.UnsupportedRanges) != 1 || y.UnsupportedRanges[0].UTF16End != 11 {
		t.Errorf("projected P2: %+v", y)
	}
	if y := sentence(t, n, "S1"); y.Flagged() || y.NeedsResolution() {
		t.Errorf("S1 is flagged: %+v", y)
	}
	// An edit re-verifies: the new text's verdict replaces the old.
	ed, err := svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionReplace, SentenceID: "S2", Text: "No difficulty swallowing."})
	if err != nil {
		t.Fatal(err)
	}
	if y := sentence(t, ed.Note, "S2"); y.Verdict != VerdictSupported || len(y.Conflicts) != 0 || y.Severity != "" {
		t.Errorf("S2 after the edit: %+v", y)
	}
	// The ad hoc AlignService path gives the same verdicts.
	got, err := svc.Align(ctx, alice, id, []align.Sentence{{ID: "q", Text: wrongSwallow}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Verdict != VerdictContradicted || got[0].Severity != SeverityMajor || len(got[0].Conflicts) != 1 || got[0].Conflicts[0].SegmentIndex != s4Leaf || got[0].Method != align.MethodVersion {
		t.Errorf("Align: %+v", got[0])
	}
}

// An alignment entry written before verdicts existed still decodes, and
// its sentences get the verdict the retrieval-only method gave.
func TestLegacyAlignmentEntries(t *testing.T) {
	svc, l := newService(t)
	id := newVisit(t, svc)
	rec, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: draft})
	if err != nil {
		t.Fatal(err)
	}
	segs, _, _ := svc.Transcript(ctx, alice, id)
	// A payload exactly as the previous version wrote it: no verdict
	// fields. S1 with a span, A2 without.
	legacy := `{"v":1,"method":"align-2026.11-bm25ctx-note-qa-lr2","segments":5,"sentences":[` +
		`{"sentence_id":"S1","version":` + itoa(rec.Change) + `,"spans":[{"segment_id":"s2","segment_index":` + itoa(segs[1].Index) + `,"char_start":0,"char_end":10,"start_ms":2100,"end_ms":6000,"score":0.9}]},` +
		`{"sentence_id":"A2","version":` + itoa(rec.Change) + `,"spans":[]}]}`
	if _, err := DecodePayload(ledger.KindAlignment, []byte(legacy)); err != nil {
		t.Fatalf("a legacy alignment payload does not decode: %v", err)
	}
	if _, err := l.Append(ctx, []ledger.Entry{{Kind: ledger.KindAlignment, Tenant: alice.Tenant, Encounter: id, Actor: "svc:old", Payload: []byte(legacy)}}); err != nil {
		t.Fatal(err)
	}
	n, err := svc.Note(ctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	if s1 := sentence(t, n, "S1"); s1.Verdict != VerdictSupported || s1.AlignmentMethod != "align-2026.11-bm25ctx-note-qa-lr2" || len(s1.Evidence) != 1 {
		t.Errorf("legacy S1: %+v", s1)
	}
	a2 := sentence(t, n, "A2")
	if a2.Verdict != VerdictUnmentioned || a2.Severity != SeverityMinor || len(a2.UnsupportedRanges) != 1 || a2.UnsupportedRanges[0].End != len(a2.Text) {
		t.Errorf("legacy A2: %+v", a2)
	}
	// Unknown fields are still refused.
	if _, err := DecodePayload(ledger.KindAlignment, []byte(strings.Replace(legacy, `"spans":[]`, `"spans":[],"verdikt":"x"`, 1))); err == nil {
		t.Error("an alignment payload with an unknown field decoded")
	}
}

func itoa(x int64) string { b, _ := json.Marshal(x); return string(b) }

func TestResolveSentence(t *testing.T) {
	svc, l := newCheckedService(t, fakeChecker)
	id := newVisit(t, svc)
	rec, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: flaggedDraft})
	if err != nil {
		t.Fatal(err)
	}
	s2 := sentence(t, rec.Note, "S2")

	// Bad requests are refused with the field named, and write nothing.
	size := l.Size()
	for name, c := range map[string]struct {
		r     ResolveRequest
		field string
		code  error // ErrPrecondition, ledger.ErrNotFound, or nil for invalid
	}{
		"not flagged":       {ResolveRequest{SentenceID: "S1", Verdict: VerdictSupported, Action: ResolveConfirmed, Reason: "fine"}, "sentence_id", ErrPrecondition},
		"verdict not seen":  {ResolveRequest{SentenceID: "S2", Verdict: VerdictUnmentioned, Action: ResolveConfirmed, Reason: "fine"}, "verdict", ErrPrecondition},
		"other alignment":   {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Alignment: rec.Change, Action: ResolveConfirmed, Reason: "fine"}, "alignment_index", ErrPrecondition},
		"same text":         {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: ResolveEdited, Text: wrongSwallow}, "text", ErrPrecondition},
		"unknown sentence":  {ResolveRequest{SentenceID: "Z9", Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "fine"}, "", ledger.ErrNotFound},
		"no reason":         {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "  "}, "reason", nil},
		"no verdict":        {ResolveRequest{SentenceID: "S2", Action: ResolveConfirmed, Reason: "fine"}, "verdict", nil},
		"bad action":        {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: "ignore", Reason: "fine"}, "action", nil},
		"text on confirm":   {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "fine", Text: "x"}, "text", nil},
		"no text on edit":   {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: ResolveEdited}, "text", nil},
		"no sentence id":    {ResolveRequest{Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "fine"}, "sentence_id", nil},
		"reason too long":   {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: strings.Repeat("x", MaxReasonBytes+1)}, "reason", nil},
		"negative leaf":     {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Alignment: -2, Action: ResolveConfirmed, Reason: "fine"}, "alignment_index", nil},
		"unknown encounter": {ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "fine"}, "", ledger.ErrNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			enc := id
			if name == "unknown encounter" {
				enc = "enc_nosuchencounter"
			}
			_, err := svc.ResolveSentence(ctx, alice, enc, c.r)
			switch {
			case c.code == nil:
				wantField(t, err, c.field)
			case c.code == ErrPrecondition:
				var pe *PreconditionError
				if !errors.As(err, &pe) || pe.Field != c.field || !errors.Is(err, ErrPrecondition) {
					t.Fatalf("error %v, want a failed precondition on %q", err, c.field)
				}
			default:
				if !errors.Is(err, c.code) {
					t.Fatalf("error %v, want %v", err, c.code)
				}
			}
		})
	}
	if l.Size() != size {
		t.Fatalf("refused resolutions wrote %d entries", l.Size()-size)
	}

	// Signing is refused while S2 and P2 are unresolved.
	h := rec.Note.Hash
	_, err = svc.Sign(ctx, alice, id, h[:], nil, "")
	var unresolved *UnresolvedError
	if !errors.As(err, &unresolved) || len(unresolved.Sentences) != 2 || !strings.Contains(err.Error(), "2 flagged sentences are unresolved") {
		t.Fatalf("sign with two unresolved: %v", err)
	}

	// Confirming with a reason: one resolution entry, with who, the
	// verdict seen and the reason.
	conf, err := svc.ResolveSentence(ctx, alice, id, ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Alignment: s2.AlignmentIndex,
		Action: ResolveConfirmed, Reason: "The patient described it after the recording stopped."})
	if err != nil {
		t.Fatal(err)
	}
	if len(conf.Indexes) != 1 || conf.Resolution != conf.Indexes[0] || conf.Change != -1 || conf.SentenceID != "S2" {
		t.Fatalf("confirmation recorded %+v", conf)
	}
	e, err := l.Entry(conf.Resolution)
	if err != nil || e.Leaf.Kind != ledger.KindResolution || e.Leaf.Actor != alice.Actor {
		t.Fatalf("resolution entry %+v, %v", e, err)
	}
	p, _, err := l.Payload(conf.Resolution)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodePayload(ledger.KindResolution, p)
	if err != nil {
		t.Fatal(err)
	}
	want := Resolution{V: 1, SentenceID: "S2", Version: rec.Change, Alignment: rec.Alignment, Verdict: "contradicted", Severity: "major",
		Action: "confirmed", Reason: "The patient described it after the recording stopped."}
	if *v.(*Resolution) != want {
		t.Fatalf("resolution payload %+v, want %+v", *v.(*Resolution), want)
	}
	x := sentence(t, conf.Note, "S2")
	if !x.Resolved || x.NeedsResolution() || len(x.Resolutions) != 1 || x.Resolutions[0].Actor != alice.Actor || x.Resolutions[0].Index != conf.Resolution {
		t.Fatalf("S2 after confirming: %+v", x)
	}
	if x.Verdict != VerdictContradicted {
		t.Error("confirming changed the verdict; it records what the clinician decided, the verdict stays")
	}
	size = l.Size()
	if _, err := svc.ResolveSentence(ctx, alice, id, ResolveRequest{SentenceID: "S2", Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "again"}); !isPrecondition(err, "sentence_id") {
		t.Fatalf("resolving twice: %v", err)
	}
	if l.Size() != size {
		t.Fatal("a refused resolution wrote")
	}

	// Editing: the edit, its re-verification and the resolution. The new
	// text is flagged again (the fake checker calls any "Amoxicillin..."
	// unmentioned), so it needs a resolution of its own.
	p2 := sentence(t, conf.Note, "P2")
	ed, err := svc.ResolveSentence(ctx, alice, id, ResolveRequest{SentenceID: "P2", Verdict: VerdictUnmentioned, Action: ResolveEdited,
		Text: "Amoxicillin if not better in a week.", Reason: "Conditional, as discussed."})
	if err != nil {
		t.Fatal(err)
	}
	if len(ed.Indexes) != 3 || ed.Change != ed.Indexes[0] || ed.Alignment != ed.Indexes[1] || ed.Resolution != ed.Indexes[2] {
		t.Fatalf("edit resolution recorded %+v", ed)
	}
	kinds := []ledger.Kind{ledger.KindEdit, ledger.KindAlignment, ledger.KindResolution}
	for i, x := range ed.Indexes {
		if e, err := l.Entry(x); err != nil || e.Leaf.Kind != kinds[i] {
			t.Fatalf("entry %d of the edit resolution: %v, %v", i, e, err)
		}
	}
	p, _, _ = l.Payload(ed.Resolution)
	v, _ = DecodePayload(ledger.KindResolution, p)
	r := v.(*Resolution)
	if r.Version != p2.Versions[0].Index || r.Verdict != "unmentioned" || r.Action != "edited" || r.Edit != ed.Change || r.Realigned != ed.Alignment || r.NewVerdict != "unmentioned" {
		t.Fatalf("edit resolution payload %+v", r)
	}
	y := sentence(t, ed.Note, "P2")
	if y.Text != "Amoxicillin if not better in a week." || y.Resolved || !y.NeedsResolution() || len(y.Resolutions) != 1 {
		t.Fatalf("P2 after the edit: %+v", y)
	}
	if _, err := svc.Sign(ctx, alice, id, ed.Note.Hash[:], nil, ""); !errors.As(err, &unresolved) || len(unresolved.Sentences) != 1 || unresolved.Sentences[0].ID != "P2" {
		t.Fatalf("sign with the re-flagged P2: %v", err)
	}
	// An edit that the checker supports resolves it for good.
	ok, err := svc.ResolveSentence(ctx, alice, id, ResolveRequest{SentenceID: "P2", Verdict: VerdictUnmentioned, Action: ResolveEdited, Text: "Paracetamol and plenty of fluids."})
	if err != nil {
		t.Fatal(err)
	}
	if z := sentence(t, ok.Note, "P2"); z.Verdict != VerdictSupported || z.NeedsResolution() || len(z.Resolutions) != 2 {
		t.Fatalf("P2 after a supported edit: %+v", z)
	}
	signed, err := svc.Sign(ctx, alice, id, ok.Note.Hash[:], nil, "Reviewed.")
	if err != nil || !signed.Note.Signed {
		t.Fatalf("sign after resolving: %v", err)
	}
}

func isPrecondition(err error, field string) bool {
	var pe *PreconditionError
	return errors.As(err, &pe) && pe.Field == field
}

// A checker's malformed result is refused before anything is appended.
func TestMalformedCheckerResultsWriteNothing(t *testing.T) {
	for name, mutate := range map[string]func(r *align.Result, text string){
		"unknown verdict":          func(r *align.Result, _ string) { r.Verdict = "plausible" },
		"flagged without severity": func(r *align.Result, _ string) { r.Verdict, r.Severity = align.Unmentioned, "" },
		"supported with severity":  func(r *align.Result, _ string) { r.Verdict, r.Severity = align.Supported, align.Major },
		"claim outside": func(r *align.Result, text string) {
			r.Verdict, r.Severity = align.Contradicted, align.Minor
			r.Conflicts = []align.Conflict{{Kind: align.ConflictNumber, Claim: align.Range{Start: 0, End: len(text) + 1}, SegmentID: "s2"}}
		},
		"range outside": func(r *align.Result, text string) {
			r.Verdict, r.Severity, r.Unsupported = align.Unmentioned, align.Minor, []align.Range{{Start: -1, End: 2}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			bad := func(segs []align.Segment, sents []align.Sentence) ([]align.Result, error) {
				res, err := align.Align(segs, sents)
				if err == nil {
					mutate(&res[0], sents[0].Text)
				}
				return res, err
			}
			svc, l := newCheckedService(t, bad)
			id := newVisit(t, svc)
			size := l.Size()
			if _, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: draft}); err == nil {
				t.Fatal("a malformed verdict was recorded")
			}
			if l.Size() != size {
				t.Fatalf("%d entries written", l.Size()-size)
			}
		})
	}
}
