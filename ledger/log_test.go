package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/evidenceledger/evidence/ledger/internal/reftree"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

const testOrigin = "evidence.test/log"

func testKey(t testing.TB) *Key {
	t.Helper()
	k, err := LoadOrCreateKey(t.TempDir(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openTestLog(t testing.TB, s storage.Store, k *Key) *Appender {
	t.Helper()
	l, err := Open(s, Options{Origin: testOrigin, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func segment(enc string, payload string) Entry {
	return Entry{Kind: KindSegment, Tenant: "tenant-a", Encounter: enc, Actor: "asr", Payload: []byte(payload)}
}

func mustAppend(t testing.TB, l *Appender, entries ...Entry) *Appended {
	t.Helper()
	a, err := l.Append(context.Background(), entries)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return a
}

func toBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// interestingSizes are tree sizes around the edges of the tiled layout.
func interestingSizes(max int) []int {
	var out []int
	seen := map[int]bool{}
	add := func(n int) {
		if n >= 0 && n <= max && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for n := 0; n <= 20; n++ {
		add(n)
	}
	for p := 32; p <= max; p *= 2 {
		add(p - 1)
		add(p)
		add(p + 1)
	}
	add(max)
	return out
}

// TestTreeMatchesReference grows a log to 65,537 entries and checks roots,
// inclusion proofs and consistency proofs at many sizes against the slow
// reference tree and the transparency-dev verifier.
func TestTreeMatchesReference(t *testing.T) {
	const max = 1<<16 + 1
	if testing.Short() {
		t.Skip("builds a 65,537-leaf tree; run without -short")
	}
	l := openTestLog(t, memstore.New(), testKey(t))
	var leaves []reftree.Hash
	rng := rand.New(rand.NewPCG(1, 2))
	for len(leaves) < max {
		// Batches of varying size put checkpoints at irregular sizes.
		n := 1 + rng.IntN(600)
		if len(leaves) < 300 {
			n = 1
		}
		n = min(n, max-len(leaves))
		batch := make([]Entry, n)
		for i := range batch {
			batch[i] = segment(fmt.Sprintf("enc-%d", rng.IntN(50)), fmt.Sprintf("p%d", len(leaves)+i))
		}
		a := mustAppend(t, l, batch...)
		for _, d := range a.Leaves {
			leaves = append(leaves, reftree.LeafHash(d))
		}
	}
	sizes := interestingSizes(max)
	for _, size := range sizes {
		root, err := l.RootAt(int64(size))
		if err != nil {
			t.Fatalf("RootAt(%d): %v", size, err)
		}
		if want := reftree.Root(leaves[:size]); root != want {
			t.Fatalf("RootAt(%d) = %x, want %x", size, root, want)
		}
	}
	verifier := rfc6962.DefaultHasher
	for _, size := range sizes {
		if size == 0 {
			continue
		}
		root := reftree.Root(leaves[:size])
		for _, idx := range sampleBelow(size) {
			p, err := l.InclusionProof(int64(idx), int64(size))
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", idx, size, err)
			}
			want := reftree.InclusionProof(idx, leaves[:size])
			if fmt.Sprint(p) != fmt.Sprint(toHashes(want)) {
				t.Fatalf("InclusionProof(%d, %d) differs from the reference", idx, size)
			}
			if err := proof.VerifyInclusion(verifier, uint64(idx), uint64(size), leaves[idx][:], toBytes(p), root[:]); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", idx, size, err)
			}
		}
		for _, old := range append(sampleBelow(size), size) {
			p, err := l.ConsistencyProof(int64(old), int64(size))
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", old, size, err)
			}
			if old > 0 {
				want := reftree.ConsistencyProof(old, leaves[:size])
				if fmt.Sprint(p) != fmt.Sprint(toHashes(want)) {
					t.Fatalf("ConsistencyProof(%d, %d) differs from the reference", old, size)
				}
			}
			oldRoot := reftree.Root(leaves[:old])
			if err := proof.VerifyConsistency(verifier, uint64(old), uint64(size), toBytes(p), oldRoot[:], root[:]); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", old, size, err)
			}
		}
	}
}

// sampleBelow returns a few values in [0, n) near tile and power-of-two
// boundaries; proving every index against the slow reference would take
// minutes.
func sampleBelow(n int) []int {
	var out []int
	for _, x := range []int{0, 1, 2, 3, 7, 8, 9, 255, 256, 257, 4095, 4096, 65535, 65536, n / 2, n - 2, n - 1} {
		if x >= 0 && x < n && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func toHashes(in []reftree.Hash) []Hash {
	out := make([]Hash, len(in))
	for i := range in {
		out[i] = Hash(in[i])
	}
	return out
}

func TestRandomProofsVerify(t *testing.T) {
	eachStore(t, testRandomProofsVerify)
}

func testRandomProofsVerify(t *testing.T, s storage.Store, _ func() storage.Store) {
	l := openTestLog(t, s, testKey(t))
	var leaves []reftree.Hash
	for i := 0; i < 3000; i += 97 {
		batch := make([]Entry, 97)
		for j := range batch {
			batch[j] = segment("enc-1", fmt.Sprint(i+j))
		}
		for _, d := range mustAppend(t, l, batch...).Leaves {
			leaves = append(leaves, reftree.LeafHash(d))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		size := 1 + rng.IntN(len(leaves))
		idx := rng.IntN(size)
		old := rng.IntN(size + 1)
		root := reftree.Root(leaves[:size])
		p, err := l.InclusionProof(int64(idx), int64(size))
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(idx), uint64(size), leaves[idx][:], toBytes(p), root[:]); err != nil {
			t.Fatalf("inclusion %d in %d: %v", idx, size, err)
		}
		c, err := l.ConsistencyProof(int64(old), int64(size))
		if err != nil {
			t.Fatal(err)
		}
		oldRoot := reftree.Root(leaves[:old])
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(old), uint64(size), toBytes(c), oldRoot[:], root[:]); err != nil {
			t.Fatalf("consistency %d to %d: %v", old, size, err)
		}
	}
}

func TestGroupCommitBatchesConcurrentAppends(t *testing.T) {
	s := memstore.New()
	l := openTestLog(t, s, testKey(t))
	const writers, each = 64, 50
	var wg sync.WaitGroup
	got := make(chan int64, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a, err := l.Append(context.Background(), []Entry{segment(fmt.Sprintf("enc-%d", w), fmt.Sprint(i))})
				if err != nil {
					t.Error(err)
					return
				}
				if a.Checkpoint.Size <= a.First {
					t.Errorf("checkpoint of size %d does not cover index %d", a.Checkpoint.Size, a.First)
				}
				got <- a.First
			}
		}()
	}
	wg.Wait()
	close(got)
	seen := make(map[int64]bool)
	for idx := range got {
		if seen[idx] {
			t.Fatalf("index %d acknowledged twice", idx)
		}
		seen[idx] = true
	}
	if l.Size() != writers*each || len(seen) != writers*each {
		t.Fatalf("size %d, %d distinct indexes, want %d", l.Size(), len(seen), writers*each)
	}
	checkpoints := 0
	l.Checkpoints(func(int64, []byte) error { checkpoints++; return nil })
	// One checkpoint per group commit, plus the empty tree's.
	if checkpoints-1 >= writers*each {
		t.Fatalf("%d checkpoints for %d appends: appends were not grouped", checkpoints, writers*each)
	}
	t.Logf("%d appends in %d group commits", writers*each, checkpoints-1)
	for w := range writers {
		n := 0
		if err := l.WalkEncounter("tenant-a", fmt.Sprintf("enc-%d", w), func(*StoredEntry) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != each {
			t.Fatalf("encounter %d has %d entries, want %d", w, n, each)
		}
	}
}

func TestEncounterChains(t *testing.T) {
	l := openTestLog(t, memstore.New(), testKey(t))
	var want []int64
	var hashes []Hash
	for i := range 10 {
		a := mustAppend(t, l, segment("enc-x", fmt.Sprint(i)), segment("enc-y", fmt.Sprint(i)))
		want = append(want, a.First)
		hashes = append(hashes, a.LeafHashes[0])
	}
	idx, err := l.EncounterIndexes("tenant-a", "enc-x")
	if err != nil || fmt.Sprint(idx) != fmt.Sprint(want) {
		t.Fatalf("EncounterIndexes = %v, %v; want %v", idx, err, want)
	}
	if from, err := l.EncounterIndexesFrom("tenant-a", "enc-x", want[5]); err != nil || fmt.Sprint(from) != fmt.Sprint(want[5:]) {
		t.Fatalf("EncounterIndexesFrom = %v, %v; want %v", from, err, want[5:])
	}
	h, err := l.EncounterHead("tenant-a", "enc-x")
	if err != nil {
		t.Fatal(err)
	}
	if h.Index != want[9] || h.Hash != hashes[9] || h.Count != 10 {
		t.Fatalf("head = %+v, want index %d count 10", h, want[9])
	}
	var prev Hash
	i := 0
	err = l.WalkEncounter("tenant-a", "enc-x", func(e *StoredEntry) error {
		if e.Leaf.Seq != uint64(i) || e.Leaf.Prev != prev {
			t.Errorf("entry %d: seq %d prev %x", i, e.Leaf.Seq, e.Leaf.Prev)
		}
		prev = e.Hash
		i++
		return nil
	})
	if err != nil || i != 10 {
		t.Fatalf("walk: %v after %d entries", err, i)
	}
	var encs []string
	l.Encounters("tenant-a", "", func(enc string, h Head) error { encs = append(encs, enc); return nil })
	if fmt.Sprint(encs) != "[enc-x enc-y]" {
		t.Fatalf("Encounters = %v", encs)
	}
	encs = nil
	l.Encounters("tenant-a", "enc-x", func(enc string, h Head) error { encs = append(encs, enc); return nil })
	if fmt.Sprint(encs) != "[enc-y]" {
		t.Fatalf("Encounters after enc-x = %v", encs)
	}
	if err := l.Encounters("tenant-b", "", func(string, Head) error { t.Error("tenant-b sees an encounter"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := l.EncounterHead("tenant-a", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("head of unknown encounter: %v", err)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	l := openTestLog(t, memstore.New(), testKey(t))
	payload := bytes.Repeat([]byte("synthetic segment text "), 40)
	a := mustAppend(t, l, segment("enc-1", string(payload)))
	got, e, err := l.Payload(a.First)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload differs")
	}
	if e.Leaf.Commitment == Commit(nil, payload) {
		t.Fatal("commitment is not salted")
	}
}

// snapshot returns every key and value of a store.
func snapshot(t *testing.T, s storage.Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Scan(nil, nil, func(k, v []byte) error { fmt.Fprintf(&b, "%x=%x\n", k, v); return nil }); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestBadInputWritesNothing(t *testing.T) {
	eachStore(t, testBadInputWritesNothing)
}

func testBadInputWritesNothing(t *testing.T, s storage.Store, _ func() storage.Store) {
	l := openTestLog(t, s, testKey(t))
	mustAppend(t, l, segment("enc-1", "ok"))
	before := snapshot(t, s)
	big := make([]byte, 1<<20+1)
	cases := []struct {
		name    string
		entries []Entry
		field   string
		tooBig  bool
	}{
		{"no entries", nil, "entries", false},
		{"empty tenant", []Entry{{Kind: KindSegment, Encounter: "e", Actor: "a"}}, "tenant", false},
		{"empty encounter", []Entry{{Kind: KindSegment, Tenant: "t", Actor: "a"}}, "encounter", false},
		{"bad tenant", []Entry{{Kind: KindSegment, Tenant: "a b", Encounter: "e", Actor: "a"}}, "tenant", false},
		{"empty actor", []Entry{{Kind: KindSegment, Tenant: "t", Encounter: "e"}}, "actor", false},
		{"unknown kind", []Entry{{Kind: 42, Tenant: "t", Encounter: "e", Actor: "a"}}, "kind", false},
		{"payload over 1 MiB", []Entry{{Kind: KindSegment, Tenant: "t", Encounter: "e", Actor: "a", Payload: big}}, "payload", true},
		{"second of two invalid", []Entry{segment("enc-1", "fine"), {Kind: KindSegment, Tenant: "t", Actor: "a"}}, "entries[1].encounter", false},
		{"too many entries", make([]Entry, 10_001), "entries", true},
	}
	for _, c := range cases {
		_, err := l.Append(context.Background(), c.entries)
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%s: error %v, want *InvalidError on field %q", c.name, err, c.field)
			continue
		}
		if errors.Is(err, ErrTooLarge) != c.tooBig {
			t.Errorf("%s: errors.Is(err, ErrTooLarge) = %v", c.name, !c.tooBig)
		}
	}
	if _, err := l.Entry(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry(1) of a 1-entry log: %v, want ErrNotFound", err)
	}
	if _, err := l.Entry(-1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry(-1): %v, want ErrNotFound", err)
	}
	if _, err := l.InclusionProof(0, 2); !errors.Is(err, ErrBeyondTree) {
		t.Errorf("InclusionProof beyond the tree: %v, want ErrBeyondTree", err)
	}
	if _, err := l.ConsistencyProof(1, 5); !errors.Is(err, ErrBeyondTree) {
		t.Errorf("ConsistencyProof beyond the tree: %v, want ErrBeyondTree", err)
	}
	var ie *InvalidError
	if _, err := l.InclusionProof(1, 1); !errors.As(err, &ie) || ie.Field != "index" {
		t.Errorf("InclusionProof of index 1 in size 1: %v", err)
	}
	if _, err := l.ConsistencyProof(2, 1); !errors.As(err, &ie) {
		t.Errorf("ConsistencyProof 2 to 1: %v", err)
	}
	if after := snapshot(t, s); after != before {
		t.Fatal("a rejected request changed the store")
	}
	if l.Size() != 1 {
		t.Fatalf("size %d after rejected requests, want 1", l.Size())
	}
}

func TestReopenKeepsStateAndChains(t *testing.T) {
	eachStore(t, testReopenKeepsStateAndChains)
}

func testReopenKeepsStateAndChains(t *testing.T, s storage.Store, reopen func() storage.Store) {
	k := testKey(t)
	l, err := Open(s, Options{Origin: testOrigin, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		mustAppend(t, l, segment(fmt.Sprintf("enc-%d", i%3), fmt.Sprint(i)))
	}
	cp := l.Checkpoint()
	l.Close()
	s = reopen()
	l2 := openTestLog(t, s, k)
	if got := l2.Checkpoint(); got.Size != cp.Size || got.Root != cp.Root {
		t.Fatalf("reopened at %d/%x, want %d/%x", got.Size, got.Root, cp.Size, cp.Root)
	}
	a := mustAppend(t, l2, segment("enc-1", "after reopen"))
	if a.First != 300 {
		t.Fatalf("first index after reopen = %d", a.First)
	}
	e, _ := l2.Entry(a.First)
	if e.Leaf.Seq != 100 {
		t.Fatalf("chain position after reopen = %d, want 100", e.Leaf.Seq)
	}
	if err := l2.WalkEncounter("tenant-a", "enc-1", func(*StoredEntry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s, Options{Origin: "other.test/log", Key: k}); err == nil {
		t.Fatal("opened with a key for another origin")
	}
}

func TestClosedLogFailsFast(t *testing.T) {
	l := openTestLog(t, memstore.New(), testKey(t))
	mustAppend(t, l, segment("enc-1", "x"))
	l.Close()
	l.Close()
	if _, err := l.Append(context.Background(), []Entry{segment("enc-1", "y")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Wait(context.Background(), 5); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
	if _, err := l.Entry(0); err != nil {
		t.Fatalf("reads after Close: %v", err)
	}
}

// failingStore fails every Write after the first n.
type failingStore struct {
	storage.Store
	mu     sync.Mutex
	writes int
	after  int
}

var errDiskGone = errors.New("disk gone")

func (f *failingStore) Write(b *storage.Batch, sync bool) error {
	f.mu.Lock()
	f.writes++
	fail := f.writes > f.after
	f.mu.Unlock()
	if fail {
		return errDiskGone
	}
	return f.Store.Write(b, sync)
}

func TestFailedLogReturnsErrors(t *testing.T) {
	fs := &failingStore{Store: memstore.New(), after: 3}
	l := openTestLog(t, fs, testKey(t))
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				_, err := l.Append(context.Background(), []Entry{segment("enc-1", fmt.Sprint(w, i))})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			var fe *FailedError
			if !errors.As(err, &fe) || !errors.Is(err, errDiskGone) {
				t.Fatalf("append error %v, want *FailedError wrapping the storage error", err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no append failed")
	}
	acked := l.Size()
	if _, err := l.Wait(context.Background(), acked); err == nil {
		t.Fatal("Wait on a failed log returned no error")
	}
	l.Close()
}

func TestWaitFollowsAppends(t *testing.T) {
	l := openTestLog(t, memstore.New(), testKey(t))
	done := make(chan *Checkpoint)
	go func() {
		cp, err := l.Wait(context.Background(), 0)
		if err != nil {
			t.Error(err)
		}
		done <- cp
	}()
	mustAppend(t, l, segment("enc-1", "x"))
	if cp := <-done; cp.Size != 1 {
		t.Fatalf("Wait returned size %d", cp.Size)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
}
