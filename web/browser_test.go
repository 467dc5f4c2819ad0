package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium, headless, with chromedp. One
// browser serves every test; each test gets its own tab. In CI (CI set)
// a missing Chromium fails the tests; elsewhere they are skipped with the
// reason.

var browser struct {
	once   sync.Once
	root   context.Context
	cancel func()
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

func chromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (apt-get install chromium, or set CHROMIUM)")
}

// browserFlags are the flags this machine's closed network needs (no
// background connections) plus autoplay without a gesture, which a test
// cannot give the way a person does.
func startBrowser() {
	path, err := chromiumPath()
	if err != nil {
		browser.err = err
		return
	}
	dir, err := os.MkdirTemp("", "evidence-chromium-")
	if err != nil {
		browser.err = err
		return
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1280, 800),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	// The first Run starts the browser; it must have no deadline.
	if err := chromedp.Do(root, chromedp.Navigate("about:blank")); err != nil {
		cancelRoot()
		cancelAlloc()
		os.RemoveAll(dir)
		browser.err = fmt.Errorf("start %s: %w", path, err)
		return
	}
	browser.root = root
	browser.cancel = func() {
		cancelRoot()
		cancelAlloc()
		os.RemoveAll(dir)
	}
}

// tab is one browser tab with its page errors collected.
type tab struct {
	t   testing.TB
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

// newTab opens a tab with a viewport of w×h CSS pixels.
func newTab(t testing.TB, w, h int64) *tab {
	t.Helper()
	browser.once.Do(startBrowser)
	if browser.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser tests need Chromium: %v", browser.err)
		}
		t.Skipf("browser tests need Chromium: %v", browser.err)
	}
	tabCtx, cancelTab := chromedp.NewContext(browser.root)
	ctx, cancel := context.WithTimeout(tabCtx, 3*time.Minute)
	t.Cleanup(func() {
		cancel()
		cancelTab()
	})
	tb := &tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatal(err)
	}
	// Uncaught exceptions and console errors fail the test.
	exc := chromedp.Events(ctx, runtime.ExceptionThrown)
	cons := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range exc {
			if err != nil {
				return
			}
			tb.addError("exception: " + exceptionText(ev.ExceptionDetails))
		}
	}()
	go func() {
		for ev, err := range cons {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				tb.addError("console.error: " + strings.Join(parts, " "))
			}
		}
	}()
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.errors {
			if !tb.expected(e) {
				t.Errorf("page error: %s", e)
			}
		}
	})
	return tb
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return ""
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

func (tb *tab) addError(s string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.errors = append(tb.errors, s)
}

// expected reports page errors a test provokes on purpose: a failed
// request logged by the browser for a deliberately bad response.
func (tb *tab) expected(e string) bool {
	return strings.Contains(e, "Failed to load resource")
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatal(err)
	}
}

// eval evaluates js (awaiting a promise) and decodes the result into T.
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("eval %s: %v", shortJS(js), err)
	}
	return v
}

// wait polls a JavaScript condition until it is true.
func (tb *tab) wait(cond string, timeout time.Duration) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		tb.t.Fatalf("waiting for %s: %v", shortJS(cond), err)
	}
}

func shortJS(js string) string {
	js = strings.Join(strings.Fields(js), " ")
	if len(js) > 120 {
		return js[:117] + "..."
	}
	return js
}

// open navigates to path and waits until the visit is on screen.
func (tb *tab) openVisit(base, id string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base + "/encounters/" + id))
	tb.wait(`document.querySelector('[data-sentence-id]') !== null && document.querySelector('[data-segment-id]') !== null`, 20*time.Second)
}

// waitVerified waits until the badge has a final state and returns it.
func (tb *tab) waitVerified() string {
	tb.t.Helper()
	tb.wait(`(() => { const b = document.getElementById('verify-badge'); return b && b.dataset.state && b.dataset.state !== 'checking'; })()`, 30*time.Second)
	return eval[string](tb, `document.getElementById('verify-badge').dataset.state`)
}

// screenshot saves a PNG of the viewport as name, in WEB_SCREENSHOTS or
// the test's temporary directory.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("WEB_SCREENSHOTS")
	if dir == "" {
		dir = tb.t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatal(err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot %s", p)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// verifyText is the verification panel's text.
func (tb *tab) verifyText() string {
	tb.t.Helper()
	return eval[string](tb, `document.getElementById('verify-panel').textContent`)
}
