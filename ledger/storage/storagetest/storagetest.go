// Package storagetest is the conformance suite for storage.Store
// implementations. Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(tb testing.TB, dir string) storage.Store {
//			s, err := mybackend.Open(dir)
//			if err != nil {
//				tb.Fatal(err)
//			}
//			return s
//		}, storagetest.Options{})
//	}
//
// The suite checks the contract written on storage.Store and nothing more:
// missing and empty keys, copies, batch order and atomicity, snapshot scans
// and their bounds, concurrency under the race detector, persistence across
// Close and reopen, and behaviour after Close; and storage.AsyncWriter, for
// stores that implement it. A randomized subtest compares the store with a
// plain map model, with fixed seeds so that a failure reproduces.
//
// It also holds the shared write benchmark, BenchWriteSync, so that the
// numbers of different backends measure the same thing.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// OpenFunc opens the store kept in dir. The suite calls it again with the
// same dir after closing the first store, to check persistence; a store
// that keeps nothing on disk may ignore dir (see Options.Volatile). The
// suite closes every store it opens; open should fail tb on error.
type OpenFunc func(tb testing.TB, dir string) storage.Store

// Options describe the store under test.
type Options struct {
	// Volatile reports that the store keeps nothing across Close, as an
	// in-memory store does. The suite then leaves out the subtests that
	// reopen a directory and expect the data back. Every persistent
	// backend leaves it false, which runs everything.
	Volatile bool
}

// Run runs every conformance subtest against the stores that open returns.
// Each subtest opens its own store in its own temporary directory.
func Run(t *testing.T, open OpenFunc, opts Options) {
	h := harness{open: open}
	t.Run("GetMissing", h.testGetMissing)
	t.Run("RoundTrip", h.testRoundTrip)
	t.Run("Copies", h.testCopies)
	t.Run("Overwrite", h.testOverwrite)
	t.Run("Delete", h.testDelete)
	t.Run("LaterOpWins", h.testLaterOpWins)
	t.Run("EmptyKey", h.testEmptyKey)
	t.Run("EmptyBatch", h.testEmptyBatch)
	t.Run("LargeBatch", h.testLargeBatch)
	t.Run("ScanBounds", h.testScanBounds)
	t.Run("ScanStops", h.testScanStops)
	t.Run("ScanReentrant", h.testScanReentrant)
	t.Run("AtomicBatches", h.testAtomicBatches)
	t.Run("ConcurrentWritersReaders", h.testConcurrent)
	t.Run("Model", func(t *testing.T) { h.testModel(t, !opts.Volatile) })
	if !opts.Volatile {
		t.Run("Reopen", h.testReopen)
	}
	t.Run("Close", h.testClose)
	t.Run("CloseWhileBusy", h.testCloseWhileBusy)

	if !h.implementsAsync(t) {
		t.Log("the store does not implement storage.AsyncWriter; its subtests are left out")
		return
	}
	t.Run("AsyncWriter", func(t *testing.T) {
		t.Run("Basic", h.testAsyncBasic)
		t.Run("Pipeline", h.testAsyncPipeline)
		if !opts.Volatile {
			t.Run("Durable", h.testAsyncDurable)
		}
		t.Run("Closed", h.testAsyncClosed)
	})
}

type harness struct {
	open OpenFunc
}

// fresh opens an empty store in a new directory and closes it when the
// test ends.
func (h harness) fresh(t *testing.T) (storage.Store, string) {
	t.Helper()
	dir := t.TempDir()
	return h.openIn(t, dir), dir
}

// openIn opens the store in dir and closes it when the test ends. Close is
// idempotent, so a test may close it earlier itself.
func (h harness) openIn(t *testing.T, dir string) storage.Store {
	t.Helper()
	s := h.open(t, dir)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close at cleanup: %v", err)
		}
	})
	return s
}

// kv is one key-value pair as the tests see it, always a private copy.
type kv struct {
	key, value []byte
}

func (p kv) String() string { return fmt.Sprintf("%x=%x", p.key, p.value) }

func write(t testing.TB, s storage.Store, b *storage.Batch, sync bool) {
	t.Helper()
	if err := s.Write(b, sync); err != nil {
		t.Fatalf("Write(%d ops, sync=%v): %v", b.Len(), sync, err)
	}
}

func set(t testing.TB, s storage.Store, key, value string) {
	t.Helper()
	var b storage.Batch
	b.Set([]byte(key), []byte(value))
	write(t, s, &b, true)
}

func get(t testing.TB, s storage.Store, key []byte) []byte {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%x): %v", key, err)
	}
	return v
}

func wantValue(t testing.TB, s storage.Store, key, want []byte) {
	t.Helper()
	if got := get(t, s, key); !bytes.Equal(got, want) {
		t.Errorf("Get(%x) = %s, want %s", key, abbrev(got), abbrev(want))
	}
}

func wantMissing(t testing.TB, s storage.Store, key []byte) {
	t.Helper()
	v, err := s.Get(key)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(%x) = %s, %v; want storage.ErrNotFound", key, abbrev(v), err)
	}
}

// scan returns private copies of every pair that Scan(start, end) yields.
func scan(t testing.TB, s storage.Store, start, end []byte) []kv {
	t.Helper()
	var out []kv
	err := s.Scan(start, end, func(k, v []byte) error {
		out = append(out, kv{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%x, %x): %v", start, end, err)
	}
	return out
}

func wantPairs(t testing.TB, what string, got, want []kv) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d pairs, want %d\n got: %v\nwant: %v", what, len(got), len(want), abbrevPairs(got), abbrevPairs(want))
		return
	}
	for i := range got {
		if !bytes.Equal(got[i].key, want[i].key) || !bytes.Equal(got[i].value, want[i].value) {
			t.Errorf("%s: pair %d = %v, want %v", what, i, got[i], want[i])
			return
		}
	}
}

// abbrev prints a value for a failure message without flooding the log.
func abbrev(b []byte) string {
	if b == nil {
		return "nil"
	}
	if len(b) > 32 {
		return fmt.Sprintf("%x...(%d bytes)", b[:32], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func abbrevPairs(ps []kv) []string {
	const max = 20
	var out []string
	for i, p := range ps {
		if i == max {
			out = append(out, fmt.Sprintf("...(%d more)", len(ps)-max))
			break
		}
		out = append(out, fmt.Sprintf("%x=%s", p.key, abbrev(p.value)))
	}
	return out
}
