// Package tree builds the ledger's RFC 6962 Merkle tree as tiles of height
// 8, the layout of C2SP tlog-tiles, and does nothing else: no storage, no
// locking, no goroutines.
//
// Integrate is a pure function of the tree's right edge and the hashes of
// new leaves: it returns the new right edge, every tile the leaves changed
// and the new root, and leaves its input as it was. This is what tessera's
// integrate and golang.org/x/mod/sumdb/tlog's StoredHashes do, kept in
// tiles. Everything an append needs (the left siblings of the nodes it
// completes, the complete subtrees that make up the root) lies on the right
// edge, so building never reads a stored tile.
//
// A stored tile holds every hash of its 8 tree levels, not only the bottom
// row: row k holds the hashes of tree level 8L+k. Keeping the inner rows
// costs one extra tile of space per tile and saves up to 255 SHA-256
// computations per tile a proof touches. The bottom row is exactly the
// C2SP tile. docs/formats.md gives the byte layout.
package tree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a SHA-256 hash in the tree.
type Hash = tlog.Hash

// HashSize is the size of a Hash in bytes.
const HashSize = tlog.HashSize

// Height is the height of a tile: a full tile holds Width hashes of one
// tree level, and the hashes of the 7 levels above them.
const Height = 8

// Width is the number of bottom-row hashes in a full tile.
const Width = 1 << Height

// ID names a tile: tile level L holds tree levels 8L to 8L+7, and tile N
// at that level covers nodes N*256 to N*256+255 of tree level 8L.
type ID struct {
	L int
	N int64
}

// Locate maps tree coordinates (level, n) to the tile that holds the node
// and its row and position there.
func Locate(level int, n int64) (id ID, row, pos int) {
	row = level % Height
	id.L = level / Height
	shift := Height - row
	id.N = n >> shift
	pos = int(n - id.N<<shift)
	return id, row, pos
}

// Tile is a decoded tile that can grow. The zero value is an empty tile.
//
// Copies of a tile share the arrays that hold its rows, and a row grows in
// place when no copy has grown past the same length: every copy reads only
// its own length of a row, and each position of an array is written once,
// by whichever copy claims it first (owner). A copy that finds its next
// position taken copies the row first. So cloning costs nothing, a tree
// that grows in one line of edges never copies a hash, and two edges grown
// from one (see Integrate) never see each other's hashes.
type Tile struct {
	rows  [Height][]Hash
	owner [Height]*atomic.Int32 // per row: the length its array was filled to
}

// Width returns the number of bottom-row hashes in t.
func (t *Tile) Width() int { return len(t.rows[0]) }

// Hash returns the hash at row and pos, if t has it.
func (t *Tile) Hash(row, pos int) (Hash, bool) {
	if pos < len(t.rows[row]) {
		return t.rows[row][pos], true
	}
	return Hash{}, false
}

// Bottom returns a copy of the first w bottom-row hashes: the C2SP tile.
func (t *Tile) Bottom(w int) []byte {
	b := make([]byte, 0, w*HashSize)
	for _, h := range t.rows[0][:w] {
		b = append(b, h[:]...)
	}
	return b
}

// BuildTile returns the tile whose bottom row is hashes (at most Width),
// with every inner hash computed from them.
func BuildTile(hashes []Hash) (*Tile, error) {
	if len(hashes) > Width {
		return nil, fmt.Errorf("tree: %d hashes do not fit in a tile", len(hashes))
	}
	t := new(Tile)
	for i, h := range hashes {
		if err := t.set(0, i, h); err != nil {
			return nil, err
		}
		for row, n := 0, i; n&1 == 1 && row+1 < Height; row, n = row+1, n>>1 {
			h = tlog.NodeHash(t.rows[row][n-1], h)
			if err := t.set(row+1, n>>1, h); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// set stores h at (row, pos), which must be the next free position of row.
func (t *Tile) set(row, pos int, h Hash) error {
	r := t.rows[row]
	if pos != len(r) {
		return fmt.Errorf("tree: internal error: tile row %d at %d, writing %d", row, len(r), pos)
	}
	if pos >= Width>>row {
		return fmt.Errorf("tree: internal error: tile row %d is full", row)
	}
	if o := t.owner[row]; o != nil && pos < cap(r) && o.CompareAndSwap(int32(pos), int32(pos+1)) {
		t.rows[row] = append(r, h) // position pos is ours
		return nil
	}
	nr := make([]Hash, pos, Width>>row)
	copy(nr, r)
	t.rows[row] = append(nr, h)
	o := new(atomic.Int32)
	o.Store(int32(pos + 1))
	t.owner[row] = o
	return nil
}

// clone returns a copy of t that can grow without affecting t.
func (t *Tile) clone() *Tile {
	c := *t
	return &c
}

// Encode returns the stored form of t: a 2-byte big-endian width W followed
// by the rows 0..7, row k holding W>>k hashes.
func (t *Tile) Encode() []byte {
	w := t.Width()
	b := make([]byte, 2, 2+storedHashes(w)*HashSize)
	binary.BigEndian.PutUint16(b, uint16(w))
	for k := range Height {
		for _, h := range t.rows[k] {
			b = append(b, h[:]...)
		}
	}
	return b
}

// storedHashes is the number of hashes in a stored tile of width w.
func storedHashes(w int) int {
	n := 0
	for k := range Height {
		n += w >> k
	}
	return n
}

// Decode parses a stored tile and checks every inner hash against its two
// children, so that a flipped stored hash is found where it is read.
func Decode(data []byte) (*Tile, error) {
	s, err := Parse(data)
	if err != nil {
		return nil, err
	}
	w := s.Width()
	t := new(Tile)
	p := data[2:]
	for k := range Height {
		n := w >> k
		row := make([]Hash, n, Width>>k)
		for i := range row {
			copy(row[i][:], p[i*HashSize:])
		}
		t.rows[k] = row
		t.owner[k] = new(atomic.Int32)
		t.owner[k].Store(int32(n))
		p = p[n*HashSize:]
	}
	for k := 1; k < Height; k++ {
		below := t.rows[k-1]
		for i, h := range t.rows[k] {
			if tlog.NodeHash(below[2*i], below[2*i+1]) != h {
				return nil, fmt.Errorf("row %d hash %d does not match its children", k, i)
			}
		}
	}
	return t, nil
}

// Stored is a tile in its stored form (see Encode), read in place: a proof
// needs at most one hash per row of a tile, so readers do not decode the
// other 500. Its length has been checked by Parse.
type Stored []byte

// Parse checks the length of a stored tile against its width.
func Parse(data []byte) (Stored, error) {
	if len(data) < 2 {
		return nil, errors.New("record too short")
	}
	w := int(binary.BigEndian.Uint16(data))
	if w < 1 || w > Width {
		return nil, fmt.Errorf("width %d out of range", w)
	}
	if want := 2 + storedHashes(w)*HashSize; len(data) != want {
		return nil, fmt.Errorf("record is %d bytes, want %d for width %d", len(data), want, w)
	}
	return Stored(data), nil
}

// Width returns the number of bottom-row hashes of the tile.
func (d Stored) Width() int { return int(binary.BigEndian.Uint16(d)) }

// Hash returns the hash at row and pos, if the tile has it.
func (d Stored) Hash(row, pos int) (Hash, bool) {
	w := d.Width()
	if pos < 0 || pos >= w>>row {
		return Hash{}, false
	}
	off := 0
	for k := range row {
		off += w >> k
	}
	var h Hash
	copy(h[:], d[2+(off+pos)*HashSize:])
	return h, true
}

// Bottom returns a copy of the first w bottom-row hashes: the C2SP tile.
func (d Stored) Bottom(w int) []byte {
	return append([]byte(nil), d[2:2+w*HashSize]...)
}

// Edge is the right edge of a tree: its size and, at each tile level, the
// last tile when it is not full. A tile level whose last tile is full holds
// none: the next leaf there starts a new tile. An Edge is a value: nothing
// changes it once made.
type Edge struct {
	size  int64
	tiles map[ID]*Tile
}

// EdgeIDs returns the tiles that make up the right edge of a tree of the
// given size, with the width each must have.
func EdgeIDs(size int64) (ids []ID, widths []int) {
	for L := 0; size>>(Height*L) > 0; L++ {
		nodes := size >> (Height * L) // nodes at tree level 8L
		if w := int(nodes % Width); w > 0 {
			ids = append(ids, ID{L: L, N: nodes / Width})
			widths = append(widths, w)
		}
	}
	return ids, widths
}

// NewEdge returns the right edge of a tree of the given size made of the
// tiles EdgeIDs names, in its order. It checks their widths, not their
// hashes; compare Root with a signed root for that.
func NewEdge(size int64, tiles []*Tile) (Edge, error) {
	ids, widths := EdgeIDs(size)
	if len(tiles) != len(ids) {
		return Edge{}, fmt.Errorf("tree: a tree of size %d has %d edge tiles, got %d", size, len(ids), len(tiles))
	}
	e := Edge{size: size, tiles: make(map[ID]*Tile, len(ids))}
	for i, id := range ids {
		if tiles[i].Width() != widths[i] {
			return Edge{}, fmt.Errorf("tree: tile %d/%d has width %d, want %d for tree size %d", id.L, id.N, tiles[i].Width(), widths[i], size)
		}
		e.tiles[id] = tiles[i]
	}
	return e, nil
}

// Size returns the number of leaves of the tree.
func (e Edge) Size() int64 { return e.size }

// Tile returns the edge tile id, if the edge has it.
func (e Edge) Tile(id ID) (*Tile, bool) {
	t, ok := e.tiles[id]
	return t, ok
}

// hash returns a node hash from the edge.
func (e Edge) hash(level int, n int64) (Hash, bool) {
	id, row, pos := Locate(level, n)
	if t := e.tiles[id]; t != nil {
		return t.Hash(row, pos)
	}
	return Hash{}, false
}

// ReadHashes implements tlog.HashReader for the hashes the edge holds.
func (e Edge) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		h, ok := e.hash(level, n)
		if !ok {
			return nil, fmt.Errorf("tree: node %d of level %d is not on the right edge of a tree of size %d", n, level, e.size)
		}
		out[i] = h
	}
	return out, nil
}

// Root returns the root hash of the tree, computed from the complete
// subtrees on the edge.
func (e Edge) Root() (Hash, error) {
	return tlog.TreeHash(e.size, e)
}

// Changed is a tile an Integrate changed: a full tile, which never changes
// again, or the tree's last, partial tile at its level.
type Changed struct {
	ID   ID
	Tile *Tile
}

// Full reports whether the tile is full.
func (c Changed) Full() bool { return c.Tile.Width() == Width }

// Update is the outcome of Integrate.
type Update struct {
	Edge  Edge      // the right edge of the grown tree
	Tiles []Changed // every tile the new leaves changed, in no particular order
	Root  Hash      // the root of the grown tree
}

// Integrate appends leaves (leaf hashes, RFC 6962 SHA-256(0x00 || data))
// to the tree whose right edge is e: each leaf's hash, then the hash of
// every subtree it completes, each from its left sibling on the edge. It
// returns the new edge, the tiles that changed and the new root. It does
// no I/O and leaves e unchanged, so the same edge may be integrated again.
func Integrate(e Edge, leaves []Hash) (Update, error) {
	next := Edge{size: e.size, tiles: make(map[ID]*Tile, len(e.tiles)+2)}
	for id, t := range e.tiles {
		next.tiles[id] = t
	}
	// Tiles are cloned once, when first touched; e's stay as they were.
	touched := make(map[ID]*Tile)
	put := func(level int, n int64, h Hash) error {
		id, row, pos := Locate(level, n)
		t := touched[id]
		if t == nil {
			if old := next.tiles[id]; old != nil {
				t = old.clone()
			} else {
				if row != 0 || pos != 0 {
					return fmt.Errorf("tree: internal error: tile %d/%d is missing from the edge", id.L, id.N)
				}
				t = new(Tile)
			}
			touched[id] = t
			next.tiles[id] = t
		}
		return t.set(row, pos, h)
	}
	for _, h := range leaves {
		idx := next.size
		if err := put(0, idx, h); err != nil {
			return Update{}, err
		}
		for level, n := 0, idx; n&1 == 1; level, n = level+1, n>>1 {
			left, ok := next.hash(level, n-1)
			if !ok {
				return Update{}, fmt.Errorf("tree: internal error: the left sibling of node %d of level %d is not on the edge", n, level)
			}
			h = tlog.NodeHash(left, h)
			if err := put(level+1, n>>1, h); err != nil {
				return Update{}, err
			}
		}
		next.size++
	}
	u := Update{Edge: next, Tiles: make([]Changed, 0, len(touched))}
	for id, t := range touched {
		u.Tiles = append(u.Tiles, Changed{ID: id, Tile: t})
	}
	root, err := next.Root()
	if err != nil {
		return Update{}, err
	}
	u.Root = root
	// Full tiles leave the edge: nothing is ever appended to them again.
	for id, t := range touched {
		if t.Width() == Width {
			delete(next.tiles, id)
		}
	}
	return u, nil
}
