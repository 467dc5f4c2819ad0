package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// Raft command types: the first byte of every raft log entry's data.
const (
	cmdAppend = 'P' // count (4, BE), then that many ledger proposals
	cmdWrite  = 'W' // a side write: count (4, BE), then ops
	cmdPurge  = 'U' // a physical purge of one key prefix (storage.Purger)
)

// Write op flags.
const (
	opDelete     = 1 << 0
	opCreateOnly = 1 << 1 // set only if the key is absent: first writer wins
)

func encodeAppend(ps [][]byte) []byte {
	n := 5
	for _, p := range ps {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, cmdAppend)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = append(b, p...)
	}
	return b
}

func decodeAppend(data []byte) ([]*ledger.Proposal, error) {
	if len(data) < 4 {
		return nil, errors.New("cluster: malformed append command")
	}
	n := binary.BigEndian.Uint32(data)
	data = data[4:]
	if uint64(n) > uint64(len(data)) {
		return nil, errors.New("cluster: malformed append command")
	}
	ps := make([]*ledger.Proposal, 0, n)
	for range n {
		p, rest, err := ledger.ParseProposal(data)
		if err != nil {
			return nil, err
		}
		ps, data = append(ps, p), rest
	}
	if len(data) != 0 {
		return nil, errors.New("cluster: trailing bytes in append command")
	}
	return ps, nil
}

// writeOp is one operation of a replicated side write.
type writeOp struct {
	flags      byte
	key, value []byte
}

func encodeWrite(ops []writeOp) []byte {
	b := []byte{cmdWrite}
	b = binary.BigEndian.AppendUint32(b, uint32(len(ops)))
	for _, op := range ops {
		b = append(b, op.flags)
		b = binary.BigEndian.AppendUint32(b, uint32(len(op.key)))
		b = append(b, op.key...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(op.value)))
		b = append(b, op.value...)
	}
	return b
}

func decodeWrite(data []byte) ([]writeOp, error) {
	bad := errors.New("cluster: malformed write command")
	if len(data) < 4 {
		return nil, bad
	}
	n := binary.BigEndian.Uint32(data)
	data = data[4:]
	if uint64(n) > uint64(len(data))/9 {
		return nil, bad
	}
	ops := make([]writeOp, n)
	for i := range ops {
		if len(data) < 5 {
			return nil, bad
		}
		ops[i].flags = data[0]
		kl := binary.BigEndian.Uint32(data[1:])
		data = data[5:]
		if uint64(len(data)) < uint64(kl)+4 || kl == 0 {
			return nil, bad
		}
		ops[i].key = data[:kl:kl]
		vl := binary.BigEndian.Uint32(data[kl:])
		data = data[kl+4:]
		if uint64(len(data)) < uint64(vl) {
			return nil, bad
		}
		ops[i].value = data[:vl:vl]
		data = data[vl:]
	}
	if len(data) != 0 {
		return nil, bad
	}
	return ops, nil
}

// applyResult is the FSM's response to one raft entry.
type applyResult struct {
	applying *ledger.Applying // nil for a replayed entry
	err      error
	// conflicts counts create-only sets that lost to an existing key.
	conflicts int
}

// fsm applies committed raft entries to the ledger. Raft calls Apply,
// Snapshot and Restore from one goroutine.
type fsm struct {
	log        *ledger.Log
	restoreTag string // a file whose presence marks an unfinished Restore
	last       *ledger.Applying
	metrics    *metrics
	onApply    func(index uint64)
}

func (f *fsm) Apply(l *raft.Log) any {
	res := f.apply(l)
	if f.onApply != nil {
		f.onApply(l.Index)
	}
	return res
}

func (f *fsm) apply(l *raft.Log) *applyResult {
	if len(l.Data) == 0 {
		return &applyResult{err: errors.New("cluster: empty command")}
	}
	var a *ledger.Applying
	var err error
	res := &applyResult{}
	switch l.Data[0] {
	case cmdAppend:
		ps, derr := decodeAppend(l.Data[1:])
		if derr != nil {
			// Every node rejects it alike; record the index so it
			// is not replayed.
			a, err = f.log.ApplyWrite(l.Index, nil)
			res.err = derr
			break
		}
		a, err = f.log.Apply(l.Index, ps)
	case cmdWrite:
		ops, derr := decodeWrite(l.Data[1:])
		if derr != nil {
			a, err = f.log.ApplyWrite(l.Index, nil)
			res.err = derr
			break
		}
		var b storage.Batch
		for _, op := range ops {
			switch {
			case op.flags&opDelete != 0:
				b.Delete(op.key)
			case op.flags&opCreateOnly != 0:
				// What earlier entries wrote must be visible to
				// decide deterministically.
				if err := f.barrier(); err != nil {
					return &applyResult{err: err}
				}
				if _, gerr := f.log.Store().Get(op.key); gerr == nil {
					res.conflicts++
					continue
				}
				b.Set(op.key, op.value)
			default:
				b.Set(op.key, op.value)
			}
		}
		a, err = f.log.ApplyWrite(l.Index, &b)
	case cmdPurge:
		if l.Index <= f.log.AppliedIndex() {
			return &applyResult{}
		}
		if err := f.barrier(); err != nil {
			return &applyResult{err: err}
		}
		prefix := l.Data[1:]
		var b storage.Batch
		if p, ok := f.log.Store().(storage.Purger); ok && len(prefix) > 0 {
			if err := p.Purge(prefix); err != nil {
				return &applyResult{err: err}
			}
		} else if len(prefix) > 0 {
			// A store that cannot purge deletes the keys.
			end := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff)
			f.log.Store().Scan(prefix, end, func(k, _ []byte) error {
				if bytes.HasPrefix(k, prefix) {
					b.Delete(bytes.Clone(k))
				}
				return nil
			})
		}
		a, err = f.log.ApplyWrite(l.Index, &b)
	default:
		a, err = f.log.ApplyWrite(l.Index, nil)
		res.err = fmt.Errorf("cluster: unknown command %q", l.Data[0])
	}
	if err != nil {
		// The log has failed (storage) or closed: this node cannot go
		// on applying. Raft would otherwise move past the entry.
		res.err = err
		return res
	}
	if a != nil {
		f.last = a
	}
	res.applying = a
	return res
}

// barrier waits until everything applied so far is durable.
func (f *fsm) barrier() error {
	if f.last == nil {
		return nil
	}
	return f.last.Done()
}

// Snapshot implements raft.FSM: it waits for what was applied to be
// durable, then opens a consistent scan of the whole store, which Persist
// streams.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.barrier(); err != nil {
		return nil, err
	}
	s := &snapshot{items: make(chan kv, 256), stop: make(chan struct{}), done: make(chan error, 1)}
	started := make(chan struct{})
	go func() {
		var once sync.Once
		err := f.log.Store().Scan([]byte{0}, nil, func(k, v []byte) error {
			once.Do(func() { close(started) })
			select {
			case s.items <- kv{bytes.Clone(k), bytes.Clone(v)}:
				return nil
			case <-s.stop:
				return errSnapshotReleased
			}
		})
		once.Do(func() { close(started) })
		close(s.items)
		s.done <- err
	}()
	// The store always holds the latest checkpoint, so the scan calls
	// back at least once, after its consistent view is open.
	<-started
	return s, nil
}

type kv struct{ k, v []byte }

var errSnapshotReleased = errors.New("cluster: snapshot released")

// snapshot streams the store as: magic, then key length (4, BE), key,
// value length (4, BE), value, ..., and a zero key length.
type snapshot struct {
	items chan kv
	stop  chan struct{}
	done  chan error
	once  sync.Once
}

const snapshotMagic = "evidence-snapshot-v1\n"

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	err := func() error {
		if _, err := w.WriteString(snapshotMagic); err != nil {
			return err
		}
		var hdr [4]byte
		for it := range s.items {
			binary.BigEndian.PutUint32(hdr[:], uint32(len(it.k)))
			w.Write(hdr[:])
			w.Write(it.k)
			binary.BigEndian.PutUint32(hdr[:], uint32(len(it.v)))
			w.Write(hdr[:])
			if _, err := w.Write(it.v); err != nil {
				return err
			}
		}
		if err := <-s.done; err != nil {
			return err
		}
		if _, err := w.Write([]byte{0, 0, 0, 0}); err != nil {
			return err
		}
		return w.Flush()
	}()
	if err != nil {
		s.Release()
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {
	s.once.Do(func() {
		close(s.stop)
		for range s.items {
		}
	})
}

// Restore implements raft.FSM: it replaces the store's contents with the
// snapshot's and reloads the log. A file marks the store as incomplete
// until the restore is durable, so that a crash in between makes the next
// start restore again (see Node's start).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.barrier(); err != nil {
		return err
	}
	if f.restoreTag != "" {
		if err := os.WriteFile(f.restoreTag, nil, 0o600); err != nil {
			return err
		}
	}
	store := f.log.Store()
	// Delete what is there, in batches.
	var del storage.Batch
	err := store.Scan([]byte{0}, nil, func(k, _ []byte) error {
		del.Delete(bytes.Clone(k))
		if del.Len() >= 8192 {
			if err := store.Write(&del, false); err != nil {
				return err
			}
			del = storage.Batch{}
		}
		return nil
	})
	if err == nil {
		err = store.Write(&del, false)
	}
	if err != nil {
		return fmt.Errorf("cluster: restore: clear store: %w", err)
	}
	r := bufio.NewReaderSize(rc, 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("cluster: restore: not an evidence snapshot")
	}
	var b storage.Batch
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("cluster: restore: %w", err)
		}
		kl := binary.BigEndian.Uint32(hdr[:])
		if kl == 0 {
			break
		}
		if kl > 1<<16 {
			return errors.New("cluster: restore: key too long")
		}
		k := make([]byte, kl)
		if _, err := io.ReadFull(r, k); err != nil {
			return fmt.Errorf("cluster: restore: %w", err)
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("cluster: restore: %w", err)
		}
		vl := binary.BigEndian.Uint32(hdr[:])
		if vl > 256<<20 {
			return errors.New("cluster: restore: value too long")
		}
		v := make([]byte, vl)
		if _, err := io.ReadFull(r, v); err != nil {
			return fmt.Errorf("cluster: restore: %w", err)
		}
		b.Set(k, v)
		if b.Size() >= 4<<20 {
			if err := store.Write(&b, false); err != nil {
				return err
			}
			b = storage.Batch{}
		}
	}
	if err := store.Write(&b, true); err != nil {
		return err
	}
	if err := f.log.Reload(); err != nil {
		return err
	}
	f.last = nil
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
