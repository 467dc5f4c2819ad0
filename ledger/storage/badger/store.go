// Package badgerstore is the alternative storage.Store backend, on Dgraph's
// Badger (github.com/dgraph-io/badger/v4), an LSM engine that can keep large
// values apart from its tree.
//
// # Durability
//
// Badger has no per-transaction sync: SyncWrites is one switch for the
// whole database, and DB.Sync only syncs the memtable and value log file
// that are current when it runs. A batch committed into a memtable that
// another writer then rotates out would not be covered by a later DB.Sync,
// so "commit, then DB.Sync" is not durable. badgerstore therefore opens
// Badger with SyncWrites on: every Write is durable when it returns, and
// Write(b, false) costs the same as Write(b, true). Badger's single writer
// goroutine takes the batches queued while it writes as one group and
// syncs the value log once per group, but it syncs the memtable's WAL once
// per batch, so concurrent writers share only part of the cost.
// WriteAsync (storage.AsyncWriter) lets one writer queue the next batch
// while the previous one syncs.
//
// # Limits
//
// One Write is one Badger transaction, and Badger refuses a transaction
// larger than 15% of a memtable (see Store.MaxBatchSize and
// Store.MaxBatchCount): such a Write fails with an error wrapping
// badger.ErrTxnTooBig and applies nothing. A Write is never split, since
// that would break its atomicity. Keys may not start with "!badger!",
// which Badger reserves, and may not exceed 65,000 bytes.
package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// Defaults for Options. Badger's own defaults (five 64 MiB memtables, a
// 256 MiB block cache, four compactors) are sized for a dedicated server;
// these suit a 2-core machine shared with the rest of the service.
const (
	// DefaultMemTableSize bounds one Write to about 4.8 MiB (15% of it),
	// which holds a ledger group commit several times over. Badger keeps
	// up to numMemtables of them.
	DefaultMemTableSize = 32 << 20
	// DefaultBlockCacheSize matches pebblestore's block cache.
	DefaultBlockCacheSize = 64 << 20
)

const (
	// numMemtables is one being written, one being flushed and one spare
	// before writes stall, against Badger's five.
	numMemtables = 3
	// numCompactors is the fewest Badger allows (it refuses one).
	numCompactors = 2
	// indexCacheSize bounds the memory for table indexes and bloom filters,
	// which Badger otherwise keeps in memory for every table, growing with
	// the database.
	indexCacheSize = 32 << 20
	// maxValueThreshold is Badger's default and largest threshold: values
	// of 1 MiB or more go to the value log, the rest stay in the LSM tree.
	// Badger needs it no larger than the transaction limit, which a small
	// MemTableSize could make smaller.
	maxValueThreshold = 1 << 20
	// valueLogFileSize is a quarter of Badger's 1 GiB, so that value log
	// files, which Badger maps into memory, stay modest.
	valueLogFileSize = 256 << 20
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// MemTableSize is the size in bytes of one memtable. It also bounds a
	// Write: Badger refuses a transaction over 15% of it. Zero means
	// DefaultMemTableSize.
	MemTableSize int64

	// BlockCacheSize is the block cache size in bytes. Zero means
	// DefaultBlockCacheSize.
	BlockCacheSize int64

	// Logger receives Badger's messages: errors and warnings at their
	// levels, the rest at debug level. They name files, levels and sizes;
	// values are not logged. Nil discards them.
	Logger *slog.Logger

	// ReadOnly opens the database without changing a byte of its
	// directory, and writes fail. Badger replays its memtable logs into
	// memory; when it cannot (a memtable log that a crash left
	// unterminated, or that ends in a damaged record, which a read-write
	// open would cut short), Open copies the directory to a temporary
	// one and opens the copy read-write instead, with what Badger keeps
	// of it after the cut; Close removes the copy. Verification uses it.
	ReadOnly bool
}

// Store is a storage.Store on a Badger database. It is safe for concurrent
// use.
type Store struct {
	db *badger.DB
	// scratch is the private copy a ReadOnly open fell back to, removed
	// by Close; readOnly makes Write refuse on it.
	scratch  string
	readOnly bool

	mu struct {
		sync.Mutex
		closed bool
	}
	// calls counts calls in progress, and WriteAsync batches whose commit
	// Badger has not yet reported. Add happens only under mu while the
	// store is open, so Close's Wait sees all of them.
	calls sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.AsyncWriter = (*Store)(nil)
	_ storage.Syncer      = (*Store)(nil)
)

// Open opens or creates the Badger database in dir.
func Open(dir string, opts Options) (*Store, error) {
	memTableSize := opts.MemTableSize
	if memTableSize <= 0 {
		memTableSize = DefaultMemTableSize
	}
	blockCacheSize := opts.BlockCacheSize
	if blockCacheSize <= 0 {
		blockCacheSize = DefaultBlockCacheSize
	}
	bo := badger.DefaultOptions(dir).
		WithValueThreshold(min(maxValueThreshold, memTableSize*15/100)).
		WithSyncWrites(true).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithNumCompactors(numCompactors).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		// Write never reads inside its transaction, so there is nothing to
		// conflict; and the metrics are process-wide expvars.
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithReadOnly(opts.ReadOnly).
		// Badger checks no table checksum by default: a damaged block
		// would be read as data. Check each block as it is read, and a
		// read-only open (verification) each whole table too.
		WithChecksumVerificationMode(checksumMode(opts.ReadOnly)).
		WithLogger(newLogger(opts.Logger))
	db, err := badger.Open(bo)
	// Badger wraps this error with %+v (y.Wrap), which drops the chain:
	// only its text is left to recognise it by.
	if opts.ReadOnly && err != nil && strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()) {
		return openCopy(dir, bo)
	}
	if err != nil {
		return nil, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	return &Store{db: db, readOnly: opts.ReadOnly}, nil
}

func checksumMode(readOnly bool) options.ChecksumVerificationMode {
	if readOnly {
		return options.OnTableAndBlockRead
	}
	return options.OnBlockRead
}

// openCopy opens a read-write copy of the database in dir, for a read-only
// open that Badger refuses.
func openCopy(dir string, bo badger.Options) (*Store, error) {
	tmp, err := os.MkdirTemp("", "badgerstore-readonly-")
	if err != nil {
		return nil, fmt.Errorf("badgerstore: open %s read-only: %w", dir, err)
	}
	if err := copyDir(dir, tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("badgerstore: open %s read-only: copy: %w", dir, err)
	}
	bo.Dir, bo.ValueDir, bo.ReadOnly = tmp, tmp, false
	// The copy is thrown away: no need to sync it or compact it.
	bo = bo.WithSyncWrites(false).WithCompactL0OnClose(false)
	db, err := badger.Open(bo)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("badgerstore: open %s read-only (from a copy): %w", dir, err)
	}
	return &Store{db: db, scratch: tmp, readOnly: true}, nil
}

// copyDir copies the regular files of src into dst.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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

// MaxBatchSize is the size, in Badger's accounting, at which a Write fails.
// A transaction starts at 21 bytes and each op adds len(key) + len(value)
// + 12, where a value of 1 MiB or more counts as 12 bytes since it goes to
// the value log; the Write fails once the total reaches MaxBatchSize.
func (s *Store) MaxBatchSize() int64 { return s.db.MaxBatchSize() }

// MaxBatchCount is the op count at which a Write fails: a batch of n ops
// fails when n+1 reaches it, whatever its size.
func (s *Store) MaxBatchCount() int64 { return s.db.MaxBatchCount() }

// Get returns a copy of the value stored under key, storage.ErrNotFound, or
// storage.ErrClosed.
func (s *Store) Get(key []byte) ([]byte, error) {
	if !s.begin() {
		return nil, storage.ErrClosed
	}
	defer s.calls.Done()
	if len(key) == 0 {
		// Never stored, and Badger would call it an error.
		return nil, storage.ErrNotFound
	}

	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("badgerstore: get: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("badgerstore: get: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Scan calls fn for every key k with start <= k < end in ascending order,
// within one read transaction, which is a consistent snapshot. The slices
// passed to fn are valid only until fn returns. fn may call the store, but
// must not call Close, which would wait for this Scan forever.
func (s *Store) Scan(start, end []byte, fn func(key, value []byte) error) error {
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()

	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	// Values are read one at a time in the callback; prefetching would
	// copy them all and start goroutines for nothing.
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	var fnErr error
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if end != nil && bytes.Compare(k, end) >= 0 {
			break
		}
		err := item.Value(func(v []byte) error {
			fnErr = fn(k, v)
			return fnErr
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("badgerstore: scan: %w", err)
		}
	}
	return nil
}

// Write applies b atomically as one Badger transaction and returns once
// it is durable, whatever sync says (see the package comment).
func (s *Store) Write(b *storage.Batch, sync bool) error {
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()

	if b.Len() == 0 {
		return nil
	}
	// Badger keeps the batch's slices until the commit below returns, which
	// the contract of Batch.Set allows.
	txn, err := s.newTxn(b, b.Ops)
	if err != nil {
		return err
	}
	defer txn.Discard()
	if err := txn.Commit(); err != nil {
		return s.commitError(b, err)
	}
	return nil
}

// Sync implements storage.Syncer. Every write is synced before it returns
// (Badger's SyncWrites), so there is little left to do.
func (s *Store) Sync() error {
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()
	if s.readOnly {
		return nil
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("badgerstore: sync: %w", err)
	}
	return nil
}

// WriteAsync implements storage.AsyncWriter with Badger's Txn.CommitWith:
// the transaction takes its place in Badger's write queue, in order, and
// WriteAsync returns. The returned wait blocks until Badger has written and
// synced it; calling it more than once returns the same result. Badger
// makes the batch visible to readers only once it is durable. Close waits
// for queued batches, whether or not their wait was called.
func (s *Store) WriteAsync(b *storage.Batch) (wait func() error, err error) {
	if !s.begin() {
		return nil, storage.ErrClosed
	}
	if b.Len() == 0 {
		s.calls.Done()
		return func() error { return nil }, nil
	}
	// The caller may reuse b's memory once we return, but Badger reads the
	// keys and values until the commit completes: give it copies.
	txn, err := s.newTxn(b, copyOps(b))
	if err != nil {
		s.calls.Done()
		return nil, err
	}
	done := make(chan struct{})
	var commitErr error
	txn.CommitWith(func(err error) {
		if err != nil {
			commitErr = s.commitError(b, err)
		}
		close(done)
		s.calls.Done()
	})
	return func() error {
		<-done
		return commitErr
	}, nil
}

// newTxn builds the update transaction for ops, the operations of b.
func (s *Store) newTxn(b *storage.Batch, ops []storage.Op) (*badger.Txn, error) {
	if s.readOnly {
		return nil, fmt.Errorf("badgerstore: write: %w", badger.ErrReadOnlyTxn)
	}
	for i, op := range ops {
		if len(op.Key) == 0 {
			return nil, fmt.Errorf("badgerstore: write: op %d of %d has an empty key", i, len(ops))
		}
	}
	txn := s.db.NewTransaction(true)
	for _, op := range ops {
		var err error
		if op.Delete {
			err = txn.Delete(op.Key)
		} else {
			err = txn.Set(op.Key, op.Value)
		}
		if err != nil {
			txn.Discard()
			return nil, s.commitError(b, err)
		}
	}
	return txn, nil
}

// commitError wraps an error from building or committing b's transaction,
// spelling out the limits when the batch was too big.
func (s *Store) commitError(b *storage.Batch, err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("badgerstore: write: batch of %d ops and %d bytes exceeds one Badger transaction (at most %d ops and %d bytes of Badger's accounting): %w",
			b.Len(), b.Size(), s.MaxBatchCount()-1, s.MaxBatchSize()-1, err)
	}
	return fmt.Errorf("badgerstore: write: %w", err)
}

// copyOps returns b's operations with their keys and values copied into
// one new buffer.
func copyOps(b *storage.Batch) []storage.Op {
	buf := make([]byte, 0, b.Size())
	ops := make([]storage.Op, len(b.Ops))
	for i, op := range b.Ops {
		n := len(buf)
		buf = append(buf, op.Key...)
		ops[i].Key = buf[n:len(buf):len(buf)]
		ops[i].Delete = op.Delete
		if !op.Delete {
			n = len(buf)
			buf = append(buf, op.Value...)
			ops[i].Value = buf[n:len(buf):len(buf)]
		}
	}
	return ops
}

// Close waits for calls in progress and queued WriteAsync batches, then
// closes the database. Later calls of any other method return
// storage.ErrClosed; later calls of Close return what the first one did.
func (s *Store) Close() error {
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		s.calls.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("badgerstore: close: %w", err)
		}
		if s.scratch != "" {
			if err := os.RemoveAll(s.scratch); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("badgerstore: close: %w", err)
			}
		}
	})
	return s.closeErr
}
