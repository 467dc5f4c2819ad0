// Package pebblestore is the default storage.Store backend, on CockroachDB's
// Pebble LSM engine (github.com/cockroachdb/pebble/v2).
//
// A Write is one Pebble batch, committed with pebble.Sync or pebble.NoSync.
// Pebble's commit pipeline groups concurrent synced commits into one WAL
// fsync, and a synced commit also makes every earlier commit durable,
// because the WAL is written in commit order. Note that Pebble makes a
// batch visible to readers before its fsync completes: a reader may see
// data that a crash in the next milliseconds would lose. Anything that
// acknowledges durability to a client must wait for its own synced Write.
//
// Pebble itself panics when a closed DB is used; Store turns that into
// storage.ErrClosed by counting calls in progress and letting Close wait
// for them.
package pebblestore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// Defaults for Options.
const (
	// DefaultCacheSize is the block cache: enough for the hot tiles and
	// recent entries of a ledger on a small shared machine.
	DefaultCacheSize = 64 << 20
	// DefaultMemTableSize is four times Pebble's default, so that a busy
	// ledger's group commits (about 650 KB each) fill a memtable every 25
	// or so, not every 6. Pebble holds at most two before stalling writes.
	DefaultMemTableSize = 16 << 20
)

// formatVersion is pinned, rather than pebble.FormatNewest, so that
// upgrading the Pebble module never ratchets the on-disk format by itself;
// a format change should be a deliberate commit. It is the newest format of
// Pebble v2.1.
const formatVersion = pebble.FormatValueSeparation

// maxBatchRepr is Pebble's limit on a batch's encoded size; Pebble panics
// beyond it, so Write refuses such a batch first.
const maxBatchRepr = 4 << 30

// Options configure Open. The zero value is ready to use.
type Options struct {
	// CacheSize is the block cache size in bytes. Zero means
	// DefaultCacheSize.
	CacheSize int64

	// MemTableSize is the size in bytes of one memtable. Zero means
	// DefaultMemTableSize.
	MemTableSize int64

	// Logger receives Pebble's messages and events (flushes, compactions,
	// WAL files) at debug level, and its background errors at error level.
	// They name files and sizes; a corruption report may quote a key, never
	// a value. Nil discards them.
	Logger *slog.Logger

	// ReadOnly opens the database without changing a byte of its
	// directory: Pebble replays the write-ahead logs into memory instead
	// of flushing them, and writes, flushes and compactions are refused
	// (Write fails). Verification uses it.
	ReadOnly bool
}

// Store is a storage.Store on a Pebble database. It is safe for concurrent
// use.
type Store struct {
	db *pebble.DB

	mu struct {
		sync.Mutex
		closed bool
	}
	// calls counts Get, Scan and Write calls in progress. Add happens only
	// under mu while the store is open, so Close's Wait sees all of them.
	calls sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.AsyncWriter = (*Store)(nil)
	_ storage.Syncer      = (*Store)(nil)
)

// Open opens or creates the Pebble database in dir.
func Open(dir string, opts Options) (*Store, error) {
	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	memTableSize := opts.MemTableSize
	if memTableSize <= 0 {
		memTableSize = DefaultMemTableSize
	}
	logger := newLogger(opts.Logger)

	cache := pebble.NewCache(cacheSize)
	// The DB takes its own reference; ours only needs to outlive Open.
	defer cache.Unref()
	events := pebble.MakeLoggingEventListener(logger)
	po := &pebble.Options{
		Cache:              cache,
		MemTableSize:       uint64(memTableSize),
		FormatMajorVersion: formatVersion,
		Logger:             logger,
		EventListener:      &events,
		// Obsolete files are deleted and WAL files never recycled, so that
		// Purge can erase values (see purge.go).
		Cleaner:  deletingCleaner{},
		ReadOnly: opts.ReadOnly,
	}
	// What the ledger stores is mostly hashes, random salts and, with
	// encryption at rest, ciphertext: compression would spend CPU in every
	// flush and compaction and save next to nothing.
	for i := range po.Levels {
		po.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{Enabled: true, MinimumSize: 256, MaxBlobReferenceDepth: 10, RewriteMinimumAge: time.Hour, TargetGarbageRatio: 0.2}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// begin registers a call in progress, or reports that the store is closed.
// Every successful begin must be paired with s.calls.Done.
func (s *Store) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false
	}
	s.calls.Add(1)
	return true
}

// Get returns a copy of the value stored under key, storage.ErrNotFound, or
// storage.ErrClosed.
func (s *Store) Get(key []byte) ([]byte, error) {
	if !s.begin() {
		return nil, storage.ErrClosed
	}
	defer s.calls.Done()

	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get: %w", err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("pebblestore: get: %w", err)
	}
	return out, nil
}

// Scan calls fn for every key k with start <= k < end in ascending order.
// It reads one consistent snapshot of the database. The slices passed to
// fn are valid only until fn returns. fn may call the store, but must not
// call Close, which would wait for this Scan forever.
func (s *Store) Scan(start, end []byte, fn func(key, value []byte) error) error {
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()

	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	if len(start) == 0 {
		// The same bound, but Pebble v2.1.7's race and invariants builds
		// index a non-nil empty lower bound and panic.
		start = nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return fmt.Errorf("pebblestore: scan: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("pebblestore: scan: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	// Close reports any error that ended the iteration early.
	if err := it.Close(); err != nil {
		return fmt.Errorf("pebblestore: scan: %w", err)
	}
	return nil
}

// Write applies b atomically as one Pebble batch. With sync, it returns
// once the batch, and every batch committed before it, is in the fsynced
// WAL.
func (s *Store) Write(b *storage.Batch, sync bool) error {
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()

	if b.Len() == 0 {
		return nil
	}
	pb, err := s.newBatch(b)
	if err != nil {
		return err
	}
	defer pb.Close()
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := pb.Commit(opts); err != nil {
		return fmt.Errorf("pebblestore: write: %w", err)
	}
	return nil
}

// WriteAsync implements storage.AsyncWriter with Pebble's ApplyNoSyncWait:
// it applies b, queues it for the WAL fsync and returns. Batches applied
// while an fsync is running share the next one. The returned wait blocks
// until b is durable; calling it more than once returns the same result,
// and a wait left uncalled does not hold up Close (which syncs the WAL).
//
// Pebble marks ApplyNoSyncWait experimental; it is the commit path
// CockroachDB itself uses for pipelined writes.
func (s *Store) WriteAsync(b *storage.Batch) (wait func() error, err error) {
	if !s.begin() {
		return nil, storage.ErrClosed
	}
	defer s.calls.Done()

	if b.Len() == 0 {
		return func() error { return nil }, nil
	}
	pb, err := s.newBatch(b)
	if err != nil {
		return nil, err
	}
	if err := s.db.ApplyNoSyncWait(pb, pebble.Sync); err != nil {
		// Pebble forbids closing a batch before SyncWait; an unapplied
		// batch is simply left to the garbage collector.
		return nil, fmt.Errorf("pebblestore: write: %w", err)
	}
	var once sync.Once
	var syncErr error
	return func() error {
		once.Do(func() {
			if err := pb.SyncWait(); err != nil {
				syncErr = fmt.Errorf("pebblestore: sync: %w", err)
			}
			_ = pb.Close()
		})
		return syncErr
	}, nil
}

// Sync implements storage.Syncer: an empty, synced WAL record makes every
// earlier commit durable, since the WAL is written in commit order.
func (s *Store) Sync() error {
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: sync: %w", err)
	}
	return nil
}

// newBatch encodes b as a Pebble batch, checking every key first.
func (s *Store) newBatch(b *storage.Batch) (*pebble.Batch, error) {
	// Each op encodes as a kind byte, two varint lengths (at most 5 bytes
	// each) and the bytes; 12 is the batch header. This bounds the encoding
	// from above.
	repr := 12 + b.Size() + 11*b.Len()
	if repr >= maxBatchRepr {
		return nil, fmt.Errorf("pebblestore: batch of %d ops and %d bytes is over Pebble's 4 GiB batch limit", b.Len(), b.Size())
	}
	for i, op := range b.Ops {
		if len(op.Key) == 0 {
			return nil, fmt.Errorf("pebblestore: write: op %d of %d has an empty key", i, b.Len())
		}
	}
	pb := s.db.NewBatchWithSize(repr)
	for _, op := range b.Ops {
		var err error
		if op.Delete {
			err = pb.Delete(op.Key, nil)
		} else {
			err = pb.Set(op.Key, op.Value, nil)
		}
		if err != nil {
			_ = pb.Close()
			return nil, fmt.Errorf("pebblestore: write: %w", err)
		}
	}
	return pb, nil
}

// Close waits for calls in progress, then closes the database. Later calls
// of any other method return storage.ErrClosed; later calls of Close return
// what the first one did.
func (s *Store) Close() error {
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		s.calls.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("pebblestore: close: %w", err)
		}
	})
	return s.closeErr
}
