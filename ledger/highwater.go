package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// A high-water mark is the latest signed checkpoint the log published, kept
// outside its store (Options.HighWater). A store can lose its newest writes
// without noticing: an engine that finds a damaged record in its newest
// write-ahead log takes it for the end of the log, a deleted log file takes
// its batches with it, and a store restored from an older copy is simply
// older. Each of these opens as a shorter log whose own checkpoint verifies.
// The high-water mark is what tells: at open, a store whose tree is smaller
// than the mark, or whose tree at the mark's size has another root, is a
// *RollbackError, never a log to serve.
//
// Contract: the mark MUST NOT be ahead of what the store holds durably, and
// an Appender's MUST NOT lag its published checkpoints by more than one
// group commit. (A Replica publishes what it applies before its store is
// synced, since the replicated log holds it; its mark follows the store's
// grouped syncs.) As
// soon as a group commit is durable the Appender hands its checkpoint to a
// writer goroutine, which always writes the newest checkpoint handed over
// (one write can cover several commits that became durable while the
// previous one was written); a batch is published (acknowledged) only once
// the mark holds the checkpoint of the batch before it. Marks are written
// while later batches sync, so a slow mark adds latency but does not cap
// the rate of group commits. A Replica hands over the checkpoint of each
// synced group of batches (see Replica). Close writes the last checkpoint
// before it returns. A mark that cannot be written fails the log
// (*FailedError), as a store write would.

// HighWater keeps a log's high-water mark. HighWaterFile is the
// implementation the server uses.
type HighWater interface {
	// Load returns the stored checkpoint note, or nil and no error when
	// none was ever stored.
	Load() ([]byte, error)
	// Store replaces the stored note atomically and durably.
	Store(note []byte) error
}

// HighWaterFileName is the high-water mark's file in a server's data
// directory.
const HighWaterFileName = "highwater.checkpoint"

// HighWaterFile is a HighWater kept in one file that holds the note as it
// is. A new note that fits in one disk sector (512 bytes, which every note
// of an origin of up to about 150 bytes does) and is no shorter than the
// file is written over the file in place and synced: a one-sector write is
// atomic on disks (it lands whole or not at all, also on power loss), and
// one sync costs a fraction of a rename's. Any other note, and the first,
// replaces the file atomically: a temporary file is written and synced,
// renamed over the file, and the directory is synced.
type HighWaterFile string

// atomicWrite is the size of a write a disk completes whole or not at all:
// one 512-byte sector at a sector-aligned offset.
const atomicWrite = 512

// Load implements HighWater.
func (f HighWaterFile) Load() ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read the high-water checkpoint: %w", err)
	}
	return b, nil
}

// Store implements HighWater.
func (f HighWaterFile) Store(note []byte) error {
	if len(note) <= atomicWrite {
		fd, err := os.OpenFile(string(f), os.O_WRONLY, 0)
		if err == nil {
			err = overwrite(fd, note)
			if cerr := fd.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				return nil
			}
			if !errors.Is(err, errShorter) {
				return fmt.Errorf("ledger: write the high-water checkpoint: %w", err)
			}
		}
	}
	return writeFileSync(string(f), note, 0o644)
}

var errShorter = errors.New("the new note is shorter than the file")

// overwrite writes note over the start of a file that is no longer than
// it, and syncs it.
func overwrite(fd *os.File, note []byte) error {
	st, err := fd.Stat()
	if err != nil {
		return err
	}
	if st.Size() > int64(len(note)) {
		// Truncating after the write would leave a window in which the
		// file holds the new note followed by the old one's tail.
		return errShorter
	}
	if _, err := fd.WriteAt(note, 0); err != nil {
		return err
	}
	return fd.Sync()
}

// RollbackError reports a store that does not hold a checkpoint the log is
// known to have published: its tree is smaller than the checkpoint's (the
// store was rolled back to an older copy, or truncated by a lost or damaged
// write-ahead log), or its tree of the checkpoint's size has another root
// (rolled back and then written again: a fork, or another log's store).
// It wraps a *CorruptionError, so IsCorruption holds for it.
type RollbackError struct {
	// Anchor names the checkpoint the store was held to, e.g. "the
	// high-water checkpoint highwater.checkpoint".
	Anchor string
	// StoreSize is the size of the store's own latest checkpoint;
	// AnchorSize the size of the anchor checkpoint.
	StoreSize, AnchorSize int64
	// Forked is set when the store is large enough but its tree of
	// AnchorSize is not the anchor's.
	Forked bool
}

func (e *RollbackError) Error() string {
	if e.Forked {
		return fmt.Sprintf("ledger: the store's tree of size %d differs from %s of that size (the store holds %d entries): the log was rolled back and rewritten, or this is another log's store",
			e.AnchorSize, e.Anchor, e.StoreSize)
	}
	return fmt.Sprintf("ledger: the store holds %d entries but %s covers %d: the log was rolled back or truncated (%d acknowledged entries are missing)",
		e.StoreSize, e.Anchor, e.AnchorSize, e.AnchorSize-e.StoreSize)
}

func (e *RollbackError) Unwrap() error {
	return &CorruptionError{What: "state", Index: -1, Detail: e.Error()}
}

// ErrNoHighWater is returned by Open when Options.HighWater holds no mark
// but the store is not empty: the mark was deleted, or the store comes from
// somewhere else. Nothing then shows whether the store is complete; an
// operator who knows it is (docs/operations.md) replaces the mark with the
// store's checkpoint (AcceptStore) and opens the log again.
var ErrNoHighWater = errors.New("ledger: no high-water checkpoint, but the store is not empty")

// highWater is a Log's writer of its high-water mark.
type highWater struct {
	store  HighWater
	mu     sync.Mutex
	cond   *sync.Cond
	want   *Checkpoint // the newest checkpoint handed over
	have   int64       // the size durably stored
	err    error
	closed bool
	done   chan struct{}
}

func newHighWater(store HighWater, cp *Checkpoint) *highWater {
	h := &highWater{store: store, want: cp, have: cp.Size, done: make(chan struct{})}
	h.cond = sync.NewCond(&h.mu)
	go h.run()
	return h
}

// run writes the newest checkpoint handed over whenever it is ahead of the
// stored one, until close.
func (h *highWater) run() {
	defer close(h.done)
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		for !h.closed && h.err == nil && h.want.Size <= h.have {
			h.cond.Wait()
		}
		if h.err != nil || (h.closed && h.want.Size <= h.have) {
			return
		}
		cp := h.want
		h.mu.Unlock()
		err := h.store.Store(cp.Note)
		h.mu.Lock()
		if err != nil {
			h.err = err
		} else {
			h.have = cp.Size
		}
		h.cond.Broadcast()
	}
}

// handOver hands over cp, the checkpoint of a batch that is durable (or,
// for a Replica, of a synced group of batches). It does not wait: the
// writer writes the newest checkpoint handed over when it is done with the
// one it is writing. An older checkpoint is ignored.
func (h *highWater) handOver(cp *Checkpoint) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cp.Size > h.want.Size {
		h.want = cp
		h.cond.Broadcast()
	}
	return h.err
}

// stored waits until the mark durably holds a checkpoint of at least size
// entries, and returns the writer's failure if it failed.
func (h *highWater) stored(size int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.err == nil && h.have < size {
		h.cond.Wait()
	}
	return h.err
}

// close stores the newest checkpoint handed over and stops the writer.
func (h *highWater) close() error {
	h.mu.Lock()
	h.closed = true
	h.cond.Broadcast()
	h.mu.Unlock()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return fmt.Errorf("ledger: high-water checkpoint: %w", h.err)
	}
	return nil
}

// loadHighWater reads and verifies the mark. A missing mark is nil.
func (l *Log) loadHighWater() (*Checkpoint, error) {
	note, err := l.opts.HighWater.Load()
	if err != nil || note == nil {
		return nil, err
	}
	mark, err := OpenCheckpoint(note, l.opts.Origin, l.opts.Key.Verifier())
	if err != nil {
		return nil, &CorruptionError{What: "checkpoint", Index: -1, Detail: "the high-water checkpoint does not verify: " + err.Error()}
	}
	return mark, nil
}

// checkAnchor checks that the store, whose latest checkpoint is cp, holds
// the tree of anchor: at least as many entries, and the same root at the
// anchor's size (proved from the stored tiles, themselves checked against
// cp's signed root). It reads O(log n) tiles.
func (l *Log) checkAnchor(cp, anchor *Checkpoint, name string) error {
	rb := &RollbackError{Anchor: name, StoreSize: cp.Size, AnchorSize: anchor.Size}
	if anchor.Size > cp.Size {
		return rb
	}
	root, err := l.rootAt(anchor.Size, cp)
	if IsCorruption(err) {
		rb.Forked = true
		return rb
	}
	if err != nil {
		return err
	}
	if root != anchor.Root {
		rb.Forked = true
		return rb
	}
	return nil
}

// openHighWater checks the store against the mark and starts its writer.
// It runs in Open after the sequencer state is loaded, so that the tiles
// the check reads are known to hash to the signed root.
func (l *Log) openHighWater(cp *Checkpoint) error {
	mark, err := l.loadHighWater()
	if err != nil {
		return err
	}
	if mark == nil && cp.Size > 0 {
		return fmt.Errorf("%w (it holds %d entries); see docs/operations.md, \"The high-water checkpoint\"", ErrNoHighWater, cp.Size)
	}
	if mark != nil {
		if err := l.checkAnchor(cp, mark, "the high-water checkpoint"); err != nil {
			return err
		}
	}
	if mark == nil || mark.Size < cp.Size {
		// Bring the mark up to the store: an empty log's first open, or a
		// crash in the one group commit the mark may lag.
		if err := l.opts.HighWater.Store(cp.Note); err != nil {
			return fmt.Errorf("ledger: write the high-water checkpoint: %w", err)
		}
	}
	l.hw = newHighWater(l.opts.HighWater, cp)
	return nil
}

// AcceptStore replaces the high-water mark with the store's own latest
// checkpoint, verified with v. It is the operator's way out when a store
// that is known to be the right one (a backup restored on purpose, a log
// whose mark was lost) is refused at open: the entries beyond the store are
// given up, and clients that saw them will refuse the log (see
// docs/operations.md). It returns the store's and the old mark's sizes
// (-1 when there was none). The log must not be open.
func AcceptStore(s interface {
	Get(key []byte) ([]byte, error)
}, origin string, v note.Verifier, hw HighWater) (storeSize, markSize int64, err error) {
	markSize = -1
	if note, err := hw.Load(); err != nil {
		return 0, 0, err
	} else if note != nil {
		if mark, err := OpenCheckpoint(note, origin, v); err == nil {
			markSize = mark.Size
		}
	}
	data, err := s.Get([]byte(keyState))
	if err != nil {
		return 0, markSize, fmt.Errorf("ledger: read the store's checkpoint: %w", err)
	}
	cp, err := OpenCheckpoint(data, origin, v)
	if err != nil {
		return 0, markSize, &CorruptionError{What: "checkpoint", Index: -1, Detail: "latest checkpoint does not verify: " + err.Error()}
	}
	if err := hw.Store(cp.Note); err != nil {
		return 0, markSize, err
	}
	return cp.Size, markSize, nil
}
