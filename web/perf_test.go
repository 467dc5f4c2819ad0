package web_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The page's own User Timing marks and measures (docs/web.md):
//
//	evidence:visit-ready     note and transcript are in the DOM
//	evidence:visit-painted   the frame after the one that paints them
//	evidence:click-to-play   input event -> the audio element's "playing"
//	evidence:click-to-audio  input event -> its clock first advances
//
// The input event's own timestamp starts the click measures, so they
// include the browser's input handling, the seek and the audio pipeline
// start, and nothing of chromedp's round trips.

type loadTiming struct{ ready, painted float64 }

// measureLoad opens url in a new tab, as a person opening the link does,
// and reads the page's marks. cold disables the HTTP cache.
func measureLoad(t testing.TB, url string, cold bool) loadTiming {
	t.Helper()
	tb := newTab(t, 1280, 800)
	if _, err := chromedp.Call(tb.ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: cold}); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.Navigate(url))
	tb.wait(`performance.getEntriesByName('evidence:visit-painted').length > 0`, 20*time.Second)
	v := eval[[]float64](tb, `[performance.getEntriesByName('evidence:visit-ready')[0].startTime,
		performance.getEntriesByName('evidence:visit-painted')[0].startTime]`)
	chromedp.Cancel(tb.ctx)
	return loadTiming{v[0], v[1]}
}

// settle waits until the page is idle: audio buffered, verification done.
func settle(tb *tab) {
	tb.t.Helper()
	tb.wait(`document.querySelector('audio').readyState >= 4`, 20*time.Second)
	tb.waitVerified()
}

// measureClick clicks a sentence and returns click-to-play and
// click-to-audio in milliseconds.
func measureClick(tb *tab, id string) (float64, float64) {
	tb.t.Helper()
	eval[bool](tb, `(window.evidenceApp.player.stop(), performance.clearMeasures(), true)`)
	time.Sleep(150 * time.Millisecond) // let the stop land
	tb.do(chromedp.Click(chromedp.CSS(sel(id))))
	tb.wait(`performance.getEntriesByName('evidence:click-to-audio').length > 0`, 10*time.Second)
	v := eval[[]float64](tb, `[performance.getEntriesByName('evidence:click-to-play')[0].duration, performance.getEntriesByName('evidence:click-to-audio')[0].duration]`)
	return v[0], v[1]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func maxOf(xs []float64) float64 { return slices.Max(xs) }

// supportedIDs lists supported sentences of the demo note, up to n.
func supportedIDs(v *visit, n int) []string {
	var ids []string
	for _, sec := range v.note.GetSections() {
		for _, x := range sec.GetSentences() {
			if !x.GetUnsupported() && len(ids) < n {
				ids = append(ids, x.GetSentenceId())
			}
		}
	}
	return ids
}

// TestPerformance measures page load and click-to-audio on the demo and
// logs the figures; it fails only far beyond the targets (load 300 ms,
// click-to-play 100 ms), since CI machines and the race detector are
// slower than the measurement setup of docs/web.md.
func TestPerformance(t *testing.T) {
	v := openDemo(t)
	url := v.s.URL + "/encounters/" + v.id
	var ready, painted, cold []float64
	for range 3 {
		cold = append(cold, measureLoad(t, url, true).painted)
	}
	for range 7 {
		l := measureLoad(t, url, false)
		ready, painted = append(ready, l.ready), append(painted, l.painted)
	}
	tb := newTab(t, 1280, 800)
	tb.do(chromedp.Navigate(url))
	settle(tb)
	var play, audio []float64
	for _, id := range supportedIDs(v, 10) {
		p, a := measureClick(tb, id)
		play, audio = append(play, p), append(audio, a)
	}
	t.Logf("page load (navigation start -> visit painted), new tab: median %.0f ms, max %.0f ms (in the DOM: median %.0f ms); HTTP cache disabled: median %.0f ms",
		median(painted), maxOf(painted), median(ready), median(cold))
	t.Logf("click -> playing: median %.0f ms, max %.0f ms; click -> audio clock advancing: median %.0f ms, max %.0f ms (%d sentences)",
		median(play), maxOf(play), median(audio), maxOf(audio), len(play))
	if median(painted) > 3000 || median(audio) > 2000 {
		t.Errorf("far beyond the targets: load %.0f ms, click-to-audio %.0f ms", median(painted), median(audio))
	}
}

// BenchmarkPageLoad reports the time from navigation start until the
// visit is painted, in a new tab each time, with the browser's HTTP cache
// warm (assets revalidated by ETag).
//
//	go test -run '^$' -bench 'PageLoad|ClickToPlay' -benchtime 20x ./web/
func BenchmarkPageLoad(b *testing.B) {
	s := newStack(b, nil)
	url := s.URL + "/encounters/" + loadDemo(b, s)
	measureLoad(b, url, false)
	var painted, ready []float64
	b.ResetTimer()
	for b.Loop() {
		l := measureLoad(b, url, false)
		painted, ready = append(painted, l.painted), append(ready, l.ready)
	}
	b.ReportMetric(median(painted), "ms-painted")
	b.ReportMetric(median(ready), "ms-dom-ready")
	b.ReportMetric(maxOf(painted), "ms-painted-max")
}

// BenchmarkClickToPlay reports the time from a click on a sentence to the
// audio playing, cycling through the demo note's supported sentences.
func BenchmarkClickToPlay(b *testing.B) {
	s := newStack(b, nil)
	v := &visit{s: s, id: loadDemo(b, s)}
	v.note = s.note(b, v.id)
	tb := newTab(b, 1280, 800)
	tb.do(chromedp.Navigate(s.URL + "/encounters/" + v.id))
	tb.wait(`document.querySelector('[data-sentence-id]') !== null`, 20*time.Second)
	settle(tb)
	ids := supportedIDs(v, 1000)
	var play, audio []float64
	i := 0
	b.ResetTimer()
	for b.Loop() {
		p, a := measureClick(tb, ids[i%len(ids)])
		play, audio = append(play, p), append(audio, a)
		i++
	}
	b.ReportMetric(median(play), "ms-to-playing")
	b.ReportMetric(median(audio), "ms-to-audio")
	b.ReportMetric(maxOf(audio), "ms-to-audio-max")
}
