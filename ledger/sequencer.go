package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/evidenceledger/evidence/ledger/storage"
	"golang.org/x/mod/sumdb/tlog"
)

// emptyRoot is the RFC 6962 hash of the empty tree: SHA-256 of nothing.
var emptyRoot = Hash(sha256.Sum256(nil))

// request is one Append call on its way through the sequencer.
type request struct {
	id      string // request id, or ""
	entries []prepared
	bytes   int
	done    chan result
	app     Appended
	res     result // the outcome, set before done is sent and finished closed
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

// batch is one group commit: the requests it serves, the storage batch that
// makes them durable and the checkpoint that covers them.
type batch struct {
	no    uint64
	reqs  []*request
	write bool   // a replicated write (ApplyWrite), not appends
	index uint64 // the replication index, 0 on a single node
	ops   storage.Batch
	cp    *Checkpoint
	// finished, when not nil, is closed once every request has its
	// result; err is then the batch's failure, if any.
	finished chan struct{}
	err      error
	// partial is the bottom tile's partial last tile after this batch, or
	// nil when the tree size is a multiple of 256. It is not stored: it is
	// rebuilt from the leaves at open.
	partial *partialTile
}

// partialTile is an unstored, incomplete tile at tile level 0.
type partialTile struct {
	id   tileID
	data tileData
}

func (b *batch) fail(err error) {
	b.err = err
	for _, r := range b.reqs {
		r.finish(result{err: err})
	}
	if b.finished != nil {
		close(b.finished)
	}
}

func (r *request) finish(res result) {
	r.res = res
	r.done <- res
}

// maxHeads bounds the sequencer's cache of encounter chain heads.
const maxHeads = 100_000

// sequencerState is the in-memory state the sequencer needs to append: the
// tree size, the tiles on the right edge of the tree and recent chain heads.
// Only the sequencer goroutine touches it (and Open, before starting it).
type sequencerState struct {
	log     *Log
	size    int64
	edge    map[tileID]*tile
	heads   map[string]*headState
	batchNo uint64
	// committedBatch is the number of the last durable batch; heads touched
	// only by durable batches may be evicted and re-read from storage.
	committedBatch atomic.Uint64
	cp             *Checkpoint // the checkpoint of the last built batch

	// Replication state (replicate.go): the last applied replication
	// index, recent request ids and the leaf below which request id
	// records were pruned.
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
	b := binary.BigEndian.AppendUint64(nil, uint64(h.last))
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
func (s *sequencerState) init(l *Log, cp *Checkpoint) error {
	s.log = l
	s.size = cp.Size
	s.cp = cp
	s.edge = make(map[tileID]*tile)
	s.heads = make(map[string]*headState)
	s.requests = make(map[string]*requestRecord)
	if err := s.loadApplied(); err != nil {
		return err
	}
	for L := 0; cp.Size>>(TileHeight*L) > 0; L++ {
		nodes := cp.Size >> (TileHeight * L) // nodes at tree level 8L
		id := tileID{L: L, N: nodes / TileWidth}
		w := int(nodes % TileWidth)
		if w == 0 {
			continue // the next tile at this level starts empty
		}
		if L == 0 {
			if err := s.rebuildPartial(id, cp.Size); err != nil {
				return err
			}
			continue
		}
		data, err := l.reads.tile(id)
		if err != nil {
			return err
		}
		if data.width() != w {
			return &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d has width %d, want %d for tree size %d", id.L, id.N, data.width(), w, cp.Size)}
		}
		// The edge is decoded and checked in full: appends build on it.
		t, err := decodeTile(id, data)
		if err != nil {
			return err
		}
		s.edge[id] = t.clone()
	}
	root, err := tlog.TreeHash(s.size, s)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return &CorruptionError{What: "state", Index: -1, Detail: fmt.Sprintf("tree of size %d hashes to %x, checkpoint says %x", cp.Size, root[:], cp.Root[:]), Expected: cp.Root, Found: root}
	}
	return nil
}

// rebuildPartial recomputes the last, incomplete bottom tile from the
// leaves it covers (at most 255): partial bottom tiles are never stored,
// which saves rewriting up to 16 KiB with every group commit. The signed
// root, checked after, covers every leaf read here.
func (s *sequencerState) rebuildPartial(id tileID, size int64) error {
	s.edge[id] = new(tile)
	first := id.N * TileWidth
	next := first
	dirty := make(map[tileID]bool)
	err := s.log.store.Scan(leafKey(first), leafKey(size), func(k, data []byte) error {
		idx := int64(binary.BigEndian.Uint64(k[1:]))
		if idx != next {
			return &CorruptionError{What: "leaf", Index: next, Detail: "leaf data is missing"}
		}
		next++
		return s.appendLeafHash(idx, tlog.RecordHash(data), dirty)
	})
	if err != nil {
		return err
	}
	if next != size {
		return &CorruptionError{What: "leaf", Index: next, Detail: "leaf data is missing"}
	}
	return nil
}

// partial returns a snapshot of the unstored partial bottom tile, if any.
func (s *sequencerState) partial() *partialTile {
	if s.size%TileWidth == 0 {
		return nil
	}
	id := tileID{L: 0, N: s.size / TileWidth}
	return &partialTile{id: id, data: tileData(s.edge[id].encode())}
}

// ReadHashes implements tlog.HashReader over the right edge of the tree,
// falling back to committed storage.
func (s *sequencerState) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		h, err := s.hash(tlog.SplitStoredHashIndex(x))
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

func (s *sequencerState) put(level int, n int64, h Hash, dirty map[tileID]bool) error {
	id, row, pos := locate(level, n)
	t := s.edge[id]
	if t == nil {
		if row != 0 || pos != 0 {
			return fmt.Errorf("ledger: internal error: tile %d/%d missing from the edge", id.L, id.N)
		}
		t = new(tile)
		s.edge[id] = t
	}
	dirty[id] = true
	return t.set(row, pos, h)
}

// head returns the chain head of an encounter; k is tenant "\x00" encounter.
// appendLeafHash adds leaf idx to the tree: its hash, then the hash of
// every subtree it completes, each from its left sibling on the right edge
// (RFC 6962 MTH, computed incrementally).
func (s *sequencerState) appendLeafHash(idx int64, h Hash, dirty map[tileID]bool) error {
	if err := s.put(0, idx, h, dirty); err != nil {
		return err
	}
	for level, n := 0, idx; n&1 == 1; level, n = level+1, n>>1 {
		left, err := s.hash(level, n-1)
		if err != nil {
			return err
		}
		h = tlog.NodeHash(left, h)
		if err := s.put(level+1, n>>1, h, dirty); err != nil {
			return err
		}
	}
	return nil
}

// hash returns a node hash from the right edge, or from storage.
func (s *sequencerState) hash(level int, n int64) (Hash, error) {
	id, row, pos := locate(level, n)
	if t := s.edge[id]; t != nil {
		if h, ok := t.get(row, pos); ok {
			return h, nil
		}
	}
	return s.log.reads.hash(level, n)
}

func (s *sequencerState) head(k, tenant, encounter string) (*headState, error) {
	if h := s.heads[k]; h != nil {
		return h, nil
	}
	if len(s.heads) >= maxHeads {
		s.evictHeads()
	}
	h := new(headState)
	data, err := s.log.store.Get(headKey(tenant, encounter))
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
	s.heads[k] = h
	return h, nil
}

// evictHeads drops cached heads that durable storage already holds.
func (s *sequencerState) evictHeads() {
	done := s.committedBatch.Load()
	for k, h := range s.heads {
		if h.batch <= done {
			delete(s.heads, k)
		}
		if len(s.heads) < maxHeads*9/10 {
			return
		}
	}
}

// build turns the requests of b into leaves, tree hashes, chain links and a
// signed checkpoint, all collected in b.ops. It is deterministic given the
// state and the prepared entries, which is what a replicated log needs.
func (s *sequencerState) build(b *batch) error {
	s.batchNo++
	b.no = s.batchNo
	dirtyTiles := make(map[tileID]bool)
	dirtyHeads := make(map[string]*headState)
	for _, r := range b.reqs {
		if r.id != "" {
			rec, err := s.lookupRequest(r.id)
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
			s.recordRequest(b, r.id, s.size, len(r.entries))
		}
		r.app = Appended{First: s.size, Leaves: make([][]byte, len(r.entries)), LeafHashes: make([]Hash, len(r.entries))}
		for i := range r.entries {
			p := &r.entries[i]
			hk := p.leaf.Tenant + "\x00" + p.leaf.Encounter
			h, err := s.head(hk, p.leaf.Tenant, p.leaf.Encounter)
			if err != nil {
				return err
			}
			p.leaf.Seq = h.count
			if h.count > 0 {
				p.leaf.Prev = h.hash
			}
			idx := s.size
			data := p.leaf.appendTo(make([]byte, 0, leafFixedLen+len(p.leaf.Tenant)+len(p.leaf.Encounter)+len(p.leaf.Actor)))
			lh := tlog.RecordHash(data)
			if err := s.appendLeafHash(idx, lh, dirtyTiles); err != nil {
				return err
			}
			b.ops.Set(leafKey(idx), data)
			b.ops.Set(payloadKey(p.leaf.Commitment), p.record)
			b.ops.Set(encounterIndexKey(p.leaf.Tenant, p.leaf.Encounter, idx), nil)
			h.last, h.hash, h.batch = idx, lh, b.no
			h.count++
			dirtyHeads[hk] = h
			r.app.Leaves[i] = data
			r.app.LeafHashes[i] = lh
			s.size++
		}
	}
	for k, h := range dirtyHeads {
		tenant, encounter, _ := cut0(k)
		b.ops.Set(headKey(tenant, encounter), encodeHead(h))
	}
	encoded := make(map[tileID][]byte, len(dirtyTiles))
	for id := range dirtyTiles {
		t := s.edge[id]
		if id.L == 0 && t.width() < TileWidth {
			continue // see rebuildPartial
		}
		encoded[id] = t.encode()
		b.ops.Set(tileKey(id), encoded[id])
	}
	b.partial = s.partial()
	root, err := tlog.TreeHash(s.size, s)
	if err != nil {
		return err
	}
	// Full tiles never change again and appends never read them, so they
	// leave the edge; the cache keeps them for readers.
	for id := range dirtyTiles {
		if t := s.edge[id]; t.width() == TileWidth {
			s.log.cache.put(id, tileData(encoded[id]))
			delete(s.edge, id)
		}
	}
	if err := s.pruneRequests(b); err != nil {
		return err
	}
	b.ops.Set([]byte(keyApplied), s.appliedRecord())
	if s.size == s.cp.Size {
		// Nothing was appended (every request was a repeat or
		// rejected): the checkpoint stands.
		b.cp = s.cp
		return nil
	}
	cp, err := signCheckpoint(s.log.opts.Key, s.log.opts.Origin, s.size, root)
	if err != nil {
		return err
	}
	b.cp = cp
	s.cp = cp
	b.ops.Set([]byte(keyState), cp.Note)
	b.ops.Set(checkpointKey(s.size), cp.Note)
	return nil
}

func cut0(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// sequence is the sequencer goroutine: it gathers waiting requests into
// batches and builds each one. It builds a batch only when fewer than
// Options.PipelineDepth batches are waiting for their sync, so that appends
// arriving during a sync accumulate into the next group commit instead of
// trickling out as many small ones.
func (l *Log) sequence() {
	defer close(l.batches)
	for {
		r, ok := <-l.reqs
		if !ok {
			return
		}
		l.slots <- struct{}{} // released by the syncer
		b := &batch{reqs: []*request{r}}
		entries, bytes := len(r.entries), r.bytes
		open := true
	gather:
		for open && entries < l.opts.MaxBatchEntries && bytes < l.opts.MaxBatchBytes {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					open = false
					break gather
				}
				b.reqs = append(b.reqs, r)
				entries += len(r.entries)
				bytes += r.bytes
			default:
				break gather
			}
		}
		if err := l.failure(); err != nil {
			b.fail(err)
			<-l.slots
		} else if err := l.seq.build(b); err != nil {
			// The in-memory state may be half-updated: stop the log.
			b.fail(l.setFailed(err))
			<-l.slots
		} else {
			l.batches <- b
		}
		if !open {
			return
		}
	}
}

// inflight is a batch applied to storage, with a function that waits until
// it is durable.
type inflight struct {
	b    *batch
	wait func() error
}

// commit is the committer goroutine: it applies each batch to storage in
// order and hands it to the syncer. When the store can apply a batch without
// waiting for its sync (storage.AsyncWriter), the next batch is applied while
// this one syncs and the store groups their syncs.
func (l *Log) commit() {
	synced := make(chan inflight, l.opts.PipelineDepth)
	done := make(chan struct{})
	go l.syncer(synced, done)
	aw, async := l.store.(storage.AsyncWriter)
	for b := range l.batches {
		if err := l.failure(); err != nil {
			b.fail(err)
			<-l.slots
			continue
		}
		var wait func() error
		var err error
		if async {
			wait, err = aw.WriteAsync(&b.ops)
		} else {
			err = l.store.Write(&b.ops, true)
		}
		if err != nil {
			b.fail(l.setFailed(err))
			<-l.slots
			continue
		}
		synced <- inflight{b: b, wait: wait}
	}
	close(synced)
	<-done
	close(l.committed)
}

// syncer waits for each applied batch to become durable, in order, then
// publishes its checkpoint and acknowledges its requests.
func (l *Log) syncer(in <-chan inflight, done chan<- struct{}) {
	defer close(done)
	for f := range in {
		err := l.failure()
		if err == nil && f.wait != nil {
			if werr := f.wait(); werr != nil {
				err = l.setFailed(werr)
			}
		}
		if err != nil {
			f.b.fail(err)
			<-l.slots
			continue
		}
		l.seq.committedBatch.Store(f.b.no)
		if l.hw != nil {
			if werr := l.hw.advance(f.b.cp); werr != nil {
				f.b.fail(l.setFailed(fmt.Errorf("high-water checkpoint: %w", werr)))
				<-l.slots
				continue
			}
		}
		l.publish(f.b.cp, f.b.partial, f.b.index)
		for _, r := range f.b.reqs {
			switch {
			case r.err != nil:
				r.finish(result{err: r.err})
			case r.dup != nil:
				r.finish(l.repeated(r.dup, f.b.cp))
			default:
				app := r.app
				app.Checkpoint = f.b.cp
				r.finish(result{app: &app})
			}
		}
		if f.b.finished != nil {
			close(f.b.finished)
		}
		<-l.slots
	}
}

func (l *Log) publish(cp *Checkpoint, partial *partialTile, index uint64) {
	l.mu.Lock()
	l.mu.cp = cp
	l.mu.partial = partial
	if index > l.mu.applied {
		l.mu.applied = index
	}
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *Log) setFailed(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.failed == nil {
		l.mu.failed = &FailedError{Err: err}
		close(l.mu.changed)
		l.mu.changed = make(chan struct{})
	}
	return l.mu.failed
}
