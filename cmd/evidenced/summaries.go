package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/summary"
)

// summaries is the encounter summaries the server lists from: the view
// kept in <data-dir>/summaries, replaced by a rebuilt one if it turns out
// not to be a view of the log.
type summaries struct {
	dir    string
	log    *ledger.Log
	logger *slog.Logger
	view   atomic.Pointer[summary.View]
}

var _ encounter.SummaryView = (*summaries)(nil)

// Summaries implements encounter.SummaryView with the current view.
func (s *summaries) Summaries(ctx context.Context, tenant string, f encounter.Filter, after *encounter.Cursor, limit int, minSize int64) ([]encounter.Info, *encounter.Cursor, int64, error) {
	return s.view.Load().Summaries(ctx, tenant, f, after, limit, minSize)
}

// Applied returns the number of log entries the summaries reflect.
func (s *summaries) Applied() int64 { return s.view.Load().Applied() }

// open opens the view, dropping and rebuilding one that is not a view of
// this log (another log, a restored backup, an older format).
func (s *summaries) open() (*summary.View, error) {
	opts := summary.Options{Logger: s.logger}
	v, err := summary.Open(s.dir, s.log, opts)
	var diverged *summary.DivergedError
	if errors.As(err, &diverged) {
		s.logger.Warn("encounter summaries are not a view of this log; rebuilding them", "reason", diverged.Detail)
		if err := summary.Remove(s.dir); err != nil {
			return nil, err
		}
		v, err = summary.Open(s.dir, s.log, opts)
	}
	if err != nil {
		return nil, viewError("encounter summaries", "summaries", s.dir, err)
	}
	return v, nil
}

// viewError says what to do about a derived view (the encounter summaries, the search index)
// that does not open: it holds nothing the log does not, so rebuilding it loses nothing.
func viewError(what, cmd, dir string, err error) error {
	return fmt.Errorf("the %s (%s) cannot be opened: %w; this view is derived from the log: with the server stopped, rebuild it with `evidencectl %s rebuild --data-dir %s`, or delete %s and the server rebuilds it at start",
		what, dir, err, cmd, filepath.Dir(dir), dir)
}

// startSummaries opens the encounter summaries in <dataDir>/summaries and
// follows the log into them on a goroutine. Listing waits for them to
// reflect the log (encounter.Service.Find), so after a rebuild starts the
// visit list answers Unavailable until it has caught up.
//
// The returned stop function stops the goroutine, waits for it and closes
// the view. Call it before closing the log; it is safe to call more than
// once.
func startSummaries(ctx context.Context, dataDir string, log *ledger.Log, logger *slog.Logger) (*summaries, func(), error) {
	s := &summaries{dir: filepath.Join(dataDir, "summaries"), log: log, logger: logger.With("component", "summaries")}
	start := time.Now()
	v, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	s.view.Store(v)
	s.logger.Info("encounter summaries opened", "applied", v.Applied(), "tree_size", log.Size(), "open_ms", time.Since(start).Milliseconds())

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			v := s.view.Load()
			err := v.Follow(ctx)
			if ctx.Err() != nil || errors.Is(err, ledger.ErrClosed) {
				return
			}
			var diverged *summary.DivergedError
			if errors.As(err, &diverged) {
				// Rebuild beside the listings in flight, which fail on the
				// closed view and are retried by their clients.
				s.logger.Error("encounter summaries are not a view of this log; rebuilding them", "reason", diverged.Detail, "applied", v.Applied())
				v.Close()
				nv, err := s.open()
				if err == nil {
					s.view.Store(nv)
					continue
				}
				s.logger.Error("encounter summaries could not be reopened", "error", err.Error())
				return
			}
			// A failed batch leaves the view at its last written one;
			// retry after a pause.
			s.logger.Error("encounter summaries stopped; retrying", "error", err.Error(), "applied", v.Applied())
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
			if err := s.view.Load().Close(); err != nil {
				s.logger.Error("encounter summaries close", "error", err.Error())
			}
		})
	}
	return s, stop, nil
}
