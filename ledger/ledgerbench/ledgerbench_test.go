package ledgerbench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

const origin = "bench.test/log"

var backends = []struct {
	name string
	open func(dir string) (storage.Store, error)
}{
	{"pebble", func(dir string) (storage.Store, error) { return pebblestore.Open(dir, pebblestore.Options{}) }},
	{"badger", func(dir string) (storage.Store, error) { return badgerstore.Open(dir, badgerstore.Options{}) }},
}

// BenchmarkDurableAppend appends b.N entries of 512 bytes from 64 concurrent
// appenders and, in the same run, the raw backend writing the same batches.
// "window" is the number of appends each appender keeps in flight.
func BenchmarkDurableAppend(b *testing.B) {
	for _, be := range backends {
		for _, window := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/window=%d", be.name, window), func(b *testing.B) {
				key, err := ledger.LoadOrCreateKey(b.TempDir(), origin)
				if err != nil {
					b.Fatal(err)
				}
				dir := filepath.Join(b.TempDir(), "store")
				r, err := Append(context.Background(), Config{Open: be.open, Dir: dir, Entries: b.N, Appenders: 64, Window: window, PayloadSize: 512}, key, origin)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.LedgerPerSec, "entries/s")
				b.ReportMetric(r.RawPerSec, "raw-entries/s")
				b.ReportMetric(r.LedgerRawRate, "ledger/raw")
				b.ReportMetric(float64(r.Entries)/float64(r.Batches), "entries/batch")
				b.ReportMetric(float64(r.LatencyP99.Microseconds()), "p99-µs")
			})
		}
	}
}

// BenchmarkProofs times proofs in a log of 1M entries on pebble.
func BenchmarkProofs(b *testing.B) {
	key, err := ledger.LoadOrCreateKey(b.TempDir(), origin)
	if err != nil {
		b.Fatal(err)
	}
	s, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, err := ledger.Open(s, ledger.Options{Origin: origin, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := Fill(context.Background(), l, 1_000_000, 16, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	inc, con, err := ProofLatency(l.Log, b.N, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(inc.P50.Nanoseconds())/1e3, "incl-p50-µs")
	b.ReportMetric(float64(inc.P99.Nanoseconds())/1e3, "incl-p99-µs")
	b.ReportMetric(float64(con.P50.Nanoseconds())/1e3, "cons-p50-µs")
	b.ReportMetric(float64(con.P99.Nanoseconds())/1e3, "cons-p99-µs")
}
