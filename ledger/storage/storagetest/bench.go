package storagetest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// The shape of one benchmark batch, modelled on a ledger group commit:
// many leaves and tree nodes of a few hundred bytes, plus a few larger
// entry bundles.
const (
	benchSmallOps   = 1000
	benchSmallValue = 600
	benchLargeOps   = 4
	benchLargeValue = 8 << 10
	benchKeyLen     = 6 + 8 + 4 // "bench/", batch number, op number
)

// BenchWriteSync measures synced Writes of ledger-shaped batches (1,000
// values of 600 bytes and 4 of 8 KiB, about 650 KB) with one writer and
// with four concurrent writers, which shows whether concurrent syncs are
// shared. It reports B/s and ops/s of keys and values written, and
// batches/s. Run it from a backend's BenchmarkWriteSync.
func BenchWriteSync(b *testing.B, open OpenFunc) {
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			benchWriteSync(b, open, writers)
		})
	}
}

func benchWriteSync(b *testing.B, open OpenFunc, writers int) {
	s := open(b, b.TempDir())
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	// Random, so that compression in the engine does not flatter it; the
	// ledger's payloads are encrypted and its hashes are random too.
	pool := randomBytes(rand.New(rand.NewPCG(4, 4)), 1<<20)

	var (
		next         atomic.Int64
		bytesWritten atomic.Int64
		opsWritten   atomic.Int64
		wg           sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Go(func() {
			var batch storage.Batch
			keys := make([]byte, (benchSmallOps+benchLargeOps)*benchKeyLen)
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				fillBenchBatch(&batch, keys, pool, uint64(n))
				if err := s.Write(&batch, true); err != nil {
					b.Errorf("Write: %v", err)
					return
				}
				bytesWritten.Add(int64(batch.Size()))
				opsWritten.Add(int64(batch.Len()))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(bytesWritten.Load())/elapsed, "B/s")
	b.ReportMetric(float64(opsWritten.Load())/elapsed, "ops/s")
	b.ReportMetric(float64(b.N)/elapsed, "batches/s")
}

// fillBenchBatch makes batch number n. Keys are unique across batches;
// values are windows of pool, different for every op.
func fillBenchBatch(batch *storage.Batch, keys, pool []byte, n uint64) {
	batch.Reset()
	for op := range benchSmallOps + benchLargeOps {
		k := keys[op*benchKeyLen : (op+1)*benchKeyLen]
		copy(k, "bench/")
		binary.BigEndian.PutUint64(k[6:], n)
		binary.BigEndian.PutUint32(k[14:], uint32(op))
		size := benchSmallValue
		if op >= benchSmallOps {
			size = benchLargeValue
		}
		off := int((n*7919 + uint64(op)*613) % uint64(len(pool)-size))
		batch.Set(k, pool[off:off+size])
	}
}
