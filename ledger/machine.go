package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/ledger/storage"
	"github.com/evidenceledger/evidence/ledger/tree"
)

// emptyRoot is the RFC 6962 hash of the empty tree: SHA-256 of nothing.
var emptyRoot = Hash(sha256.Sum256(nil))

// request is one prepared append on its way through a group commit.
type request struct {
	id      string // request id, or ""
	entries []prepared
	bytes   int
	done    chan result // nil for a Replica's requests
	app     Appended
	res     result // the outcome, set before done is sent
	// Set by build: a request id applied before (nothing is appended and
	// the earlier append is reported), or a deterministic rejection.
	dup *requestRecord
	err error
}

type prepared struct {
	leaf   Leaf
	salt   []byte
	record []byte // the stored payload record: state byte, salt, sealed payload
}

type result struct {
	app *Appended
	err error
}

func (r *request) finish(res result) {
	r.res = res
	if r.done != nil {
		r.done <- res
	}
}

// batch is one group commit: the requests it serves, the storage batch that
// makes them durable and the checkpoint that covers them.
type batch struct {
	no    uint64
	reqs  []*request
	index uint64 // the replication index, 0 on a single node
	ops   storage.Batch
	cp    *Checkpoint
	// partial is the bottom tile's partial last tile after this batch, or
	// nil when the tree size is a multiple of 256. It is not stored: it is
	// rebuilt from the leaves at open.
	partial *tree.Tile
	heads   []publishedHead // the chain heads the batch moved
}

type publishedHead struct {
	key  string // tenant 0 encounter
	head Head
}

func (b *batch) fail(err error) {
	for _, r := range b.reqs {
		r.finish(result{err: err})
	}
}

// machine is the deterministic state machine that turns prepared appends
// into leaves, chain links, tree tiles and signed checkpoints: the tree
// size, its right edge and recent chain heads and request ids. Given the
// same state and the same prepared entries it builds byte-identical
// batches, which is what a replicated log needs. One goroutine at a time
// uses it: an Appender's sequencer, or a Replica's caller of Apply.
type machine struct {
	log     *Log
	size    int64
	edge    tree.Edge
	heads   map[string]*headState
	batchNo uint64
	// committedBatch is the number of the last durable batch; heads and
	// request ids touched only by durable batches may be evicted and
	// read from storage again.
	committedBatch atomic.Uint64
	cp             *Checkpoint // the checkpoint of the last built batch

	// Replication state: the last applied replication index, recent
	// request ids and the leaf below which request id records were
	// pruned.
	applied  uint64
	requests map[string]*requestRecord
	pruned   int64
}

// headState is the head of one encounter chain.
type headState struct {
	last  int64  // index of the last entry
	hash  Hash   // its leaf hash
	count uint64 // entries in the chain
	batch uint64 // the last batch that changed it
}

// Head is the latest entry of an encounter chain.
type Head struct {
	Index int64  // leaf index of the last entry
	Hash  Hash   // its leaf hash
	Count uint64 // number of entries in the chain
}

func encodeHead(h *headState) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+HashSize+8), uint64(h.last))
	b = append(b, h.hash[:]...)
	return binary.BigEndian.AppendUint64(b, h.count)
}

func decodeHead(data []byte) (Head, error) {
	if len(data) != 8+HashSize+8 {
		return Head{}, &CorruptionError{What: "chain", Index: -1, Detail: fmt.Sprintf("head record is %d bytes, want %d", len(data), 8+HashSize+8)}
	}
	var h Head
	h.Index = int64(binary.BigEndian.Uint64(data))
	copy(h.Hash[:], data[8:])
	h.Count = binary.BigEndian.Uint64(data[8+HashSize:])
	return h, nil
}

// init loads the right edge of the tree of size cp.Size and checks that it
// hashes to the signed root.
func (m *machine) init(cp *Checkpoint) error {
	m.size = cp.Size
	m.cp = cp
	m.heads = make(map[string]*headState)
	m.requests = make(map[string]*requestRecord)
	if err := m.loadApplied(); err != nil {
		return err
	}
	ids, _ := tree.EdgeIDs(cp.Size)
	tiles := make([]*tree.Tile, len(ids))
	for i, id := range ids {
		var err error
		if id.L == 0 {
			tiles[i], err = m.rebuildPartial(id, cp.Size)
		} else {
			tiles[i], err = m.readEdgeTile(id)
		}
		if err != nil {
			return err
		}
	}
	edge, err := tree.NewEdge(cp.Size, tiles)
	if err != nil {
		return &CorruptionError{What: "tile", Index: -1, Detail: err.Error()}
	}
	root, err := edge.Root()
	if err != nil {
		return &CorruptionError{What: "tile", Index: -1, Detail: err.Error()}
	}
	if root != cp.Root {
		return &CorruptionError{What: "state", Index: -1, Detail: fmt.Sprintf("tree of size %d hashes to %x, checkpoint says %x", cp.Size, root[:], cp.Root[:]), Expected: cp.Root, Found: root}
	}
	m.edge = edge
	return nil
}

// readEdgeTile reads a stored tile of the right edge and decodes it in
// full, inner rows checked: appends build on it.
func (m *machine) readEdgeTile(id tileID) (*tree.Tile, error) {
	data, err := m.log.store.Get(tileKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d is missing", id.L, id.N)}
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read tile: %w", err)
	}
	return decodeTile(id, data)
}

// rebuildPartial recomputes the last, incomplete bottom tile from the
// leaves it covers (at most 255): partial bottom tiles are never stored,
// which saves rewriting up to 16 KiB with every group commit. The signed
// root, checked after, covers every leaf read here.
func (m *machine) rebuildPartial(id tileID, size int64) (*tree.Tile, error) {
	first := id.N * TileWidth
	next := first
	var hashes []Hash
	err := m.log.store.Scan(leafKey(first), leafKey(size), func(k, data []byte) error {
		idx := int64(binary.BigEndian.Uint64(k[1:]))
		if idx != next {
			return &CorruptionError{What: "leaf", Index: next, Detail: "leaf data is missing"}
		}
		next++
		hashes = append(hashes, tlog.RecordHash(data))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != size {
		return nil, &CorruptionError{What: "leaf", Index: next, Detail: "leaf data is missing"}
	}
	return tree.BuildTile(hashes)
}

// partial returns the unstored partial bottom tile, if any.
func (m *machine) partial() *tree.Tile {
	if m.size%TileWidth == 0 {
		return nil
	}
	t, _ := m.edge.Tile(tileID{L: 0, N: m.size / TileWidth})
	return t
}

// head returns the chain head of an encounter; k is tenant 0 encounter.
func (m *machine) head(k, tenant, encounter string) (*headState, error) {
	if h := m.heads[k]; h != nil {
		return h, nil
	}
	if len(m.heads) >= maxHeads {
		m.evictHeads()
	}
	h := new(headState)
	data, err := m.log.store.Get(headKey(tenant, encounter))
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("ledger: read chain head: %w", err)
	default:
		stored, err := decodeHead(data)
		if err != nil {
			return nil, err
		}
		h.last, h.hash, h.count = stored.Index, stored.Hash, stored.Count
	}
	m.heads[k] = h
	return h, nil
}

// evictHeads drops cached heads that durable storage already holds.
func (m *machine) evictHeads() {
	done := m.committedBatch.Load()
	for k, h := range m.heads {
		if h.batch <= done {
			delete(m.heads, k)
		}
		if len(m.heads) < maxHeads*9/10 {
			return
		}
	}
}

// build turns the requests of b into leaves, tree tiles, chain links and a
// signed checkpoint, all collected in b.ops. It is deterministic given the
// state and the prepared entries. On an error the state may be half
// updated: the caller stops the log.
func (m *machine) build(b *batch) error {
	m.batchNo++
	b.no = m.batchNo
	dirtyHeads := make(map[string]*headState)
	var hashes []Hash
	for _, r := range b.reqs {
		if r.id != "" {
			rec, err := m.lookupRequest(r.id)
			if err != nil {
				return err
			}
			if rec != nil {
				if rec.count != len(r.entries) {
					r.err = &InvalidError{Field: "request_id", Reason: "was used before for an append of another size", Err: ErrRequestReused}
				} else {
					r.dup = rec
				}
				continue
			}
			m.recordRequest(b, r.id, m.size, len(r.entries))
		}
		r.app = Appended{First: m.size, Leaves: make([][]byte, len(r.entries)), LeafHashes: make([]Hash, len(r.entries)), leaves: make([]Leaf, len(r.entries))}
		for i := range r.entries {
			p := &r.entries[i]
			hk := p.leaf.Tenant + "\x00" + p.leaf.Encounter
			h, err := m.head(hk, p.leaf.Tenant, p.leaf.Encounter)
			if err != nil {
				return err
			}
			p.leaf.Seq = h.count
			if h.count > 0 {
				p.leaf.Prev = h.hash
			}
			idx := m.size
			data := p.leaf.appendTo(make([]byte, 0, leafFixedLen+len(p.leaf.Tenant)+len(p.leaf.Encounter)+len(p.leaf.Actor)))
			lh := tlog.RecordHash(data)
			hashes = append(hashes, lh)
			b.ops.Set(leafKey(idx), data)
			b.ops.Set(payloadKey(p.leaf.Commitment), p.record)
			b.ops.Set(encounterIndexKey(p.leaf.Tenant, p.leaf.Encounter, idx), nil)
			h.last, h.hash, h.batch = idx, lh, b.no
			h.count++
			dirtyHeads[hk] = h
			r.app.Leaves[i] = data
			r.app.LeafHashes[i] = lh
			r.app.leaves[i] = p.leaf
			m.size++
		}
	}
	b.heads = make([]publishedHead, 0, len(dirtyHeads))
	for k, h := range dirtyHeads {
		tenant, encounter, _ := cut0(k)
		b.ops.Set(headKey(tenant, encounter), encodeHead(h))
		b.heads = append(b.heads, publishedHead{key: k, head: Head{Index: h.last, Hash: h.hash, Count: h.count}})
	}
	if err := m.pruneRequests(b); err != nil {
		return err
	}
	b.ops.Set([]byte(keyApplied), m.appliedRecord())
	if len(hashes) == 0 {
		// Nothing was appended (every request was a repeat or
		// rejected): the checkpoint stands.
		b.cp = m.cp
		b.partial = m.partial()
		return nil
	}
	u, err := tree.Integrate(m.edge, hashes)
	if err != nil {
		return err
	}
	m.edge = u.Edge
	changed := make(map[tileID]*tree.Tile, len(u.Tiles))
	for _, c := range u.Tiles {
		changed[c.ID] = c.Tile
		if c.ID.L == 0 && !c.Full() {
			continue // see rebuildPartial
		}
		enc := c.Tile.Encode()
		b.ops.Set(tileKey(c.ID), enc)
		if c.Full() {
			// Full tiles never change again and appends never read
			// them; the cache keeps them for readers.
			m.log.cache.put(c.ID, tree.Stored(enc))
		}
	}
	b.partial = m.partial()
	cp, err := signCheckpoint(m.log.opts.Key, m.log.opts.Origin, m.size, u.Root)
	if err != nil {
		return err
	}
	b.cp = cp
	m.cp = cp
	b.ops.Set([]byte(keyState), cp.Note)
	b.ops.Set(checkpointKey(m.size), cp.Note)
	// What the commit knows answers proofs of its own entries.
	hr := &batchHashes{edge: u.Edge, changed: changed, log: m.log}
	for _, r := range b.reqs {
		if r.err == nil && r.dup == nil {
			r.app.hashes = hr
		}
	}
	return nil
}

// buildWrite turns a replicated write that appends nothing into a batch:
// its operations and the replication state; the checkpoint stays.
func (m *machine) buildWrite(b *batch) {
	m.batchNo++
	b.no = m.batchNo
	b.ops.Set([]byte(keyApplied), m.appliedRecord())
	b.cp = m.cp
	b.partial = m.partial()
}

func cut0(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// batchHashes reads the tree of one group commit from what the commit
// built: the tiles it changed and the edge after it, which hold every hash
// a proof of the commit's own entries needs; any other hash comes from the
// log's stored tiles.
type batchHashes struct {
	edge    tree.Edge
	changed map[tileID]*tree.Tile
	log     *Log
}

// ReadHashes implements tlog.HashReader.
func (h *batchHashes) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		id, row, pos := tree.Locate(level, n)
		t := h.changed[id]
		if t == nil {
			t, _ = h.edge.Tile(id)
		}
		if t != nil {
			if hash, ok := t.Hash(row, pos); ok {
				out[i] = hash
				continue
			}
		}
		hash, err := h.log.hash(level, n)
		if err != nil {
			return nil, err
		}
		out[i] = hash
	}
	return out, nil
}
