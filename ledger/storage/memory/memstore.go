// Package memstore is an in-memory storage.Store for tests. It keeps
// nothing on disk, so the sync flag of Write has nothing to wait for.
//
// It is strict where a test store should be: Write copies every key and
// value, Get returns a fresh copy, a batch becomes visible to readers all
// at once, and every Scan reads one consistent snapshot. Scan hands its
// callback keys and values in buffers that it reuses for the next pair,
// much as a disk engine's iterator does, so that code which keeps them
// without copying fails here and not only in production.
//
// The map is a copy-on-write B-tree (github.com/RaduBerinde/btreemap, a
// generic fork of github.com/google/btree): a Scan clones it in O(1) under
// the lock and then walks the clone without holding any lock, so a Scan
// callback may call back into the store.
package memstore

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/RaduBerinde/btreemap"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// btreeDegree is the B-tree's minimum degree: nodes hold 15 to 31 items.
const btreeDegree = 16

type tree = btreemap.BTreeMap[[]byte, []byte]

// Store is an in-memory storage.Store. It is safe for concurrent use. The
// zero value is not usable; call New.
type Store struct {
	mu struct {
		sync.Mutex
		// tree holds private copies of keys and values, never modified
		// once inserted, so they may be read after mu is released. It is
		// nil once the store is closed.
		tree *tree
	}
}

var (
	_ storage.Store       = (*Store)(nil)
	_ storage.AsyncWriter = (*Store)(nil)
	_ storage.Syncer      = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	s := &Store{}
	s.mu.tree = btreemap.New[[]byte, []byte](btreeDegree, bytes.Compare)
	return s
}

// Get returns a copy of the value stored under key, storage.ErrNotFound,
// or storage.ErrClosed.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	t := s.mu.tree
	var v []byte
	var ok bool
	if t != nil {
		_, v, ok = t.Get(key)
	}
	s.mu.Unlock()
	switch {
	case t == nil:
		return nil, storage.ErrClosed
	case !ok:
		return nil, storage.ErrNotFound
	}
	return clone(v), nil
}

// Scan calls fn for every key k with start <= k < end in ascending order,
// over a snapshot taken when Scan starts. The slices passed to fn are
// overwritten after fn returns.
func (s *Store) Scan(start, end []byte, fn func(key, value []byte) error) error {
	s.mu.Lock()
	if s.mu.tree == nil {
		s.mu.Unlock()
		return storage.ErrClosed
	}
	// Clone marks the shared nodes read-only for both trees, so later
	// writes copy them and the snapshot never changes under us.
	snap := s.mu.tree.Clone()
	s.mu.Unlock()

	upper := btreemap.Max[[]byte]()
	if end != nil {
		upper = btreemap.LT(end)
	}
	var kbuf, vbuf []byte
	for k, v := range snap.Ascend(btreemap.GE(start), upper) {
		kbuf = append(kbuf[:0], k...)
		vbuf = append(vbuf[:0], v...)
		if err := fn(kbuf, vbuf); err != nil {
			return err
		}
	}
	return nil
}

// Write applies b atomically. Readers see all of it or none of it. sync is
// ignored: there is no disk.
func (s *Store) Write(b *storage.Batch, sync bool) error {
	// Copy outside the lock; the batch is the caller's and stays put.
	ops := make([]storage.Op, len(b.Ops))
	for i, op := range b.Ops {
		if len(op.Key) == 0 {
			return fmt.Errorf("memstore: write: op %d of %d has an empty key", i, len(b.Ops))
		}
		ops[i] = storage.Op{Key: clone(op.Key), Delete: op.Delete}
		if !op.Delete {
			ops[i].Value = clone(op.Value)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.tree == nil {
		return storage.ErrClosed
	}
	for _, op := range ops {
		if op.Delete {
			s.mu.tree.Delete(op.Key)
		} else {
			s.mu.tree.ReplaceOrInsert(op.Key, op.Value)
		}
	}
	return nil
}

// WriteAsync implements storage.AsyncWriter as Write, so that code written
// for pipelined commits runs on memstore too. The returned wait has nothing
// to wait for.
func (s *Store) WriteAsync(b *storage.Batch) (wait func() error, err error) {
	if err := s.Write(b, true); err != nil {
		return nil, err
	}
	return func() error { return nil }, nil
}

// Sync implements storage.Syncer: there is nothing to make durable.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.tree == nil {
		return storage.ErrClosed
	}
	return nil
}

// Close drops the data. Scans already running finish on their snapshot.
// It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.tree = nil
	return nil
}

// clone returns a copy of b that is never nil, so that an empty value
// reads back as an empty, non-nil slice.
func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}
