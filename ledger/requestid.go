package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// Request ids make a retried append idempotent: an append that carries the
// id of one applied before, within Options.RequestIDWindow entries, appends
// nothing and reports the earlier append. The state machine keeps them, so
// a retry is recognised on every node of a replicated log.

// MaxRequestIDLen bounds a request id.
const MaxRequestIDLen = 64

// requestScope carries a request id through a context; see WithRequestID.
type requestScope struct {
	id string
	n  atomic.Int64
}

// WithRequestID returns a context whose appends carry request ids derived
// from id, so that a retried request is recorded once: the first append
// made under the context has the id itself, the next id#1, id#2 and so on,
// in call order. A retry that repeats the request's appends in the same
// order therefore repeats their ids. Ids are 1 to 64 printable ASCII bytes
// without spaces (CheckRequestID).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestScopeKey{}, &requestScope{id: id})
}

type requestScopeKey struct{}

// nextRequestID returns the request id of the next append under ctx, or "".
func nextRequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestScopeKey{}).(*requestScope)
	if s == nil {
		return ""
	}
	n := s.n.Add(1) - 1
	if n == 0 {
		return s.id
	}
	return s.id + "#" + strconv.FormatInt(n, 10)
}

// CheckRequestID reports whether id is a valid request id: empty (none),
// or 1 to MaxRequestIDLen printable ASCII bytes without spaces.
func CheckRequestID(id string) error {
	if len(id) > MaxRequestIDLen {
		return &InvalidError{Field: "request_id", Reason: fmt.Sprintf("longer than %d bytes", MaxRequestIDLen)}
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return &InvalidError{Field: "request_id", Reason: "must be printable ASCII without spaces"}
		}
	}
	return nil
}

// Storage of replication state (docs/formats.md):
//
//	'a'                    -> applied replication index (8) || request ids pruned below leaf (8)
//	'r' request id         -> first index (8) || entry count (4)
//	'q' first index (8)    -> request id: the age index that pruning walks
const (
	keyApplied     = "a"
	prefixRequest  = 'r'
	prefixReqAge   = 'q'
	requestRecLen  = 8 + 4
	maxPrunePerRun = 1024
)

func requestKey(id string) []byte { return append([]byte{prefixRequest}, id...) }

func reqAgeKey(first int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixReqAge}, uint64(first))
}

// requestRecord is where an applied request's entries are.
type requestRecord struct {
	first int64
	count int
	batch uint64 // the batch that recorded it; 0 once read from storage
}

func (m *machine) loadApplied() error {
	data, err := m.log.store.Get([]byte(keyApplied))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: read replication state: %w", err)
	}
	if len(data) != 16 {
		return &CorruptionError{What: "state", Index: -1, Detail: "malformed replication state record"}
	}
	m.applied = binary.BigEndian.Uint64(data)
	m.pruned = int64(binary.BigEndian.Uint64(data[8:]))
	return nil
}

func (m *machine) appliedRecord() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), m.applied)
	return binary.BigEndian.AppendUint64(b, uint64(m.pruned))
}

// lookupRequest returns the live record of request id, if any.
func (m *machine) lookupRequest(id string) (*requestRecord, error) {
	rec := m.requests[id]
	if rec == nil {
		var err error
		if rec, err = m.log.storedRequest(id); rec == nil {
			return nil, err
		}
	}
	if rec.first < m.size-m.log.opts.RequestIDWindow {
		return nil, nil // expired: the id may be used again
	}
	return rec, nil
}

// recordRequest notes that request r's entries start at first.
func (m *machine) recordRequest(b *batch, id string, first int64, count int) {
	if len(m.requests) >= maxHeads {
		done := m.committedBatch.Load()
		for k, rec := range m.requests {
			if rec.batch <= done {
				delete(m.requests, k)
			}
			if len(m.requests) < maxHeads*9/10 {
				break
			}
		}
	}
	m.requests[id] = &requestRecord{first: first, count: count, batch: b.no}
	v := binary.BigEndian.AppendUint64(nil, uint64(first))
	v = binary.BigEndian.AppendUint32(v, uint32(count))
	b.ops.Set(requestKey(id), v)
	b.ops.Set(reqAgeKey(first), []byte(id))
}

// pruneRequests deletes request id records that have left the window, at
// most maxPrunePerRun per batch. The records it reads were written more
// than RequestIDWindow entries ago, so they are in the store on every node
// and pruning is as deterministic as the rest of build.
func (m *machine) pruneRequests(b *batch) error {
	limit := m.size - m.log.opts.RequestIDWindow
	if limit <= m.pruned {
		return nil
	}
	n := 0
	next := limit
	err := m.log.store.Scan(reqAgeKey(m.pruned), reqAgeKey(limit), func(k, v []byte) error {
		if n == maxPrunePerRun {
			next = int64(binary.BigEndian.Uint64(k[1:]))
			return errStopScan
		}
		n++
		first := int64(binary.BigEndian.Uint64(k[1:]))
		b.ops.Delete(append([]byte(nil), k...))
		id := string(v)
		if rec := m.requests[id]; rec != nil {
			if rec.first == first {
				delete(m.requests, id)
				b.ops.Delete(requestKey(id))
			}
			return nil
		}
		data, err := m.log.store.Get(requestKey(id))
		if err == nil && len(data) == requestRecLen && int64(binary.BigEndian.Uint64(data)) == first {
			b.ops.Delete(requestKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	m.pruned = next
	return nil
}

var errStopScan = errors.New("stop")

// storedRequest reads request id's record from the store: nil without an
// error when there is none.
func (l *Log) storedRequest(id string) (*requestRecord, error) {
	data, err := l.store.Get(requestKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read request id: %w", err)
	}
	if len(data) != requestRecLen {
		return nil, &CorruptionError{What: "state", Index: -1, Detail: "malformed request id record"}
	}
	return &requestRecord{first: int64(binary.BigEndian.Uint64(data)), count: int(binary.BigEndian.Uint32(data[8:]))}, nil
}

// repeated reports the earlier append of a repeated request id. Its entries
// are durable: they were applied in this batch or an earlier one.
func (l *Log) repeated(rec *requestRecord, cp *Checkpoint) result {
	app := &Appended{First: rec.first, Leaves: make([][]byte, rec.count), LeafHashes: make([]Hash, rec.count), Checkpoint: cp, log: l}
	for i := range rec.count {
		e, err := l.readEntry(rec.first + int64(i))
		if err != nil {
			return result{err: err}
		}
		app.Leaves[i], app.LeafHashes[i] = e.Data, e.Hash
	}
	return result{app: app}
}

// Repeated reports the earlier append of the request id that the next
// Append under ctx would carry (see WithRequestID), when that append is
// published on this log and still within Options.RequestIDWindow;
// otherwise it returns nil. A service whose validation depends on the
// state its own writes change (a segment id already recorded, say) asks it
// before validating a retried request, and reports the earlier append
// instead of refusing the retry. Without it the log still appends a
// retried request only once, when it is applied. Without a request id in
// ctx it reads nothing.
func (l *Log) Repeated(ctx context.Context) (*Appended, error) {
	s, _ := ctx.Value(requestScopeKey{}).(*requestScope)
	if s == nil {
		return nil, nil
	}
	id := s.id
	if n := s.n.Load(); n > 0 {
		id += "#" + strconv.FormatInt(n, 10)
	}
	rec, err := l.storedRequest(id)
	if rec == nil {
		return nil, err
	}
	cp := l.Checkpoint()
	if rec.first+int64(rec.count) > cp.Size || rec.first < cp.Size-l.opts.RequestIDWindow {
		return nil, nil
	}
	r := l.repeated(rec, cp)
	return r.app, r.err
}
