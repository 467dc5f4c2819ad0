package storagetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// implementsAsync reports whether the stores that open returns implement
// storage.AsyncWriter, by opening one in a scratch directory.
func (h harness) implementsAsync(t *testing.T) bool {
	t.Helper()
	s := h.open(t, t.TempDir())
	defer s.Close()
	_, ok := s.(storage.AsyncWriter)
	return ok
}

// freshAsync opens an empty store as an AsyncWriter.
func (h harness) freshAsync(t *testing.T) (storage.Store, storage.AsyncWriter, string) {
	t.Helper()
	s, dir := h.fresh(t)
	return s, s.(storage.AsyncWriter), dir
}

func writeAsync(t testing.TB, aw storage.AsyncWriter, b *storage.Batch) func() error {
	t.Helper()
	wait, err := aw.WriteAsync(b)
	if err != nil {
		t.Fatalf("WriteAsync(%d ops): %v", b.Len(), err)
	}
	if wait == nil {
		t.Fatal("WriteAsync returned a nil wait and no error")
	}
	return wait
}

func (h harness) testAsyncBasic(t *testing.T) {
	s, aw, _ := h.freshAsync(t)

	var b storage.Batch
	b.Set([]byte("a"), []byte("1"))
	b.Set([]byte("b"), []byte("2"))
	wait1 := writeAsync(t, aw, &b)
	// The batch may be reused as soon as WriteAsync returns.
	b.Reset()
	b.Set([]byte("a"), []byte("11"))
	b.Delete([]byte("b"))
	wait2 := writeAsync(t, aw, &b)
	b.Reset()
	b.Set([]byte("c"), []byte("3"))
	write(t, s, &b, false)
	waitEmpty := writeAsync(t, aw, &storage.Batch{})

	for i, wait := range []func() error{wait1, wait2, waitEmpty} {
		if err := wait(); err != nil {
			t.Errorf("wait %d: %v", i+1, err)
		}
	}
	wantPairs(t, "after async writes", scan(t, s, nil, nil), []kv{
		{[]byte("a"), []byte("11")},
		{[]byte("c"), []byte("3")},
	})

	b.Reset()
	b.Set([]byte("d"), []byte("4"))
	b.Set(nil, []byte("empty key"))
	if wait, err := aw.WriteAsync(&b); err == nil {
		wait()
		t.Error("WriteAsync accepted an empty key")
	}
	wantMissing(t, s, []byte("d"))
}

// testAsyncPipeline drives WriteAsync the way the ledger's committer does:
// one goroutine applies batches, another waits for them in order, while
// readers scan.
func (h harness) testAsyncPipeline(t *testing.T) {
	s, aw, _ := h.freshAsync(t)
	const (
		batches   = 50
		batchKeys = 20
	)
	key := func(b, k int) []byte { return []byte(fmt.Sprintf("p/b%03d/k%02d", b, k)) }

	waits := make(chan func() error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(waits)
		var b storage.Batch
		for i := range batches {
			b.Reset()
			for k := range batchKeys {
				kk := key(i, k)
				b.Set(kk, valueFor(kk))
			}
			wait, err := aw.WriteAsync(&b)
			if err != nil {
				t.Errorf("WriteAsync batch %d: %v", i, err)
				return
			}
			waits <- wait
		}
	})
	var durable int
	wg.Go(func() {
		for wait := range waits {
			if err := wait(); err != nil {
				t.Errorf("wait: %v", err)
			}
			durable++
		}
	})
	wg.Go(func() {
		for range 20 {
			err := s.Scan([]byte("p/"), []byte("p0"), func(k, v []byte) error {
				if string(v) != string(valueFor(k)) {
					return fmt.Errorf("Scan: %s has %q", k, v)
				}
				return nil
			})
			if err != nil {
				t.Errorf("reader: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if durable != batches {
		t.Errorf("%d of %d batches became durable", durable, batches)
	}
	if got := scan(t, s, []byte("p/"), []byte("p0")); len(got) != batches*batchKeys {
		t.Errorf("found %d keys, want %d", len(got), batches*batchKeys)
	}
}

// testAsyncDurable checks that what a wait reported durable survives a
// reopen, and that Close neither hangs nor fails when a wait was never
// called.
func (h harness) testAsyncDurable(t *testing.T) {
	s, aw, dir := h.freshAsync(t)
	var b storage.Batch
	var want []kv
	for i := range 10 {
		b.Reset()
		p := kv{[]byte(fmt.Sprintf("d/%02d", i)), []byte(fmt.Sprintf("v%02d", i))}
		b.Set(p.key, p.value)
		want = append(want, p)
		if err := writeAsync(t, aw, &b)(); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	b.Reset()
	b.Set([]byte("e/unwaited"), []byte("x"))
	late := writeAsync(t, aw, &b)
	if err := s.Close(); err != nil {
		t.Fatalf("Close with a wait outstanding: %v", err)
	}
	lateErr := late()

	s = h.openIn(t, dir)
	wantPairs(t, "after reopen", scan(t, s, []byte("d/"), []byte("d0")), want)
	if lateErr == nil {
		// The wait said durable, so it must be there.
		wantValue(t, s, []byte("e/unwaited"), []byte("x"))
	}
}

func (h harness) testAsyncClosed(t *testing.T) {
	s, aw, _ := h.freshAsync(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var b storage.Batch
	b.Set([]byte("a"), []byte("1"))
	if _, err := aw.WriteAsync(&b); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("WriteAsync after Close = %v, want storage.ErrClosed", err)
	}
}
