package proxybench_test

import (
	"context"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
	"github.com/evidenceledger/evidence/pipeline/proxy/proxybench"
)

// TestRunRecordsEveryCall runs a small measurement and checks its
// bookkeeping: every proxied call is in the ledger.
func TestRunRecordsEveryCall(t *testing.T) {
	for _, proto := range []string{"http", "grpc"} {
		res, err := proxybench.Run(context.Background(), proxybench.Config{Dir: t.TempDir(), Protocol: proto, Requests: 200, Clients: 8, Rounds: 2, Note: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Direct.Errors+res.Proxy.Errors != 0 || res.Recorded != res.Proxy.Requests {
			t.Errorf("%s: %v", proto, res)
		}
	}
}

func pebble(dir string) (storage.Store, error) { return pebblestore.Open(dir, pebblestore.Options{}) }

// BenchmarkProxyOverhead reports the latency the proxies add at 64
// clients, with the ledger on pebble (fsync), in microseconds:
//
//	go test -run XXX -bench ProxyOverhead -benchtime 1x ./pipeline/proxy/proxybench/
func BenchmarkProxyOverhead(b *testing.B) {
	for _, tc := range []struct {
		name   string
		proto  string
		stream bool
	}{{"http", "http", false}, {"http-sse", "http", true}, {"grpc", "grpc", false}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				res, err := proxybench.Run(context.Background(), proxybench.Config{Open: pebble, Dir: b.TempDir(), Protocol: tc.proto,
					Stream: tc.stream, Requests: 20000, Clients: 64, Note: true})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(res.AddedP50.Microseconds()), "added-p50-µs")
				b.ReportMetric(float64(res.AddedP99.Microseconds()), "added-p99-µs")
				b.ReportMetric(res.Direct.PerSec, "direct-req/s")
				b.ReportMetric(res.Proxy.PerSec, "proxy-req/s")
				if res.Recorded != res.Proxy.Requests-res.Proxy.Errors {
					b.Errorf("%d of %d calls recorded", res.Recorded, res.Proxy.Requests-res.Proxy.Errors)
				}
			}
		})
	}
}
