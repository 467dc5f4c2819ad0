package ledger

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a SHA-256 hash in the Merkle tree.
type Hash = tlog.Hash

// HashSize is the size of a Hash in bytes.
const HashSize = tlog.HashSize

// TileHeight is the height of the stored hash tiles, as in C2SP tlog-tiles:
// a full tile holds 256 hashes of one tree level.
const TileHeight = 8

// TileWidth is the number of hashes in a full tile.
const TileWidth = 1 << TileHeight

// tileID names a tile: tile level L holds tree levels 8L to 8L+7, and tile N
// at that level covers nodes N*256 to N*256+255 of tree level 8L.
type tileID struct {
	L int
	N int64
}

// tile holds every stored hash of one tile, not only its bottom row: row k
// holds the hashes of tree level 8L+k. Keeping the inner rows costs one extra
// tile of space per tile and saves up to 255 SHA-256 computations per tile
// touched by a proof. The bottom row is exactly the C2SP tile.
type tile struct {
	rows [TileHeight][]Hash
}

// width is the number of bottom-row hashes in t.
func (t *tile) width() int { return len(t.rows[0]) }

// locate maps tree coordinates (level, n) to the tile that stores the node
// and its row and position there.
func locate(level int, n int64) (id tileID, row, pos int) {
	row = level % TileHeight
	id.L = level / TileHeight
	shift := TileHeight - row
	id.N = n >> shift
	pos = int(n - id.N<<shift)
	return id, row, pos
}

func (t *tile) get(row, pos int) (Hash, bool) {
	if pos < len(t.rows[row]) {
		return t.rows[row][pos], true
	}
	return Hash{}, false
}

// set stores h at (row, pos), which must be the next free position of row.
func (t *tile) set(row, pos int, h Hash) error {
	if pos != len(t.rows[row]) {
		return fmt.Errorf("ledger: internal error: tile row %d at %d, writing %d", row, len(t.rows[row]), pos)
	}
	t.rows[row] = append(t.rows[row], h)
	return nil
}

// encode returns the stored form of a tile: a 2-byte big-endian width W
// followed by the rows 0..7, row k holding W>>k hashes. See docs/formats.md.
func (t *tile) encode() []byte {
	w := t.width()
	b := make([]byte, 2, 2+tileStoredHashes(w)*HashSize)
	binary.BigEndian.PutUint16(b, uint16(w))
	for k := range TileHeight {
		for _, h := range t.rows[k] {
			b = append(b, h[:]...)
		}
	}
	return b
}

// tileStoredHashes is the number of hashes in a tile of width w.
func tileStoredHashes(w int) int {
	n := 0
	for k := range TileHeight {
		n += w >> k
	}
	return n
}

func decodeTile(id tileID, data []byte) (*tile, error) {
	corrupt := func(detail string) error {
		return &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d: %s", id.L, id.N, detail)}
	}
	if len(data) < 2 {
		return nil, corrupt("record too short")
	}
	w := int(binary.BigEndian.Uint16(data))
	if w < 1 || w > TileWidth {
		return nil, corrupt(fmt.Sprintf("width %d out of range", w))
	}
	if want := 2 + tileStoredHashes(w)*HashSize; len(data) != want {
		return nil, corrupt(fmt.Sprintf("record is %d bytes, want %d for width %d", len(data), want, w))
	}
	t := new(tile)
	p := data[2:]
	for k := range TileHeight {
		n := w >> k
		row := make([]Hash, n)
		for i := range row {
			copy(row[i][:], p[i*HashSize:])
		}
		t.rows[k] = row
		p = p[n*HashSize:]
	}
	if err := t.checkRows(); err != nil {
		return nil, corrupt(err.Error())
	}
	return t, nil
}

// checkRows reports whether every inner hash of t is the hash of its two
// children in the row below. With the tree's signed root checked on every
// proof, this makes any flipped stored hash detectable where it is read.
func (t *tile) checkRows() error {
	for k := 1; k < TileHeight; k++ {
		below := t.rows[k-1]
		for i, h := range t.rows[k] {
			if tlog.NodeHash(below[2*i], below[2*i+1]) != h {
				return fmt.Errorf("row %d hash %d does not match its children", k, i)
			}
		}
	}
	return nil
}

// clone returns a copy of t whose rows can grow without affecting t.
func (t *tile) clone() *tile {
	c := new(tile)
	for k := range TileHeight {
		c.rows[k] = append(make([]Hash, 0, TileWidth>>k), t.rows[k]...)
	}
	return c
}

// tileData is a tile in its stored form (see encode), read in place: a
// proof needs at most one hash per row of a tile, so readers do not decode
// the other 500. Its length has been checked.
type tileData []byte

// parseTile checks the length of a stored tile record.
func parseTile(id tileID, data []byte) (tileData, error) {
	if len(data) < 2 {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d: record too short", id.L, id.N)}
	}
	w := int(binary.BigEndian.Uint16(data))
	if w < 1 || w > TileWidth || len(data) != 2+tileStoredHashes(w)*HashSize {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d: record of %d bytes does not match width %d", id.L, id.N, len(data), w)}
	}
	return tileData(data), nil
}

func (d tileData) width() int { return int(binary.BigEndian.Uint16(d)) }

func (d tileData) get(row, pos int) (Hash, bool) {
	w := d.width()
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

// bottom returns the first w bottom-row hashes, the C2SP tile.
func (d tileData) bottom(w int) []byte {
	return append([]byte(nil), d[2:2+w*HashSize]...)
}

// tileCache is a bounded LRU of full tiles, which never change once
// written. It is safe for concurrent use.
type tileCache struct {
	mu struct {
		sync.Mutex
		order *list.List // of tileID, front = most recent
		items map[tileID]*cacheItem
	}
	max int
}

type cacheItem struct {
	t    tileData
	elem *list.Element
}

func newTileCache(max int) *tileCache {
	c := &tileCache{max: max}
	c.mu.order = list.New()
	c.mu.items = make(map[tileID]*cacheItem)
	return c
}

func (c *tileCache) get(id tileID) tileData {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.mu.items[id]
	if !ok {
		return nil
	}
	c.mu.order.MoveToFront(it.elem)
	return it.t
}

func (c *tileCache) put(id tileID, t tileData) {
	if c.max <= 0 || t.width() != TileWidth {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mu.items[id]; ok {
		return
	}
	c.mu.items[id] = &cacheItem{t: t, elem: c.mu.order.PushFront(id)}
	for c.mu.order.Len() > c.max {
		old := c.mu.order.Remove(c.mu.order.Back()).(tileID)
		delete(c.mu.items, old)
	}
}
