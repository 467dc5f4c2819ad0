package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// memMark is a HighWater in memory that can be slowed down or made to fail,
// and that remembers every size it stored.
type memMark struct {
	mu     sync.Mutex
	note   []byte
	size   int64
	sizes  []int64
	delay  time.Duration
	failAt int64 // fail a Store of this size or more; 0 never
}

func (m *memMark) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.note, nil
}

func (m *memMark) Store(note []byte) error {
	time.Sleep(m.delay)
	size, err := checkpointSize(note)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAt > 0 && size >= m.failAt {
		return errors.New("disk full")
	}
	m.note, m.size = append([]byte(nil), note...), size
	m.sizes = append(m.sizes, size)
	return nil
}

func (m *memMark) stored() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// checkpointSize reads the size line of a checkpoint note without checking
// its signature.
func checkpointSize(note []byte) (int64, error) {
	var origin string
	var size int64
	_, err := fmt.Sscanf(string(note), "%s\n%d\n", &origin, &size)
	return size, err
}

func openMarked(t *testing.T, s storage.Store, k *Key, hw HighWater) (*Appender, error) {
	t.Helper()
	return Open(s, Options{Origin: testOrigin, Key: k, HighWater: hw})
}

// copyStore copies every key of src into a new in-memory store: a backup.
func copyStore(t *testing.T, src storage.Store) storage.Store {
	t.Helper()
	dst := memstore.New()
	var b storage.Batch
	err := src.Scan(nil, nil, func(k, v []byte) error {
		b.Set(slices.Clone(k), slices.Clone(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	return dst
}

func appendN(t *testing.T, l *Appender, n int, tag string) {
	t.Helper()
	for i := range n {
		mustAppend(t, l, segment(fmt.Sprintf("enc-%d", i%3), fmt.Sprintf("%s %d", tag, i)))
	}
}

func TestHighWaterRefusesRolledBackStore(t *testing.T) {
	k := testKey(t)
	s := memstore.New()
	mark := &memMark{}
	l, err := openMarked(t, s, k, mark)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 5, "first")
	backup := copyStore(t, s) // a copy of the store at size 5
	appendN(t, l, 7, "second")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mark.stored(); got != 12 {
		t.Fatalf("after Close the mark is at %d, want 12", got)
	}

	// The store as it was at size 5: behind the mark.
	_, err = openMarked(t, backup, k, mark)
	var rb *RollbackError
	if !errors.As(err, &rb) || rb.Forked || rb.StoreSize != 5 || rb.AnchorSize != 12 || !IsCorruption(err) {
		t.Fatalf("open of a rolled-back store: %v, want a RollbackError 5 < 12", err)
	}

	// The backup, accepted and written again: the same size as the mark,
	// or larger, but another tree.
	forkMark := &memMark{}
	if _, _, err := AcceptStore(backup, testOrigin, k.Verifier(), forkMark); err != nil {
		t.Fatal(err)
	}
	fork, err := openMarked(t, backup, k, forkMark)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, fork, 7, "forked")
	appendN(t, fork, 3, "more")
	fork.Close()
	_, err = openMarked(t, backup, k, mark)
	if !errors.As(err, &rb) || !rb.Forked || rb.StoreSize != 15 || rb.AnchorSize != 12 {
		t.Fatalf("open of a forked store: %v, want a forked RollbackError", err)
	}

	// The original store still opens with its mark.
	l, err = openMarked(t, s, k, mark)
	if err != nil {
		t.Fatalf("the intact store: %v", err)
	}
	l.Close()
}

func TestHighWaterMissingOrDamaged(t *testing.T) {
	k := testKey(t)
	dir := t.TempDir()
	hw := HighWaterFile(filepath.Join(dir, HighWaterFileName))
	s := memstore.New()
	l, err := openMarked(t, s, k, hw)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3, "x")
	l.Close()
	if fi, err := os.Stat(string(hw)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("high-water file: %v %v", fi, err)
	}
	if _, err := os.Stat(string(hw) + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}

	// A damaged mark is corruption.
	note, _ := os.ReadFile(string(hw))
	bad := slices.Clone(note)
	bad[len(bad)-10] ^= 0x01
	os.WriteFile(string(hw), bad, 0o644)
	if _, err := openMarked(t, s, k, hw); !IsCorruption(err) {
		t.Fatalf("open with a damaged mark: %v, want corruption", err)
	}

	// A missing mark with a non-empty store is refused until accepted.
	os.Remove(string(hw))
	if _, err := openMarked(t, s, k, hw); !errors.Is(err, ErrNoHighWater) {
		t.Fatalf("open without a mark: %v, want ErrNoHighWater", err)
	}
	storeSize, markSize, err := AcceptStore(s, testOrigin, k.Verifier(), hw)
	if err != nil || storeSize != 3 || markSize != -1 {
		t.Fatalf("AcceptStore: %d %d %v", storeSize, markSize, err)
	}
	l, err = openMarked(t, s, k, hw)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestHighWaterLag checks the contract under concurrent appends with a
// slow mark: when an append returns, the mark holds at least the
// checkpoint published before the append's own.
func TestHighWaterLag(t *testing.T) {
	k := testKey(t)
	mark := &memMark{delay: 2 * time.Millisecond}
	l, err := openMarked(t, memstore.New(), k, mark)
	if err != nil {
		t.Fatal(err)
	}
	type obs struct{ acked, mark int64 }
	var mu sync.Mutex
	var seen []obs
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 30 {
				a, err := l.Append(context.Background(), []Entry{segment(fmt.Sprintf("e%d", w), fmt.Sprintf("%d", i))})
				if err != nil {
					t.Error(err)
					return
				}
				m := mark.stored()
				mu.Lock()
				seen = append(seen, obs{a.Checkpoint.Size, m})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	published := map[int64]bool{0: true}
	for _, o := range seen {
		published[o.acked] = true
	}
	sizes := slices.Sorted(func(yield func(int64) bool) {
		for s := range published {
			if !yield(s) {
				return
			}
		}
	})
	lagged := 0
	for _, o := range seen {
		i, _ := slices.BinarySearch(sizes, o.acked)
		prev := sizes[i-1]
		if o.mark < prev {
			t.Fatalf("an append acknowledged at size %d while the mark was at %d, behind the checkpoint before it (%d)", o.acked, o.mark, prev)
		}
		if o.mark < o.acked {
			lagged++
		}
	}
	if mark.stored() != l.Size() {
		t.Fatalf("after Close the mark is at %d, the log at %d", mark.stored(), l.Size())
	}
	t.Logf("%d group commits; %d of %d acknowledgements saw the mark one commit behind", len(sizes)-1, lagged, len(seen))
}

func TestHighWaterWriteFailureFailsTheLog(t *testing.T) {
	k := testKey(t)
	mark := &memMark{failAt: 3}
	l, err := openMarked(t, memstore.New(), k, mark)
	if err != nil {
		t.Fatal(err)
	}
	var failed error
	for i := range 10 {
		if _, err := l.Append(context.Background(), []Entry{segment("e", fmt.Sprint(i))}); err != nil {
			failed = err
			break
		}
	}
	if !errors.As(failed, new(*FailedError)) {
		t.Fatalf("appends with a failing mark: %v, want a FailedError", failed)
	}
	if l.Size() > 4 {
		t.Fatalf("the log acknowledged up to %d with the mark stuck below 3", l.Size())
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close hid the failed mark")
	}
}

// TestHighWaterOnDisk runs the refusal on both disk backends with the
// mark in a file: a store copied while it was smaller is refused.
func TestHighWaterOnDisk(t *testing.T) {
	for _, name := range []string{"pebble", "badger"} {
		t.Run(name, func(t *testing.T) {
			k := testKey(t)
			dir := t.TempDir()
			hw := HighWaterFile(filepath.Join(dir, HighWaterFileName))
			s := openBackend(t, name, filepath.Join(dir, "store"))
			l, err := openMarked(t, s, k, hw)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 4, "a")
			backup := copyStore(t, s)
			appendN(t, l, 4, "b")
			l.Close()
			s.Close()
			s = openBackend(t, name, filepath.Join(dir, "store"))
			defer s.Close()
			if l, err := openMarked(t, s, k, hw); err != nil {
				t.Fatalf("reopen: %v", err)
			} else {
				l.Close()
			}
			var rb *RollbackError
			if _, err := openMarked(t, backup, k, hw); !errors.As(err, &rb) || rb.StoreSize != 4 || rb.AnchorSize != 8 {
				t.Fatalf("open of the smaller copy: %v", err)
			}
		})
	}
}

// TestHighWaterFileWrites: notes that fit in a sector and are no shorter
// than the file are written over it in place (the file keeps its inode);
// a shorter one, a long one and the first replace it by a rename. Every
// note reads back exactly.
func TestHighWaterFileWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), HighWaterFileName)
	hw := HighWaterFile(path)
	inode := func() uint64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	store := func(note string) {
		t.Helper()
		if err := hw.Store([]byte(note)); err != nil {
			t.Fatal(err)
		}
		got, err := hw.Load()
		if err != nil || string(got) != note {
			t.Fatalf("Load = %q, %v; want %q", got, err, note)
		}
	}
	store("first note\n")
	first := inode()
	store("second note\n") // same length: in place
	store("a longer third note\n")
	if inode() != first {
		t.Fatal("a note that fits was not written in place")
	}
	store("short\n") // shorter: renamed
	if inode() == first {
		t.Fatal("a shorter note was written in place, leaving the old one's tail")
	}
	renamed := inode()
	store(strings.Repeat("x", atomicWrite+1))
	if inode() == renamed {
		t.Fatal("a note longer than a sector was written in place")
	}
}
