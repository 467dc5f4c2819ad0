package tlogtiles_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/ledger/tlogtiles"
)

func newLog(t testing.TB, n int) *ledger.Log {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.localhost/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); store.Close() })
	for i := range n {
		_, err := l.Append(context.Background(), []ledger.Entry{{Kind: ledger.KindEncounter, Tenant: "t", Encounter: fmt.Sprintf("enc_%d", i), Actor: "a", Payload: []byte("{}")}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return l.Log
}

// guarded stands for a middleware that requires credentials on the
// entries route only, as evidenced's does.
type guarded struct {
	mux *http.ServeMux
}

func (g guarded) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	if pattern == "GET /tile/entries/" {
		g.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		})
		return
	}
	g.mux.HandleFunc(pattern, h)
}

func get(h http.Handler, path, authz string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "http://x"+path, nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestEntriesOnlyOnTheirRoute(t *testing.T) {
	l := newLog(t, 3)
	mux := http.NewServeMux()
	calls := 0
	h := &tlogtiles.Handler{Log: l, AuthorizeEntries: func(r *http.Request, bundle []byte) (int, error) {
		calls++
		if len(bundle) == 0 {
			t.Error("the hook did not get the bundle")
		}
		if r.Header.Get("Authorization") != "Bearer ok" {
			return http.StatusForbidden, errors.New("no")
		}
		return 0, nil
	}}
	h.Register(guarded{mux})
	if w := get(mux, "/tile/0/000.p/3", ""); w.Code != 200 {
		t.Fatalf("hash tile: %d", w.Code)
	}
	if w := get(mux, "/tile/entries/000.p/3", ""); w.Code != 401 {
		t.Fatalf("entries without credentials: %d", w.Code)
	}
	if w := get(mux, "/tile/entries/000.p/3", "Bearer no"); w.Code != 403 {
		t.Fatalf("entries refused by the hook: %d", w.Code)
	}
	if w := get(mux, "/tile/entries/000.p/3", "Bearer ok"); w.Code != 200 || !strings.Contains(w.Body.String(), "enc_2") {
		t.Fatalf("entries: %d", w.Code)
	}
	if calls != 2 {
		t.Fatalf("hook called %d times", calls)
	}
	// Paths that name entries but reach the public hash-tile route: an
	// escaped slash is one segment to the mux, two in r.URL.Path. Without
	// a hook, only the route split keeps them out.
	open := http.NewServeMux()
	(&tlogtiles.Handler{Log: l}).Register(guarded{open})
	for _, p := range []string{"/tile/entries%2F000.p%2F3", "/tile/entries%2F000.p/3", "/tile/%65ntries%2F000.p%2F3", "/tile/entries", "/tile/entriesx/000"} {
		for _, m := range []*http.ServeMux{mux, open} {
			if w := get(m, p, ""); w.Code == 200 {
				t.Errorf("%s served without credentials (%d bytes)", p, w.Body.Len())
			}
		}
	}
}

// FuzzTilePath serves arbitrary paths: no panic, and nothing but a 200, a
// 400 or a 404, and entry bundles never without credentials.
func FuzzTilePath(f *testing.F) {
	l := newLog(f, 3)
	mux := http.NewServeMux()
	(&tlogtiles.Handler{Log: l}).Register(guarded{mux})
	for _, s := range []string{"/tile/0/000", "/tile/0/000.p/3", "/tile/entries/000.p/3", "/tile/1/x001/234.p/5", "/tile/entries%2F000.p%2F3", "/tile/63/000", "/checkpoint"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#?") {
			return
		}
		r, err := http.NewRequest("GET", "http://x"+path, nil)
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			if strings.Contains(w.Body.String(), "enc_") {
				t.Fatalf("%q served an entry bundle without credentials", path)
			}
		case 301, 307, 308, 400, 401, 404, 405:
		default:
			t.Fatalf("%q: %d", path, w.Code)
		}
	})
}
