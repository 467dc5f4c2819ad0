package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// Options configure a Log. Origin and Key are required.
type Options struct {
	// Origin names the log in its checkpoints, e.g. "evidence.example.org/log".
	Origin string
	// Key signs checkpoints. Its name must be Origin.
	Key *Key
	// Sealer protects payloads at rest. Nil stores them as they are.
	Sealer Sealer
	// MaxPayload caps one entry's payload. Default 1 MiB.
	MaxPayload int
	// MaxAppend and MaxAppendBytes cap one Append call: 10,000 entries
	// and 4 MiB of payloads by default.
	MaxAppend      int
	MaxAppendBytes int
	// MaxBatchEntries and MaxBatchBytes cap one group commit. Defaults
	// 8,192 entries and 4 MiB, which keep a batch within one badger
	// transaction. A whole Append always shares one batch, so one large
	// Append may exceed them.
	MaxBatchEntries int
	MaxBatchBytes   int
	// PipelineDepth is how many group commits may be in flight at once,
	// built or applied and waiting for their sync. More overlaps the
	// log's work with the storage's syncs; fewer makes larger batches.
	// Default 4.
	PipelineDepth int
	// TileCache is the number of full tiles kept in memory for proofs.
	// Default 4,096 (about 64 MiB).
	TileCache int
	// Now returns the time recorded in new entries. Default time.Now.
	Now func() time.Time
	// Rand supplies payload salts. Default crypto/rand.Reader.
	Rand io.Reader
	// Replicator, when set, orders appends across a cluster: Append
	// prepares entries and hands them to it, and they are applied through
	// Apply. Nil orders them on this node (the default).
	Replicator Replicator
	// RequestIDWindow is how many entries a request id is remembered
	// for: a repeat applied within that many entries of the original is
	// recognised. Default 1,048,576.
	RequestIDWindow int64
	// HighWater, when set, keeps the latest published checkpoint outside
	// the store (see HighWater): Open refuses a store that is behind it
	// or not consistent with it, and the log keeps it up to date.
	HighWater HighWater
}

func (o *Options) setDefaults() {
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1 << 20
	}
	if o.MaxAppend <= 0 {
		o.MaxAppend = 10_000
	}
	if o.MaxAppendBytes <= 0 {
		o.MaxAppendBytes = 4 << 20
	}
	if o.MaxBatchEntries <= 0 {
		o.MaxBatchEntries = 8192
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 4 << 20
	}
	if o.PipelineDepth <= 0 {
		o.PipelineDepth = 4
	}
	if o.TileCache == 0 {
		o.TileCache = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Sealer == nil {
		o.Sealer = plainSealer{}
	}
	if o.RequestIDWindow <= 0 {
		o.RequestIDWindow = 1 << 20
	}
}

// Entry is what a caller appends: the leaf fields it chooses and the
// payload. The log assigns the index, time, chain link and commitment.
type Entry struct {
	Kind      Kind
	Tenant    string
	Encounter string
	Actor     string
	Payload   []byte
}

// Appended describes entries appended by one Append call. They have the
// consecutive indexes First, First+1, ...
type Appended struct {
	First      int64
	Leaves     [][]byte // leaf data, as hashed
	LeafHashes []Hash
	// Checkpoint is the signed checkpoint of the group commit that made
	// the entries durable. It covers every one of them.
	Checkpoint *Checkpoint
}

// Log is the verifiable append-only log. It is safe for concurrent use.
//
// Goroutines: Open starts a sequencer, which orders appends and computes
// leaves, tree hashes and checkpoints, and a committer, which writes and
// syncs each batch and then publishes it. Close stops intake, lets both
// drain everything already accepted and waits for them. With a Replicator
// there is no sequencer: the caller of Apply (the replication layer's
// apply loop) builds batches, and Close waits for the committer.
type Log struct {
	store  storage.Store
	opts   Options
	cache  *tileCache
	reads  *committedReader
	intake struct {
		sync.RWMutex
		closed bool
	}
	reqs      chan *request
	slots     chan struct{} // one per batch between build and durability
	batches   chan *batch
	committed chan struct{} // closed when the committer has exited

	mu struct {
		sync.RWMutex
		cp      *Checkpoint
		partial *partialTile  // the unstored last bottom tile of cp's tree
		failed  error         // set once a batch could not be made durable
		applied uint64        // replication index of the last published batch
		changed chan struct{} // closed and replaced when cp changes
	}

	seq sequencerState // owned by the sequencer goroutine, or by Apply under applyMu

	applyMu     sync.Mutex // serializes Apply, ApplyWrite, Reload and Close with a Replicator
	applyClosed bool

	hw *highWater // nil without Options.HighWater
}

// Open opens the log kept in store, creating an empty one if store is
// empty. It reads only the latest checkpoint and the right edge of the tree,
// so its cost does not grow with the size of the log. It verifies that
// state: a bad signature, or tree hashes that do not match the signed root,
// return a *CorruptionError. With Options.HighWater, a store behind or not
// consistent with the high-water checkpoint returns a *RollbackError, and a
// non-empty store without one ErrNoHighWater.
//
// The Log does not own store: close the Log first, then the store.
func Open(store storage.Store, opts Options) (*Log, error) {
	opts.setDefaults()
	if err := checkOrigin(opts.Origin); err != nil {
		return nil, err
	}
	if opts.Key == nil {
		return nil, errors.New("ledger: Options.Key is required")
	}
	if opts.Key.Name() != opts.Origin {
		return nil, fmt.Errorf("ledger: key name %q is not the origin %q", opts.Key.Name(), opts.Origin)
	}
	l := &Log{
		store:     store,
		opts:      opts,
		cache:     newTileCache(opts.TileCache),
		reqs:      make(chan *request, 1024),
		slots:     make(chan struct{}, opts.PipelineDepth),
		batches:   make(chan *batch),
		committed: make(chan struct{}),
	}
	l.reads = &committedReader{log: l}
	cp, err := l.loadState()
	if err != nil {
		return nil, err
	}
	l.mu.cp = cp
	l.mu.changed = make(chan struct{})
	if err := l.seq.init(l, cp); err != nil {
		return nil, err
	}
	l.mu.partial = l.seq.partial()
	l.mu.applied = l.seq.applied
	if opts.HighWater != nil {
		if err := l.openHighWater(cp); err != nil {
			return nil, err
		}
	}
	if opts.Replicator == nil {
		go l.sequence()
	}
	go l.commit()
	return l, nil
}

// loadState reads and verifies the latest checkpoint, or signs the
// checkpoint of the empty tree for a new log.
func (l *Log) loadState() (*Checkpoint, error) {
	data, err := l.store.Get([]byte(keyState))
	if errors.Is(err, storage.ErrNotFound) {
		cp, err := signCheckpoint(l.opts.Key, l.opts.Origin, 0, emptyRoot)
		if err != nil {
			return nil, err
		}
		var b storage.Batch
		b.Set([]byte(keyState), cp.Note)
		b.Set(checkpointKey(0), cp.Note)
		if err := l.store.Write(&b, true); err != nil {
			return nil, fmt.Errorf("ledger: initialise: %w", err)
		}
		return cp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read state: %w", err)
	}
	cp, err := OpenCheckpoint(data, l.opts.Origin, l.opts.Key.Verifier())
	if err != nil {
		return nil, &CorruptionError{What: "checkpoint", Index: -1, Detail: "latest checkpoint does not verify: " + err.Error()}
	}
	return cp, nil
}

// Origin returns the log's origin.
func (l *Log) Origin() string { return l.opts.Origin }

// Key returns the checkpoint verifier.
func (l *Log) Key() note.Verifier { return l.opts.Key.Verifier() }

// VerifierKey returns the checkpoint verifier key ("name+hash+key").
func (l *Log) VerifierKey() string { return l.opts.Key.VerifierKey() }

// Checkpoint returns the latest published checkpoint. Every entry it covers
// is durable.
func (l *Log) Checkpoint() *Checkpoint {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.cp
}

// PipelineDepth returns how many group commits the log keeps in flight.
func (l *Log) PipelineDepth() int { return l.opts.PipelineDepth }

// Size returns the number of entries covered by the latest checkpoint.
func (l *Log) Size() int64 { return l.Checkpoint().Size }

// Wait blocks until the log holds more than size entries, the context is
// done or the log is closed or failed. It returns the latest checkpoint.
func (l *Log) Wait(ctx context.Context, size int64) (*Checkpoint, error) {
	for {
		l.mu.RLock()
		cp, changed, failed := l.mu.cp, l.mu.changed, l.mu.failed
		l.mu.RUnlock()
		if cp.Size > size {
			return cp, nil
		}
		if failed != nil {
			return cp, failed
		}
		select {
		case <-changed:
		case <-l.committed:
			return l.Checkpoint(), ErrClosed
		case <-ctx.Done():
			return cp, ctx.Err()
		}
	}
}

// Append validates the entries, appends them with consecutive indexes and
// returns once they are durable, together with a signed checkpoint that
// covers them. Either every entry is appended or, on error, none is.
//
// An invalid entry returns an *InvalidError and nothing is written. The
// context bounds only the wait to join a batch: once accepted, entries are
// committed (or fail with the log) and Append waits for that outcome, so a
// returned error other than the context's means they were not appended.
func (l *Log) Append(ctx context.Context, entries []Entry) (*Appended, error) {
	p, err := l.AppendAsync(ctx, entries)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Pending is an accepted append whose outcome is not known yet.
type Pending struct {
	req  *request
	wait func() (*Appended, error) // from the Replicator
	res  *result
}

// Wait blocks until the append is durable or has failed; see Append. It
// may be called more than once, but not concurrently.
func (p *Pending) Wait() (*Appended, error) {
	if p.res == nil {
		var r result
		if p.wait != nil {
			r.app, r.err = p.wait()
		} else {
			r = <-p.req.done
		}
		p.res = &r
	}
	return p.res.app, p.res.err
}

// AppendAsync is Append without the wait: it returns once the entries are
// validated and queued, and the Pending reports their outcome. A caller that
// keeps several appends in flight lets one group commit (one sync) serve
// more of them. Appends from one goroutine are sequenced in call order.
//
// Under a context made by WithRequestID the append carries a request id,
// and applying it again (a retry) appends nothing and reports the first
// append.
func (l *Log) AppendAsync(ctx context.Context, entries []Entry) (*Pending, error) {
	req, err := l.prepare(entries)
	if err != nil {
		return nil, err
	}
	req.id = nextRequestID(ctx)
	if err := checkRequestID(req.id); err != nil {
		return nil, err
	}
	if l.opts.Replicator != nil {
		return l.replicate(ctx, req)
	}
	l.intake.RLock()
	if l.intake.closed {
		l.intake.RUnlock()
		return nil, ErrClosed
	}
	if err := l.failure(); err != nil {
		l.intake.RUnlock()
		return nil, err
	}
	select {
	case l.reqs <- req:
		l.intake.RUnlock()
	case <-ctx.Done():
		l.intake.RUnlock()
		return nil, ctx.Err()
	}
	return &Pending{req: req}, nil
}

func (l *Log) replicate(ctx context.Context, req *request) (*Pending, error) {
	l.intake.RLock()
	closed := l.intake.closed
	l.intake.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if err := l.failure(); err != nil {
		return nil, err
	}
	wait, err := l.opts.Replicator.Replicate(ctx, &Proposal{RequestID: req.id, entries: req.entries, bytes: req.bytes})
	if err != nil {
		return nil, err
	}
	return &Pending{wait: wait}, nil
}

func (l *Log) failure() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.failed
}

// prepare validates entries and does the per-entry work that needs no
// ordering (salt, commitment, sealing) on the caller's goroutine, so that it
// runs in parallel across callers.
func (l *Log) prepare(entries []Entry) (*request, error) {
	if len(entries) == 0 {
		return nil, &InvalidError{Field: "entries", Reason: "at least one entry is required"}
	}
	if len(entries) > l.opts.MaxAppend {
		return nil, &InvalidError{Field: "entries", Reason: fmt.Sprintf("%d entries exceed the limit of %d per append", len(entries), l.opts.MaxAppend), Err: ErrTooLarge}
	}
	now := l.opts.Now().UTC()
	req := &request{entries: make([]prepared, len(entries)), done: make(chan result, 1)}
	total := 0
	for _, e := range entries {
		total += len(e.Payload)
	}
	if total > l.opts.MaxAppendBytes && len(entries) > 1 {
		return nil, &InvalidError{Field: "entries", Reason: fmt.Sprintf("%d bytes of payloads exceed the limit of %d per append", total, l.opts.MaxAppendBytes), Err: ErrTooLarge}
	}
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
// durable (or has failed) and stops the log's goroutines. Reads still work
// after Close while the store stays open. Close is safe to call more than
// once.
func (l *Log) Close() error {
	l.intake.Lock()
	if !l.intake.closed {
		l.intake.closed = true
		if l.opts.Replicator == nil {
			close(l.reqs)
		}
	}
	l.intake.Unlock()
	if l.opts.Replicator != nil {
		l.applyMu.Lock()
		if !l.applyClosed {
			l.applyClosed = true
			close(l.batches)
		}
		l.applyMu.Unlock()
	}
	<-l.committed
	if l.hw != nil {
		return l.hw.close()
	}
	return nil
}
