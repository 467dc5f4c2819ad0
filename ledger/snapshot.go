package ledger

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// A snapshot of a Replica is every key and value of its store, in key
// order, so that a node far behind installs it instead of applying the
// whole replicated log (docs/formats.md, "Snapshots"):
//
//	"evidence-snapshot-v1\n"
//	per key: key length (4, BE), key, value length (4, BE), value
//	a zero key length
const snapshotMagic = "evidence-snapshot-v1\n"

// Limits on what a snapshot may hold, checked when it is restored.
const (
	maxSnapshotKey   = 1 << 16
	maxSnapshotValue = 256 << 20
)

// Snapshot is a consistent view of a Replica's store, taken by
// Replica.Snapshot and written out by WriteTo. Release it when done.
type Snapshot struct {
	items chan kv
	stop  chan struct{}
	done  chan error
	once  sync.Once
}

type kv struct{ k, v []byte }

var errSnapshotReleased = errors.New("ledger: snapshot released")

// Snapshot syncs the store and opens a consistent view of it, which the
// Snapshot's WriteTo streams; the Replica goes on applying meanwhile. The
// snapshot holds everything applied at up to AppliedIndex when it returns.
func (r *Replica) Snapshot() (*Snapshot, error) {
	if err := r.Sync(); err != nil {
		return nil, err
	}
	s := &Snapshot{items: make(chan kv, 256), stop: make(chan struct{}), done: make(chan error, 1)}
	started := make(chan struct{})
	go func() {
		var once sync.Once
		err := r.store.Scan([]byte{0}, nil, func(k, v []byte) error {
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
	// The store always holds the latest checkpoint, so the scan calls back
	// at least once, after its consistent view is open.
	<-started
	return s, nil
}

// WriteTo writes the snapshot to w in the format above.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	n := int64(0)
	write := func(p []byte) error {
		m, err := bw.Write(p)
		n += int64(m)
		return err
	}
	err := func() error {
		if err := write([]byte(snapshotMagic)); err != nil {
			return err
		}
		var hdr [4]byte
		for it := range s.items {
			binary.BigEndian.PutUint32(hdr[:], uint32(len(it.k)))
			write(hdr[:])
			write(it.k)
			binary.BigEndian.PutUint32(hdr[:], uint32(len(it.v)))
			write(hdr[:])
			if err := write(it.v); err != nil {
				return err
			}
		}
		if err := <-s.done; err != nil {
			return err
		}
		if err := write([]byte{0, 0, 0, 0}); err != nil {
			return err
		}
		return bw.Flush()
	}()
	if err != nil {
		s.Release()
	}
	return n, err
}

// Release ends the snapshot's view of the store.
func (s *Snapshot) Release() {
	s.once.Do(func() {
		close(s.stop)
		for range s.items {
		}
	})
}

// Restore replaces the store's contents with a snapshot read from rd and
// reloads the log from it, checking it as Open does. A store left half
// restored by a crash holds a mix of old and new keys: the caller marks the
// restore as under way before it calls Restore and clears the mark after,
// and restores again at the next start if the mark is there.
func (r *Replica) Restore(rd io.Reader) error {
	if r.closed {
		return ErrClosed
	}
	store := r.store
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
		return fmt.Errorf("ledger: restore: clear the store: %w", err)
	}
	br := bufio.NewReaderSize(rd, 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("ledger: restore: not an evidence snapshot")
	}
	var b storage.Batch
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("ledger: restore: %w", err)
		}
		kl := binary.BigEndian.Uint32(hdr[:])
		if kl == 0 {
			break
		}
		if kl > maxSnapshotKey {
			return errors.New("ledger: restore: key too long")
		}
		k := make([]byte, kl)
		if _, err := io.ReadFull(br, k); err != nil {
			return fmt.Errorf("ledger: restore: %w", err)
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("ledger: restore: %w", err)
		}
		vl := binary.BigEndian.Uint32(hdr[:])
		if vl > maxSnapshotValue {
			return errors.New("ledger: restore: value too long")
		}
		v := make([]byte, vl)
		if _, err := io.ReadFull(br, v); err != nil {
			return fmt.Errorf("ledger: restore: %w", err)
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
	return r.reload()
}

// reload rereads the log's state from its store after its contents were
// replaced.
func (r *Replica) reload() error {
	cp, err := r.loadState()
	if err != nil {
		return err
	}
	// Full tiles never change and the snapshot is of the same log, so the
	// tile cache stays valid.
	m := &machine{log: r.Log}
	if err := m.init(cp); err != nil {
		return err
	}
	if r.hw != nil {
		// A snapshot is installed only on a member behind it, so the mark
		// only moves forward (an older checkpoint is ignored).
		if err := r.hw.handOver(cp); err != nil {
			return err
		}
	}
	m.batchNo = r.m.batchNo
	m.committedBatch.Store(m.batchNo)
	r.m = m
	r.syncMu.Lock()
	r.written.Lock()
	r.written.no, r.written.cp = m.batchNo, cp
	r.written.Unlock()
	r.synced = m.batchNo
	r.syncMu.Unlock()
	r.reset(cp, m.partial(), m.applied)
	return nil
}
