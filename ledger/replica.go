package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// Replication splits an append in two. Preparing it (validation, salts,
// the recorded time, commitments, sealing) is the only part that draws
// randomness or reads a clock; it runs once, on the node that received the
// append (Replica.Prepare). Applying it (indexes, chain links, tree hashes,
// the checkpoint signature) is deterministic: every node that applies the
// same proposals in the same order at the same replication indexes stores
// byte-identical state and signs byte-identical checkpoints (Ed25519
// signatures are deterministic). A consensus layer orders proposals between
// the two halves and calls Apply on every node; package cluster does it
// with raft. The ledger knows nothing of it: it is a seam, not a callback.

// Replica is a log whose appends are ordered by a replicated log: the
// replication seam. Prepare turns entries into a Proposal on the node that
// received them; the consensus layer agrees on an order of proposals and
// writes, and every node applies them with Apply, ApplyWrite and
// ApplyPurge, in that order, at increasing replication indexes. Its Log
// reads what was applied.
//
// Durability contract: the consensus layer MUST hold every command it
// applies durably (a quorum's fsynced raft logs) before it calls Apply, and
// MUST apply again, after a restart, every command after the last
// replication index whose state is durable here. The Replica therefore
// publishes what it applies at once and syncs its store in groups (every
// Options.SyncInterval, and when Sync is called): a crash loses at most
// what the consensus layer applies again. A snapshot of the store is taken
// only after a Sync, so a consensus log compacted up to a snapshot never
// loses a command the store lacks.
//
// Apply, ApplyWrite, ApplyPurge, Restore, ResetApplied and Close must not
// be called concurrently with each other; the other methods may.
//
// Goroutines: OpenReplica starts one, which syncs the store at most
// Options.SyncInterval after a batch is written. Close syncs, stops it and
// waits.
type Replica struct {
	*Log
	m      *machine
	sy     storage.Syncer // nil: every batch is written synced
	closed bool

	written struct { // the last batch written to the store
		sync.Mutex
		no uint64
		cp *Checkpoint
	}
	syncMu sync.Mutex // serializes syncs
	synced uint64     // the last batch no. synced; guarded by syncMu
	dirty  chan struct{}
	stop   chan struct{}
	looped chan struct{}
}

// OpenReplica opens the log kept in store for a replicated log; see Open
// for what it checks. Its AppliedIndex is the last replication index the
// store holds durably.
func OpenReplica(store storage.Store, opts Options) (*Replica, error) {
	l, m, err := openLog(store, opts)
	if err != nil {
		return nil, err
	}
	r := &Replica{Log: l, m: m, dirty: make(chan struct{}, 1), stop: make(chan struct{}), looped: make(chan struct{})}
	r.sy, _ = store.(storage.Syncer)
	r.written.cp = m.cp
	go r.syncLoop()
	return r, nil
}

// Proposal is a prepared append on its way to being applied: its entries'
// leaf fields (without chain links), recorded time, commitments and stored
// payload records are fixed. It is what a replicated log agrees on.
type Proposal struct {
	// RequestID, when not empty, makes the append idempotent: applying a
	// proposal whose id was applied before (within Options.RequestIDWindow
	// entries) appends nothing and reports the earlier append.
	RequestID string
	entries   []prepared
	bytes     int
}

// Len returns the number of entries of the proposal.
func (p *Proposal) Len() int { return len(p.entries) }

// Size returns the approximate bytes the proposal adds to the log.
func (p *Proposal) Size() int { return p.bytes }

// Prepare validates entries and prepares them for Apply: the request id of
// ctx (WithRequestID), the recorded time, salts, commitments and sealed
// payloads. An invalid entry returns an *InvalidError.
func (r *Replica) Prepare(ctx context.Context, entries []Entry) (*Proposal, error) {
	if err := r.failure(); err != nil {
		return nil, err
	}
	req, err := r.prepare(entries, nextRequestID(ctx))
	if err != nil {
		return nil, err
	}
	return &Proposal{RequestID: req.id, entries: req.entries, bytes: req.bytes}, nil
}

// Proposal encoding, version 1 (docs/formats.md, "Raft commands"):
//
//	version (1) = 1
//	request id length (1), request id
//	entry count (4, BE)
//	per entry: leaf length (2, BE), leaf data with seq 0 and prev zero;
//	           record length (4, BE), payload record
const proposalVersion = 1

// maxRecordLen bounds a payload record in a proposal: the 1 MiB default
// payload cap is configurable, so this is a sanity bound, not a policy.
const maxRecordLen = 64 << 20

// AppendBinary appends the encoding of p to b.
func (p *Proposal) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, proposalVersion, byte(len(p.RequestID)))
	b = append(b, p.RequestID...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.entries)))
	for i := range p.entries {
		e := &p.entries[i]
		leaf := e.leaf
		leaf.Seq, leaf.Prev = 0, Hash{}
		n := len(b)
		b = append(b, 0, 0)
		b = leaf.appendTo(b)
		binary.BigEndian.PutUint16(b[n:], uint16(len(b)-n-2))
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.record)))
		b = append(b, e.record...)
	}
	return b, nil
}

// ParseProposal decodes one proposal from the start of data and returns it
// with the bytes that follow it. Parsing is strict: every leaf must decode
// (docs/formats.md) with seq 0 and no previous hash, lengths must be in
// range and the record must start with the present marker and a salt.
func ParseProposal(data []byte) (*Proposal, []byte, error) {
	bad := func(what string) (*Proposal, []byte, error) {
		return nil, nil, fmt.Errorf("ledger: malformed proposal: %s", what)
	}
	if len(data) < 2 || data[0] != proposalVersion {
		return bad("version")
	}
	n := int(data[1])
	data = data[2:]
	if n > MaxRequestIDLen || len(data) < n+4 {
		return bad("request id")
	}
	p := &Proposal{RequestID: string(data[:n])}
	if err := CheckRequestID(p.RequestID); err != nil {
		return bad("request id")
	}
	data = data[n:]
	count := binary.BigEndian.Uint32(data)
	data = data[4:]
	if count == 0 || uint64(count) > uint64(len(data))/(2+4) {
		return bad("entry count")
	}
	p.entries = make([]prepared, count)
	for i := range p.entries {
		if len(data) < 2 {
			return bad("truncated leaf")
		}
		ln := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+ln+4 {
			return bad("truncated leaf")
		}
		leaf, err := DecodeLeaf(data[2 : 2+ln])
		if err != nil || leaf.Seq != 0 || leaf.Prev != (Hash{}) {
			return bad("leaf")
		}
		data = data[2+ln:]
		rn := binary.BigEndian.Uint32(data)
		data = data[4:]
		if rn > maxRecordLen || uint64(len(data)) < uint64(rn) || rn < 1+SaltSize {
			return bad("payload record")
		}
		rec := data[:rn:rn]
		if rec[0] != payloadPresent {
			return bad("payload record")
		}
		data = data[rn:]
		p.entries[i] = prepared{leaf: *leaf, salt: rec[1 : 1+SaltSize], record: rec}
		p.bytes += len(rec) + MaxLeafLen
	}
	return p, data, nil
}

// Outcome is what became of one applied proposal: its entries, or the
// reason nothing was appended (a request id reused for another append).
type Outcome struct {
	Appended *Appended
	Err      error
}

// AppliedIndex returns the replication index of the last command applied,
// or read from the store at open, or 0.
func (r *Replica) AppliedIndex() uint64 {
	r.Log.mu.RLock()
	defer r.Log.mu.RUnlock()
	return r.Log.mu.applied
}

// WaitApplied blocks until AppliedIndex is at least index, the context is
// done, or the log is closed or failed.
func (r *Replica) WaitApplied(ctx context.Context, index uint64) error {
	l := r.Log
	for {
		l.mu.RLock()
		applied, changed, failed := l.mu.applied, l.mu.changed, l.mu.failed
		l.mu.RUnlock()
		if applied >= index {
			return nil
		}
		if failed != nil {
			return failed
		}
		select {
		case <-changed:
		case <-l.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// begin checks that a command at replication index may be applied: it
// returns false for one applied before (a replay after a restart).
func (r *Replica) begin(index uint64) (bool, error) {
	if r.closed {
		return false, ErrClosed
	}
	if index <= r.m.applied {
		return false, nil
	}
	if err := r.failure(); err != nil {
		return false, err
	}
	return true, nil
}

// Apply appends proposals, in order, as one group commit at replication
// index index, and returns once it is published: readers see it and each
// Outcome reports one proposal. It is deterministic: nodes that apply the
// same proposals at the same indexes store the same state. An index at or
// below AppliedIndex was applied before (a replay after a restart) and
// returns (nil, nil). An error means the log failed or closed: it applies
// nothing more.
func (r *Replica) Apply(index uint64, ps []*Proposal) ([]Outcome, error) {
	ok, err := r.begin(index)
	if !ok {
		return nil, err
	}
	b := &batch{reqs: make([]*request, len(ps)), index: index}
	for i, p := range ps {
		b.reqs[i] = &request{id: p.RequestID, entries: p.entries, bytes: p.bytes}
	}
	r.m.applied = index
	if err := r.m.build(b); err != nil {
		return nil, r.setFailed(err)
	}
	if err := r.commit(b); err != nil {
		return nil, err
	}
	r.Log.finish(b)
	out := make([]Outcome, len(b.reqs))
	for i, q := range b.reqs {
		out[i] = Outcome{Appended: q.res.app, Err: q.res.err}
	}
	return out, nil
}

// WriteOp is one operation of a replicated write that appends nothing
// (ApplyWrite): a blob chunk, a wrapped data key, a payload tombstone.
type WriteOp struct {
	Key, Value []byte
	Delete     bool
	// CreateOnly sets the key only if it is absent: the first writer
	// wins, and ApplyWrite counts the op as a conflict.
	CreateOnly bool
}

// ApplyWrite applies a replicated write that appends nothing at
// replication index index, in order with the appends; see Apply. It
// returns how many CreateOnly ops lost to an existing key. ops may be
// empty, which only records the index (a command every node rejects
// alike).
func (r *Replica) ApplyWrite(index uint64, ops []WriteOp) (conflicts int, err error) {
	ok, err := r.begin(index)
	if !ok {
		return 0, err
	}
	b := &batch{index: index}
	for _, op := range ops {
		switch {
		case op.Delete:
			b.ops.Delete(op.Key)
		case op.CreateOnly:
			// Every earlier command is written, so every node decides
			// alike.
			if _, gerr := r.store.Get(op.Key); gerr == nil {
				conflicts++
				continue
			} else if !errors.Is(gerr, storage.ErrNotFound) {
				return 0, r.setFailed(gerr)
			}
			b.ops.Set(op.Key, op.Value)
		default:
			b.ops.Set(op.Key, op.Value)
		}
	}
	r.m.applied = index
	r.m.buildWrite(b)
	if err := r.commit(b); err != nil {
		return 0, err
	}
	return conflicts, nil
}

// ApplyPurge physically erases every key that starts with prefix
// (storage.Purger; a store that cannot purge deletes the keys) at
// replication index index, in order with the appends; see Apply.
func (r *Replica) ApplyPurge(index uint64, prefix []byte) error {
	ok, err := r.begin(index)
	if !ok {
		return err
	}
	if len(prefix) == 0 {
		return r.setFailed(errors.New("ledger: an empty purge prefix"))
	}
	if err := r.Sync(); err != nil {
		return err
	}
	b := &batch{index: index}
	if p, ok := r.store.(storage.Purger); ok {
		if err := p.Purge(prefix); err != nil {
			return r.setFailed(err)
		}
	} else {
		end := storage.PrefixEnd(prefix)
		err := r.store.Scan(prefix, end, func(k, _ []byte) error {
			b.ops.Delete(append([]byte(nil), k...))
			return nil
		})
		if err != nil {
			return r.setFailed(err)
		}
	}
	r.m.applied = index
	r.m.buildWrite(b)
	return r.commit(b)
}

// commit writes a built batch and publishes it.
func (r *Replica) commit(b *batch) error {
	if err := r.store.Write(&b.ops, r.sy == nil); err != nil {
		return r.setFailed(err)
	}
	r.m.committedBatch.Store(b.no)
	if r.sy == nil && r.hw != nil {
		if err := r.hw.handOver(b.cp); err != nil {
			return r.setFailed(fmt.Errorf("high-water checkpoint: %w", err))
		}
	}
	r.written.Lock()
	r.written.no, r.written.cp = b.no, b.cp
	r.written.Unlock()
	r.publish(b)
	select {
	case r.dirty <- struct{}{}:
	default:
	}
	return nil
}

// Sync makes everything applied so far durable in the store and moves the
// high-water mark up to it.
func (r *Replica) Sync() error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.written.Lock()
	no, cp := r.written.no, r.written.cp
	r.written.Unlock()
	if no <= r.synced || r.sy == nil {
		return r.failure()
	}
	if err := r.sy.Sync(); err != nil {
		return r.setFailed(fmt.Errorf("sync: %w", err))
	}
	if r.hw != nil {
		if err := r.hw.handOver(cp); err != nil {
			return r.setFailed(fmt.Errorf("high-water checkpoint: %w", err))
		}
	}
	r.synced = no
	return nil
}

// syncLoop syncs the store at most Options.SyncInterval after a batch is
// written.
func (r *Replica) syncLoop() {
	defer close(r.looped)
	for {
		select {
		case <-r.dirty:
		case <-r.stop:
			return
		}
		select {
		case <-time.After(r.opts.SyncInterval):
		case <-r.stop:
			return
		}
		r.Sync() // a failure is recorded in the log
	}
}

// ResetApplied starts a new replication history on an existing log: the
// applied index goes back to 0, so that a new consensus log, whose indexes
// start again at 1, is applied rather than taken for a replay. The entries
// stay. Call it only before the first Apply, when a new cluster is
// bootstrapped from this log (a single node's, or a restored backup's).
func (r *Replica) ResetApplied() error {
	if r.m.applied == 0 {
		return nil
	}
	applied := r.m.applied
	r.m.applied = 0
	var b storage.Batch
	b.Set([]byte(keyApplied), r.m.appliedRecord())
	if err := r.store.Write(&b, true); err != nil {
		r.m.applied = applied
		return fmt.Errorf("ledger: reset the applied index: %w", err)
	}
	r.Log.mu.Lock()
	r.Log.mu.applied = 0
	r.Log.mu.Unlock()
	return nil
}

// Close syncs what was applied, stops the Replica's goroutine and applies
// nothing more. Reads still work after Close while the store stays open.
// Close is safe to call more than once.
func (r *Replica) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	close(r.stop)
	<-r.looped
	err := r.Sync()
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	close(r.done)
	if r.hw != nil {
		if herr := r.hw.close(); err == nil {
			err = herr
		}
	}
	return err
}
