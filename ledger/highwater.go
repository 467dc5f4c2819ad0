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
// Contract: the mark MUST NOT lag the published checkpoints by more than one
// group commit. After each durable group commit the log hands its checkpoint
// to a writer goroutine and publishes (acknowledges) the batch only once the
// mark holds the checkpoint of the batch before it; the write of one batch's
// mark so overlaps the next batch's sync. Close writes the last checkpoint
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

// HighWaterFile is a HighWater kept in one file, replaced atomically: the
// note is written to a temporary file, which is synced and renamed over the
// file, and the directory is synced.
type HighWaterFile string

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
	return writeFileSync(string(f), note, 0o644)
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

// advance hands over cp, the checkpoint of a batch that is durable but not
// yet published, once the mark holds the checkpoint handed over before it.
func (h *highWater) advance(cp *Checkpoint) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cp.Size <= h.want.Size {
		return h.err
	}
	for h.err == nil && h.have < h.want.Size {
		// The checkpoint handed over before is not stored yet.
		h.cond.Wait()
	}
	if h.err != nil {
		return h.err
	}
	h.want = cp
	h.cond.Broadcast()
	return nil
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
