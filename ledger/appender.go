package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// Appended describes entries appended by one Append call. They have the
// consecutive indexes First, First+1, ...
type Appended struct {
	First      int64
	Leaves     [][]byte // leaf data, as hashed
	LeafHashes []Hash
	// Checkpoint is the signed checkpoint of the group commit that made
	// the entries durable. It covers every one of them.
	Checkpoint *Checkpoint

	leaves []Leaf          // the leaves as built, when known here
	hashes tlog.HashReader // the commit's tree; nil when not known here
	log    *Log
}

// Leaf returns the i'th entry's leaf: as the commit built it when it was
// built here, else decoded from its leaf data.
func (a *Appended) Leaf(i int) (*Leaf, error) {
	if i < 0 || i >= len(a.Leaves) {
		return nil, &InvalidError{Field: "index", Reason: fmt.Sprintf("entry %d of an append of %d", i, len(a.Leaves))}
	}
	if a.leaves != nil {
		l := a.leaves[i]
		return &l, nil
	}
	return DecodeLeaf(a.Leaves[i])
}

// InclusionProof returns the leaf hash of entry index, any entry of the
// tree of Checkpoint, and its RFC 6962 inclusion proof in that tree,
// checked against the signed root. The group commit that appended the
// entries holds every hash a proof of one of them needs, so proving them
// reads nothing from storage; other hashes are read from the stored tree.
func (a *Appended) InclusionProof(index int64) (Hash, []Hash, error) {
	size := a.Checkpoint.Size
	if index < 0 || index >= size {
		return Hash{}, nil, &InvalidError{Field: "index", Reason: fmt.Sprintf("index %d is not in a tree of size %d", index, size)}
	}
	var hr tlog.HashReader = a.hashes
	if hr == nil {
		if a.log == nil {
			return Hash{}, nil, errors.New("ledger: no tree to prove the append in")
		}
		hr = storedHashes{a.log}
	}
	var leaf Hash
	if i := index - a.First; i >= 0 && i < int64(len(a.LeafHashes)) {
		leaf = a.LeafHashes[i]
	} else {
		hs, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
		if err != nil {
			return Hash{}, nil, err
		}
		leaf = hs[0]
	}
	p, err := tlog.ProveRecord(size, index, hr)
	if err != nil {
		return Hash{}, nil, err
	}
	if err := tlog.CheckRecord(p, size, a.Checkpoint.Root, index, leaf); err != nil {
		return Hash{}, nil, &CorruptionError{What: "tile", Index: index, Detail: "inclusion proof does not verify against the signed root"}
	}
	return leaf, p, nil
}

// Appended describes entries first, first+1, ... of the published log,
// whose leaf data a commit reported (on another node of a replicated log,
// say), with the latest checkpoint, which must cover them. Nothing is read
// from storage; their inclusion proofs are read from the stored tiles.
func (l *Log) Appended(first int64, leaves [][]byte) (*Appended, error) {
	cp := l.Checkpoint()
	if first < 0 || len(leaves) == 0 || first+int64(len(leaves)) > cp.Size {
		return nil, fmt.Errorf("%w: entries %d to %d are not in the published log of size %d", ErrNotFound, first, first+int64(len(leaves))-1, cp.Size)
	}
	a := &Appended{First: first, Leaves: leaves, LeafHashes: make([]Hash, len(leaves)), Checkpoint: cp, log: l}
	for i, d := range leaves {
		a.LeafHashes[i] = tlog.RecordHash(d)
	}
	return a, nil
}

// Appender appends to a log kept on this node: it validates and prepares
// entries on the caller's goroutine, sequences them into group commits and
// commits each durably before it acknowledges its appends. It is safe for
// concurrent use. Its Log reads what it has committed.
//
// Durability contract: Append MUST NOT return an index until the leaf, its
// payload, the tree nodes it adds and a signed checkpoint covering it have
// been written in one atomic, synced storage batch.
//
// Goroutines: Open starts a sequencer, which orders appends and builds
// each group commit (leaves, tiles, checkpoint), a committer, which applies
// each batch to storage, and a syncer, which waits for each to be durable,
// in order, and then publishes it. Close stops intake, lets all three drain
// what was accepted and waits for them.
type Appender struct {
	*Log
	m      *machine
	intake struct {
		sync.RWMutex
		closed bool
	}
	reqs    chan *request
	slots   chan struct{} // one per batch between build and durability
	batches chan *batch
}

// Open opens the log kept in store for appends on this node, creating an
// empty one if store is empty. It reads only the latest checkpoint and the
// right edge of the tree, so its cost does not grow with the size of the
// log, and verifies that state: a bad signature, or tree hashes that do not
// match the signed root, return a *CorruptionError. With
// Options.HighWater, a store behind or not consistent with the high-water
// checkpoint returns a *RollbackError, and a non-empty store without one
// ErrNoHighWater.
//
// The Appender does not own store: close it first, then the store.
func Open(store storage.Store, opts Options) (*Appender, error) {
	l, m, err := openLog(store, opts)
	if err != nil {
		return nil, err
	}
	a := &Appender{
		Log:     l,
		m:       m,
		reqs:    make(chan *request, 1024),
		slots:   make(chan struct{}, l.opts.PipelineDepth),
		batches: make(chan *batch),
	}
	go a.sequence()
	go a.commit()
	return a, nil
}

// PipelineDepth returns how many group commits the Appender keeps in
// flight.
func (a *Appender) PipelineDepth() int { return a.opts.PipelineDepth }

// Append validates the entries, appends them with consecutive indexes and
// returns once they are durable, together with a signed checkpoint that
// covers them. Either every entry is appended or, on error, none is.
//
// An invalid entry returns an *InvalidError and nothing is written. The
// context bounds only the wait to join a batch: once accepted, entries are
// committed (or fail with the log) and Append waits for that outcome, so a
// returned error other than the context's means they were not appended.
//
// Under a context made by WithRequestID the append carries a request id,
// and applying it again (a retry) appends nothing and reports the first
// append.
func (a *Appender) Append(ctx context.Context, entries []Entry) (*Appended, error) {
	p, err := a.AppendAsync(ctx, entries)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Pending is an accepted append whose outcome is not known yet.
type Pending struct {
	req *request
	res *result
}

// Wait blocks until the append is durable or has failed; see Append. It
// may be called more than once, but not concurrently.
func (p *Pending) Wait() (*Appended, error) {
	if p.res == nil {
		r := <-p.req.done
		p.res = &r
	}
	return p.res.app, p.res.err
}

// AppendAsync is Append without the wait: it returns once the entries are
// validated and queued, and the Pending reports their outcome. A caller that
// keeps several appends in flight lets one group commit (one sync) serve
// more of them. Appends from one goroutine are sequenced in call order.
func (a *Appender) AppendAsync(ctx context.Context, entries []Entry) (*Pending, error) {
	req, err := a.prepare(entries, nextRequestID(ctx))
	if err != nil {
		return nil, err
	}
	req.done = make(chan result, 1)
	a.intake.RLock()
	defer a.intake.RUnlock()
	if a.intake.closed {
		return nil, ErrClosed
	}
	if err := a.failure(); err != nil {
		return nil, err
	}
	select {
	case a.reqs <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &Pending{req: req}, nil
}

// Write applies b, writes that are not appends (payload tombstones, say),
// to the log's store in order with the appends, and returns once it is
// durable.
func (a *Appender) Write(_ context.Context, b *storage.Batch) error {
	if err := a.failure(); err != nil {
		return err
	}
	if err := a.store.Write(b, true); err != nil {
		return fmt.Errorf("ledger: write: %w", err)
	}
	return nil
}

// prepare validates entries and does the per-entry work that needs no
// ordering (salt, commitment, sealing) on the caller's goroutine, so that it
// runs in parallel across callers.
func (l *Log) prepare(entries []Entry, requestID string) (*request, error) {
	if len(entries) == 0 {
		return nil, &InvalidError{Field: "entries", Reason: "at least one entry is required"}
	}
	if len(entries) > l.opts.MaxAppend {
		return nil, &InvalidError{Field: "entries", Reason: fmt.Sprintf("%d entries exceed the limit of %d per append", len(entries), l.opts.MaxAppend), Err: ErrTooLarge}
	}
	if err := CheckRequestID(requestID); err != nil {
		return nil, err
	}
	total := 0
	for _, e := range entries {
		total += len(e.Payload)
	}
	if total > l.opts.MaxAppendBytes && len(entries) > 1 {
		return nil, &InvalidError{Field: "entries", Reason: fmt.Sprintf("%d bytes of payloads exceed the limit of %d per append", total, l.opts.MaxAppendBytes), Err: ErrTooLarge}
	}
	now := l.opts.Now().UTC()
	req := &request{id: requestID, entries: make([]prepared, len(entries))}
	salts := make([]byte, SaltSize*len(entries))
	if _, err := io.ReadFull(l.opts.Rand, salts); err != nil {
		return nil, fmt.Errorf("ledger: read salt: %w", err)
	}
	field := func(i int, name string) string {
		if len(entries) == 1 {
			return name
		}
		return fmt.Sprintf("entries[%d].%s", i, name)
	}
	for i, e := range entries {
		if len(e.Payload) > l.opts.MaxPayload {
			return nil, &InvalidError{Field: field(i, "payload"), Reason: fmt.Sprintf("%d bytes exceed the limit of %d", len(e.Payload), l.opts.MaxPayload), Err: ErrTooLarge}
		}
		leaf := Leaf{Kind: e.Kind, Time: now, Tenant: e.Tenant, Encounter: e.Encounter, Actor: e.Actor}
		if err := leaf.validate(); err != nil {
			var ie *InvalidError
			if errors.As(err, &ie) {
				ie.Field = field(i, ie.Field)
			}
			return nil, err
		}
		p := &req.entries[i]
		p.leaf = leaf
		p.salt = salts[i*SaltSize : (i+1)*SaltSize]
		p.leaf.Commitment = Commit(p.salt, e.Payload)
		sealed, err := sealPayload(l.opts.Sealer, e.Kind, e.Tenant, e.Encounter, p.leaf.Commitment, e.Payload)
		if err != nil {
			return nil, fmt.Errorf("ledger: seal payload: %w", err)
		}
		p.record = make([]byte, 0, 1+SaltSize+len(sealed))
		p.record = append(append(append(p.record, payloadPresent), p.salt...), sealed...)
		req.bytes += len(p.record) + MaxLeafLen
	}
	return req, nil
}

// Close stops accepting appends, waits until every accepted append is
// durable (or has failed) and stops the Appender's goroutines. Reads still
// work after Close while the store stays open. Close is safe to call more
// than once.
func (a *Appender) Close() error {
	a.intake.Lock()
	if !a.intake.closed {
		a.intake.closed = true
		close(a.reqs)
	}
	a.intake.Unlock()
	<-a.done
	if a.hw != nil {
		return a.hw.close()
	}
	return nil
}

// sequence is the sequencer goroutine: it gathers waiting requests into
// batches and builds each one. It builds a batch only when fewer than
// Options.PipelineDepth batches are waiting for their sync, so that appends
// arriving during a sync accumulate into the next group commit instead of
// trickling out as many small ones.
func (a *Appender) sequence() {
	defer close(a.batches)
	for {
		r, ok := <-a.reqs
		if !ok {
			return
		}
		a.slots <- struct{}{} // released by the syncer
		b := &batch{reqs: []*request{r}}
		entries, bytes := len(r.entries), r.bytes
		open := true
	gather:
		for open && entries < a.opts.MaxBatchEntries && bytes < a.opts.MaxBatchBytes {
			select {
			case r, ok := <-a.reqs:
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
		if err := a.failure(); err != nil {
			b.fail(err)
			<-a.slots
		} else if err := a.m.build(b); err != nil {
			// The in-memory state may be half-updated: stop the log.
			b.fail(a.setFailed(err))
			<-a.slots
		} else {
			a.batches <- b
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
func (a *Appender) commit() {
	synced := make(chan inflight, a.opts.PipelineDepth)
	done := make(chan struct{})
	go a.syncer(synced, done)
	aw, async := a.store.(storage.AsyncWriter)
	for b := range a.batches {
		if err := a.failure(); err != nil {
			b.fail(err)
			<-a.slots
			continue
		}
		var wait func() error
		var err error
		if async {
			wait, err = aw.WriteAsync(&b.ops)
		} else {
			err = a.store.Write(&b.ops, true)
		}
		if err != nil {
			b.fail(a.setFailed(err))
			<-a.slots
			continue
		}
		synced <- inflight{b: b, wait: wait}
	}
	close(synced)
	<-done
	close(a.done)
}

// syncer waits for each applied batch to become durable, in order, hands
// its checkpoint to the high-water mark's writer, and passes it on to the
// publisher.
func (a *Appender) syncer(in <-chan inflight, done chan<- struct{}) {
	durable := make(chan *batch, a.opts.PipelineDepth)
	published := make(chan struct{})
	go a.publisher(durable, published)
	defer func() {
		close(durable)
		<-published
		close(done)
	}()
	for f := range in {
		err := a.failure()
		if err == nil && f.wait != nil {
			if werr := f.wait(); werr != nil {
				err = a.setFailed(werr)
			}
		}
		if err == nil && a.hw != nil {
			if werr := a.hw.handOver(f.b.cp); werr != nil {
				err = a.setFailed(fmt.Errorf("high-water checkpoint: %w", werr))
			}
		}
		if err != nil {
			f.b.fail(err)
			<-a.slots
			continue
		}
		a.m.committedBatch.Store(f.b.no)
		durable <- f.b
	}
}

// publisher publishes each durable batch, in order, once the high-water
// mark holds the checkpoint of the batch before it, and acknowledges its
// requests.
func (a *Appender) publisher(in <-chan *batch, done chan<- struct{}) {
	defer close(done)
	prev := a.Checkpoint().Size
	for b := range in {
		err := a.failure()
		if err == nil && a.hw != nil {
			if werr := a.hw.stored(prev); werr != nil {
				err = a.setFailed(fmt.Errorf("high-water checkpoint: %w", werr))
			}
		}
		if err != nil {
			b.fail(err)
			<-a.slots
			continue
		}
		prev = b.cp.Size
		a.publish(b)
		a.Log.finish(b)
		<-a.slots
	}
}

// finish reports the outcome of each request of a published batch.
func (l *Log) finish(b *batch) {
	for _, r := range b.reqs {
		switch {
		case r.err != nil:
			r.finish(result{err: r.err})
		case r.dup != nil:
			r.finish(l.repeated(r.dup, b.cp))
		default:
			app := r.app
			app.Checkpoint = b.cp
			app.log = l
			r.finish(result{app: &app})
		}
	}
}
