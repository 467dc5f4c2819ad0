package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdpperf "github.com/chromedp/cdproto/performance"
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

// loadTiming is one page load: when the visit was in the DOM and painted
// (ms from navigation start), and the renderer main thread's CPU time
// from navigation to painted, which a busy machine does not inflate the
// way it inflates wall-clock time.
type loadTiming struct{ ready, painted, cpu float64 }

// measureLoad opens url in a new tab, as a person opening the link does,
// and reads the page's marks. cold disables the HTTP cache.
func measureLoad(t testing.TB, url string, cold bool) loadTiming {
	t.Helper()
	tb := newTab(t, 1280, 800)
	if _, err := chromedp.Call(tb.ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: cold}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tb.ctx, cdpperf.Enable, cdpperf.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	before := threadTime(tb)
	tb.do(chromedp.Navigate(url))
	tb.wait(`performance.getEntriesByName('evidence:visit-painted').length > 0`, 20*time.Second)
	cpu := threadTime(tb) - before
	v := eval[[]float64](tb, `[performance.getEntriesByName('evidence:visit-ready')[0].startTime,
		performance.getEntriesByName('evidence:visit-painted')[0].startTime]`)
	chromedp.Cancel(tb.ctx)
	return loadTiming{v[0], v[1], cpu}
}

// threadTime is the CPU time of the tab's main thread, in ms.
func threadTime(tb *tab) float64 {
	tb.t.Helper()
	r, err := chromedp.Call(tb.ctx, cdpperf.GetMetrics, cdp.Empty{})
	if err != nil {
		tb.t.Fatal(err)
	}
	for _, m := range r.Metrics {
		if m.Name == "ThreadTime" {
			return m.Value * 1000
		}
	}
	tb.t.Fatal("no ThreadTime metric")
	return 0
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
	var ready, painted, cpu, cold []float64
	for range 3 {
		cold = append(cold, measureLoad(t, url, true).painted)
	}
	for range 7 {
		l := measureLoad(t, url, false)
		ready, painted, cpu = append(ready, l.ready), append(painted, l.painted), append(cpu, l.cpu)
	}
	tb := newTab(t, 1280, 800)
	tb.do(chromedp.Navigate(url))
	settle(tb)
	var play, audio []float64
	for _, id := range supportedIDs(v, 10) {
		p, a := measureClick(tb, id)
		play, audio = append(play, p), append(audio, a)
	}
	t.Logf("page load (navigation start -> visit painted), new tab: median %.0f ms, max %.0f ms (in the DOM: median %.0f ms; main-thread CPU: median %.0f ms); HTTP cache disabled: median %.0f ms",
		median(painted), maxOf(painted), median(ready), median(cpu), median(cold))
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
	var painted, ready, cpu []float64
	b.ResetTimer()
	for b.Loop() {
		l := measureLoad(b, url, false)
		painted, ready, cpu = append(painted, l.painted), append(ready, l.ready), append(cpu, l.cpu)
	}
	b.ReportMetric(median(painted), "ms-painted")
	b.ReportMetric(median(ready), "ms-dom-ready")
	b.ReportMetric(median(cpu), "ms-main-thread-cpu")
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

// BenchmarkBaselinePage is the floor of the measurement: a page with one
// line of text and one tiny module, loaded and timed as BenchmarkPageLoad
// loads the visit. On a busy machine both grow; their difference is what
// the visit page costs.
func BenchmarkBaselinePage(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /p", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>baseline</title><script type="module" src="/m.js"></script><p>One line of text.`)
	})
	mux.HandleFunc("GET /m.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, `performance.mark('evidence:visit-ready');
requestAnimationFrame(() => setTimeout(() => performance.mark('evidence:visit-painted'), 0));`)
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	measureLoad(b, hs.URL+"/p", false)
	var painted, cpu []float64
	b.ResetTimer()
	for b.Loop() {
		l := measureLoad(b, hs.URL+"/p", false)
		painted, cpu = append(painted, l.painted), append(cpu, l.cpu)
	}
	b.ReportMetric(median(painted), "ms-painted")
	b.ReportMetric(maxOf(painted), "ms-painted-max")
	b.ReportMetric(median(cpu), "ms-main-thread-cpu")
}
