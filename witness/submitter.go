package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/ledger"
)

// Log is what the Submitter needs of the log (*ledger.Log).
type Log interface {
	Checkpoint() *ledger.Checkpoint
	Wait(ctx context.Context, size int64) (*ledger.Checkpoint, error)
	ConsistencyProof(older, newer int64) ([]ledger.Hash, error)
}

// Submitter submits the log's checkpoints to its witnesses and keeps the
// latest one cosigned by a quorum of them: in memory (Witnessed) and in a
// file, so that a restart serves it at once. It is safe for concurrent use.
//
// Each round takes the log's latest checkpoint and sends it to every
// witness at once, with the consistency proof from the size that witness
// cosigned last; a witness that answers with another size (409) is sent
// the proof from that size. A witness's refusal is logged with its reason,
// and counted (Refusals): an honest witness refuses a rolled-back or
// forked log.
type Submitter struct {
	log       Log
	witnesses []Witness
	quorum    int
	path      string
	interval  time.Duration
	logger    *slog.Logger

	mu struct {
		sync.Mutex
		sizes     []int64 // per witness, its last cosigned size; -1 unknown
		witnessed []byte
		size      int64
		refusals  int
		lastErr   []error
	}
}

// SubmitterOptions configure a Submitter.
type SubmitterOptions struct {
	// Quorum is how many witnesses must cosign a checkpoint for it to be
	// kept; 0 means all of them.
	Quorum int
	// Path is the file that keeps the latest witnessed checkpoint.
	Path string
	// Interval is the least time between rounds; default 1 s.
	Interval time.Duration
	Logger   *slog.Logger
}

// WitnessedFileName is the witnessed checkpoint's file in a data directory.
const WitnessedFileName = "witnessed.checkpoint"

// NewSubmitter returns a Submitter for the log's witnesses. It reads the
// file of an earlier run.
func NewSubmitter(l Log, ws []Witness, opts SubmitterOptions) (*Submitter, error) {
	if len(ws) == 0 {
		return nil, errors.New("witness: no witnesses")
	}
	if opts.Quorum <= 0 {
		opts.Quorum = len(ws)
	}
	if opts.Quorum > len(ws) {
		return nil, fmt.Errorf("witness: a quorum of %d from %d witnesses", opts.Quorum, len(ws))
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Submitter{log: l, witnesses: ws, quorum: opts.Quorum, path: opts.Path, interval: opts.Interval, logger: opts.Logger}
	s.mu.sizes = make([]int64, len(ws))
	s.mu.lastErr = make([]error, len(ws))
	for i := range s.mu.sizes {
		s.mu.sizes[i] = -1
	}
	if opts.Path != "" {
		if b, err := os.ReadFile(opts.Path); err == nil {
			s.mu.witnessed = b
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("witness: %w", err)
		}
	}
	return s, nil
}

// Witnessed returns the latest checkpoint cosigned by a quorum, with the
// log's signature and the cosignatures, or nil.
func (s *Submitter) Witnessed() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.witnessed
}

// Refusals returns how many submissions witnesses refused.
func (s *Submitter) Refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.refusals
}

// Run submits checkpoints until ctx is done: a round whenever the log has
// grown since the last one that succeeded, at most one per interval.
func (s *Submitter) Run(ctx context.Context) {
	var done int64 = -1
	for ctx.Err() == nil {
		cp := s.log.Checkpoint()
		if cp.Size > done {
			if s.Round(ctx, cp) {
				done = cp.Size
			}
		}
		t := time.NewTimer(s.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if cp.Size <= done {
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			s.log.Wait(wctx, done)
			cancel()
		}
	}
}

// Round submits cp to every witness and keeps it, with their
// cosignatures, when a quorum cosigned it. It reports whether it did.
func (s *Submitter) Round(ctx context.Context, cp *ledger.Checkpoint) bool {
	cosigs := make([][]byte, len(s.witnesses))
	var wg sync.WaitGroup
	for i := range s.witnesses {
		wg.Go(func() { cosigs[i] = s.submit(ctx, i, cp) })
	}
	wg.Wait()
	signed := append([]byte(nil), cp.Note...)
	n := 0
	for _, c := range cosigs {
		if c != nil {
			signed = append(signed, c...)
			n++
		}
	}
	if n < s.quorum {
		return false
	}
	if s.path != "" {
		if err := writeFile(s.path, signed); err != nil {
			s.logger.Error("witness: cannot keep the witnessed checkpoint", "error", err.Error())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cp.Size >= s.mu.size || s.mu.witnessed == nil {
		s.mu.witnessed, s.mu.size = signed, cp.Size
	}
	return true
}

// submit sends cp to witness i and returns its cosignature lines, or nil.
func (s *Submitter) submit(ctx context.Context, i int, cp *ledger.Checkpoint) []byte {
	w := s.witnesses[i]
	s.mu.Lock()
	old := s.mu.sizes[i]
	s.mu.Unlock()
	if old < 0 {
		old = 0
	}
	for attempt := 0; attempt < 2; attempt++ {
		if old > cp.Size {
			s.refused(i, fmt.Errorf("the witness has cosigned size %d, larger than the log's %d: the log was rolled back or truncated", old, cp.Size))
			return nil
		}
		proof, err := s.log.ConsistencyProof(old, cp.Size)
		if err != nil {
			s.logger.Error("witness: consistency proof", "witness", w.URL, "error", err.Error())
			return nil
		}
		hashes := make([][]byte, len(proof))
		for j := range proof {
			hashes[j] = proof[j][:]
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		start := time.Now()
		sigs, err := w.AddCheckpoint(rctx, old, hashes, cp.Note)
		cancel()
		var conflict *ConflictError
		switch {
		case err == nil:
			s.mu.Lock()
			s.mu.sizes[i], s.mu.lastErr[i] = cp.Size, nil
			s.mu.Unlock()
			s.logger.Debug("witness: cosigned", "witness", w.URL, "tree_size", cp.Size, "ms", time.Since(start).Milliseconds())
			return sigs
		case errors.As(err, &conflict):
			s.mu.Lock()
			s.mu.sizes[i] = conflict.Size
			s.mu.Unlock()
			old = conflict.Size
			continue
		case errors.As(err, new(*RefusedError)):
			s.refused(i, err)
			return nil
		default:
			s.logger.Warn("witness: unreachable", "witness", w.URL, "error", err.Error())
			return nil
		}
	}
	return nil
}

func (s *Submitter) refused(i int, err error) {
	s.mu.Lock()
	s.mu.refusals++
	s.mu.lastErr[i] = err
	s.mu.Unlock()
	s.logger.Error("witness: the witness refuses this log's checkpoint", "witness", s.witnesses[i].URL, "error", err.Error())
}

// LastError returns the last refusal of witness i, or nil.
func (s *Submitter) LastError(i int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.lastErr[i]
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
