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
	"github.com/evidenceledger/evidence/ledger/tree"
)

// Options configure an Appender or a Replica. Origin and Key are required.
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
	// MaxBatchEntries and MaxBatchBytes cap one group commit of an
	// Appender. Defaults 8,192 entries and 4 MiB, which keep a batch
	// within one badger transaction. A whole Append always shares one
	// batch, so one large Append may exceed them.
	MaxBatchEntries int
	MaxBatchBytes   int
	// PipelineDepth is how many group commits an Appender keeps in
	// flight at once, built or applied and waiting for their sync. More
	// overlaps the log's work with the storage's syncs; fewer makes larger
	// batches. Default 4.
	PipelineDepth int
	// SyncInterval is how long a Replica may leave applied batches
	// unsynced: its store is synced at most this long after a batch is
	// applied, and whenever Sync is called. Default 100 ms. A Replica's
	// entries are durable in the replicated log before they are applied,
	// so a crash loses nothing: the entries its store lost are applied
	// again from that log.
	SyncInterval time.Duration
	// TileCache is the number of full tiles kept in memory for proofs.
	// Default 4,096 (about 64 MiB).
	TileCache int
	// Now returns the time recorded in new entries. Default time.Now.
	Now func() time.Time
	// Rand supplies payload salts. Default crypto/rand.Reader.
	Rand io.Reader
	// RequestIDWindow is how many entries a request id is remembered
	// for: a repeat applied within that many entries of the original is
	// recognised. Default 1,048,576.
	RequestIDWindow int64
	// HighWater, when set, keeps the latest durable checkpoint outside
	// the store (see HighWater): opening refuses a store that is behind
	// it or not consistent with it, and the log keeps it up to date.
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
	if o.SyncInterval <= 0 {
		o.SyncInterval = 100 * time.Millisecond
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

// Log is the read face of a log: its published checkpoint, entries,
// payloads, proofs, tiles and encounter chains. It is safe for concurrent
// use. What it serves is published: durable on this node (an Appender), or
// applied from a replicated log that holds it durably (a Replica).
//
// A Log is made by Open or OpenReplica, whose Appender or Replica is the
// only writer of its entries. Reads keep working after they close, while
// the store stays open.
type Log struct {
	store storage.Store
	opts  Options
	cache *tileCache
	mu    struct {
		sync.RWMutex
		cp      *Checkpoint
		partial *tree.Tile      // the unstored last bottom tile of cp's tree
		failed  error           // set once a batch could not be made durable
		applied uint64          // replication index of the last published batch
		changed chan struct{}   // closed and replaced when cp changes
		heads   map[string]Head // published chain heads of recently written encounters
	}
	done chan struct{} // closed when the writer has stopped
	hw   *highWater    // nil without Options.HighWater
}

// maxHeads bounds the chain heads kept in memory, by the Log (published)
// and by the state machine (built).
const maxHeads = 100_000

// openLog checks the options, reads and verifies the latest checkpoint and
// the right edge of its tree, and checks the high-water mark. It returns
// the Log and the state machine that appends to it.
func openLog(store storage.Store, opts Options) (*Log, *machine, error) {
	opts.setDefaults()
	if err := checkOrigin(opts.Origin); err != nil {
		return nil, nil, err
	}
	if opts.Key == nil {
		return nil, nil, errors.New("ledger: Options.Key is required")
	}
	if opts.Key.Name() != opts.Origin {
		return nil, nil, fmt.Errorf("ledger: key name %q is not the origin %q", opts.Key.Name(), opts.Origin)
	}
	l := &Log{store: store, opts: opts, cache: newTileCache(opts.TileCache), done: make(chan struct{})}
	cp, err := l.loadState()
	if err != nil {
		return nil, nil, err
	}
	m := &machine{log: l}
	if err := m.init(cp); err != nil {
		return nil, nil, err
	}
	l.mu.cp = cp
	l.mu.changed = make(chan struct{})
	l.mu.partial = m.partial()
	l.mu.applied = m.applied
	l.mu.heads = make(map[string]Head)
	if opts.HighWater != nil {
		if err := l.openHighWater(cp); err != nil {
			return nil, nil, err
		}
	}
	return l, m, nil
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

// Checkpoint returns the latest published checkpoint.
func (l *Log) Checkpoint() *Checkpoint {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.cp
}

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
		case <-l.done:
			return l.Checkpoint(), ErrClosed
		case <-ctx.Done():
			return cp, ctx.Err()
		}
	}
}

func (l *Log) failure() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.failed
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

// publish makes a built batch's checkpoint, partial tile and chain heads
// what readers see.
func (l *Log) publish(b *batch) {
	l.mu.Lock()
	l.mu.cp = b.cp
	l.mu.partial = b.partial
	if b.index > l.mu.applied {
		l.mu.applied = b.index
	}
	if len(l.mu.heads)+len(b.heads) > maxHeads {
		n := len(l.mu.heads) / 10
		for k := range l.mu.heads {
			if n == 0 {
				break
			}
			delete(l.mu.heads, k)
			n--
		}
	}
	for _, h := range b.heads {
		l.mu.heads[h.key] = h.head
	}
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
	l.mu.Unlock()
}

// reset publishes the state of a store whose contents were replaced (a
// replication snapshot was installed).
func (l *Log) reset(cp *Checkpoint, partial *tree.Tile, applied uint64) {
	l.mu.Lock()
	l.mu.cp, l.mu.partial, l.mu.applied = cp, partial, applied
	l.mu.heads = make(map[string]Head)
	close(l.mu.changed)
	l.mu.changed = make(chan struct{})
	l.mu.Unlock()
}
