package ledger

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// discardStore accepts writes and forgets them, so that a benchmark sees
// only the log's own work. The log reads storage only at open and for chain
// heads it has not cached, which a fresh log does not have.
type discardStore struct{ storage.Store }

func (discardStore) Get([]byte) ([]byte, error)       { return nil, storage.ErrNotFound }
func (discardStore) Write(*storage.Batch, bool) error { return nil }
func (discardStore) Close() error                     { return nil }

// BenchmarkAppendCPU measures the log's own work per entry with storage
// taken out: 64 appenders, 512-byte payloads, 16 appends in flight each.
func BenchmarkAppendCPU(b *testing.B) {
	l := openTestLog(b, discardStore{memstore.New()}, testKey(b))
	payload := make([]byte, 512)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/64 + 1
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var window []*Pending
			for i := range per {
				p, err := l.AppendAsync(context.Background(), []Entry{{Kind: KindSegment, Tenant: "bench", Encounter: fmt.Sprintf("enc-%d", (w*per+i)%1000), Actor: "bench", Payload: payload}})
				if err != nil {
					b.Error(err)
					return
				}
				window = append(window, p)
				if len(window) == 16 {
					window[0].Wait()
					window = window[1:]
				}
			}
			for _, p := range window {
				p.Wait()
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/float64(l.m.batchNo), "entries/batch")
}
