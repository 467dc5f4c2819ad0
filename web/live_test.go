package web_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestLivePageTimings measures, in Chromium, the time from navigation
// start to the painted visit list (evidence:list-painted) and to a painted
// visit (evidence:visit-painted) on a running server, such as evidenced
// serving a directory filled by "evidencectl bench reads"
// (docs/benchmarks.md). It runs only when EVIDENCE_LIVE_URL and
// EVIDENCE_LIVE_TOKEN (a clinician's token of the tenant) are set;
// EVIDENCE_LIVE_RUNS sets the loads of each (default 20). The visits are
// drawn at random from the 5,000 most recently written.
func TestLivePageTimings(t *testing.T) {
	base, token := os.Getenv("EVIDENCE_LIVE_URL"), os.Getenv("EVIDENCE_LIVE_TOKEN")
	if base == "" || token == "" {
		t.Skip("set EVIDENCE_LIVE_URL and EVIDENCE_LIVE_TOKEN to time a running server's page")
	}
	runs := 20
	if v, err := strconv.Atoi(os.Getenv("EVIDENCE_LIVE_RUNS")); err == nil && v > 0 {
		runs = v
	}
	var ids []string
	tok := ""
	for len(ids) < 5000 {
		q := url.Values{"page_size": {"500"}}
		if tok != "" {
			q.Set("page_token", tok)
		}
		req, _ := http.NewRequest("GET", base+"/api/v1/encounters?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Encounters []struct {
				ID string `json:"encounter_id"`
			} `json:"encounters"`
			Next string `json:"next_page_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("listing: %d %v", resp.StatusCode, err)
		}
		for _, e := range page.Encounters {
			ids = append(ids, e.ID)
		}
		if tok = page.Next; tok == "" {
			break
		}
	}
	tb := newTab(t, 1280, 800)
	// The token lives in the tab's sessionStorage, as after signing in.
	tb.do(chromedp.Navigate(base + "/healthz"))
	eval[bool](tb, fmt.Sprintf(`(sessionStorage.setItem('evidence.token', %q), sessionStorage.setItem('evidence.identity', '{"role":"clinician"}'), true)`, token))
	load := func(path, mark string) float64 {
		t.Helper()
		tb.do(chromedp.Navigate(base + path))
		tb.wait(fmt.Sprintf(`performance.getEntriesByName(%q).length > 0`, mark), 60*time.Second)
		return eval[float64](tb, fmt.Sprintf(`performance.getEntriesByName(%q)[0].startTime`, mark))
	}
	load("/", "evidence:list-painted") // the browser's cache of the assets
	var list, visit []float64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for range runs {
		list = append(list, load("/", "evidence:list-painted"))
		visit = append(visit, load("/encounters/"+ids[rng.IntN(len(ids))], "evidence:visit-painted"))
	}
	pct := func(xs []float64, p int) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[min(len(s)-1, max(0, (len(s)*p+99)/100-1))]
	}
	t.Logf("navigation start -> visit list painted: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d loads)", pct(list, 50), pct(list, 99), pct(list, 100), len(list))
	t.Logf("navigation start -> visit painted: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d loads, visits at random among the %d most recent)", pct(visit, 50), pct(visit, 99), pct(visit, 100), len(visit), len(ids))
}
