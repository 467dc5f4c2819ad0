package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger"
)

// applyResult is the FSM's response to one raft entry.
type applyResult struct {
	outcomes []ledger.Outcome // an append's, one per proposal
	err      error
	// conflicts counts create-only sets that lost to an existing key.
	conflicts int
}

// fsm applies committed raft entries to the ledger's Replica, the seam
// between raft and the log. Raft calls Apply, Snapshot and Restore from
// one goroutine. The Replica publishes each entry as it applies it and
// syncs its store in groups: raft's own log holds every entry durably, and
// after a crash raft applies again every entry after the latest snapshot,
// which the Replica skips up to what its store held (see Node's start).
type fsm struct {
	rep        *ledger.Replica
	restoreTag string // a file whose presence marks an unfinished Restore
	metrics    *metrics
	onApply    func(index uint64)
	onWrite    func(ops []ledger.WriteOp)
	onRestore  func()
}

func (f *fsm) Apply(l *raft.Log) any {
	res := f.apply(l)
	if f.onApply != nil {
		f.onApply(l.Index)
	}
	return res
}

func (f *fsm) apply(l *raft.Log) *applyResult {
	res := &applyResult{}
	if len(l.Data) == 0 {
		// Every node rejects it alike; the index is recorded so that it
		// is not replayed.
		_, res.err = f.rep.ApplyWrite(l.Index, nil)
		if res.err == nil {
			res.err = errors.New("cluster: empty command")
		}
		return res
	}
	var derr error
	switch l.Data[0] {
	case cmdAppend:
		var ps []*ledger.Proposal
		if ps, derr = decodeAppend(l.Data[1:]); derr == nil {
			res.outcomes, res.err = f.rep.Apply(l.Index, ps)
			return res
		}
	case cmdWrite:
		var ops []ledger.WriteOp
		if ops, derr = decodeWrite(l.Data[1:]); derr == nil {
			res.conflicts, res.err = f.rep.ApplyWrite(l.Index, ops)
			if res.err == nil && f.onWrite != nil {
				f.onWrite(ops)
			}
			return res
		}
	case cmdPurge:
		var prefix []byte
		if prefix, derr = decodePurge(l.Data[1:]); derr == nil {
			res.err = f.rep.ApplyPurge(l.Index, prefix)
			return res
		}
	default:
		derr = fmt.Errorf("cluster: unknown command %q", l.Data[0])
	}
	// A command that does not decode: every node rejects it alike.
	if _, err := f.rep.ApplyWrite(l.Index, nil); err != nil {
		res.err = err
		return res
	}
	res.err = derr
	return res
}

// Snapshot implements raft.FSM: the Replica syncs its store and opens a
// consistent view of it, which Persist streams.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.rep.Snapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{s: s}, nil
}

type snapshot struct{ s *ledger.Snapshot }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() { s.s.Release() }

// Restore implements raft.FSM: it replaces the Replica's store with the
// snapshot's contents. A file marks the store as incomplete until the
// restore is durable, so that a crash in between makes the next start
// restore again (see Node's start).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if f.restoreTag != "" {
		if err := os.WriteFile(f.restoreTag, nil, 0o600); err != nil {
			return err
		}
	}
	if err := f.rep.Restore(rc); err != nil {
		return fmt.Errorf("cluster: restore: %w", err)
	}
	if f.onRestore != nil {
		f.onRestore()
	}
	if f.restoreTag != "" {
		if err := os.Remove(f.restoreTag); err != nil {
			return err
		}
	}
	if f.metrics != nil {
		f.metrics.restores.Inc()
	}
	return nil
}
