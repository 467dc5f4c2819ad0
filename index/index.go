package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"

	"github.com/evidenceledger/evidence/ledger"
)

// Source is the log an Index is derived from. *ledger.Log implements it.
type Source interface {
	// Size returns the number of entries in the log.
	Size() int64
	// Wait blocks until the log holds more than size entries.
	Wait(ctx context.Context, size int64) (*ledger.Checkpoint, error)
	// Entry returns entry i, checked against the tree.
	Entry(i int64) (*ledger.StoredEntry, error)
	// Payload returns entry i and its payload, checked against its
	// commitment; an error wrapping ledger.ErrRedacted once destroyed.
	Payload(i int64) ([]byte, *ledger.StoredEntry, error)
}

// Options configure an Index.
type Options struct {
	// BatchEntries caps the log entries applied in one index batch.
	// Default 2,048.
	BatchEntries int
	// Logger receives operational messages: leaf indexes and counts,
	// never text. Default: discard.
	Logger *slog.Logger
	// OnBatch, when set, is called after each batch is durable with the
	// number of entries applied so far and the log size being caught up
	// to. It runs on the indexing goroutine and must be quick.
	OnBatch func(applied, target int64)
}

func (o *Options) setDefaults() {
	if o.BatchEntries <= 0 {
		o.BatchEntries = 2048
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// formatVersion names the document layout and analysis. An index written
// in another format is a DivergedError: it is rebuilt, never migrated.
const formatVersion = "evidence-index-1"

// Internal (non-document) keys, written in the same batch as the
// documents they describe.
var (
	keyFormat  = []byte("format")
	keyApplied = []byte("applied") // count(8) || leaf hash of entry count-1 (32)
)

// noteKeyPrefix prefixes the internal key holding an encounter's current
// note sentences: "note/" tenant 0x00 encounter.
const noteKeyPrefix = "note/"

// Index is the full-text index of one log: a derived view that records how
// many entries it has applied, in the same atomic batch as the documents
// they produced, so it resumes after a crash without skipping or repeating
// anything, and can be dropped and rebuilt from the log at any time.
//
// It is safe for concurrent use: one goroutine applies entries (CatchUp,
// Follow) while any number search. Writes (batches, DeleteEncounter) are
// serialized.
type Index struct {
	src   Source
	bleve bleve.Index
	opts  Options

	// applied mirrors mu.applied for searches, which do not take mu.
	applied atomic.Int64

	mu struct {
		sync.Mutex
		applied  int64       // entries [0, applied) are in the index
		lastHash ledger.Hash // leaf hash of entry applied-1
		// notes caches persisted note states by noteKey. It is only
		// replaced by states a successful batch wrote.
		notes  map[string]*noteState
		closed bool
	}

	// beforeCommit, when set (by tests), runs just before a batch is
	// handed to bleve.
	beforeCommit func(applied, to int64)
}

// Open opens the index kept in dir, creating an empty one if dir does not
// exist, and checks that it is a view of src: it must not record more
// entries than src holds, and its last applied entry must be src's entry
// at that index. If not, Open returns a *DivergedError and the caller drops
// the index (Remove) and opens it again to rebuild it.
func Open(dir string, src Source, opts Options) (*Index, error) {
	opts.setDefaults()
	b, err := openOrCreate(dir)
	if err != nil {
		return nil, err
	}
	x := &Index{src: src, bleve: b, opts: opts}
	x.mu.notes = make(map[string]*noteState)
	if err := x.load(); err != nil {
		b.Close()
		return nil, err
	}
	return x, nil
}

func openOrCreate(dir string) (bleve.Index, error) {
	b, err := bleve.Open(dir)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		if errors.Is(err, bleve.ErrorIndexMetaMissing) || errors.Is(err, bleve.ErrorIndexMetaCorrupt) {
			return nil, &DivergedError{Detail: "the index directory is incomplete: " + err.Error()}
		}
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	// Build the empty index beside dir and rename it into place, so a
	// crash never leaves a half-created index at dir.
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	nb, err := bleve.NewUsing(tmp, newMapping(), scorch.Name, scorch.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("index: create: %w", err)
	}
	err = nb.SetInternal(keyFormat, []byte(formatVersion))
	if cerr := nb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("index: create: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("index: create: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	b, err = bleve.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	return b, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("index: sync %s: %w", dir, err)
	}
	return nil
}

// load reads the applied position and checks it against the log.
func (x *Index) load() error {
	f, err := x.bleve.GetInternal(keyFormat)
	if err != nil {
		return fmt.Errorf("index: read format: %w", err)
	}
	if string(f) != formatVersion {
		return &DivergedError{Detail: fmt.Sprintf("format %q, want %q", f, formatVersion)}
	}
	v, err := x.bleve.GetInternal(keyApplied)
	if err != nil {
		return fmt.Errorf("index: read applied position: %w", err)
	}
	var applied int64
	var last ledger.Hash
	switch len(v) {
	case 0:
	case 8 + ledger.HashSize:
		applied = int64(binary.BigEndian.Uint64(v))
		copy(last[:], v[8:])
	default:
		return &DivergedError{Detail: "malformed applied position"}
	}
	if size := x.src.Size(); applied > size {
		return &DivergedError{Detail: fmt.Sprintf("the index has applied %d entries, the log holds %d", applied, size)}
	}
	if applied > 0 {
		e, err := x.src.Entry(applied - 1)
		if err != nil {
			return fmt.Errorf("index: check entry %d: %w", applied-1, err)
		}
		if e.Hash != last {
			return &DivergedError{Detail: fmt.Sprintf("entry %d of the log is not the entry the index applied", applied-1)}
		}
	}
	x.mu.applied, x.mu.lastHash = applied, last
	x.applied.Store(applied)
	return nil
}

func encodeApplied(n int64, h ledger.Hash) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(n)), h[:]...)
}

// Remove drops the index kept in dir. The index must be closed.
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("index: remove: %w", err)
	}
	if err := os.RemoveAll(dir + ".new"); err != nil {
		return fmt.Errorf("index: remove: %w", err)
	}
	return nil
}

// Applied returns the number of log entries the index has applied: every
// entry below it, and none at or above it, is reflected in searches.
func (x *Index) Applied() int64 { return x.applied.Load() }

// Close closes the index. Stop CatchUp and Follow first. Close may be
// called more than once.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.mu.closed {
		return nil
	}
	x.mu.closed = true
	return x.bleve.Close()
}

// DocCount returns the number of documents in the index.
func (x *Index) DocCount() (uint64, error) { return x.bleve.DocCount() }
