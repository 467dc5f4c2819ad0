// Package storage is the small key-value contract that the ledger keeps its
// state in, with pebble, badger and in-memory implementations in sub-packages
// and an exported conformance suite in storagetest.
//
// The ledger needs only ordered keys, point reads, forward range scans and
// atomic, optionally synced, batches. Anything more would tie the ledger to
// one engine.
package storage

import "errors"

// ErrNotFound is returned by Get when the key is absent.
var ErrNotFound = errors.New("storage: not found")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("storage: closed")

// Store is an ordered, durable key-value store.
//
// Implementations MUST be safe for concurrent use by multiple goroutines.
// Keys compare bytewise and are never empty: Write rejects a batch that
// holds an empty key and applies none of it. Values returned by Get and
// passed to Scan callbacks belong to the caller of Get, but only to the
// callback for Scan: a Scan callback that keeps a key or value must copy it.
type Store interface {
	// Get returns a copy of the value stored under key, or ErrNotFound.
	Get(key []byte) ([]byte, error)

	// Scan calls fn for every key k with start <= k < end, in ascending
	// order. A nil end means no upper bound. Scan stops at the first error
	// returned by fn and returns it. Scan reads one consistent snapshot:
	// a batch written concurrently is visible to it whole or not at all.
	Scan(start, end []byte, fn func(key, value []byte) error) error

	// Write applies every operation in b atomically: after a crash either
	// all of them are visible or none is. When sync is true, Write returns
	// only once the batch is durable on stable storage (fsync). Operations
	// within a batch apply in order, so a later Set or Delete of the same
	// key wins.
	Write(b *Batch, sync bool) error

	// Close waits for calls in progress and releases the store. Writes
	// that returned before Close survive it, synced or not. It is safe to
	// call more than once.
	Close() error
}

// AsyncWriter is implemented by stores that can apply a batch without
// waiting for its sync, so that a writer can apply the next batch while the
// previous one syncs and the store can cover both with one sync.
type AsyncWriter interface {
	// WriteAsync applies b atomically, ordered after every batch applied
	// before it by Write or WriteAsync, and returns without waiting for
	// the sync. The batch may be visible to readers before it is durable.
	// wait blocks until b is durable and returns an error if it cannot be
	// made so; it must be called exactly once. b may be reused once
	// WriteAsync returns.
	WriteAsync(b *Batch) (wait func() error, err error)
}

// Syncer is implemented by stores that can make every write that returned
// durable without writing anything, so that a writer can apply batches
// unsynced and sync them in groups.
type Syncer interface {
	// Sync returns once every batch written before it was called is
	// durable on stable storage.
	Sync() error
}

// Purger is implemented by stores that can erase keys physically, not only
// logically. A Delete hides a value at once but leaves it in the engine's
// write-ahead log and table files until compactions happen to rewrite them,
// which may be never. Crypto-shredding needs more: once a wrapped data key is
// purged, no copy of it may be left for someone holding the key-encryption
// key to unwrap.
type Purger interface {
	// Purge deletes every key that starts with prefix and returns once no
	// version of any of them (live, overwritten or deleted) is left in a
	// file of the store, other than in space the filesystem has freed and
	// not yet reused. The prefix must not be empty. Other keys are not
	// affected. Purge may pause writes for its duration (badger) or
	// compact the prefix's key range through every level (pebble); it is
	// meant for rare calls on small prefixes.
	Purge(prefix []byte) error
}

// Op is one operation of a Batch.
type Op struct {
	Key    []byte
	Value  []byte // nil for a delete
	Delete bool
}

// Batch is an ordered list of writes applied atomically by Store.Write.
// The zero value is an empty batch ready to use. A Batch is not safe for
// concurrent use.
type Batch struct {
	Ops  []Op
	size int
}

// Set records key=value. The batch keeps the slices: callers must not
// modify them until the batch has been written.
func (b *Batch) Set(key, value []byte) {
	b.Ops = append(b.Ops, Op{Key: key, Value: value})
	b.size += len(key) + len(value)
}

// Delete records the removal of key.
func (b *Batch) Delete(key []byte) {
	b.Ops = append(b.Ops, Op{Key: key, Delete: true})
	b.size += len(key)
}

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return len(b.Ops) }

// Size returns the total bytes of keys and values in the batch.
func (b *Batch) Size() int { return b.size }

// Reset empties the batch for reuse.
func (b *Batch) Reset() {
	clear(b.Ops)
	b.Ops = b.Ops[:0]
	b.size = 0
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// the end of a Scan over the prefix; nil, no upper bound, when p is empty
// or all 0xff bytes.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
