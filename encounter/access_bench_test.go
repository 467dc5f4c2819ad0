package encounter

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// BenchmarkNoteRead reads an encounter's note on pebble (synced writes),
// with and without the access trail, from several goroutines: with it,
// every read waits until its access entry is durable, and concurrent reads
// share group commits.
func BenchmarkNoteRead(b *testing.B) {
	for _, tc := range []struct {
		trail   bool
		readers int
	}{{false, 1}, {true, 1}, {false, 16}, {true, 16}, {true, 64}} {
		trail := tc.trail
		par := max(1, tc.readers/runtime.GOMAXPROCS(0))
		name := fmt.Sprintf("trail=%v/readers=%d", trail, par*runtime.GOMAXPROCS(0))
		b.Run(name, func(b *testing.B) {
			kv, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer kv.Close()
			key, err := ledger.LoadOrCreateKey(b.TempDir(), "encounter.test/log")
			if err != nil {
				b.Fatal(err)
			}
			l, err := ledger.Open(kv, ledger.Options{Origin: "encounter.test/log", Key: key})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var opts []Option
			if trail {
				opts = append(opts, WithAccessTrail())
			}
			svc := New(l.Log, l, blob.New(kv, nil), opts...)
			info, _, err := svc.Create(ctx, alice, "t", "")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := svc.RecordSegments(ctx, alice, info.ID, append([]Segment(nil), visit...)); err != nil {
				b.Fatal(err)
			}
			if _, err := svc.RecordModelOutput(ctx, alice, info.ID, ModelOutput{Model: Model{Name: "m"}, Note: draft}); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := svc.Note(ctx, alice, info.ID); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
