package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// Replication splits an append in two. Preparing it (validation, salts,
// the recorded time, commitments, sealing) is the only part that draws
// randomness or reads a clock; it runs once, on the node that received the
// append. Applying it (indexes, chain links, tree hashes, the checkpoint
// signature) is deterministic: every node that applies the same proposals
// in the same order at the same replication indexes stores byte-identical
// state and signs byte-identical checkpoints (Ed25519 signatures are
// deterministic). A consensus layer (package cluster) orders proposals
// between the two halves; a single node orders them with its own
// sequencer goroutine.

// Replicator orders the appends of a Log whose log is replicated. The Log
// hands it every prepared append; the replicator has it applied, through
// Log.Apply, on every node in one agreed order, and reports the outcome.
//
// Implementations MUST NOT report success until the proposal has been
// applied durably as far as their replication protocol promises (for
// package cluster: committed by a quorum of fsynced logs and durable in
// this node's store).
type Replicator interface {
	// Replicate submits p and returns a function that waits for its
	// outcome. It returns an error only when p was not submitted. The
	// context bounds the submission, not the wait.
	Replicate(ctx context.Context, p *Proposal) (wait func() (*Appended, error), err error)
	// Write applies b, a write that is not an append (payload
	// tombstones), on every node through the replicated log, in order
	// with the appends, and returns once it is durable on this node.
	Write(ctx context.Context, b *storage.Batch) error
}

// MaxRequestIDLen bounds a request id.
const MaxRequestIDLen = 64

// requestScope carries a request id through a context; see WithRequestID.
type requestScope struct {
	id string
	n  atomic.Int64
}

// WithRequestID returns a context whose appends carry request ids derived
// from id, so that a retried request is recorded once: the first append
// made under the context has the id itself, the next id#1, id#2 and so on,
// in call order. A retry that repeats the request's appends in the same
// order therefore repeats their ids. Ids are 1 to 64 bytes.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestScopeKey{}, &requestScope{id: id})
}

type requestScopeKey struct{}

// nextRequestID returns the request id of the next append under ctx, or "".
func nextRequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestScopeKey{}).(*requestScope)
	if s == nil {
		return ""
	}
	n := s.n.Add(1) - 1
	if n == 0 {
		return s.id
	}
	return s.id + "#" + strconv.FormatInt(n, 10)
}

func checkRequestID(id string) error {
	if len(id) > MaxRequestIDLen {
		return &InvalidError{Field: "request_id", Reason: fmt.Sprintf("longer than %d bytes", MaxRequestIDLen)}
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return &InvalidError{Field: "request_id", Reason: "must be printable ASCII without spaces"}
		}
	}
	return nil
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

// Proposal encoding, version 1:
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
	if err := checkRequestID(p.RequestID); err != nil {
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

func (p *Proposal) request() *request {
	return &request{id: p.RequestID, entries: p.entries, bytes: p.bytes, done: make(chan result, 1)}
}

// Storage of replication state (docs/formats.md):
//
//	'a'                    -> applied replication index (8) || request ids pruned below leaf (8)
//	'r' request id         -> first index (8) || entry count (4)
//	'q' first index (8)    -> request id: the age index that pruning walks
const (
	keyApplied     = "a"
	prefixRequest  = 'r'
	prefixReqAge   = 'q'
	requestRecLen  = 8 + 4
	maxPrunePerRun = 1024
)

func requestKey(id string) []byte { return append([]byte{prefixRequest}, id...) }

func reqAgeKey(first int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixReqAge}, uint64(first))
}

// requestRecord is where an applied request's entries are.
type requestRecord struct {
	first int64
	count int
	batch uint64 // the batch that recorded it; 0 once read from storage
}

func (s *sequencerState) loadApplied() error {
	data, err := s.log.store.Get([]byte(keyApplied))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: read replication state: %w", err)
	}
	if len(data) != 16 {
		return &CorruptionError{What: "state", Index: -1, Detail: "malformed replication state record"}
	}
	s.applied = binary.BigEndian.Uint64(data)
	s.pruned = int64(binary.BigEndian.Uint64(data[8:]))
	return nil
}

func (s *sequencerState) appliedRecord() []byte {
	b := binary.BigEndian.AppendUint64(nil, s.applied)
	return binary.BigEndian.AppendUint64(b, uint64(s.pruned))
}

// lookupRequest returns the live record of request id, if any.
func (s *sequencerState) lookupRequest(id string) (*requestRecord, error) {
	rec := s.requests[id]
	if rec == nil {
		var err error
		if rec, err = s.log.storedRequest(id); rec == nil {
			return nil, err
		}
	}
	if rec.first < s.size-s.log.opts.RequestIDWindow {
		return nil, nil // expired: the id may be used again
	}
	return rec, nil
}

// recordRequest notes that request r's entries start at first.
func (s *sequencerState) recordRequest(b *batch, id string, first int64, count int) {
	if len(s.requests) >= maxHeads {
		done := s.committedBatch.Load()
		for k, rec := range s.requests {
			if rec.batch <= done {
				delete(s.requests, k)
			}
			if len(s.requests) < maxHeads*9/10 {
				break
			}
		}
	}
	s.requests[id] = &requestRecord{first: first, count: count, batch: b.no}
	v := binary.BigEndian.AppendUint64(nil, uint64(first))
	v = binary.BigEndian.AppendUint32(v, uint32(count))
	b.ops.Set(requestKey(id), v)
	b.ops.Set(reqAgeKey(first), []byte(id))
}

// pruneRequests deletes request id records that have left the window, at
// most maxPrunePerRun per batch. The records it reads were written more
// than RequestIDWindow entries ago, so they are durable on every node and
// pruning is as deterministic as the rest of build.
func (s *sequencerState) pruneRequests(b *batch) error {
	limit := s.size - s.log.opts.RequestIDWindow
	if limit <= s.pruned {
		return nil
	}
	n := 0
	next := limit
	err := s.log.store.Scan(reqAgeKey(s.pruned), reqAgeKey(limit), func(k, v []byte) error {
		if n == maxPrunePerRun {
			next = int64(binary.BigEndian.Uint64(k[1:]))
			return errStopScan
		}
		n++
		first := int64(binary.BigEndian.Uint64(k[1:]))
		b.ops.Delete(append([]byte(nil), k...))
		id := string(v)
		if rec := s.requests[id]; rec != nil {
			if rec.first == first {
				delete(s.requests, id)
				b.ops.Delete(requestKey(id))
			}
			return nil
		}
		data, err := s.log.store.Get(requestKey(id))
		if err == nil && len(data) == requestRecLen && int64(binary.BigEndian.Uint64(data)) == first {
			b.ops.Delete(requestKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	s.pruned = next
	return nil
}

var errStopScan = errors.New("stop")

// Applying is a group commit handed to the log by Apply or ApplyWrite. Its
// outcome is known once it is durable.
type Applying struct {
	b *batch
}

// Wait blocks until the batch is durable or has failed and returns the
// outcome of its i'th proposal.
func (a *Applying) Wait(i int) (*Appended, error) {
	<-a.b.finished
	r := a.b.reqs[i].res
	return r.app, r.err
}

// Done blocks until the batch is durable or has failed, and returns the
// log's failure if it failed.
func (a *Applying) Done() error {
	<-a.b.finished
	return a.b.err
}

// AppliedIndex returns the replication index of the last proposal or write
// applied (handed to Apply or ApplyWrite, or read from storage at Open),
// or 0. It may run ahead of what is durable; Wait on the Applying for
// durability.
func (l *Log) AppliedIndex() uint64 {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	return l.seq.applied
}

// Apply appends proposals, in order, as one group commit at replication
// index index, and returns at once; the Applying reports the outcome. It is
// deterministic: nodes that apply the same proposals at the same indexes
// store the same state. An index at or below AppliedIndex was applied
// before (a replay after a restart) and returns (nil, nil).
//
// Apply is for logs opened with a Replicator. Calls must not overlap.
func (l *Log) Apply(index uint64, ps []*Proposal) (*Applying, error) {
	reqs := make([]*request, len(ps))
	for i, p := range ps {
		reqs[i] = p.request()
	}
	return l.applyBatch(index, &batch{reqs: reqs})
}

// ApplyWrite applies a replicated write that is not an append, such as
// a blob's chunks or a wrapped data key, at replication index index, in
// order with the appends. It is otherwise like Apply; b may be empty,
// which only records the index.
func (l *Log) ApplyWrite(index uint64, b *storage.Batch) (*Applying, error) {
	nb := &batch{write: true}
	if b != nil {
		nb.ops.Ops = append(nb.ops.Ops, b.Ops...)
	}
	return l.applyBatch(index, nb)
}

// ResetApplied starts a new replication history on an existing log: the
// applied index goes back to 0, so that a new consensus log, whose indexes
// start again at 1, is applied rather than taken for a replay. The entries
// stay. Call it only before the first Apply, when a new cluster is
// bootstrapped from this log (a single node's, or a restored backup's).
func (l *Log) ResetApplied() error {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if l.seq.applied == 0 {
		return nil
	}
	applied := l.seq.applied
	l.seq.applied = 0
	var b storage.Batch
	b.Set([]byte(keyApplied), l.seq.appliedRecord())
	if err := l.store.Write(&b, true); err != nil {
		l.seq.applied = applied
		return fmt.Errorf("ledger: reset the applied index: %w", err)
	}
	l.mu.Lock()
	l.mu.applied = 0
	l.mu.Unlock()
	return nil
}

// Applied returns the replication index of the last batch that is
// durable and published on this node, or 0 for a log without a Replicator.
func (l *Log) Applied() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.applied
}

// WaitApplied blocks until Applied is at least index, the context is done,
// or the log is closed or failed.
func (l *Log) WaitApplied(ctx context.Context, index uint64) error {
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
		case <-l.committed:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *Log) applyBatch(index uint64, b *batch) (*Applying, error) {
	if l.opts.Replicator == nil {
		return nil, errors.New("ledger: Apply needs a log opened with a Replicator")
	}
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if l.applyClosed {
		return nil, ErrClosed
	}
	if index <= l.seq.applied {
		return nil, nil
	}
	if err := l.failure(); err != nil {
		return nil, err
	}
	b.finished = make(chan struct{})
	b.index = index
	l.slots <- struct{}{} // released by the syncer
	l.seq.applied = index
	var err error
	if b.write {
		err = l.seq.buildWrite(b)
	} else {
		err = l.seq.build(b)
	}
	if err != nil {
		// The in-memory state may be half-updated: stop the log.
		err = l.setFailed(err)
		b.fail(err)
		<-l.slots
		return nil, err
	}
	l.batches <- b
	return &Applying{b: b}, nil
}

// buildWrite turns a replicated write into a batch: its operations and the
// replication state; the checkpoint does not change.
func (s *sequencerState) buildWrite(b *batch) error {
	s.batchNo++
	b.no = s.batchNo
	b.ops.Set([]byte(keyApplied), s.appliedRecord())
	b.cp = s.cp
	b.partial = s.partial()
	return nil
}

// Reload rereads the log's state from its store after the store's contents
// were replaced (a replication snapshot was installed). Every Applying must
// be done first, and no Apply may run concurrently.
func (l *Log) Reload() error {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	cp, err := l.loadState()
	if err != nil {
		return err
	}
	// Full tiles never change and the snapshot is of the same log, so the
	// tile cache stays valid.
	var seq sequencerState
	if err := seq.init(l, cp); err != nil {
		return err
	}
	if l.hw != nil {
		// A snapshot is installed only on a member behind it, so the mark
		// only moves forward (advance ignores an older checkpoint).
		if err := l.hw.advance(cp); err != nil {
			return err
		}
	}
	seq.batchNo = l.seq.batchNo
	seq.committedBatch.Store(l.seq.committedBatch.Load())
	l.seq.size, l.seq.edge, l.seq.heads, l.seq.cp = seq.size, seq.edge, seq.heads, seq.cp
	l.seq.requests, l.seq.applied, l.seq.pruned = seq.requests, seq.applied, seq.pruned
	l.publish(cp, seq.partial(), seq.applied)
	return nil
}

// Store returns the store the log keeps its state in. A replication layer
// reads it to make snapshots and writes it to install them (then calls
// Reload); nothing else should write it.
func (l *Log) Store() storage.Store { return l.store }

// storedRequest reads request id's record from the store: nil without an
// error when there is none.
func (l *Log) storedRequest(id string) (*requestRecord, error) {
	data, err := l.store.Get(requestKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read request id: %w", err)
	}
	if len(data) != requestRecLen {
		return nil, &CorruptionError{What: "state", Index: -1, Detail: "malformed request id record"}
	}
	return &requestRecord{first: int64(binary.BigEndian.Uint64(data)), count: int(binary.BigEndian.Uint32(data[8:]))}, nil
}

// repeated reports the earlier append of a repeated request id. Its entries
// are durable: they were applied in this batch or an earlier one.
func (l *Log) repeated(rec *requestRecord, cp *Checkpoint) result {
	app := &Appended{First: rec.first, Leaves: make([][]byte, rec.count), LeafHashes: make([]Hash, rec.count), Checkpoint: cp}
	for i := range rec.count {
		e, err := l.readEntry(rec.first + int64(i))
		if err != nil {
			return result{err: err}
		}
		app.Leaves[i], app.LeafHashes[i] = e.Data, e.Hash
	}
	return result{app: app}
}

// Repeated reports the earlier append of the request id that the next
// Append under ctx would carry (see WithRequestID), when that append is
// durable and published on this log and still within
// Options.RequestIDWindow; otherwise it returns nil. A service whose
// validation depends on the state its own writes change (a segment id
// already recorded, say) asks it before validating a retried request, and
// reports the earlier append instead of refusing the retry. Without it the
// log still appends a retried request only once, when it is applied.
func (l *Log) Repeated(ctx context.Context) (*Appended, error) {
	s, _ := ctx.Value(requestScopeKey{}).(*requestScope)
	if s == nil {
		return nil, nil
	}
	id := s.id
	if n := s.n.Load(); n > 0 {
		id += "#" + strconv.FormatInt(n, 10)
	}
	rec, err := l.storedRequest(id)
	if rec == nil {
		return nil, err
	}
	cp := l.Checkpoint()
	if rec.first+int64(rec.count) > cp.Size || rec.first < cp.Size-l.opts.RequestIDWindow {
		return nil, nil
	}
	r := l.repeated(rec, cp)
	return r.app, r.err
}
