package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/ledger/storage"
)

func (h harness) testGetMissing(t *testing.T) {
	s, _ := h.fresh(t)
	for _, k := range [][]byte{[]byte("absent"), {}, nil, {0x00}, {0xff}} {
		wantMissing(t, s, k)
	}
	set(t, s, "a", "1")
	// Neighbours of a present key, by prefix and by extension, stay missing.
	for _, k := range []string{"", "\x00", "a\x00", "aa", "A", "b"} {
		wantMissing(t, s, []byte(k))
	}
}

func (h harness) testRoundTrip(t *testing.T) {
	s, _ := h.fresh(t)
	big := randomBytes(rand.New(rand.NewPCG(1, 1)), 1<<20)
	cases := []struct {
		name       string
		key, value []byte
	}{
		{"plain", []byte("key"), []byte("value")},
		{"empty value", []byte("empty"), []byte{}},
		{"nil value is an empty set", []byte("nil"), nil},
		{"zero byte key", []byte{0x00}, []byte{0x00}},
		{"two zero bytes", []byte{0x00, 0x00}, []byte{0x00, 0x01}},
		{"ff key", []byte{0xff}, []byte{0xff, 0xfe}},
		{"ff ff 00 key", []byte{0xff, 0xff, 0x00}, []byte("x")},
		{"mixed binary", []byte{0x00, 0xff, 0x00, 0x7f, 0x80}, []byte{0x80, 0x00}},
		{"long key", bytes.Repeat([]byte{0xab}, 1024), []byte("long")},
		{"1 MiB value", []byte("big"), big},
	}
	var b storage.Batch
	for _, c := range cases {
		b.Set(c.key, c.value)
	}
	write(t, s, &b, true)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Get(c.key)
			if err != nil {
				t.Fatalf("Get(%x): %v", c.key, err)
			}
			if !bytes.Equal(got, c.value) {
				t.Errorf("Get(%x) = %s, want %s", c.key, abbrev(got), abbrev(c.value))
			}
		})
	}
	if got := scan(t, s, nil, nil); len(got) != len(cases) {
		t.Errorf("Scan(nil, nil) found %d pairs, want %d: %v", len(got), len(cases), abbrevPairs(got))
	}
}

func (h harness) testCopies(t *testing.T) {
	s, _ := h.fresh(t)

	key := []byte("key")
	value := []byte("value")
	var b storage.Batch
	b.Set(key, value)
	b.Set([]byte("other"), []byte("kept"))
	write(t, s, &b, true)

	// The store must not keep the batch's slices once Write returns.
	key[0], value[0] = 'K', 'V'
	b.Reset()
	b.Set([]byte("other"), []byte("overwritten in the batch only"))
	wantValue(t, s, []byte("key"), []byte("value"))
	wantMissing(t, s, []byte("Key"))
	wantValue(t, s, []byte("other"), []byte("kept"))

	// Get returns the caller's own copy.
	got := get(t, s, []byte("key"))
	got[0] = 'X'
	wantValue(t, s, []byte("key"), []byte("value"))
	again := get(t, s, []byte("key"))
	if len(again) > 0 && &again[0] == &got[0] {
		t.Error("two Gets returned the same backing array")
	}
}

func (h harness) testOverwrite(t *testing.T) {
	s, _ := h.fresh(t)
	set(t, s, "k", "first")
	set(t, s, "k", "second, and longer than the first")
	wantValue(t, s, []byte("k"), []byte("second, and longer than the first"))
	set(t, s, "k", "3")
	wantValue(t, s, []byte("k"), []byte("3"))
	wantPairs(t, "Scan after overwrites", scan(t, s, nil, nil), []kv{{[]byte("k"), []byte("3")}})
}

func (h harness) testDelete(t *testing.T) {
	s, _ := h.fresh(t)
	var b storage.Batch
	for _, k := range []string{"a", "b", "c"} {
		b.Set([]byte(k), []byte("v"+k))
	}
	write(t, s, &b, true)

	b.Reset()
	b.Delete([]byte("b"))
	b.Delete([]byte("never written"))
	write(t, s, &b, true)
	wantMissing(t, s, []byte("b"))
	wantMissing(t, s, []byte("never written"))
	wantPairs(t, "Scan after delete", scan(t, s, nil, nil), []kv{
		{[]byte("a"), []byte("va")},
		{[]byte("c"), []byte("vc")},
	})

	set(t, s, "b", "back")
	wantValue(t, s, []byte("b"), []byte("back"))
}

func (h harness) testLaterOpWins(t *testing.T) {
	s, _ := h.fresh(t)
	set(t, s, "pre-existing", "old")

	var b storage.Batch
	b.Set([]byte("set-set"), []byte("1"))
	b.Set([]byte("set-set"), []byte("2"))
	b.Set([]byte("set-delete"), []byte("x"))
	b.Delete([]byte("set-delete"))
	b.Delete([]byte("pre-existing"))
	b.Set([]byte("pre-existing"), []byte("new"))
	b.Set([]byte("set-delete-set"), []byte("a"))
	b.Delete([]byte("set-delete-set"))
	b.Set([]byte("set-delete-set"), []byte("b"))
	write(t, s, &b, true)

	wantValue(t, s, []byte("set-set"), []byte("2"))
	wantMissing(t, s, []byte("set-delete"))
	wantValue(t, s, []byte("pre-existing"), []byte("new"))
	wantValue(t, s, []byte("set-delete-set"), []byte("b"))

	b.Reset()
	b.Set([]byte("pre-existing"), []byte("newer"))
	b.Delete([]byte("pre-existing"))
	write(t, s, &b, false)
	wantMissing(t, s, []byte("pre-existing"))
}

// testEmptyKey checks that a batch holding an empty key, in a Set or a
// Delete, is rejected whole.
func (h harness) testEmptyKey(t *testing.T) {
	s, _ := h.fresh(t)
	set(t, s, "kept", "v")
	for _, del := range []bool{false, true} {
		var b storage.Batch
		b.Set([]byte("before"), []byte("v"))
		b.Delete([]byte("kept"))
		if del {
			b.Delete([]byte{})
		} else {
			b.Set(nil, []byte("v"))
		}
		b.Set([]byte("after"), []byte("v"))
		if err := s.Write(&b, true); err == nil {
			t.Errorf("Write accepted an empty key (delete=%v)", del)
		}
		wantMissing(t, s, []byte("before"))
		wantMissing(t, s, []byte("after"))
		wantValue(t, s, []byte("kept"), []byte("v"))
	}
}

func (h harness) testEmptyBatch(t *testing.T) {
	s, _ := h.fresh(t)
	for _, sync := range []bool{false, true} {
		if err := s.Write(&storage.Batch{}, sync); err != nil {
			t.Errorf("Write(empty, sync=%v): %v", sync, err)
		}
	}
	var b storage.Batch
	b.Set([]byte("dropped"), []byte("v"))
	b.Reset()
	write(t, s, &b, true)
	if got := scan(t, s, nil, nil); len(got) != 0 {
		t.Errorf("store not empty after empty batches: %v", abbrevPairs(got))
	}
}

// testLargeBatch writes one batch shaped like a large ledger group commit:
// 10,000 operations and over 4 MiB, mostly small values and a few 8 KiB
// ones.
func (h harness) testLargeBatch(t *testing.T) {
	s, _ := h.fresh(t)
	const ops = 10_000
	rng := rand.New(rand.NewPCG(2, 2))
	var b storage.Batch
	var want []kv
	for i := range ops {
		size := 410
		if i%1000 == 0 {
			size = 8 << 10
		}
		p := kv{[]byte(fmt.Sprintf("large/%05d", i)), randomBytes(rng, size)}
		b.Set(p.key, p.value)
		want = append(want, p)
	}
	if b.Size() < 4<<20 {
		t.Fatalf("test batch is %d bytes, meant to be over 4 MiB", b.Size())
	}
	write(t, s, &b, true)
	wantPairs(t, "Scan after large batch", scan(t, s, nil, nil), want)
}

func (h harness) testScanBounds(t *testing.T) {
	s, _ := h.fresh(t)
	// Sorted bytewise, which is the order Scan must yield.
	keys := []string{"\x00", "\x00\x00", "\x00\xff", "\x01", "a", "a\x00", "ab", "b", "\xff", "\xff\xff"}
	var all []kv
	for _, k := range keys {
		all = append(all, kv{[]byte(k), []byte("v" + k)})
	}
	// Write in two batches, in a scrambled order.
	var b1, b2 storage.Batch
	for i, j := range []int{7, 2, 9, 0, 4, 1, 8, 3, 6, 5} {
		if i%2 == 0 {
			b1.Set(all[j].key, all[j].value)
		} else {
			b2.Set(all[j].key, all[j].value)
		}
	}
	write(t, s, &b1, false)
	write(t, s, &b2, true)

	ranges := []struct {
		start, end []byte
	}{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte("a"), nil},
		{nil, []byte("a")},
		{[]byte("a"), []byte("b")},
		{[]byte("a\x00"), []byte("ab")},
		{[]byte("aa"), []byte("b")},
		{[]byte("a"), []byte("a")},
		{[]byte("b"), []byte("a")},
		{[]byte("\xff"), nil},
		{[]byte("\xff\xff\x00"), nil},
		{nil, []byte("\x00")},
		{nil, []byte("\x00\x00")},
		{[]byte{}, []byte{}},
		{[]byte("\x00"), []byte("\x00\x00\x00")},
	}
	for _, r := range ranges {
		want := filterRange(all, r.start, r.end)
		wantPairs(t, fmt.Sprintf("Scan(%q, %q)", r.start, r.end), scan(t, s, r.start, r.end), want)
	}

	// The two properties the filter encodes, spelled out once.
	if got := scan(t, s, []byte("ab"), []byte("b")); len(got) != 1 || string(got[0].key) != "ab" {
		t.Errorf("start is not inclusive: Scan(ab, b) = %v", got)
	}
	if got := scan(t, s, []byte("a"), []byte("ab")); len(got) != 2 {
		t.Errorf("end is not exclusive: Scan(a, ab) = %v", got)
	}
}

// filterRange returns the pairs of sorted with start <= key < end, the
// reference for Scan.
func filterRange(sorted []kv, start, end []byte) []kv {
	var out []kv
	for _, p := range sorted {
		if bytes.Compare(p.key, start) >= 0 && (end == nil || bytes.Compare(p.key, end) < 0) {
			out = append(out, p)
		}
	}
	return out
}

func (h harness) testScanStops(t *testing.T) {
	s, _ := h.fresh(t)
	var b storage.Batch
	for i := range 10 {
		b.Set([]byte{'k', byte('0' + i)}, []byte("v"))
	}
	write(t, s, &b, true)

	errStop := errors.New("stop here")
	var seen []string
	err := s.Scan(nil, nil, func(k, _ []byte) error {
		seen = append(seen, string(k))
		if len(seen) == 3 {
			return fmt.Errorf("callback: %w", errStop)
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("Scan returned %v, want the callback's error", err)
	}
	if !slices.Equal(seen, []string{"k0", "k1", "k2"}) {
		t.Errorf("callback saw %q, want it to stop after k2", seen)
	}
}

// testScanReentrant calls the store from inside a Scan callback, which the
// ledger may do (read a tile while walking entries). It must neither
// deadlock nor fail; a deadlock shows as the test binary's timeout.
func (h harness) testScanReentrant(t *testing.T) {
	s, _ := h.fresh(t)
	var b storage.Batch
	for i := range 20 {
		b.Set([]byte(fmt.Sprintf("r/%02d", i)), []byte(fmt.Sprintf("v%02d", i)))
	}
	write(t, s, &b, true)

	n := 0
	err := s.Scan([]byte("r/"), []byte("r0"), func(k, v []byte) error {
		n++
		got, err := s.Get(k)
		if err != nil {
			return fmt.Errorf("Get inside Scan: %w", err)
		}
		if !bytes.Equal(got, v) {
			return fmt.Errorf("Get(%q) inside Scan = %q, callback has %q", k, got, v)
		}
		var w storage.Batch
		w.Set(append([]byte("w/"), k...), []byte("seen"))
		if err := s.Write(&w, n%5 == 0); err != nil {
			return fmt.Errorf("Write inside Scan: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Errorf("Scan visited %d keys, want 20", n)
	}
	if got := scan(t, s, []byte("w/"), []byte("w0")); len(got) != 20 {
		t.Errorf("found %d keys written inside the Scan, want 20", len(got))
	}
}

// testAtomicBatches checks that readers never see part of a batch. Each
// batch sets 100 keys to one generation's value, or deletes all of them;
// concurrent scans must see 0 or 100 keys, all of one generation.
func (h harness) testAtomicBatches(t *testing.T) {
	s, _ := h.fresh(t)
	const (
		nkeys   = 100
		gens    = 60
		readers = 2
	)
	prefix, end := []byte("atomic/"), []byte("atomic0")
	key := func(i int) []byte { return []byte(fmt.Sprintf("atomic/%03d", i)) }

	var done atomic.Bool
	var failed atomic.Bool
	var scans atomic.Int64
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			for !failed.Load() {
				last := done.Load()
				var values [][]byte
				err := s.Scan(prefix, end, func(_, v []byte) error {
					values = append(values, bytes.Clone(v))
					return nil
				})
				scans.Add(1)
				if err != nil {
					t.Errorf("Scan: %v", err)
					failed.Store(true)
					return
				}
				if n := len(values); n != 0 && n != nkeys {
					t.Errorf("Scan saw %d of the batch's %d keys", n, nkeys)
					failed.Store(true)
					return
				}
				for _, v := range values {
					if !bytes.Equal(v, values[0]) {
						t.Errorf("Scan saw two generations in one read: %q and %q", values[0], v)
						failed.Store(true)
						return
					}
				}
				if last {
					return
				}
			}
		})
	}

	var b storage.Batch
	for g := 1; g <= gens && !failed.Load(); g++ {
		b.Reset()
		value := []byte(fmt.Sprintf("generation %04d %s", g, bytes.Repeat([]byte{'.'}, 40)))
		// Alternate the order in which the batch lists its keys, so that a
		// backend applying ops one by one shows a torn state from either end.
		for j := range nkeys {
			i := j
			if g%2 == 0 {
				i = nkeys - 1 - j
			}
			if g%4 == 0 {
				b.Delete(key(i))
			} else {
				b.Set(key(i), value)
			}
		}
		if err := s.Write(&b, g%3 == 0); err != nil {
			t.Errorf("Write generation %d: %v", g, err)
			break
		}
	}
	done.Store(true)
	wg.Wait()
	if scans.Load() < readers {
		t.Errorf("only %d scans ran", scans.Load())
	}
}

// valueFor is the value the concurrency test stores under key, so that
// readers can check any value they see without coordination.
func valueFor(key []byte) []byte { return append([]byte("value of "), key...) }

func (h harness) testConcurrent(t *testing.T) {
	s, _ := h.fresh(t)
	const (
		writers   = 4
		batches   = 25
		batchKeys = 20
		readers   = 2
	)
	key := func(w, b, k int) []byte { return []byte(fmt.Sprintf("c/w%d/b%03d/k%02d", w, b, k)) }

	var writing sync.WaitGroup
	for w := range writers {
		writing.Go(func() {
			var b storage.Batch
			for i := range batches {
				b.Reset()
				for k := range batchKeys {
					kk := key(w, i, k)
					b.Set(kk, valueFor(kk))
				}
				if err := s.Write(&b, i%3 == 0); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}

	var done atomic.Bool
	var reading sync.WaitGroup
	for r := range readers {
		reading.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for !done.Load() {
				kk := key(rng.IntN(writers), rng.IntN(batches), rng.IntN(batchKeys))
				v, err := s.Get(kk)
				switch {
				case errors.Is(err, storage.ErrNotFound):
				case err != nil:
					t.Errorf("reader Get: %v", err)
					return
				case !bytes.Equal(v, valueFor(kk)):
					t.Errorf("reader Get(%s) = %q", kk, v)
					return
				}
				var prev []byte
				err = s.Scan([]byte("c/"), []byte("c0"), func(k, v []byte) error {
					if prev != nil && bytes.Compare(prev, k) >= 0 {
						return fmt.Errorf("Scan out of order: %q then %q", prev, k)
					}
					prev = append(prev[:0], k...)
					if !bytes.Equal(v, valueFor(k)) {
						return fmt.Errorf("Scan: %s has %q", k, v)
					}
					return nil
				})
				if err != nil {
					t.Errorf("reader Scan: %v", err)
					return
				}
			}
		})
	}
	writing.Wait()
	done.Store(true)
	reading.Wait()

	if got := scan(t, s, []byte("c/"), []byte("c0")); len(got) != writers*batches*batchKeys {
		t.Errorf("found %d keys after the writers finished, want %d", len(got), writers*batches*batchKeys)
	}
}

// testModel applies seeded random batches to the store and to a map, and
// compares them after every batch. Keys come from a small alphabet rich in
// 0x00 and 0xff, so prefixes, overwrites and deletes collide often. A
// persistent store is closed and reopened every 20 batches.
func (h harness) testModel(t *testing.T, reopen bool) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			keys := modelKeys(rng, 40)
			model := map[string][]byte{}
			dir := t.TempDir()
			s := h.openIn(t, dir)

			const rounds = 60
			for round := range rounds {
				var b storage.Batch
				for range 1 + rng.IntN(12) {
					k := keys[rng.IntN(len(keys))]
					if rng.IntN(10) < 3 {
						b.Delete([]byte(k))
						delete(model, k)
						continue
					}
					var v []byte
					if n := rng.IntN(41); n > 0 || rng.IntN(2) == 0 {
						v = randomBytes(rng, n)
					}
					b.Set([]byte(k), v)
					model[k] = bytes.Clone(v)
				}
				if err := s.Write(&b, rng.IntN(2) == 0); err != nil {
					t.Fatalf("round %d: Write: %v", round, err)
				}
				if reopen && round%20 == 19 {
					if err := s.Close(); err != nil {
						t.Fatalf("round %d: Close: %v", round, err)
					}
					s = h.openIn(t, dir)
				}

				sorted := modelPairs(model)
				wantPairs(t, fmt.Sprintf("round %d: Scan(nil, nil)", round), scan(t, s, nil, nil), sorted)
				for range 3 {
					start, end := pickBound(rng, keys), pickBound(rng, keys)
					wantPairs(t, fmt.Sprintf("round %d: Scan(%x, %x)", round, start, end),
						scan(t, s, start, end), filterRange(sorted, start, end))
					k := keys[rng.IntN(len(keys))]
					if v, ok := model[k]; ok {
						wantValue(t, s, []byte(k), v)
					} else {
						wantMissing(t, s, []byte(k))
					}
				}
				if t.Failed() {
					t.Fatalf("stopping at round %d of seed %d", round, seed)
				}
			}
		})
	}
}

func modelKeys(rng *rand.Rand, n int) []string {
	alphabet := []byte{0x00, 0x01, 'a', 0xfe, 0xff}
	seen := map[string]bool{}
	var keys []string
	for len(keys) < n {
		k := make([]byte, 1+rng.IntN(4))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			keys = append(keys, string(k))
		}
	}
	return keys
}

func modelPairs(model map[string][]byte) []kv {
	out := make([]kv, 0, len(model))
	for k, v := range model {
		out = append(out, kv{[]byte(k), v})
	}
	slices.SortFunc(out, func(a, b kv) int { return bytes.Compare(a.key, b.key) })
	return out
}

// pickBound returns nil, a known key, or a known key with a byte appended,
// which falls between keys.
func pickBound(rng *rand.Rand, keys []string) []byte {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return append([]byte(keys[rng.IntN(len(keys))]), 0x80)
	default:
		return []byte(keys[rng.IntN(len(keys))])
	}
}

func (h harness) testReopen(t *testing.T) {
	dir := t.TempDir()
	s := h.openIn(t, dir)
	// Just over 1 MiB, so that badger keeps it in its value log rather
	// than in the LSM tree: both paths must survive a reopen.
	big := randomBytes(rand.New(rand.NewPCG(3, 3)), 1<<20+5)

	var b storage.Batch
	b.Set([]byte("a"), []byte("1"))
	b.Set([]byte("b"), []byte("2"))
	b.Set([]byte("c"), []byte("3"))
	b.Set([]byte("big"), big)
	write(t, s, &b, true)
	b.Reset()
	b.Set([]byte("b"), []byte("22"))
	b.Delete([]byte("c"))
	b.Set([]byte{0x00}, []byte{})
	write(t, s, &b, true)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	want := []kv{
		{[]byte{0x00}, []byte{}},
		{[]byte("a"), []byte("1")},
		{[]byte("b"), []byte("22")},
		{[]byte("big"), big},
	}
	s = h.openIn(t, dir)
	wantPairs(t, "after first reopen", scan(t, s, nil, nil), want)
	wantMissing(t, s, []byte("c"))

	set(t, s, "d", "4")
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = h.openIn(t, dir)
	want = append(want, kv{[]byte("d"), []byte("4")})
	wantPairs(t, "after second reopen", scan(t, s, nil, nil), want)
}

func (h harness) testClose(t *testing.T) {
	s, _ := h.fresh(t)
	set(t, s, "a", "1")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	wantClosed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close = %v, want storage.ErrClosed", what, err)
		}
	}
	_, err := s.Get([]byte("a"))
	wantClosed("Get(present)", err)
	_, err = s.Get([]byte("missing"))
	wantClosed("Get(missing)", err)
	called := false
	wantClosed("Scan", s.Scan(nil, nil, func(_, _ []byte) error { called = true; return nil }))
	if called {
		t.Error("Scan called its callback after Close")
	}
	var b storage.Batch
	b.Set([]byte("b"), []byte("2"))
	wantClosed("Write(sync)", s.Write(&b, true))
	wantClosed("Write(no sync)", s.Write(&b, false))
	wantClosed("Write(empty)", s.Write(&storage.Batch{}, true))
}

// testCloseWhileBusy closes the store, twice at once, under readers and a
// writer. Every call must either work or return storage.ErrClosed, nothing
// may panic, and every call that starts after Close has returned must
// return storage.ErrClosed.
func (h harness) testCloseWhileBusy(t *testing.T) {
	s, _ := h.fresh(t)
	var b storage.Batch
	for i := range 50 {
		b.Set([]byte(fmt.Sprintf("busy/%02d", i)), []byte("v"))
	}
	write(t, s, &b, true)

	var closed atomic.Bool
	ops := []func(i int) error{
		func(i int) error {
			_, err := s.Get([]byte(fmt.Sprintf("busy/%02d", i%50)))
			return err
		},
		func(int) error {
			return s.Scan(nil, nil, func(_, _ []byte) error { return nil })
		},
		func(i int) error {
			var w storage.Batch
			w.Set([]byte(fmt.Sprintf("busy/w%06d", i)), []byte("w"))
			return s.Write(&w, i%10 == 0)
		},
	}
	counts := make([]atomic.Int64, len(ops))
	var wg sync.WaitGroup
	for n, op := range ops {
		wg.Go(func() {
			for i := 0; ; i++ {
				after := closed.Load()
				err := op(i)
				counts[n].Add(1)
				switch {
				case errors.Is(err, storage.ErrClosed):
					return
				case err != nil:
					t.Errorf("op %d: %v", n, err)
					return
				case after:
					t.Errorf("op %d succeeded although it started after Close returned", n)
					return
				}
			}
		})
	}
	for i := range counts {
		for counts[i].Load() < 20 {
			time.Sleep(time.Millisecond)
		}
	}

	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- s.Close() }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	closed.Store(true)
	wg.Wait()
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
