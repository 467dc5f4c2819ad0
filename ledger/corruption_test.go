package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/ledger/tree"
)

// flip flips one bit of the value stored under key, through the storage
// interface, as a failing disk or a tamperer would.
func flip(t *testing.T, s storage.Store, key []byte, at int) {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("get %x: %v", key, err)
	}
	if at < 0 {
		at += len(v)
	}
	v[at] ^= 0x01
	var b storage.Batch
	b.Set(key, v)
	if err := s.Write(&b, true); err != nil {
		t.Fatal(err)
	}
}

// corruptLog builds a 600-entry log (two full tiles and a partial one).
func corruptLog(t *testing.T) (*Appender, storage.Store, *Key) {
	return fillCorruptLog(t, memstore.New())
}

func fillCorruptLog(t *testing.T, s storage.Store) (*Appender, storage.Store, *Key) {
	k := testKey(t)
	l := openTestLog(t, s, k)
	for i := 0; i < 600; i += 100 {
		batch := make([]Entry, 100)
		for j := range batch {
			batch[j] = segment(fmt.Sprintf("enc-%d", (i+j)%4), fmt.Sprintf("payload %d", i+j))
		}
		mustAppend(t, l, batch...)
	}
	return l, s, k
}

func wantCorruption(t *testing.T, what string, err error) {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want *CorruptionError", err)
	}
	if ce.What != what {
		t.Fatalf("corruption of %q reported as %q: %v", what, ce.What, err)
	}
	if !IsCorruption(err) {
		t.Fatal("IsCorruption is false")
	}
}

func TestCorruptionOnDiskBackends(t *testing.T) {
	eachStore(t, func(t *testing.T, s storage.Store, reopen func() storage.Store) {
		l, s, k := fillCorruptLog(t, s)
		flip(t, s, leafKey(300), 7)
		_, err := l.Entry(300)
		wantCorruption(t, "leaf", err)
		l.cache = newTileCache(0)
		// Row 1, hash 5: node (1, 5), the sibling on the paths of leaves 8 and 9.
		flip(t, s, tileKey(tileID{L: 0, N: 0}), 2+(256+5)*HashSize)
		_, err = l.InclusionProof(8, l.Size())
		wantCorruption(t, "tile", err)
		l.Close()
		s = reopen()
		flip(t, s, []byte(keyState), -20)
		_, err = Open(s, Options{Origin: testOrigin, Key: k})
		wantCorruption(t, "checkpoint", err)
	})
}

func TestCorruptLeafIsDetected(t *testing.T) {
	for _, at := range []int{0, 1, 5, 12, -1, -40} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			l, s, _ := corruptLog(t)
			flip(t, s, leafKey(300), at)
			_, err := l.Entry(300)
			wantCorruption(t, "leaf", err)
			_, _, err = l.Payload(300)
			wantCorruption(t, "leaf", err)
			_, err = l.EntryBundle(1, TileWidth)
			wantCorruption(t, "leaf", err)
			enc := fmt.Sprintf("enc-%d", 300%4)
			wantCorruption(t, "leaf", l.WalkEncounter("tenant-a", enc, func(*StoredEntry) error { return nil }))
			if _, err := l.Entry(301); err != nil {
				t.Fatalf("an intact neighbour fails: %v", err)
			}
		})
	}
}

func TestCorruptLeafHashInTileIsDetected(t *testing.T) {
	l, s, _ := corruptLog(t)
	// Leaf hash of index 10 sits in tile 0/0, row 0, at byte 2+10*32.
	flip(t, s, tileKey(tileID{L: 0, N: 0}), 2+10*HashSize+3)
	l.cache = newTileCache(0) // make reads go to storage
	_, err := l.Entry(10)
	wantCorruption(t, "leaf", err)
	// Proofs that include the flipped hash fail to verify and are not served.
	_, err = l.InclusionProof(11, l.Size())
	wantCorruption(t, "tile", err)
}

func TestCorruptInnerTileHashIsDetected(t *testing.T) {
	l, s, _ := corruptLog(t)
	// Row 1 of tile 0/0 starts after 256 row-0 hashes.
	flip(t, s, tileKey(tileID{L: 0, N: 0}), 2+(256+5)*HashSize)
	l.cache = newTileCache(0)
	var firstErr error
	for i := int64(0); i < 256 && firstErr == nil; i++ {
		_, firstErr = l.InclusionProof(i, l.Size())
	}
	wantCorruption(t, "tile", firstErr)
}

func TestCorruptPayloadIsDetected(t *testing.T) {
	eachStore(t, func(t *testing.T, s storage.Store, _ func() storage.Store) {
		testCorruptPayloadIsDetected(t, s)
	})
}

func testCorruptPayloadIsDetected(t *testing.T, s storage.Store) {
	l, s, _ := fillCorruptLog(t, s)
	e, err := l.Entry(42)
	if err != nil {
		t.Fatal(err)
	}
	flip(t, s, payloadKey(e.Leaf.Commitment), -1)
	_, _, err = l.Payload(42)
	wantCorruption(t, "payload", err)
	flip(t, s, payloadKey(e.Leaf.Commitment), -1) // restore
	flip(t, s, payloadKey(e.Leaf.Commitment), 3)  // now the salt
	_, _, err = l.Payload(42)
	wantCorruption(t, "payload", err)
}

func TestCorruptStateIsDetectedAtOpen(t *testing.T) {
	cases := map[string]struct {
		key  func() []byte
		at   int
		what string
	}{
		"checkpoint signature": {func() []byte { return []byte(keyState) }, -20, "checkpoint"},
		"checkpoint root":      {func() []byte { return []byte(keyState) }, len(testOrigin) + 6, "checkpoint"},
		// The last bottom tile is rebuilt from its leaves at open.
		"leaf of the partial tile": {func() []byte { return leafKey(590) }, 30, "state"},
		"upper tile":               {func() []byte { return tileKey(tileID{L: 1, N: 0}) }, 2, "tile"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l, s, k := corruptLog(t)
			l.Close()
			flip(t, s, c.key(), c.at)
			_, err := Open(s, Options{Origin: testOrigin, Key: k})
			wantCorruption(t, c.what, err)
		})
	}
}

// TestRehashedTileIsDetectedAtOpen forges a tile that is consistent in
// itself, as a careful tamperer would: only the signed root catches it.
func TestRehashedTileIsDetectedAtOpen(t *testing.T) {
	l, s, k := corruptLog(t)
	l.Close()
	id := tileID{L: 1, N: 0}
	data, err := s.Get(tileKey(id))
	if err != nil {
		t.Fatal(err)
	}
	var b storage.Batch
	b.Set(tileKey(id), forgeTile(t, data, 1))
	if err := s.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	_, err = Open(s, Options{Origin: testOrigin, Key: k})
	wantCorruption(t, "state", err)
}

func TestBrokenChainIsDetected(t *testing.T) {
	l, s, _ := corruptLog(t)
	// Deleting an index entry skips a link: the walk must notice.
	var b storage.Batch
	b.Delete(encounterIndexKey("tenant-a", "enc-1", 5))
	if err := s.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	err := l.WalkEncounter("tenant-a", "enc-1", func(*StoredEntry) error { return nil })
	wantCorruption(t, "chain", err)
}

func TestIntactLogHasNoCorruption(t *testing.T) {
	l, _, _ := corruptLog(t)
	for i := int64(0); i < l.Size(); i++ {
		if _, _, err := l.Payload(i); err != nil {
			t.Fatal(err)
		}
		if _, err := l.InclusionProof(i, l.Size()); err != nil {
			t.Fatal(err)
		}
	}
	b, err := l.EntryBundle(0, TileWidth)
	if err != nil {
		t.Fatal(err)
	}
	e0, _ := l.Entry(0)
	if !bytes.Equal(b[2:2+len(e0.Data)], e0.Data) {
		t.Fatal("entry bundle does not start with entry 0")
	}
}

// forgeTile flips the bottom-row hash at pos of a stored tile and computes
// every inner hash again, so that the tile is consistent in itself.
func forgeTile(t *testing.T, data []byte, pos int) []byte {
	t.Helper()
	st, err := tree.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([]Hash, st.Width())
	for i := range hashes {
		hashes[i], _ = st.Hash(0, i)
	}
	hashes[pos][0] ^= 1
	tl, err := tree.BuildTile(hashes)
	if err != nil {
		t.Fatal(err)
	}
	return tl.Encode()
}
