package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
)

// startIndex opens the full-text index kept in <dataDir>/index and starts
// tailing log into it on a goroutine. An index that is not a view of this
// log (another log, a restored backup, an older format) is dropped and
// rebuilt from the log. Searches work at once and see what has been
// applied so far.
//
// The returned stop function stops the tailing goroutine, waits for it and
// closes the index. Call it before closing the log; it is safe to call more
// than once.
func startIndex(ctx context.Context, dataDir string, log *ledger.Log, logger *slog.Logger) (*index.Index, func(), error) {
	dir := filepath.Join(dataDir, "index")
	logger = logger.With("component", "index")
	opts := index.Options{Logger: logger}
	x, err := index.Open(dir, log, opts)
	var diverged *index.DivergedError
	if errors.As(err, &diverged) {
		logger.Warn("index is not a view of this log; rebuilding it", "reason", diverged.Detail)
		if err := index.Remove(dir); err != nil {
			return nil, nil, err
		}
		x, err = index.Open(dir, log, opts)
	}
	if err != nil {
		return nil, nil, viewError("full-text index", "index", dir, err)
	}
	logger.Info("index opened", "applied", x.Applied(), "tree_size", log.Size())

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			start, from := time.Now(), x.Applied()
			err := x.Follow(ctx)
			if ctx.Err() != nil || errors.Is(err, ledger.ErrClosed) {
				return
			}
			// A failed batch leaves the index at its last durable one;
			// retry after a pause rather than stop searching new entries.
			logger.Error("indexing stopped; retrying", "error", err.Error(), "applied", x.Applied(),
				"applied_since_start", x.Applied()-from, "ran_ms", time.Since(start).Milliseconds())
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			if err := x.Close(); err != nil {
				logger.Error("index close", "error", err.Error())
			}
		})
	}
	return x, stop, nil
}
