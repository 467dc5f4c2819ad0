package web_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// verdictName is the page's name of a verdict: data-verdict's value.
func verdictName(v pb.Verdict) string {
	return strings.ToLower(strings.TrimPrefix(v.String(), "VERDICT_"))
}

// flagged returns the demo note's first sentence with the verdict v, or
// fails: the demo's second draft has one contradicted and one unmentioned
// sentence (demo.LLMModel), as the claim checker (package align) judges
// them.
func (v *visit) flagged(t *testing.T, want pb.Verdict) *pb.Sentence {
	t.Helper()
	for _, sec := range v.note.GetSections() {
		for _, x := range sec.GetSentences() {
			if x.GetVerdict() == want {
				return x
			}
		}
	}
	t.Fatalf("the demo note has no %s sentence: the claim checker no longer flags the fixture draft's deliberate error", verdictName(want))
	return nil
}

// expectedConflictMarks is what the page must highlight with
// .evidence-conflict for a contradicted sentence: its conflicts' words.
func expectedConflictMarks(s *pb.Sentence, segText map[string]string) []markRange {
	var out []markRange
	for _, c := range s.GetConflicts() {
		out = append(out, markRange{Seg: c.GetSegmentId(), Start: int(c.GetUtf16Start()), End: int(c.GetUtf16End()),
			Text: utf16Slice(segText[c.GetSegmentId()], int(c.GetUtf16Start()), int(c.GetUtf16End()))})
	}
	sortMarks(out)
	return out
}

// conflictMarks reads the .evidence-conflict highlights, with offsets
// measured from the DOM.
func conflictMarks(tb *tab) []markRange {
	tb.t.Helper()
	raw := eval[[]map[string]any](tb, `[...document.querySelectorAll('mark.evidence-conflict')].map((m) => {
		const seg = m.closest('[data-segment-id]');
		const r = document.createRange();
		r.setStart(seg.querySelector('.seg-text'), 0);
		r.setEndBefore(m);
		const start = r.toString().length;
		return {seg: seg.dataset.segmentId, start, end: start + m.textContent.length, text: m.textContent};
	})`)
	var ms []markRange
	for _, m := range raw {
		ms = append(ms, markRange{Seg: m["seg"].(string), Start: int(m["start"].(float64)), End: int(m["end"].(float64)), Text: m["text"].(string)})
	}
	sortMarks(ms)
	return ms
}

// TestFlaggedSentencesAndSignOff drives the demo visit as a clinician:
// every sentence carries its verdict, the header counts the flagged ones,
// a contradicted sentence highlights the words that contradict it and
// plays them, the sign-off is refused while flags are unresolved, then
// one is resolved by an edit (re-verified) and the other confirmed with a
// reason, and the sign-off goes through. Each step is checked against the
// API, so the page shows what the ledger holds.
func TestFlaggedSentencesAndSignOff(t *testing.T) {
	v := openDemo(t)
	contra := v.flagged(t, pb.Verdict_VERDICT_CONTRADICTED)
	unmentioned := v.flagged(t, pb.Verdict_VERDICT_UNMENTIONED)
	if len(contra.GetConflicts()) == 0 {
		t.Fatalf("the contradicted sentence %s has no conflicts", contra.GetSentenceId())
	}
	tb := newTab(t, 1280, 800)
	tb.openVisit(v.s.URL, v.id)

	// Every sentence element carries its verdict.
	want := map[string]string{}
	counts := map[pb.Verdict]int{}
	for _, sec := range v.note.GetSections() {
		for _, x := range sec.GetSentences() {
			want[x.GetSentenceId()] = verdictName(x.GetVerdict())
			counts[x.GetVerdict()]++
		}
	}
	got := map[string]string{}
	for _, e := range eval[[][2]string](tb, `[...document.querySelectorAll('[data-sentence-id]')].map((e) => [e.dataset.sentenceId, e.dataset.verdict || ''])`) {
		got[e[0]] = e[1]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("data-verdict on the page:\n got %v\nwant %v", got, want)
	}
	// The header counts the flagged sentences.
	summary := eval[map[string]string](tb, `({...document.getElementById('verdict-summary').dataset})`)
	nflag := counts[pb.Verdict_VERDICT_CONTRADICTED] + counts[pb.Verdict_VERDICT_UNMENTIONED]
	if summary["contradicted"] != fmt.Sprint(counts[pb.Verdict_VERDICT_CONTRADICTED]) || summary["unmentioned"] != fmt.Sprint(counts[pb.Verdict_VERDICT_UNMENTIONED]) || summary["unresolved"] != fmt.Sprint(nflag) {
		t.Errorf("the header's counts %v; the note has %d contradicted, %d unmentioned", summary, counts[pb.Verdict_VERDICT_CONTRADICTED], counts[pb.Verdict_VERDICT_UNMENTIONED])
	}
	if text := eval[string](tb, `document.getElementById('verdict-summary').textContent`); !strings.Contains(text, fmt.Sprintf("%d contradicted", counts[pb.Verdict_VERDICT_CONTRADICTED])) {
		t.Errorf("the header says %q", text)
	}
	// Flagged sentences are marked at a glance.
	for _, x := range []*pb.Sentence{contra, unmentioned} {
		if !eval[bool](tb, `document.querySelector('`+sel(x.GetSentenceId())+`').classList.contains('flagged')`) {
			t.Errorf("the %s sentence %s is not marked flagged", verdictName(x.GetVerdict()), x.GetSentenceId())
		}
	}
	tb.screenshot("desktop-flagged")

	// Clicking the contradicted sentence highlights the words that
	// contradict it, not its retrieved evidence, and plays them.
	eval[bool](tb, startSampler)
	tb.do(chromedp.Click(chromedp.CSS(sel(contra.GetSentenceId()))))
	if got, want := conflictMarks(tb), expectedConflictMarks(contra, v.segText); !slices.Equal(got, want) || len(got) == 0 {
		t.Errorf("conflict highlights of %s:\n got %v\nwant %v", contra.GetSentenceId(), got, want)
	}
	if n := eval[int](tb, `document.querySelectorAll('mark.evidence-active').length`); n != 0 {
		t.Errorf("%d evidence highlights for a contradicted sentence; its conflicts only", n)
	}
	var spans []span
	var total float64
	for _, c := range contra.GetConflicts() {
		spans = append(spans, span{float64(c.GetStartMs()-v.audioMS) / 1000, float64(c.GetEndMs()-v.audioMS) / 1000})
		total += float64(c.GetEndMs()-c.GetStartMs()) / 1000
	}
	tb.wait(`window.__samples.some((s) => !s.paused) && document.querySelector('audio').paused && !window.evidenceApp.player.active`, time.Duration(total*1000+15000)*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	checkPlayback(t, samples(tb), spans)
	detail := eval[string](tb, `document.getElementById('detail-`+contra.GetSentenceId()+`').textContent`)
	c0 := contra.GetConflicts()[0]
	for _, want := range []string{"Contradicted", c0.GetWords(), utf16Slice(contra.GetText(), int(c0.GetClaim().GetUtf16Start()), int(c0.GetClaim().GetUtf16End()))} {
		if !strings.Contains(detail, want) {
			t.Errorf("the panel of the contradicted sentence lacks %q:\n%s", want, detail)
		}
	}
	eval[bool](tb, `(document.querySelector('mark.evidence-conflict').scrollIntoView({block: 'center'}), true)`)
	tb.screenshot("desktop-contradicted")

	// Signing is refused while the flags are unresolved; nothing is written.
	size := v.s.Log.Size()
	tb.do(chromedp.Click(chromedp.CSS(`.visit-status .btn-primary`)))
	tb.wait(`document.querySelectorAll('dialog[open] .pending-list li').length > 0`, 5*time.Second)
	if n := eval[int](tb, `document.querySelectorAll('dialog[open] .pending-list li').length`); n != nflag {
		t.Errorf("the sign dialog lists %d unresolved sentences, want %d", n, nflag)
	}
	tb.do(chromedp.Click(chromedp.CSS(`dialog[open] button[value=sign]`)))
	tb.wait(`document.querySelector('dialog[open] .form-error:not([hidden])') !== null`, 10*time.Second)
	msg := eval[string](tb, `document.querySelector('dialog[open] .form-error').textContent`)
	if !strings.Contains(msg, fmt.Sprintf("%d flagged sentences are unresolved", nflag)) {
		t.Errorf("the refusal says %q", msg)
	}
	tb.screenshot("desktop-sign-refused")
	if v.s.Log.Size() != size {
		t.Fatalf("a refused sign-off wrote %d entries", v.s.Log.Size()-size)
	}
	v.refresh(t)
	if v.note.GetSigned() {
		t.Fatal("the note was signed with unresolved flags")
	}
	tb.do(chromedp.Click(chromedp.CSS(`dialog[open] button:not([value=sign]):not(.btn-link)`)))
	tb.wait(`document.querySelector('dialog[open]') === null`, 5*time.Second)

	// Resolve the contradicted sentence by editing it: the edit is
	// re-verified, and a resolution entry records the verdict seen.
	fixed := strings.Replace(contra.GetText(), utf16Slice(contra.GetText(), int(c0.GetClaim().GetUtf16Start()), int(c0.GetClaim().GetUtf16End())), c0.GetWords(), 1)
	tb.do(chromedp.Click(chromedp.CSS(`#detail-` + contra.GetSentenceId() + ` .btn-edit`)))
	tb.wait(`document.activeElement && document.activeElement.id === 'edit-text'`, 5*time.Second)
	tb.do(chromedp.SetValue(chromedp.CSS(`#edit-text`), fixed), chromedp.SendKeys(chromedp.CSS(`#edit-reason`), "The patient said the other side"))
	tb.do(chromedp.Click(chromedp.CSS(`.edit-form button[type=submit]`)))
	tb.wait(`document.querySelector('`+sel(contra.GetSentenceId())+` .sentence-text').textContent === `+mustJSON(fixed), 10*time.Second)
	v.refresh(t)
	x := v.sentence(contra.GetSentenceId())
	rs := x.GetResolutions()
	if len(rs) != 1 || rs[0].GetAction() != pb.ResolutionAction_RESOLUTION_ACTION_EDIT || rs[0].GetVerdict() != pb.Verdict_VERDICT_CONTRADICTED ||
		rs[0].GetEditIndex() == 0 || rs[0].GetNewVerdict() != x.GetVerdict() || rs[0].GetReason() != "The patient said the other side" {
		t.Fatalf("after the edit, the sentence's resolutions: %v", rs)
	}
	if got := eval[string](tb, `document.querySelector('`+sel(x.GetSentenceId())+`').dataset.verdict`); got != verdictName(x.GetVerdict()) {
		t.Errorf("after the edit the page says %q, the note %q", got, verdictName(x.GetVerdict()))
	}
	t.Logf("the corrected sentence %q is %s", fixed, verdictName(x.GetVerdict()))

	// Resolve the unmentioned sentence, and every other flag left (the
	// edited sentence if the checker still flags it, or a sentence the
	// checker flags wrongly), by confirming with a reason.
	ids := []string{unmentioned.GetSentenceId()}
	for _, sec := range v.note.GetSections() {
		for _, x := range sec.GetSentences() {
			if x.GetSentenceId() != unmentioned.GetSentenceId() && v.sentenceNeedsResolution(x.GetSentenceId()) {
				ids = append(ids, x.GetSentenceId())
			}
		}
	}
	for _, id := range ids {
		if !v.sentenceNeedsResolution(id) {
			continue
		}
		tb.do(chromedp.Click(chromedp.CSS(sel(id))))
		tb.do(chromedp.Click(chromedp.CSS(`#detail-` + id + ` .btn-confirm`)))
		tb.wait(`document.activeElement && document.activeElement.id === 'confirm-reason'`, 5*time.Second)
		tb.do(chromedp.SendKeys(chromedp.CSS(`#confirm-reason`), "Checked with the patient by phone"))
		if id == unmentioned.GetSentenceId() {
			tb.screenshot("desktop-confirm-form")
		}
		tb.do(chromedp.Click(chromedp.CSS(`.confirm-form button[type=submit]`)))
		tb.wait(`document.querySelector('`+sel(id)+`').dataset.resolved === 'true'`, 10*time.Second)
		v.refresh(t)
		r := v.sentence(id).GetResolutions()
		last := r[len(r)-1]
		if last.GetAction() != pb.ResolutionAction_RESOLUTION_ACTION_CONFIRM || last.GetReason() != "Checked with the patient by phone" || last.GetActor() == "" || !v.sentence(id).GetResolved() {
			t.Fatalf("the confirmation of %s: %v", id, last)
		}
	}
	if got := eval[string](tb, `document.getElementById('verdict-summary').dataset.unresolved`); got != "0" {
		t.Errorf("after resolving, the header counts %s unresolved", got)
	}

	// Now the sign-off goes through.
	tb.do(chromedp.Click(chromedp.CSS(`.visit-status .btn-primary`)))
	tb.wait(`document.querySelector('dialog[open]') !== null`, 5*time.Second)
	if n := eval[int](tb, `document.querySelectorAll('dialog[open] .pending-list li').length`); n != 0 {
		t.Errorf("the sign dialog still lists %d unresolved sentences", n)
	}
	tb.do(chromedp.Click(chromedp.CSS(`dialog[open] button[value=sign]`)))
	tb.wait(`document.querySelector('.status-signed') !== null`, 10*time.Second)
	v.refresh(t)
	if !v.note.GetSigned() {
		t.Fatal("the note is not signed after resolving every flag")
	}
	// The resolutions' entries verify in the browser like every other.
	tb.do(chromedp.Click(chromedp.CSS(sel(unmentioned.GetSentenceId()))))
	leaf := v.sentence(unmentioned.GetSentenceId()).GetResolutions()[0].GetLeafIndex()
	tb.wait(fmt.Sprintf(`document.querySelector('#detail-%s [data-leaf="%d"]')?.dataset.state === 'ok'`, unmentioned.GetSentenceId(), leaf), 20*time.Second)
	if st := tb.waitVerified(); st != "verified" {
		t.Errorf("badge %q after the resolutions and the sign-off: %s", st, tb.verifyText())
	}
	tb.screenshot("desktop-resolved-signed")
}

func (v *visit) sentenceNeedsResolution(id string) bool {
	x := v.sentence(id)
	f := x.GetVerdict() == pb.Verdict_VERDICT_CONTRADICTED || x.GetVerdict() == pb.Verdict_VERDICT_UNMENTIONED
	return f && !x.GetResolved()
}
