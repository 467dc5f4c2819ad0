package tree

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/ledger/internal/reftree"
)

func leafHashes(from, n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		out[i] = tlog.RecordHash(binary.BigEndian.AppendUint64([]byte("leaf "), uint64(from+i)))
	}
	return out
}

// ref converts hashes for the reference tree.
func ref(hs []Hash) []reftree.Hash {
	out := make([]reftree.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

// stored keeps the latest version of every tile Integrate changed, as the
// ledger's store does.
type stored map[ID]*Tile

func (s stored) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		id, row, pos := Locate(level, n)
		t := s[id]
		if t == nil {
			return nil, fmt.Errorf("tile %d/%d not stored", id.L, id.N)
		}
		h, ok := t.Hash(row, pos)
		if !ok {
			return nil, fmt.Errorf("tile %d/%d lacks row %d pos %d", id.L, id.N, row, pos)
		}
		out[i] = h
	}
	return out, nil
}

// TestIntegrateMatchesReference grows trees in batches of random sizes
// and checks every root against the obviously correct reference tree, and
// inclusion proofs read from the changed tiles against reftree's.
func TestIntegrateMatchesReference(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 3))
		var e Edge
		all := leafHashes(0, 3000)
		tiles := stored{}
		for int(e.Size()) < len(all) {
			n := min(1+rng.IntN(300), len(all)-int(e.Size()))
			if rng.IntN(4) == 0 {
				n = 1
			}
			size := int(e.Size())
			u, err := Integrate(e, all[size:size+n])
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range u.Tiles {
				tiles[c.ID] = c.Tile
			}
			e = u.Edge
			want := Hash(reftree.Root(ref(all[:size+n])))
			if u.Root != want {
				t.Fatalf("seed %d: root of %d leaves %x, reference %x", seed, size+n, u.Root[:4], want[:4])
			}
			// An inclusion proof of a leaf of this batch and of an older
			// one, from the stored tiles.
			for _, m := range []int{size + rng.IntN(n), rng.IntN(size + n)} {
				p, err := tlog.ProveRecord(int64(size+n), int64(m), tiles)
				if err != nil {
					t.Fatal(err)
				}
				ref := reftree.InclusionProof(m, ref(all[:size+n]))
				if len(p) != len(ref) {
					t.Fatalf("proof of %d in %d: %d hashes, reference %d", m, size+n, len(p), len(ref))
				}
				for i := range p {
					if p[i] != Hash(ref[i]) {
						t.Fatalf("proof of %d in %d differs at %d", m, size+n, i)
					}
				}
			}
		}
	}
}

// TestIntegrateLarge crosses the first tile at level 2 (65,536 leaves) and
// checks the roots there against the reference.
func TestIntegrateLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("slow reference roots")
	}
	all := leafHashes(0, 65536+300)
	var e Edge
	for _, step := range []int{65535, 1, 299, 1} {
		u, err := Integrate(e, all[e.Size():e.Size()+int64(step)])
		if err != nil {
			t.Fatal(err)
		}
		e = u.Edge
		if want := Hash(reftree.Root(ref(all[:e.Size()]))); u.Root != want {
			t.Fatalf("root of %d leaves %x, reference %x", e.Size(), u.Root[:4], want[:4])
		}
	}
}

// TestIntegrateIsPure integrates two different continuations of one edge
// and checks that neither disturbs the other or the edge.
func TestIntegrateIsPure(t *testing.T) {
	base, err := Integrate(Edge{}, leafHashes(0, 300))
	if err != nil {
		t.Fatal(err)
	}
	before := map[ID][]byte{}
	for id, tl := range base.Edge.tiles {
		before[id] = tl.Encode()
	}
	a, err := Integrate(base.Edge, leafHashes(1000, 50))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Integrate(base.Edge, leafHashes(2000, 50))
	if err != nil {
		t.Fatal(err)
	}
	for id, tl := range base.Edge.tiles {
		if !bytes.Equal(tl.Encode(), before[id]) {
			t.Fatalf("tile %v of the input edge changed", id)
		}
	}
	ra := Hash(reftree.Root(ref(append(leafHashes(0, 300), leafHashes(1000, 50)...))))
	rb := Hash(reftree.Root(ref(append(leafHashes(0, 300), leafHashes(2000, 50)...))))
	if a.Root != ra || b.Root != rb {
		t.Fatal("a continuation's root is not the reference's")
	}
	if again, _ := a.Edge.Root(); again != ra {
		t.Fatal("the first continuation's edge changed")
	}
}

// TestEdgeFromStoredTiles rebuilds an edge from encoded tiles, as Open
// does, and continues the tree from it.
func TestEdgeFromStoredTiles(t *testing.T) {
	all := leafHashes(0, 1000)
	u, err := Integrate(Edge{}, all[:777])
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := EdgeIDs(777)
	var tiles []*Tile
	for _, id := range ids {
		tl, ok := u.Edge.Tile(id)
		if !ok {
			t.Fatalf("edge lacks %v", id)
		}
		d, err := Decode(tl.Encode())
		if err != nil {
			t.Fatal(err)
		}
		tiles = append(tiles, d)
	}
	e, err := NewEdge(777, tiles)
	if err != nil {
		t.Fatal(err)
	}
	if root, _ := e.Root(); root != u.Root {
		t.Fatal("rebuilt edge has another root")
	}
	v, err := Integrate(e, all[777:])
	if err != nil {
		t.Fatal(err)
	}
	if v.Root != Hash(reftree.Root(ref(all))) {
		t.Fatal("continued tree has the wrong root")
	}
	if _, err := NewEdge(778, tiles); err == nil {
		t.Fatal("NewEdge accepted tiles of another size")
	}
}

func TestDecodeRejects(t *testing.T) {
	u, err := Integrate(Edge{}, leafHashes(0, 10))
	if err != nil {
		t.Fatal(err)
	}
	tl, _ := u.Edge.Tile(ID{})
	good := tl.Encode()
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1 // an inner hash
	short := good[:len(good)-1]
	wide := bytes.Clone(good)
	binary.BigEndian.PutUint16(wide, 300)
	for name, data := range map[string][]byte{"flipped inner hash": flipped, "short": short, "width out of range": wide, "empty": nil} {
		if _, err := Decode(data); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := Parse(flipped); err != nil {
		t.Errorf("Parse checks only the length: %v", err)
	}
	s, _ := Parse(good)
	if h, ok := s.Hash(0, 3); !ok || h != leafHashes(3, 1)[0] {
		t.Error("stored tile read in place gives another leaf hash")
	}
	if _, ok := s.Hash(1, 5); ok {
		t.Error("stored tile of width 10 has a 6th hash in row 1")
	}
	if got := s.Bottom(2); !bytes.Equal(got[HashSize:], leafHashes(1, 1)[0][:]) {
		t.Error("Bottom is not the bottom row")
	}
}

func BenchmarkIntegrate(b *testing.B) {
	for _, n := range []int{1, 16, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			leaves := make([]Hash, n)
			for i := range leaves {
				leaves[i] = sha256.Sum256([]byte{byte(i)})
			}
			u, _ := Integrate(Edge{}, leafHashes(0, 100_000))
			e := u.Edge
			b.ResetTimer()
			for range b.N {
				u, err := Integrate(e, leaves)
				if err != nil {
					b.Fatal(err)
				}
				e = u.Edge
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/leaf")
		})
	}
}
