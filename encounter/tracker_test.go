package encounter

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/evidenceledger/evidence/ledger"
)

// payloadsOf reads decoded payloads from l, as package summary does.
func payloadsOf(t *testing.T, l *ledger.Appender) PayloadFunc {
	return func(leaf int64) (any, error) {
		p, e, err := l.Payload(leaf)
		if err != nil {
			return nil, err
		}
		return DecodePayload(e.Leaf.Kind, p)
	}
}

// track builds a NoteTracker from an encounter's chain, entry by entry,
// passing it through its JSON encoding after each entry as package summary
// stores it between batches.
func track(t *testing.T, l *ledger.Appender, tenant, id string) *NoteTracker {
	t.Helper()
	tr := NewNoteTracker()
	payload := payloadsOf(t, l)
	err := l.WalkEncounter(tenant, id, func(e *ledger.StoredEntry) error {
		var v any
		if e.Leaf.Kind != ledger.KindAccess {
			var err error
			if v, err = payload(e.Index); err != nil {
				return err
			}
		}
		if err := tr.Apply(e.Index, v, payload); err != nil {
			return err
		}
		b, err := json.Marshal(tr)
		if err != nil {
			return err
		}
		tr = new(NoteTracker)
		return json.Unmarshal(b, tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// checkTracker compares the tracker of an encounter's chain with the note
// projection.
func checkTracker(t *testing.T, step string, svc *Service, l *ledger.Appender, id string) {
	t.Helper()
	n, err := svc.Note(ctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	tr := track(t, l, alice.Tenant, id)
	wf, wu := n.Flags()
	gf, gu := tr.Flags()
	if tr.Status() != n.Status() || gf != wf || gu != wu {
		t.Fatalf("%s: tracker says %v with %d flagged, %d unresolved; the projection %v with %d, %d",
			step, tr.Status(), gf, gu, n.Status(), wf, wu)
	}
	// The order and versions of the sentences too.
	var want, got []string
	for _, sec := range n.Sections {
		for _, s := range sec.Sentences {
			want = append(want, fmt.Sprintf("%s@%d", s.ID, s.Versions[len(s.Versions)-1].Index))
		}
		want = append(want, "|")
	}
	for _, sec := range tr.Sections {
		for _, s := range sec.Sentences {
			got = append(got, fmt.Sprintf("%s@%d", s.ID, s.Version))
		}
		got = append(got, "|")
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: tracker's sentences %v, the projection's %v", step, got, want)
	}
}

// TestTrackerFollowsProjection drives random histories through the Service
// (drafts, redrafts, replacements including back to an earlier text, adds,
// deletes, sign-offs with and without acknowledgements) and checks after
// every write that the tracker built from the chain agrees with the note
// projection on status, flags and sentences.
func TestTrackerFollowsProjection(t *testing.T) {
	seen := map[string]int{}
	defer func() {
		if seen["signed"] == 0 || seen["unresolved"] == 0 || seen["resigned"] == 0 || seen["resolved"] == 0 {
			t.Errorf("the histories did not reach every case: %v", seen)
		}
	}()
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			svc, l := newService(t)
			id := newVisit(t, svc)
			checkTracker(t, "opened", svc, l, id)
			signedTexts := map[string]string{} // the texts of the latest signed version
			texts := []string{"Sore throat for 3 days.", "No difficulty swallowing.", "Allergic to penicillin.", "Paracetamol and fluids.", "No temperature.", "Temperature reported."}
			for step := range 40 {
				n, err := svc.Note(ctx, alice, id)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, sec := range n.Sections {
					for _, s := range sec.Sentences {
						ids = append(ids, s.ID)
					}
				}
				what := ""
				switch r := rng.IntN(10); {
				case n.ModelOutput < 0 || r == 0:
					what = "draft"
					_, err = svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: flagDraft})
				case r <= 3 && len(ids) > 0:
					what = "replace"
					sid := ids[rng.IntN(len(ids))]
					text := texts[rng.IntN(len(texts))]
					// Half the time after a sign-off, back to the signed text.
					for _, x := range ids {
						if st, ok := signedTexts[x]; ok && st != n.sentence(x).Text && rng.IntN(2) == 0 {
							sid, text = x, st
							break
						}
					}
					if n.sentence(sid).Text == text {
						text = texts[(rng.IntN(len(texts)-1)+1+indexOf(texts, text))%len(texts)]
					}
					_, err = svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionReplace, SentenceID: sid, Text: text})
				case r == 4:
					what = "add"
					sec := []string{"Subjective", "Plan", "Follow-up"}[rng.IntN(3)]
					after := ""
					if sec != "Follow-up" && rng.IntN(2) == 0 {
						for _, s := range n.Sections {
							if s.Name == sec && len(s.Sentences) > 0 {
								after = s.Sentences[rng.IntN(len(s.Sentences))].ID
							}
						}
					}
					_, err = svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionAdd, Section: sec, After: after, Text: texts[rng.IntN(len(texts))]})
				case r == 5 && len(ids) > 1:
					what = "delete"
					_, err = svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionDelete, SentenceID: ids[rng.IntN(len(ids))]})
				case r == 6 || r == 7:
					what = "resolve"
					var flagged []*NoteSentence
					for _, sec := range n.Sections {
						for _, s := range sec.Sentences {
							if s.NeedsResolution() {
								flagged = append(flagged, s)
							}
						}
					}
					if len(flagged) == 0 {
						what += " (nothing flagged)"
						break
					}
					f := flagged[rng.IntN(len(flagged))]
					req := ResolveRequest{SentenceID: f.ID, Verdict: f.Verdict, Action: ResolveConfirmed, Reason: "as said"}
					if rng.IntN(3) == 0 {
						req = ResolveRequest{SentenceID: f.ID, Verdict: f.Verdict, Action: ResolveEdited, Text: texts[rng.IntN(len(texts))] + " Checked."}
					}
					_, err = svc.ResolveSentence(ctx, alice, id, req)
				default:
					what = "sign"
					_, err = svc.Sign(ctx, alice, id, n.Hash[:], nil, "")
					if errors.Is(err, ErrPrecondition) {
						what += " (refused)"
						err = nil
					} else if err == nil {
						signedTexts = map[string]string{}
						for _, sec := range n.Sections {
							for _, s := range sec.Sentences {
								signedTexts[s.ID] = s.Text
							}
						}
					}
				}
				if err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
				checkTracker(t, fmt.Sprintf("step %d (%s)", step, what), svc, l, id)
				before := n.Status()
				n, _ = svc.Note(ctx, alice, id)
				if f, u := n.Flags(); u > 0 {
					seen["unresolved"]++
				} else if f > 0 {
					seen["resolved"]++
				}
				if n.Status() == NoteSigned {
					seen["signed"]++
					if before == NoteDrafted && what == "replace" {
						seen["resigned"]++ // signed again by a change back to the signed text
					}
				}
			}
		})
	}
}

// current returns the leaf of each current sentence's current version.
func current(t *testing.T, svc *Service, id string) map[string]int64 {
	t.Helper()
	n, err := svc.Note(ctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sec := range n.Sections {
		for _, s := range sec.Sentences {
			if _, ok := out[s.ID]; !ok {
				out[s.ID] = s.Versions[len(s.Versions)-1].Index
			}
		}
	}
	return out
}

// flagDraft is a note of which the checker flags two sentences of the
// synthetic visit: one unmentioned, one contradicted.
var flagDraft = &Draft{Sections: []DraftSection{
	{Name: "Subjective", Sentences: []DraftSentence{
		{ID: "S1", Text: "Sore throat for 3 days with a temperature."},
		{ID: "S2", Text: "Allergic to penicillin."},
	}},
	{Name: "Assessment", Sentences: []DraftSentence{{ID: "A1", Text: "Sore throat for 2 weeks."}}},
	{Name: "Plan", Sentences: []DraftSentence{{ID: "P1", Text: "Paracetamol and fluids."}}},
}}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// TestTrackerOddHistories appends entries the Service would refuse but
// the log may hold (an add before any draft, a failed model call, an edit
// of a missing sentence, an unknown action, a repeated sentence id, a
// sign-off of another version, a replacement back to the signed text) and
// checks the tracker against the projection after each.
func TestTrackerOddHistories(t *testing.T) {
	svc, l := newService(t)
	id := newVisit(t, svc)
	appendRaw := func(k ledger.Kind, v any) int64 {
		t.Helper()
		p, err := encodePayload(v)
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Append(ctx, []ledger.Entry{{Kind: k, Tenant: alice.Tenant, Encounter: id, Actor: alice.Actor, Payload: p}})
		if err != nil {
			t.Fatal(err)
		}
		return a.First
	}
	edit := func(e Edit) int64 { e.V = PayloadVersion; return appendRaw(ledger.KindEdit, e) }
	steps := []struct {
		name string
		do   func()
	}{
		{"add before any draft", func() { edit(Edit{Action: ActionAdd, SentenceID: "early", Section: "Plan", Text: "Early."}) }},
		{"failed model call", func() {
			appendRaw(ledger.KindModelOutput, ModelOutput{V: PayloadVersion, Model: Model{Name: "m"}, Error: "timeout"})
		}},
		{"draft with a repeated id", func() {
			appendRaw(ledger.KindModelOutput, ModelOutput{V: PayloadVersion, Model: Model{Name: "m"}, Note: &Draft{Sections: []DraftSection{
				{Name: "S", Sentences: []DraftSentence{{ID: "x", Text: "One."}, {ID: "x", Text: "Two."}}},
				{Name: "Empty"},
				{Name: "S", Sentences: []DraftSentence{{ID: "y", Text: "Three."}}},
			}}})
		}},
		{"replace a missing sentence", func() { edit(Edit{Action: ActionReplace, SentenceID: "nope", Text: "Gone."}) }},
		{"unknown action", func() { edit(Edit{Action: "rewrite", SentenceID: "x", Text: "?"}) }},
		{"add after a sentence of another section", func() {
			edit(Edit{Action: ActionAdd, SentenceID: "z", Section: "Empty", After: "y", Text: "Four."})
		}},
		{"add into the first of two same-named sections", func() {
			edit(Edit{Action: ActionAdd, SentenceID: "w", Section: "S", After: "x", Text: "Five."})
		}},
		{"alignment of an older version", func() {
			appendRaw(ledger.KindAlignment, Alignment{V: PayloadVersion, Method: "m", Sentences: []SentenceAlignment{{SentenceID: "x", Version: 1, Spans: []Span{{SegmentID: "s1"}}}}})
		}},
		{"alignments with and without verdicts", func() {
			v := current(t, svc, id)
			appendRaw(ledger.KindAlignment, Alignment{V: PayloadVersion, Method: "m", Sentences: []SentenceAlignment{
				{SentenceID: "x", Version: v["x"], Spans: []Span{{SegmentID: "s1"}}},                               // before verdicts: supported
				{SentenceID: "y", Version: v["y"], Spans: []Span{}},                                                // before verdicts: unmentioned
				{SentenceID: "w", Version: v["w"], Spans: []Span{{SegmentID: "s2"}}, Verdict: VerdictContradicted}, // a stated verdict wins
			}})
		}},
		{"resolution of another version", func() {
			appendRaw(ledger.KindResolution, Resolution{V: PayloadVersion, SentenceID: "w", Version: 1, Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "r"})
		}},
		{"resolution of the current version", func() {
			appendRaw(ledger.KindResolution, Resolution{V: PayloadVersion, SentenceID: "w", Version: current(t, svc, id)["w"], Verdict: VerdictContradicted, Action: ResolveConfirmed, Reason: "r"})
		}},
		{"resolution of a sentence that is not flagged", func() {
			appendRaw(ledger.KindResolution, Resolution{V: PayloadVersion, SentenceID: "x", Version: current(t, svc, id)["x"], Verdict: VerdictSupported, Action: ResolveConfirmed, Reason: "r"})
		}},
		{"sign-off of another version", func() {
			appendRaw(ledger.KindSignoff, Signoff{V: PayloadVersion, NoteHash: hexHash([32]byte{1}), Acknowledged: []string{"x", "missing"}})
		}},
		{"sign-off of the current version", func() {
			n, err := svc.Note(ctx, alice, id)
			if err != nil {
				t.Fatal(err)
			}
			appendRaw(ledger.KindSignoff, Signoff{V: PayloadVersion, NoteHash: hexHash(n.Hash), Acknowledged: []string{"y"}})
		}},
		{"replace after signing", func() { edit(Edit{Action: ActionReplace, SentenceID: "y", Text: "Changed."}) }},
		{"replace back to the signed text", func() { edit(Edit{Action: ActionReplace, SentenceID: "y", Text: "Three."}) }},
		{"delete the first of two same ids", func() { edit(Edit{Action: ActionDelete, SentenceID: "x"}) }},
		{"an access entry", func() {
			if _, err := svc.RecordAccess(ctx, alice, id, Access{Action: AccessNote, Head: -1}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, s := range steps {
		s.do()
		checkTracker(t, s.name, svc, l, id)
		if n, _ := svc.Note(ctx, alice, id); s.name == "replace back to the signed text" && n.Status() != NoteSigned {
			t.Fatalf("the projection says %v after a replacement back to the signed text; the history was meant to test a signed note", n.Status())
		}
	}
}
