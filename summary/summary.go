// Package summary keeps encounter summaries: a view derived from the log,
// like the search index (package index), that answers the visit list
// without reading any encounter's chain.
//
// For every encounter the view holds its opening entry (leaf, time and
// actor), the time of its latest write, its entry count and last leaf, its
// note's status and its counts of flagged and unresolved sentences
// (encounter.Review.Flags, through an encounter.NoteTracker). It holds no
// PHI: no title, patient reference or text. Titles and patient references
// stay encrypted in the log, and the listing reads them from each listed
// encounter's opening entry (encounter.Service.Find); a patient reference
// is kept only as a keyed digest, to filter by it.
//
// The view is a pebble database of its own (docs/summaries.md has the key
// layout). It applies the log's entries in order, in batches; each batch
// writes the changed summaries, their ordered index entries and the view's
// position (the number of entries applied and the leaf hash of the last)
// in one atomic write. It resumes from that position after a restart, and
// a view that is not of the given log (more entries than the log holds,
// another last leaf, another format) is refused with a *DivergedError, to
// be dropped and rebuilt. Being a function of the log alone, it is the
// same on every member of a cluster, and a rebuild answers identically.
package summary

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// Source is the log a View is derived from. *ledger.Log implements it.
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
	// EntryBundle returns the w leaves from n*256, each checked against
	// the tree, each prefixed by its length (C2SP tlog-tiles).
	EntryBundle(n int64, w int) ([]byte, error)
}

// Options configure a View.
type Options struct {
	// BatchEntries caps the log entries applied in one batch. Default
	// 8,192.
	BatchEntries int
	// CacheBytes is the view database's block cache. Default 16 MiB.
	CacheBytes int64
	// Logger receives operational messages: leaf indexes and counts,
	// never PHI. Default: discard.
	Logger *slog.Logger
	// OnBatch, when set, is called after each batch with the number of
	// entries applied so far and the log size being caught up to. It
	// runs on the applying goroutine and must be quick.
	OnBatch func(applied, target int64)
}

func (o *Options) setDefaults() {
	if o.BatchEntries <= 0 {
		o.BatchEntries = 8192
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// formatVersion names the key layout and record encodings. A view in
// another format is a DivergedError: it is rebuilt, never migrated.
const formatVersion = "evidence-summary-1"

// DivergedError reports a view that is not a view of the given log: it
// records more entries than the log holds, its last applied entry is not
// the log's entry at that index, or it was written in another format. Drop
// it (Remove) and open it again to rebuild it.
type DivergedError struct {
	Detail string
}

func (e *DivergedError) Error() string { return "summary: not a view of this log: " + e.Detail }

// ErrClosed is returned by a View's methods after Close.
var ErrClosed = errors.New("summary: closed")

// position is the view's record of what it applied, stored under keyState.
type position struct {
	Format   string `json:"format"`
	Applied  int64  `json:"applied"`
	LastHash string `json:"last_leaf_hash,omitempty"` // hex leaf hash of entry applied-1
}

// View is the encounter summaries of one log. It is safe for concurrent
// use: one goroutine applies entries (CatchUp, Follow) while any number
// list.
type View struct {
	src   Source
	store storage.Store
	opts  Options
	// digestKey keys the digests of patient references; it is made at
	// random when the view is created, so a rebuilt view has another.
	digestKey []byte

	applied atomic.Int64 // mirrors write.applied for readers

	// write serializes applying and guards what only the applier uses.
	write struct {
		sync.Mutex
		applied  int64
		lastHash ledger.Hash
		closed   bool
		records  map[string]*record // recently written summaries by recordKey
	}

	// notify wakes readers waiting for the view to advance.
	notify struct {
		sync.Mutex
		changed chan struct{}
	}
}

// Open opens the view kept in dir, creating an empty one if dir holds none,
// and checks that it is a view of src (see DivergedError).
func Open(dir string, src Source, opts Options) (*View, error) {
	opts.setDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	st, err := pebblestore.Open(dir, pebblestore.Options{CacheSize: opts.CacheBytes, MemTableSize: 4 << 20,
		Logger: opts.Logger.With("component", "summary-pebble")})
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	v, err := newView(st, src, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	return v, nil
}

// newView opens the view kept in store.
func newView(store storage.Store, src Source, opts Options) (*View, error) {
	opts.setDefaults()
	v := &View{src: src, store: store, opts: opts}
	v.write.records = map[string]*record{}
	v.notify.changed = make(chan struct{})
	b, err := store.Get(keyPosition)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return v, v.create()
	case err != nil:
		return nil, fmt.Errorf("summary: read position: %w", err)
	}
	var pos position
	if err := json.Unmarshal(b, &pos); err != nil {
		return nil, &DivergedError{Detail: "malformed position record"}
	}
	if pos.Format != formatVersion {
		return nil, &DivergedError{Detail: fmt.Sprintf("format %q, want %q", pos.Format, formatVersion)}
	}
	size := src.Size()
	if pos.Applied < 0 || pos.Applied > size {
		return nil, &DivergedError{Detail: fmt.Sprintf("the view has applied %d entries, the log holds %d", pos.Applied, size)}
	}
	var last ledger.Hash
	if pos.Applied > 0 {
		h, err := hex.DecodeString(pos.LastHash)
		if err != nil || len(h) != ledger.HashSize {
			return nil, &DivergedError{Detail: "malformed position record"}
		}
		copy(last[:], h)
		e, err := src.Entry(pos.Applied - 1)
		if err != nil {
			return nil, fmt.Errorf("summary: check entry %d: %w", pos.Applied-1, err)
		}
		if e.Hash != last {
			return nil, &DivergedError{Detail: fmt.Sprintf("entry %d of the log is not the entry the view applied", pos.Applied-1)}
		}
	}
	if v.digestKey, err = store.Get(keyDigest); err != nil || len(v.digestKey) != 32 {
		return nil, &DivergedError{Detail: "the digest key is missing"}
	}
	v.write.applied, v.write.lastHash = pos.Applied, last
	v.applied.Store(pos.Applied)
	return v, nil
}

// create writes an empty view: its position and a new digest key.
func (v *View) create() error {
	v.digestKey = make([]byte, 32)
	if _, err := rand.Read(v.digestKey); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	var b storage.Batch
	b.Set(keyDigest, v.digestKey)
	b.Set(keyPosition, encodePosition(0, ledger.Hash{}))
	if err := v.store.Write(&b, true); err != nil {
		return fmt.Errorf("summary: create: %w", err)
	}
	return nil
}

func encodePosition(applied int64, last ledger.Hash) []byte {
	p := position{Format: formatVersion, Applied: applied}
	if applied > 0 {
		p.LastHash = hex.EncodeToString(last[:])
	}
	b, _ := json.Marshal(p)
	return b
}

// Remove drops the view kept in dir. The view must be closed.
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("summary: remove: %w", err)
	}
	return nil
}

// Applied returns the number of log entries the view reflects.
func (v *View) Applied() int64 { return v.applied.Load() }

// Close closes the view. Stop CatchUp and Follow first. It is safe to
// call more than once.
func (v *View) Close() error {
	v.write.Lock()
	defer v.write.Unlock()
	if v.write.closed {
		return nil
	}
	v.write.closed = true
	return v.store.Close()
}

// advanced records that the view applied entries up to applied and wakes
// waiting readers.
func (v *View) advanced(applied int64) {
	v.applied.Store(applied)
	v.notify.Lock()
	close(v.notify.changed)
	v.notify.changed = make(chan struct{})
	v.notify.Unlock()
}

// WaitApplied blocks until the view reflects at least n log entries, or
// ctx is done.
func (v *View) WaitApplied(ctx context.Context, n int64) error {
	for {
		v.notify.Lock()
		ch := v.notify.changed
		v.notify.Unlock()
		if v.applied.Load() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Key layout. Every key but the two singletons starts with a table byte
// and tenant 0x00; identifiers never hold 0x00 (ledger.CheckID).
const (
	tableRecord  = 'r' // 'r' tenant 0 encounter                   -> record (JSON)
	tableNote    = 'n' // 'n' tenant 0 encounter                   -> encounter.NoteTracker (JSON)
	tableAll     = 'u' // 'u' tenant 0 inv(updated) encounter      -> row
	tableStatus  = 's' // 's' tenant 0 status inv(updated) encounter -> row
	tableFlagged = 'f' // 'f' tenant 0 inv(updated) encounter      -> row, when unresolved > 0
	tablePatient = 'p' // 'p' tenant 0 digest(16) inv(updated) encounter -> row
)

var (
	keyPosition = []byte("!position")
	keyDigest   = []byte("!digest-key")
)

func tenantPrefix(table byte, tenant string) []byte {
	b := make([]byte, 0, 2+len(tenant)+16+8+ledger.MaxEncounterLen)
	b = append(b, table)
	b = append(b, tenant...)
	return append(b, 0)
}

func recordKey(table byte, tenant, enc string) []byte {
	return append(tenantPrefix(table, tenant), enc...)
}

// inv orders times newest first: keys ascend as times descend.
func inv(nanos int64) uint64 { return ^uint64(nanos) }

func appendOrder(b []byte, updated int64, enc string) []byte {
	b = binary.BigEndian.AppendUint64(b, inv(updated))
	return append(b, enc...)
}
