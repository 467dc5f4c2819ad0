package web_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// markRange is a highlighted stretch of a transcript segment, in UTF-16
// code units.
type markRange struct {
	Seg        string `json:"seg"`
	Start, End int
	Text       string `json:"text"`
}

func (m markRange) String() string { return fmt.Sprintf("%s[%d:%d]%q", m.Seg, m.Start, m.End, m.Text) }

func utf16Slice(s string, a, b int) string {
	u := utf16.Encode([]rune(s))
	return string(utf16.Decode(u[a:b]))
}

// expectedMarks is what the page must highlight for s: its evidence spans,
// merged where they overlap within a segment, with the segment's text.
func expectedMarks(s *pb.Sentence, segText map[string]string) []markRange {
	by := map[string][]markRange{}
	for _, ev := range s.GetEvidence() {
		by[ev.GetSegmentId()] = append(by[ev.GetSegmentId()], markRange{Seg: ev.GetSegmentId(), Start: int(ev.GetUtf16Start()), End: int(ev.GetUtf16End())})
	}
	var out []markRange
	for seg, rs := range by {
		sort.Slice(rs, func(i, j int) bool {
			return rs[i].Start < rs[j].Start || rs[i].Start == rs[j].Start && rs[i].End < rs[j].End
		})
		var merged []markRange
		for _, r := range rs {
			if n := len(merged); n > 0 && r.Start < merged[n-1].End {
				merged[n-1].End = max(merged[n-1].End, r.End)
				continue
			}
			merged = append(merged, r)
		}
		for _, r := range merged {
			r.Text = utf16Slice(segText[seg], r.Start, r.End)
			out = append(out, r)
		}
	}
	sortMarks(out)
	return out
}

func sortMarks(ms []markRange) {
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Seg != ms[j].Seg {
			return ms[i].Seg < ms[j].Seg
		}
		return ms[i].Start < ms[j].Start
	})
}

// pageMarks reads the active evidence highlights from the page. Offsets
// are measured from the DOM (the text before each mark in its segment),
// not read from the page's own attributes.
func pageMarks(tb *tab) []markRange {
	tb.t.Helper()
	var ms []markRange
	js := `[...document.querySelectorAll('.evidence-active')].map((m) => {
		const seg = m.closest('[data-segment-id]');
		const text = seg.querySelector('.seg-text');
		const r = document.createRange();
		r.setStart(text, 0);
		r.setEndBefore(m);
		const start = r.toString().length;
		return {seg: seg.dataset.segmentId, start, end: start + m.textContent.length, text: m.textContent};
	})`
	raw := eval[[]map[string]any](tb, js)
	for _, m := range raw {
		ms = append(ms, markRange{Seg: m["seg"].(string), Start: int(m["start"].(float64)), End: int(m["end"].(float64)), Text: m["text"].(string)})
	}
	sortMarks(ms)
	return ms
}

type visit struct {
	s        *stack
	id       string
	note     *pb.Note
	segText  map[string]string
	audioMS  int64 // the recording's start on the encounter timeline
	duration int64
}

func openDemo(t *testing.T) *visit {
	t.Helper()
	s := newStack(t, nil)
	return demoVisit(t, s)
}

func demoVisit(t *testing.T, s *stack) *visit {
	t.Helper()
	id := loadDemo(t, s)
	v := &visit{s: s, id: id, segText: map[string]string{}}
	v.refresh(t)
	tr, err := s.API.GetTranscript(as("test"), &pb.GetTranscriptRequest{EncounterId: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range tr.GetSegments() {
		v.segText[g.GetSegmentId()] = g.GetText()
	}
	a := tr.GetAudio()[len(tr.GetAudio())-1]
	v.audioMS, v.duration = a.GetStartMs(), a.GetDurationMs()
	return v
}

func (v *visit) refresh(t *testing.T) { v.note = v.s.note(t, v.id) }

func (v *visit) sentence(id string) *pb.Sentence {
	for _, sec := range v.note.GetSections() {
		for _, x := range sec.GetSentences() {
			if x.GetSentenceId() == id {
				return x
			}
		}
	}
	return nil
}

// pick returns the supported sentence with n spans (n=0: any number
// above one) whose spans play for the least time, at least 1 s each.
func (v *visit) pick(t *testing.T, n int) *pb.Sentence {
	t.Helper()
	var best *pb.Sentence
	bestMS := int64(math.MaxInt64)
	for _, sec := range v.note.GetSections() {
		for _, x := range sec.GetSentences() {
			ev := x.GetEvidence()
			if x.GetUnsupported() || (n > 0 && len(ev) != n) || (n == 0 && len(ev) < 2) {
				continue
			}
			var total int64
			ok := true
			for _, e := range ev {
				d := e.GetEndMs() - e.GetStartMs()
				ok = ok && d >= 1000
				total += d
			}
			if ok && total < bestMS {
				best, bestMS = x, total
			}
		}
	}
	if best == nil {
		t.Fatalf("the demo note has no supported sentence with %d spans of at least 1 s", n)
	}
	return best
}

// sample is the audio element's state, recorded every 15 ms in the page.
type sample struct {
	T      float64  `json:"t"`
	CT     float64  `json:"ct"`
	Paused bool     `json:"paused"`
	Ranks  []string `json:"ranks"`
}

const startSampler = `(() => {
	const a = document.querySelector('audio');
	window.__samples = [];
	clearInterval(window.__sampler);
	window.__sampler = setInterval(() => window.__samples.push({t: performance.now(), ct: a.currentTime, paused: a.paused,
		ranks: [...document.querySelectorAll('mark.evidence-playing')].map((m) => m.dataset.ranks)}), 15);
	return true;
})()`

func samples(tb *tab) []sample {
	tb.t.Helper()
	return eval[[]sample](tb, `(() => { clearInterval(window.__sampler); return window.__samples; })()`)
}

// span is an evidence span in the recording's seconds.
type span struct{ start, end float64 }

func (v *visit) spans(x *pb.Sentence) []span {
	var out []span
	for _, e := range x.GetEvidence() {
		out = append(out, span{float64(e.GetStartMs()-v.audioMS) / 1000, float64(e.GetEndMs()-v.audioMS) / 1000})
	}
	return out
}

// Tolerances: Opus seeks land within a frame (20 ms) of the target; a
// stop is timed against currentTime with millisecond timers.
const (
	seekTolerance = 0.06
	stopTolerance = 0.15
)

// checkPlayback checks that samples show the spans played in order, each
// from its start to its end, then a stop at the last span's end.
func checkPlayback(t *testing.T, ss []sample, spans []span) {
	t.Helper()
	var playing []sample
	for _, s := range ss {
		if !s.Paused {
			playing = append(playing, s)
		}
	}
	if len(playing) == 0 {
		t.Fatalf("the audio never played (%d samples)", len(ss))
	}
	first := playing[0]
	if first.CT < spans[0].start-seekTolerance || first.CT > spans[0].end {
		t.Errorf("playback started at %.3f s, outside the first span [%.3f, %.3f]", first.CT, spans[0].start, spans[0].end)
	}
	// While a span is marked as playing, the time is inside it.
	var order []int
	for _, s := range playing {
		if len(s.Ranks) == 0 {
			continue
		}
		var k int
		fmt.Sscan(s.Ranks[0], &k)
		if k < 1 || k > len(spans) {
			t.Fatalf("the page marks evidence %q as playing; the sentence has %d spans", s.Ranks[0], len(spans))
		}
		sp := spans[k-1]
		if s.CT < sp.start-seekTolerance || s.CT > sp.end+stopTolerance {
			t.Errorf("while evidence %d [%.3f, %.3f] was marked playing, the time was %.3f s", k, sp.start, sp.end, s.CT)
		}
		if len(order) == 0 || order[len(order)-1] != k {
			order = append(order, k)
		}
	}
	want := make([]int, len(spans))
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(order, want) {
		t.Errorf("spans played in the order %v, want %v", order, want)
	}
	// It advanced: the audio was really playing, not stuck at the seek.
	lastSpan := spans[len(spans)-1]
	var maxInLast float64
	for _, s := range playing {
		if len(s.Ranks) > 0 && s.Ranks[0] == fmt.Sprint(len(spans)) {
			maxInLast = max(maxInLast, s.CT)
		}
	}
	end := ss[len(ss)-1]
	if !end.Paused {
		t.Fatalf("the audio is still playing at %.3f s, after the last span's end %.3f s", end.CT, lastSpan.end)
	}
	if end.CT > lastSpan.end+stopTolerance {
		t.Errorf("playback stopped at %.3f s, later than the last span's end %.3f s", end.CT, lastSpan.end)
	}
	if end.CT < lastSpan.end-stopTolerance || maxInLast < lastSpan.end-0.3 {
		t.Errorf("playback stopped at %.3f s (last sample while playing %.3f s), before the last span's end %.3f s", end.CT, maxInLast, lastSpan.end)
	}
	t.Logf("played %d span(s) %v in order %v; stopped at %.3f s (end %.3f s); %d samples", len(spans), spans, order, end.CT, lastSpan.end, len(ss))
}

func sel(id string) string { return fmt.Sprintf(`[data-sentence-id="%s"]`, id) }

func TestClickSupportedSentence(t *testing.T) {
	v := openDemo(t)
	tb := newTab(t, 1280, 800)
	tb.openVisit(v.s.URL, v.id)
	if n := eval[int](tb, `document.querySelectorAll('audio').length`); n != 1 {
		t.Fatalf("%d <audio> elements, want 1", n)
	}

	t.Run("one span", func(t *testing.T) {
		x := v.pick(t, 1)
		eval[bool](tb, startSampler)
		tb.do(chromedp.Click(chromedp.CSS(sel(x.GetSentenceId()))))
		// The highlights are exactly the recorded evidence.
		got, want := pageMarks(tb), expectedMarks(x, v.segText)
		if !slices.Equal(got, want) {
			t.Errorf("highlighted evidence of %s:\n got %v\nwant %v", x.GetSentenceId(), got, want)
		}
		if !eval[bool](tb, `document.querySelector('`+sel(x.GetSentenceId())+`').getAttribute('aria-expanded') === 'true'`) {
			t.Error("the active sentence is not expanded")
		}
		sp := v.spans(x)
		tb.wait(`window.__samples.some((s) => !s.paused) && document.querySelector('audio').paused`, time.Duration((sp[0].end-sp[0].start)*1000+10000)*time.Millisecond)
		time.Sleep(400 * time.Millisecond) // it must stay stopped
		checkPlayback(t, samples(tb), sp)
		// The transcript scrolled to the first span.
		if !eval[bool](tb, `(() => { const m = document.querySelector('mark.evidence-active'); const b = document.querySelector('.transcript-body').getBoundingClientRect(); const r = m.getBoundingClientRect(); return r.top >= b.top && r.bottom <= b.bottom; })()`) {
			t.Error("the first evidence span is not scrolled into view")
		}
		tb.screenshot("desktop-sentence-one-span")
	})

	t.Run("several spans, by keyboard", func(t *testing.T) {
		x := v.pick(t, 0)
		// Focus the sentence above and move down with the arrow key, then
		// activate it with Enter, as a keyboard user does.
		ids := eval[[]string](tb, `[...document.querySelectorAll('[data-sentence-id]')].map((e) => e.dataset.sentenceId)`)
		i := slices.Index(ids, x.GetSentenceId())
		if i < 1 {
			i = 1
			ids = append([]string{""}, ids...)
		}
		eval[bool](tb, `(() => { const e = document.querySelector('`+sel(ids[i-1])+`'); e.tabIndex = 0; e.focus(); return true; })()`)
		if ids[0] != "" {
			tb.do(chromedp.KeyEvent(kb.ArrowDown))
		}
		if got := eval[string](tb, `document.activeElement.dataset.sentenceId || ''`); got != x.GetSentenceId() {
			t.Fatalf("focus is on %q after ArrowDown, want %q", got, x.GetSentenceId())
		}
		eval[bool](tb, startSampler)
		tb.do(chromedp.KeyEvent("\r"))
		got, want := pageMarks(tb), expectedMarks(x, v.segText)
		if !slices.Equal(got, want) {
			t.Errorf("highlighted evidence of %s:\n got %v\nwant %v", x.GetSentenceId(), got, want)
		}
		sp := v.spans(x)
		var total float64
		for _, s := range sp {
			total += s.end - s.start
		}
		tb.wait(`window.__samples.some((s) => !s.paused) && document.querySelector('audio').paused && !window.evidenceApp.player.active`, time.Duration(total*1000+15000)*time.Millisecond)
		time.Sleep(400 * time.Millisecond)
		checkPlayback(t, samples(tb), sp)
	})
}

// addUnsupported appends a sentence nothing in the visit supports: the
// claim checker calls it unmentioned, so it is flagged.
func (v *visit) addUnsupported(t *testing.T) string {
	t.Helper()
	r, err := v.s.API.RecordEdit(as("dr.demo"), &pb.RecordEditRequest{EncounterId: v.id, Action: pb.EditAction_EDIT_ACTION_ADD, Section: "Plan",
		AfterSentenceId: "P1", Text: "No known drug allergies.", Reason: "test: a sentence nothing in the visit supports"})
	if err != nil {
		t.Fatal(err)
	}
	v.refresh(t)
	x := v.sentence(r.GetSentenceId())
	if x == nil || !x.GetUnsupported() || len(x.GetEvidence()) != 0 || x.GetVerdict() != pb.Verdict_VERDICT_UNMENTIONED {
		t.Fatalf("precondition: the added sentence %q is not unsupported and unmentioned: %v", r.GetSentenceId(), x)
	}
	return r.GetSentenceId()
}

func TestUnsupportedSentence(t *testing.T) {
	v := openDemo(t)
	id := v.addUnsupported(t)
	tb := newTab(t, 1280, 800)
	tb.openVisit(v.s.URL, v.id)

	cls := eval[string](tb, `document.querySelector('`+sel(id)+`').className`)
	if !strings.Contains(cls, "unsupported") || !strings.Contains(cls, "flagged") {
		t.Fatalf("the unsupported sentence's classes %q lack unsupported and flagged", cls)
	}
	if got := eval[string](tb, `document.querySelector('`+sel(id)+`').dataset.verdict`); got != "unmentioned" {
		t.Errorf("data-verdict %q, want unmentioned", got)
	}
	if got := eval[string](tb, `document.querySelector('`+sel(id)+` .chip-verdict')?.textContent || ''`); !strings.HasPrefix(got, "Not mentioned") {
		t.Errorf("flag chip %q, want it to say Not mentioned", got)
	}
	// Something is playing; activating the unsupported sentence stops it
	// and plays nothing.
	x := v.pick(t, 1)
	tb.do(chromedp.Click(chromedp.CSS(sel(x.GetSentenceId()))))
	tb.wait(`!document.querySelector('audio').paused`, 10*time.Second)
	tb.do(chromedp.Click(chromedp.CSS(sel(id))))
	tb.wait(`document.querySelector('audio').paused`, 2*time.Second)
	eval[bool](tb, startSampler)
	time.Sleep(1500 * time.Millisecond)
	ss := samples(tb)
	if len(ss) < 20 {
		t.Fatalf("only %d samples", len(ss))
	}
	for _, s := range ss {
		if !s.Paused || s.CT != ss[0].CT {
			t.Fatalf("audio played after activating an unsupported sentence: %+v", s)
		}
	}
	if n := eval[int](tb, `document.querySelectorAll('mark.evidence').length`); n != 0 {
		t.Errorf("%d transcript highlights for an unsupported sentence", n)
	}
	if detail := eval[string](tb, `document.getElementById('detail-`+id+`').textContent`); !strings.Contains(detail, "Not mentioned") || !strings.Contains(detail, "Confirm as written") {
		t.Errorf("the sentence panel does not say it is not mentioned, or offers no resolution:\n%s", detail)
	}
	tb.screenshot("desktop-unsupported")
}

func TestInlineEdit(t *testing.T) {
	v := openDemo(t)
	tb := newTab(t, 1280, 800)
	tb.openVisit(v.s.URL, v.id)
	if st := tb.waitVerified(); st != "verified" {
		t.Fatalf("badge %q before the edit: %s", st, tb.verifyText())
	}
	const target = "S4"
	old := v.sentence(target)
	if old == nil {
		t.Fatal("the demo note has no S4")
	}
	const newText = "Reports fever and vomiting for three days."
	const reason = "Corrected from the recording"
	size0 := v.s.Log.Size()

	tb.do(chromedp.Click(chromedp.CSS(sel(target))))
	tb.do(chromedp.Click(chromedp.CSS(`#detail-` + target + ` .detail-actions .btn:not(.btn-primary)`)))
	tb.wait(`document.activeElement && document.activeElement.id === 'edit-text'`, 5*time.Second)
	tb.do(chromedp.SetValue(chromedp.CSS(`#edit-text`), newText), chromedp.SendKeys(chromedp.CSS(`#edit-reason`), reason))
	tb.screenshot("desktop-edit-form")
	tb.do(chromedp.Click(chromedp.CSS(`.edit-form button[type=submit]`)))
	tb.wait(`document.querySelector('`+sel(target)+` .sentence-text').textContent === `+mustJSON(newText), 10*time.Second)

	// One edit entry and one alignment entry were appended.
	if got := v.s.Log.Size(); got != size0+2 {
		t.Errorf("log size %d after the edit, want %d", got, size0+2)
	}
	v.refresh(t)
	x := v.sentence(target)
	versions := x.GetProvenance().GetVersions()
	last := versions[len(versions)-1]
	if last.GetKind() != pb.EntryKind_ENTRY_KIND_EDIT || last.GetText() != newText || last.GetReason() != reason || last.GetLeafIndex() != int64(size0) {
		t.Fatalf("the note's last version is %v", last)
	}
	// The view shows the edit in the provenance panel...
	detail := eval[string](tb, `document.getElementById('detail-`+target+`').textContent`)
	for _, want := range []string{"Edited by anonymous", reason, old.GetText(), newText, x.GetProvenance().GetAlignmentMethod(), fmt.Sprintf("entry #%d", size0), fmt.Sprintf("entry #%d", size0+1)} {
		if !strings.Contains(detail, want) {
			t.Errorf("the provenance panel does not show %q:\n%s", want, detail)
		}
	}
	if got := eval[string](tb, `document.querySelector('#detail-`+target+` .diff del').textContent`); got != old.GetText() {
		t.Errorf("before: %q, want %q", got, old.GetText())
	}
	// ...and is re-aligned and re-verified: the highlights are the new
	// evidence, or, if the checker finds the new text contradicted, the
	// words that contradict it.
	got, want := pageMarks(tb), expectedMarks(x, v.segText)
	if x.GetVerdict() == pb.Verdict_VERDICT_CONTRADICTED && len(x.GetConflicts()) > 0 {
		got, want = conflictMarks(tb), expectedConflictMarks(x, v.segText)
	}
	if !slices.Equal(got, want) {
		t.Errorf("highlights after the edit (verdict %s):\n got %v\nwant %v", verdictName(x.GetVerdict()), got, want)
	}
	if got := eval[string](tb, `document.querySelector('`+sel(target)+`').dataset.verdict`); got != verdictName(x.GetVerdict()) {
		t.Errorf("data-verdict after the edit %q, the note's %q", got, verdictName(x.GetVerdict()))
	}
	if slices.Equal(expectedMarks(x, v.segText), expectedMarks(old, v.segText)) {
		t.Errorf("the new text's evidence equals the old; the test cannot see a re-alignment")
	}
	// The new entries are verified in the browser too.
	tb.wait(fmt.Sprintf(`['%d','%d'].every((i) => { const e = document.querySelector('#detail-%s [data-leaf="' + i + '"]'); return e && e.dataset.state === 'ok'; })`, size0, size0+1, target), 20*time.Second)
	if st := tb.waitVerified(); st != "verified" {
		t.Errorf("badge %q after the edit: %s", st, tb.verifyText())
	}
	tb.screenshot("desktop-after-edit")
}

// intercept rewrites the responses of requests whose URL contains match,
// with rewrite; other responses pass unchanged. It must be called before
// the page loads.
func intercept(t *testing.T, tb *tab, pattern string, rewrite func(url string, body []byte) []byte) {
	t.Helper()
	events := chromedp.Events(tb.ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(tb.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: pattern, RequestStage: fetch.RequestStageResponse}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			body, err := chromedp.Call(tb.ctx, fetch.GetResponseBody, fetch.GetResponseBodyParams{RequestID: ev.RequestID})
			if err != nil {
				chromedp.Call(tb.ctx, fetch.ContinueResponse, fetch.ContinueResponseParams{RequestID: ev.RequestID})
				continue
			}
			chromedp.Call(tb.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: ev.RequestID, ResponseCode: ev.ResponseStatusCode,
				ResponseHeaders: ev.ResponseHeaders, Body: rewrite(ev.Request.URL, body.Body)})
		}
	}()
}

// flipLast flips a bit of the last byte.
func flipLast(b []byte) []byte {
	b[len(b)-1] ^= 0x01
	return b
}

// flipSignature flips a bit of the Ed25519 signature of a signed note.
func flipSignature(note []byte) []byte {
	i := strings.LastIndex(string(note), " ")
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(note[i+1:])))
	if err != nil {
		return note
	}
	sig[len(sig)-1] ^= 0x01
	return append(note[:i+1:i+1], base64.StdEncoding.EncodeToString(sig)+"\n"...)
}

// flipByte changes the base64 value that get finds in a JSON document
// with flip.
func flipByte(t *testing.T, doc []byte, get func(m map[string]any) (string, func(string)), flip func([]byte) []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Errorf("intercepted body: %v", err)
		return doc
	}
	v, set := get(m)
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) == 0 {
		t.Errorf("intercepted value %q is not base64", v)
		return doc
	}
	set(base64.StdEncoding.EncodeToString(flip(b)))
	out, _ := json.Marshal(m)
	return out
}

func TestTamperedProofFails(t *testing.T) {
	v := openDemo(t)
	s1 := v.sentence("S1")
	// Tamper with the proof of S1's first evidence segment.
	segLeaf := int64(-1)
	tr, _ := v.s.API.GetTranscript(as("test"), &pb.GetTranscriptRequest{EncounterId: v.id})
	for _, g := range tr.GetSegments() {
		if g.GetSegmentId() == s1.GetEvidence()[0].GetSegmentId() {
			segLeaf = g.GetLeafIndex()
		}
	}

	t.Run("inclusion proof", func(t *testing.T) {
		tb := newTab(t, 1280, 800)
		target := fmt.Sprintf("/api/v1/entries/%d?", segLeaf)
		intercept(t, tb, "*/api/v1/entries/*", func(url string, body []byte) []byte {
			if !strings.Contains(url, target) {
				return body
			}
			return flipByte(t, body, func(m map[string]any) (string, func(string)) {
				hs := m["proof"].(map[string]any)["hashes"].([]any)
				return hs[0].(string), func(s string) { hs[0] = s }
			}, flipLast)
		})
		tb.openVisit(v.s.URL, v.id)
		if st := tb.waitVerified(); st != "failed" {
			t.Fatalf("badge %q with a tampered proof, want failed", st)
		}
		// Only the tampered entry fails.
		tb.wait(`[...window.evidenceApp.view.verifier.results.values()].every((r) => r.state !== 'pending')`, 30*time.Second)
		total := eval[int](tb, `window.evidenceApp.view.verifier.results.size`)
		tb.do(chromedp.Click(chromedp.CSS(`#verify-badge`)))
		msg := eval[string](tb, `document.getElementById('verify-panel').textContent`)
		if want := fmt.Sprintf("Entries%d of %d verified", total-1, total); !strings.Contains(msg, want) {
			t.Errorf("the panel says %q; want %q", msg, want)
		}
		if want := fmt.Sprintf("Entry #%d (transcript segment): the inclusion proof does not lead to the signed root hash", segLeaf); !strings.Contains(msg, want) {
			t.Errorf("the panel says %q; want it to contain %q", msg, want)
		}
		if !strings.Contains(eval[string](tb, `document.getElementById('verify-badge').textContent`), "Verification failed") {
			t.Error("the badge does not say the verification failed")
		}
		tb.screenshot("desktop-verification-failed")
		tb.do(chromedp.Click(chromedp.CSS(`#verify-badge`)), chromedp.Click(chromedp.CSS(sel("S1"))))
		tb.wait(fmt.Sprintf(`document.querySelector('#detail-S1 [data-leaf="%d"]')?.dataset.state === 'failed'`, segLeaf), 5*time.Second)
		if n := eval[int](tb, `document.querySelectorAll('#detail-S1 [data-leaf][data-state="ok"]').length`); n == 0 {
			t.Error("no other entry of S1 is verified; the failure should be specific to one entry")
		}
	})

	t.Run("checkpoint signature", func(t *testing.T) {
		tb := newTab(t, 1280, 800)
		intercept(t, tb, "*/api/v1/checkpoint", func(url string, body []byte) []byte {
			return flipByte(t, body, func(m map[string]any) (string, func(string)) {
				cp := m["checkpoint"].(map[string]any)
				return cp["note"].(string), func(s string) { cp["note"] = s }
			}, flipSignature)
		})
		tb.openVisit(v.s.URL, v.id)
		if st := tb.waitVerified(); st != "failed" {
			t.Fatalf("badge %q with a tampered checkpoint signature, want failed", st)
		}
		tb.do(chromedp.Click(chromedp.CSS(`#verify-badge`)))
		msg := eval[string](tb, `document.getElementById('verify-panel').textContent`)
		if !strings.Contains(msg, "The log's signed checkpoint could not be verified: the checkpoint signature is invalid.") {
			t.Errorf("the panel says %q; want a signature failure", msg)
		}
	})

	t.Run("untampered", func(t *testing.T) {
		tb := newTab(t, 1280, 800)
		intercept(t, tb, "*/api/v1/*", func(url string, body []byte) []byte { return body })
		tb.openVisit(v.s.URL, v.id)
		if st := tb.waitVerified(); st != "verified" {
			t.Fatalf("badge %q through the same interception without changes: %s", st, tb.verifyText())
		}
	})
}

// searchRoute is the search contract the page is built against (GET
// /api/v1/search?q=&encounter=, protojson of SearchResponse), served from
// the transcript with a plain substring match.
func searchRoute(stk func() *stack) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/search" {
				next.ServeHTTP(w, r)
				return
			}
			s := stk()
			q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
			w.Header().Set("Content-Type", "application/json")
			if q == "" {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"code":"InvalidArgument","message":"invalid q: must not be empty","field_violations":[]}`)
				return
			}
			type hl struct {
				Start int `json:"utf16_start"`
				End   int `json:"utf16_end"`
			}
			type hit struct {
				LeafIndex   string `json:"leaf_index"`
				EncounterID string `json:"encounter_id"`
				Kind        string `json:"kind"`
				Text        string `json:"text"`
				Highlights  []hl   `json:"highlights"`
				SpeakerRole string `json:"speaker_role"`
				SegmentID   string `json:"segment_id"`
				SentenceID  string `json:"sentence_id"`
				Section     string `json:"section"`
				StartMS     string `json:"start_ms"`
				EndMS       string `json:"end_ms"`
			}
			var hits []hit
			list, _ := s.API.ListEncounters(as("test"), &pb.ListEncountersRequest{})
			for _, e := range list.GetEncounters() {
				if enc := r.URL.Query().Get("encounter"); enc != "" && enc != e.GetEncounterId() {
					continue
				}
				note, _ := s.API.GetNote(as("test"), &pb.GetNoteRequest{EncounterId: e.GetEncounterId()})
				for _, sec := range note.GetNote().GetSections() {
					for _, x := range sec.GetSentences() {
						low := strings.ToLower(x.GetText())
						i := strings.Index(low, q)
						if i < 0 {
							continue
						}
						a := len(utf16.Encode([]rune(x.GetText()[:i])))
						last := x.GetProvenance().GetVersions()[len(x.GetProvenance().GetVersions())-1]
						hits = append(hits, hit{LeafIndex: fmt.Sprint(last.GetLeafIndex()), EncounterID: e.GetEncounterId(), Kind: last.GetKind().String(), Text: x.GetText(),
							Highlights: []hl{{a, a + len(utf16.Encode([]rune(x.GetText()[i:i+len(q)])))}}, SentenceID: x.GetSentenceId(), Section: sec.GetName()})
					}
				}
				tr, _ := s.API.GetTranscript(as("test"), &pb.GetTranscriptRequest{EncounterId: e.GetEncounterId()})
				for _, g := range tr.GetSegments() {
					low := strings.ToLower(g.GetText())
					i := strings.Index(low, q)
					if i < 0 {
						continue
					}
					a := len(utf16.Encode([]rune(g.GetText()[:i])))
					hits = append(hits, hit{LeafIndex: fmt.Sprint(g.GetLeafIndex()), EncounterID: e.GetEncounterId(), Kind: "ENTRY_KIND_SEGMENT", Text: g.GetText(),
						Highlights: []hl{{a, a + len(utf16.Encode([]rune(g.GetText()[i:i+len(q)])))}}, SpeakerRole: g.GetSpeakerRole().String(), SegmentID: g.GetSegmentId(),
						StartMS: fmt.Sprint(g.GetStartMs()), EndMS: fmt.Sprint(g.GetEndMs())})
				}
			}
			json.NewEncoder(w).Encode(map[string]any{"hits": hits, "total_size": fmt.Sprint(len(hits)), "next_page_token": ""})
		})
	}
}

func TestSearch(t *testing.T) {
	t.Run("hidden without a search service", func(t *testing.T) {
		v := openDemo(t)
		tb := newTab(t, 1280, 800)
		tb.openVisit(v.s.URL, v.id)
		tb.wait(`document.body.dataset.search !== undefined`, 10*time.Second)
		if !eval[bool](tb, `document.getElementById('search').hidden`) {
			t.Error("the search box is shown although the server has no search service")
		}
	})
	t.Run("a hit plays its audio", func(t *testing.T) {
		var s *stack
		s = newStack(t, searchRoute(func() *stack { return s }))
		v := demoVisit(t, s)
		tb := newTab(t, 1280, 800)
		tb.openVisit(v.s.URL, v.id)
		tb.wait(`document.body.dataset.search === 'on' && !document.getElementById('search').hidden`, 10*time.Second)
		tb.do(chromedp.SendKeys(chromedp.CSS(`#search-input`), "paracetamol"))
		tb.wait(`document.querySelectorAll('#search-results .hit').length > 0`, 10*time.Second)
		if got := eval[string](tb, `document.querySelector('#search-results .search-mark').textContent.toLowerCase()`); got != "paracetamol" {
			t.Errorf("the hit highlights %q", got)
		}
		tb.screenshot("desktop-search")
		segID := eval[string](tb, `document.querySelector('#search-results .hit[data-hit-kind=segment] .hit-text').textContent`)
		var seg *pb.Segment
		tr, _ := s.API.GetTranscript(as("test"), &pb.GetTranscriptRequest{EncounterId: v.id})
		for _, g := range tr.GetSegments() {
			if g.GetText() == segID && seg == nil {
				seg = g
			}
		}
		if seg == nil {
			t.Fatalf("no segment has the hit's text %q", segID)
		}
		eval[bool](tb, startSampler)
		tb.do(chromedp.Click(chromedp.CSS(`#search-results .hit[data-hit-kind=segment]`)))
		tb.wait(`window.__samples.some((s) => !s.paused) && document.querySelector('audio').paused`, time.Duration(seg.GetEndMs()-seg.GetStartMs()+10000)*time.Millisecond)
		ss := samples(tb)
		var first *sample
		for i := range ss {
			if !ss[i].Paused {
				first = &ss[i]
				break
			}
		}
		start, end := float64(seg.GetStartMs()-v.audioMS)/1000, float64(seg.GetEndMs()-v.audioMS)/1000
		if first.CT < start-seekTolerance || first.CT > end {
			t.Errorf("the hit played from %.3f s, outside its segment [%.3f, %.3f]", first.CT, start, end)
		}
		if last := ss[len(ss)-1]; last.CT > end+stopTolerance || last.CT < end-stopTolerance {
			t.Errorf("the hit's playback stopped at %.3f s, want its end %.3f s", last.CT, end)
		}

		// A note hit opens its sentence and plays its evidence.
		tb.do(chromedp.Click(chromedp.CSS(`#search-input`)), chromedp.SendKeys(chromedp.CSS(`#search-input`), " "))
		tb.wait(`document.querySelectorAll('#search-results .hit[data-hit-kind=sentence]').length > 0`, 10*time.Second)
		sid := eval[string](tb, `(() => { const h = document.querySelector('#search-results .hit[data-hit-kind=sentence]'); return h.querySelector('.hit-text').textContent; })()`)
		tb.do(chromedp.Click(chromedp.CSS(`#search-results .hit[data-hit-kind=sentence]`)))
		tb.wait(`document.querySelector('.sentence.active') !== null && !document.querySelector('audio').paused`, 10*time.Second)
		if got := eval[string](tb, `document.querySelector('.sentence.active .sentence-text').textContent`); got != sid {
			t.Errorf("the note hit %q opened the sentence %q", sid, got)
		}
		active := v.sentence(eval[string](tb, `document.querySelector('.sentence.active').dataset.sentenceId`))
		if got, want := pageMarks(tb), expectedMarks(active, v.segText); !slices.Equal(got, want) {
			t.Errorf("highlights after a note hit:\n got %v\nwant %v", got, want)
		}
	})
}

func TestMobileLayout(t *testing.T) {
	v := openDemo(t)
	tb := newTab(t, 390, 844)
	tb.openVisit(v.s.URL, v.id)
	tb.waitVerified()
	if w := eval[int](tb, `Math.max(document.documentElement.scrollWidth, document.querySelector('main').scrollWidth)`); w > 390 {
		t.Errorf("the page is %d px wide at a 390 px viewport", w)
	}
	tb.screenshot("mobile-note")
	x := v.pick(t, 1)
	tb.do(chromedp.Click(chromedp.CSS(sel(x.GetSentenceId()))))
	tb.wait(`!document.querySelector('audio').paused`, 10*time.Second)
	eval[bool](tb, `(document.querySelector('`+sel(x.GetSentenceId())+`').scrollIntoView({block: "start"}), true)`)
	tb.screenshot("mobile-sentence")
	if w := eval[int](tb, `Math.max(document.documentElement.scrollWidth, document.querySelector('main').scrollWidth)`); w > 390 {
		t.Errorf("with a sentence open the page is %d px wide at a 390 px viewport", w)
	}
	tb.do(chromedp.Click(chromedp.CSS(`#tab-transcript`)))
	tb.wait(`document.getElementById('transcript-pane').offsetParent !== null`, 5*time.Second)
	// The transcript scrolls (smoothly) to the evidence.
	tb.wait(`(() => { const m = document.querySelector('mark.evidence-active'); const b = document.querySelector('.transcript-body').getBoundingClientRect(); const r = m.getBoundingClientRect(); return r.top >= b.top && r.bottom <= b.bottom; })()`, 5*time.Second)
	tb.screenshot("mobile-transcript")
}

func TestVisitList(t *testing.T) {
	v := openDemo(t)
	tb := newTab(t, 1280, 800)
	tb.do(chromedp.Navigate(v.s.URL + "/"))
	tb.wait(`document.querySelector('.visit-card') !== null`, 10*time.Second)
	tb.screenshot("desktop-visit-list")
	// The import map applied: every module came from its versioned URL.
	if bad := eval[[]string](tb, `performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/assets/') && n.endsWith('.js'))`); len(bad) > 0 {
		t.Errorf("modules loaded without their version: %v", bad)
	}
	tb.do(chromedp.Click(chromedp.CSS(`.visit-card`)))
	tb.wait(`location.pathname === '/encounters/`+v.id+`' && document.querySelector('[data-sentence-id]') !== null`, 10*time.Second)
	tb.do(chromedp.NavigateBack())
	tb.wait(`document.querySelector('.visit-card') !== null`, 10*time.Second)
	// A link to a sentence opens it, without playing.
	tb.do(chromedp.Navigate(v.s.URL + "/encounters/" + v.id + "#P5"))
	tb.wait(`document.querySelector('[data-sentence-id="P5"]')?.getAttribute('aria-expanded') === 'true'`, 10*time.Second)
	if got, want := pageMarks(tb), expectedMarks(v.sentence("P5"), v.segText); !slices.Equal(got, want) {
		t.Errorf("highlights of a linked sentence:\n got %v\nwant %v", got, want)
	}
	if !eval[bool](tb, `document.querySelector('audio').paused`) {
		t.Error("a sentence link started playback")
	}
	// Activating a sentence names it in the address.
	tb.do(chromedp.Click(chromedp.CSS(sel("P6"))))
	if got := eval[string](tb, `location.hash`); got != "#P6" {
		t.Errorf("address fragment %q after activating P6", got)
	}
	// An unknown visit says so.
	tb.do(chromedp.Navigate(v.s.URL + "/encounters/enc_nosuchvisit"))
	tb.wait(`document.querySelector('h1') && document.querySelector('h1').textContent === 'Visit not found'`, 10*time.Second)
}

// TestScreenshots saves the page's main state for docs/screenshots: an
// edited sentence with several spans, playing.
func TestScreenshots(t *testing.T) {
	v := openDemo(t)
	tb := newTab(t, 1280, 800)
	tb.openVisit(v.s.URL, v.id)
	tb.waitVerified()
	tb.do(chromedp.Click(chromedp.CSS(sel("S1"))))
	tb.wait(`document.querySelector('mark.evidence-playing') !== null && document.querySelector('audio').currentTime > 0`, 10*time.Second)
	time.Sleep(1200 * time.Millisecond)
	tb.screenshot("desktop-visit")
	tb.do(chromedp.Click(chromedp.CSS(`#verify-badge`)))
	tb.screenshot("desktop-verified")
	tb.do(chromedp.Click(chromedp.CSS(`#verify-badge`)))
	eval[bool](tb, `(document.querySelector('#detail-S1 .provenance').scrollIntoView({block: 'end'}), true)`)
	tb.screenshot("desktop-provenance")
}
