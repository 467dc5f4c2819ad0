package appendbench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

var backends = map[string]func(dir string) (storage.Store, error){
	"pebble": func(dir string) (storage.Store, error) { return pebblestore.Open(dir, pebblestore.Options{}) },
}

// BenchmarkDurableAppend appends b.N entries of 512 bytes from 64 concurrent
// appenders and, in the same run, the raw backend writing the same batches.
func BenchmarkDurableAppend(b *testing.B) {
	for name, open := range backends {
		b.Run(name, func(b *testing.B) {
			key, err := ledger.LoadOrCreateKey(b.TempDir(), "bench.test/log")
			if err != nil {
				b.Fatal(err)
			}
			dir := filepath.Join(b.TempDir(), "store")
			r, err := Run(context.Background(), Config{Open: open, Dir: dir, Entries: b.N, Appenders: 64, PayloadSize: 512}, key, "bench.test/log")
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
