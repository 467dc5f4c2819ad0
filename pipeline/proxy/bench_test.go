package proxy_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline/internal/testenv"
	"github.com/evidenceledger/evidence/pipeline/proxy"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

// inProcess is a transport that serves requests with a handler, without a
// network, so that a benchmark measures the proxy's own work.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// BenchmarkHTTPHandler is the CPU cost of one chat-completions call
// answered by the fake upstream directly, and through the proxy with its
// recording (the spool write, the ledger append on an in-memory store, the
// note parse and alignment) included: the timer stops once every call is
// in the ledger. The difference is the proxy's work per call, free of the
// network and of scheduling noise:
//
//	go test -run XXX -bench HTTPHandler -benchmem ./pipeline/proxy/
func BenchmarkHTTPHandler(b *testing.B) {
	body := []byte(`{"model":"bench-model","temperature":0,"messages":[{"role":"system","content":"Write a SOAP note."},{"role":"user","content":"PATIENT: I have had a cough for three days."}]}`)
	for _, tc := range []struct {
		name string
		note bool
	}{{"text", false}, {"note", true}} {
		chat := &upstreamtest.Chat{}
		if !tc.note {
			chat.Content = "The patient reports a cough for three days and no fever."
		}
		b.Run("direct-"+tc.name, func(b *testing.B) {
			for range b.N {
				w := httptest.NewRecorder()
				chat.ServeHTTP(w, httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body)))
			}
		})
		b.Run("proxy-"+tc.name, func(b *testing.B) {
			svc, l := testenv.New(b)
			encs := make([]string, 64)
			for i := range encs {
				encs[i], _ = testenv.Visit(b, svc, testenv.Alice)
			}
			rec, err := proxy.NewRecorder(svc, l.Log, proxy.Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer rec.Close(ctx)
			h, _ := proxy.NewHTTP(rec, proxy.HTTPConfig{Upstream: "http://upstream", Transport: inProcess{chat},
				Identify: func(*http.Request) (encounter.Caller, error) { return testenv.Alice, nil }})
			b.ResetTimer()
			for i := range b.N {
				for {
					r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
					r.Header.Set(proxy.EncounterHeader, encs[i/8%len(encs)])
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code == http.StatusServiceUnavailable {
						// The recording queue is full (back-pressure, as
						// designed): let the recorder catch up, then retry.
						for rec.Pending() > 0 {
							time.Sleep(100 * time.Microsecond)
						}
						continue
					}
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
					break
				}
			}
			for rec.Pending() > 0 {
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
}
