package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// TestVisitListPagesAndFilters: the visit list shows the most recently
// written visits a page at a time, loads the next page as the end of the
// list comes into view, and filters by note status, unresolved flags and
// patient reference, keeping the status and the flag filter in the
// address.
func TestVisitListPagesAndFilters(t *testing.T) {
	s := newStack(t, nil)
	ctx := as("dr.list")
	const n = 120
	var ids []string
	for i := range n {
		c, err := s.API.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: fmt.Sprintf("visit %03d", i), PatientRef: fmt.Sprintf("mrn-%d", i%7)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.GetEncounter().GetEncounterId())
	}
	draftNote := &pb.DraftNote{Sections: []*pb.DraftSection{{Name: "Plan", Sentences: []*pb.DraftSentence{{SentenceId: "P1", Text: "Allergic to penicillin."}}}}}
	// Visit 5 gets a note with a flagged sentence; visit 17 one that is
	// signed once the flag is resolved, after it.
	for _, i := range []int{5, 17} {
		mo, err := s.API.RecordModelOutput(ctx, &pb.RecordModelOutputRequest{EncounterId: ids[i], Model: &pb.ModelRef{Name: "m"}, Note: draftNote})
		if err != nil {
			t.Fatal(err)
		}
		p1 := mo.GetNote().GetSections()[0].GetSentences()[0]
		if p1.GetVerdict() != pb.Verdict_VERDICT_UNMENTIONED && p1.GetVerdict() != pb.Verdict_VERDICT_CONTRADICTED {
			t.Fatalf("the test needs a flagged sentence; the checker says %v", p1.GetVerdict())
		}
		if i == 17 {
			rs, err := s.API.ResolveSentence(ctx, &pb.ResolveSentenceRequest{EncounterId: ids[i], SentenceId: "P1", Verdict: p1.GetVerdict(),
				Action: pb.ResolutionAction_RESOLUTION_ACTION_CONFIRM, Reason: "said before the recording"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.API.SignNote(ctx, &pb.SignNoteRequest{EncounterId: ids[i], NoteHash: rs.GetNote().GetNoteHash()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cards := `document.querySelectorAll('.visit-card').length`
	titles := `[...document.querySelectorAll('.visit-card-title')].map((e) => e.textContent)`
	tb := newTab(t, 1280, 800)
	tb.do(chromedp.Navigate(s.URL + "/"))
	tb.wait(cards+` === 50`, 10*time.Second)
	if got := eval[[]string](tb, titles); got[0] != "visit 017" || got[1] != "visit 005" || got[2] != fmt.Sprintf("visit %03d", n-1) {
		t.Fatalf("the list starts %v, want the most recently written first", got[:3])
	}
	if got := eval[[]string](tb, `[...document.querySelectorAll('.visit-card')].slice(0, 2).map((e) => e.textContent)`); !hasText(got[0], "Signed") || !hasText(got[1], "1 unresolved flag") {
		t.Errorf("the first cards say %q", got)
	}
	tb.screenshot("desktop-visit-list-paged")
	if !eval[bool](tb, `performance.getEntriesByName('evidence:list-ready').length === 1`) {
		t.Error("no evidence:list-ready mark")
	}
	// Scrolling to the end loads the next pages, then there is no more.
	for _, want := range []int{100, n} {
		eval[bool](tb, `(document.getElementById('visit-more').scrollIntoView(), true)`)
		tb.wait(fmt.Sprintf(`%s === %d`, cards, want), 10*time.Second)
	}
	tb.wait(`document.getElementById('visit-more').hidden`, 5*time.Second)
	if got := eval[[]string](tb, titles); len(got) != n || got[n-1] != "visit 000" || eval[string](tb, `document.getElementById('visit-count').textContent`) != fmt.Sprintf("Showing %d visits.", n) {
		t.Fatalf("after scrolling: %d cards ending %q", len(got), got[len(got)-1])
	}

	// Filters.
	setSelect := func(id, v string) {
		eval[bool](tb, fmt.Sprintf(`(() => { const s = document.getElementById(%q); s.value = %q; s.dispatchEvent(new Event('change')); return true; })()`, id, v))
	}
	only := func(what string, want ...string) {
		t.Helper()
		tb.wait(fmt.Sprintf(`document.getElementById('visit-list').getAttribute('aria-busy') === 'false' && %s === %d`, cards, len(want)), 10*time.Second)
		if got := eval[[]string](tb, titles); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
	setSelect("filter-status", "drafted")
	only("drafted", "visit 005")
	if got := eval[string](tb, `location.search`); got != "?status=drafted" {
		t.Errorf("address %q after choosing drafted", got)
	}
	setSelect("filter-status", "signed")
	only("signed", "visit 017")
	setSelect("filter-status", "")
	eval[bool](tb, `(document.getElementById('filter-unresolved').click(), true)`)
	only("unresolved", "visit 005")
	eval[bool](tb, `(document.getElementById('filter-unresolved').click(), true)`)
	eval[bool](tb, `(document.getElementById("filter-patient").value = "mrn-3", true)`)
	eval[bool](tb, `(document.getElementById('visit-filters').requestSubmit(), true)`)
	want := []string{"visit 017"} // written last
	for i := n - 1; i >= 0; i-- {
		if i%7 == 3 && i != 17 {
			want = append(want, fmt.Sprintf("visit %03d", i))
		}
	}
	only("patient", want...)
	if got := eval[string](tb, `location.search`); got != "" {
		t.Errorf("the patient reference went into the address: %q", got)
	}
	// The address keeps the filters it holds across a reload.
	tb.do(chromedp.Navigate(s.URL + "/?status=signed&unresolved=1"))
	tb.wait(`document.getElementById('visit-count') !== null && document.getElementById('visit-count').textContent === 'No visits match these filters.'`, 10*time.Second)
	if !eval[bool](tb, `document.getElementById('filter-unresolved').checked && document.getElementById('filter-status').value === 'signed'`) {
		t.Error("the filters in the address are not shown in the form")
	}
	tb.screenshot("desktop-visit-list-filtered")
}

func hasText(s, sub string) bool { return strings.Contains(s, sub) }
