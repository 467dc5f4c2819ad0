package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// RaftStore keeps raft's log and its stable state (current term, vote) in a
// storage.Store, so that the raft log lives in the same engine as the ledger
// (pebble by default) with the same durability: every StoreLogs and Set is
// one synced batch. It implements raft.LogStore and raft.StableStore. Give it
// its own store, not the ledger's: the ledger's store is the replicated
// state that snapshots copy, the raft log is not.
//
// Keys: 'L' index (8, BE) -> encoded raft.Log; 'S' name -> value.
type RaftStore struct {
	kv storage.Store
	mu struct {
		sync.Mutex
		first, last uint64 // 0, 0 when empty
	}
}

const (
	prefixRaftLog    = 'L'
	prefixRaftStable = 'S'
)

func raftLogKey(i uint64) []byte { return binary.BigEndian.AppendUint64([]byte{prefixRaftLog}, i) }

// NewRaftStore opens the raft log kept in kv.
func NewRaftStore(kv storage.Store) (*RaftStore, error) {
	s := &RaftStore{kv: kv}
	err := kv.Scan([]byte{prefixRaftLog}, []byte{prefixRaftLog + 1}, func(k, _ []byte) error {
		if len(k) != 9 {
			return errors.New("cluster: malformed raft log key")
		}
		i := binary.BigEndian.Uint64(k[1:])
		if s.mu.first == 0 {
			s.mu.first = i
		}
		s.mu.last = i
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft log: %w", err)
	}
	return s, nil
}

// FirstIndex implements raft.LogStore.
func (s *RaftStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.first, nil
}

// LastIndex implements raft.LogStore.
func (s *RaftStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.last, nil
}

// GetLog implements raft.LogStore.
func (s *RaftStore) GetLog(index uint64, out *raft.Log) error {
	data, err := s.kv.Get(raftLogKey(index))
	if errors.Is(err, storage.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	return decodeRaftLog(data, out)
}

// StoreLog implements raft.LogStore.
func (s *RaftStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: one synced batch for all of them.
func (s *RaftStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	var b storage.Batch
	for _, l := range logs {
		b.Set(raftLogKey(l.Index), encodeRaftLog(l))
	}
	if err := s.kv.Write(&b, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range logs {
		if s.mu.first == 0 || l.Index < s.mu.first {
			s.mu.first = l.Index
		}
		if l.Index > s.mu.last {
			s.mu.last = l.Index
		}
	}
	return nil
}

// DeleteRange implements raft.LogStore.
func (s *RaftStore) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi := max64(min, s.mu.first), max
	if hi > s.mu.last {
		hi = s.mu.last
	}
	var b storage.Batch
	for i := lo; i <= hi && i != 0; i++ {
		b.Delete(raftLogKey(i))
		if b.Len() >= 4096 {
			if err := s.kv.Write(&b, false); err != nil {
				return err
			}
			b = storage.Batch{}
		}
	}
	if err := s.kv.Write(&b, true); err != nil {
		return err
	}
	switch {
	case min <= s.mu.first && max >= s.mu.last:
		s.mu.first, s.mu.last = 0, 0
	case min <= s.mu.first:
		s.mu.first = max + 1
	case max >= s.mu.last:
		s.mu.last = min - 1
	}
	return nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// Set implements raft.StableStore.
func (s *RaftStore) Set(key, val []byte) error {
	var b storage.Batch
	b.Set(append([]byte{prefixRaftStable}, key...), append([]byte(nil), val...))
	return s.kv.Write(&b, true)
}

// Get implements raft.StableStore. A missing key returns an empty value and
// an error whose text raft recognises as "not found".
func (s *RaftStore) Get(key []byte) ([]byte, error) {
	v, err := s.kv.Get(append([]byte{prefixRaftStable}, key...))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errors.New("not found")
	}
	return v, err
}

// SetUint64 implements raft.StableStore.
func (s *RaftStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore; a missing key is 0.
func (s *RaftStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.kv.Get(append([]byte{prefixRaftStable}, key...))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, errors.New("cluster: malformed stable value")
	}
	return binary.BigEndian.Uint64(v), nil
}

// Raft log record: index (8) term (8) type (1) appended at (8, Unix ns)
// data length (4) data extensions length (4) extensions.
func encodeRaftLog(l *raft.Log) []byte {
	b := make([]byte, 0, 33+len(l.Data)+len(l.Extensions))
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	return append(b, l.Extensions...)
}

func decodeRaftLog(b []byte, l *raft.Log) error {
	bad := errors.New("cluster: malformed raft log record")
	if len(b) < 29 {
		return bad
	}
	l.Index = binary.BigEndian.Uint64(b)
	l.Term = binary.BigEndian.Uint64(b[8:])
	l.Type = raft.LogType(b[16])
	if at := int64(binary.BigEndian.Uint64(b[17:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	} else {
		l.AppendedAt = time.Time{}
	}
	n := binary.BigEndian.Uint32(b[25:])
	b = b[29:]
	if uint64(len(b)) < uint64(n)+4 {
		return bad
	}
	l.Data = b[:n:n]
	b = b[n:]
	m := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(len(b)) != uint64(m) {
		return bad
	}
	l.Extensions = nil
	if m > 0 {
		l.Extensions = b
	}
	return nil
}
