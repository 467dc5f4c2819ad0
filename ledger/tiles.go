package ledger

import (
	"container/list"
	"fmt"
	"sync"

	"github.com/evidenceledger/evidence/ledger/tree"
	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a SHA-256 hash in the Merkle tree.
type Hash = tlog.Hash

// HashSize is the size of a Hash in bytes.
const HashSize = tlog.HashSize

// TileHeight is the height of the stored hash tiles, as in C2SP tlog-tiles:
// a full tile holds 256 hashes of one tree level.
const TileHeight = tree.Height

// TileWidth is the number of hashes in a full tile.
const TileWidth = tree.Width

// tileID names a stored tile; see tree.ID.
type tileID = tree.ID

// parseTile checks the length of a stored tile record.
func parseTile(id tileID, data []byte) (tree.Stored, error) {
	t, err := tree.Parse(data)
	if err != nil {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d: %s", id.L, id.N, err.Error())}
	}
	return t, nil
}

// decodeTile parses a stored tile and checks its inner rows.
func decodeTile(id tileID, data []byte) (*tree.Tile, error) {
	t, err := tree.Decode(data)
	if err != nil {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d: %s", id.L, id.N, err.Error())}
	}
	return t, nil
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
	t    tree.Stored
	elem *list.Element
}

func newTileCache(max int) *tileCache {
	c := &tileCache{max: max}
	c.mu.order = list.New()
	c.mu.items = make(map[tileID]*cacheItem)
	return c
}

func (c *tileCache) get(id tileID) tree.Stored {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.mu.items[id]
	if !ok {
		return nil
	}
	c.mu.order.MoveToFront(it.elem)
	return it.t
}

func (c *tileCache) put(id tileID, t tree.Stored) {
	if c.max <= 0 || t.Width() != TileWidth {
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
