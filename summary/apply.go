package summary

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// maxCachedRecords bounds the records the applier keeps between batches;
// past it the cache is cleared and records are read back as needed.
const maxCachedRecords = 4096

// CatchUp applies every entry the log holds when it is called, in batches,
// and returns the number of entries applied. Each batch is one atomic
// write; if CatchUp is interrupted, the view holds exactly the batches that
// completed.
func (v *View) CatchUp(ctx context.Context) (int64, error) {
	target := v.src.Size()
	for {
		applied, err := v.step(target)
		if err != nil || applied >= target {
			return applied, err
		}
		if err := ctx.Err(); err != nil {
			return applied, err
		}
	}
}

// Follow applies the log's entries as they are appended, until ctx is done
// or the log is closed; it then returns the reason (ctx.Err() or
// ledger.ErrClosed), or the first error that stopped it. A *DivergedError
// means the view is not of this log and must be rebuilt.
func (v *View) Follow(ctx context.Context) error {
	for {
		applied, err := v.CatchUp(ctx)
		if err != nil {
			return err
		}
		if _, err := v.src.Wait(ctx, applied); err != nil {
			return err
		}
	}
}

// step applies one batch of at most BatchEntries entries below target and
// returns the new applied count.
func (v *View) step(target int64) (int64, error) {
	v.write.Lock()
	defer v.write.Unlock()
	if v.write.closed {
		return v.write.applied, ErrClosed
	}
	from := v.write.applied
	to := min(target, from+int64(v.opts.BatchEntries))
	if to <= from {
		return from, nil
	}
	b := &batch{v: v, touched: map[string]*record{}, payloads: map[int64]any{}}
	last, err := v.readLeaves(from, to, b.apply)
	if err == nil {
		err = b.commit(to, last)
	}
	if err != nil {
		// The cached records may hold part of the failed batch.
		clear(v.write.records)
		return from, err
	}
	v.write.applied, v.write.lastHash = to, last
	if len(v.write.records)+len(b.touched) > maxCachedRecords {
		clear(v.write.records)
	}
	for k, r := range b.touched {
		r.stored, r.trackerDirty = r.indexKeys(), false
		v.write.records[k] = r
	}
	v.advanced(to)
	if v.opts.OnBatch != nil {
		v.opts.OnBatch(to, target)
	}
	return to, nil
}

// readLeaves reads leaves [from, to) a C2SP entry bundle at a time (each
// leaf checked against the tree) and calls fn with each, in order. It
// returns the leaf hash of the last.
func (v *View) readLeaves(from, to int64, fn func(i int64, l *ledger.Leaf) error) (ledger.Hash, error) {
	var last []byte
	for n := from / ledger.TileWidth; n*ledger.TileWidth < to; n++ {
		start := n * ledger.TileWidth
		w := int(min(to-start, ledger.TileWidth))
		data, err := v.src.EntryBundle(n, w)
		if err != nil {
			return ledger.Hash{}, fmt.Errorf("summary: read entries from %d: %w", start, err)
		}
		for i := start; len(data) > 0; i++ {
			if len(data) < 2 || len(data) < 2+int(binary.BigEndian.Uint16(data)) {
				return ledger.Hash{}, &ledger.CorruptionError{What: "leaf", Index: i, Detail: "entry bundle is truncated"}
			}
			leaf := data[2 : 2+int(binary.BigEndian.Uint16(data))]
			data = data[2+len(leaf):]
			if i < from {
				continue
			}
			l, err := ledger.DecodeLeaf(leaf)
			if err != nil {
				return ledger.Hash{}, &ledger.CorruptionError{What: "leaf", Index: i, Detail: err.Error()}
			}
			if err := fn(i, l); err != nil {
				return ledger.Hash{}, err
			}
			last = leaf
		}
	}
	return tlog.RecordHash(last), nil
}

// batch is the changes one run of entries makes to the view.
type batch struct {
	v       *View
	touched map[string]*record // by recordKey
	// payloads caches the decoded payloads read in this batch; the note
	// hash reads the texts of earlier entries again.
	payloads map[int64]any
}

// record returns the summary of an encounter for modification.
func (b *batch) record(tenant, enc string) (*record, error) {
	k := string(recordKey(tableRecord, tenant, enc))
	if r, ok := b.touched[k]; ok {
		return r, nil
	}
	r, ok := b.v.write.records[k]
	if !ok {
		data, err := b.v.store.Get([]byte(k))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			r = newRecord(tenant, enc)
		case err != nil:
			return nil, fmt.Errorf("summary: read record: %w", err)
		default:
			r = newRecord(tenant, enc)
			if err := json.Unmarshal(data, r); err != nil {
				return nil, &DivergedError{Detail: "malformed summary record"}
			}
			r.stored = r.indexKeys()
		}
	}
	b.touched[k] = r
	return r, nil
}

// tracker returns the record's note tracker, loading it if needed.
func (b *batch) tracker(r *record) (*encounter.NoteTracker, error) {
	if r.tracker == nil {
		r.tracker = encounter.NewNoteTracker()
		if r.Noted {
			data, err := b.v.store.Get(recordKey(tableNote, r.tenant, r.enc))
			if err != nil {
				return nil, fmt.Errorf("summary: read note tracker: %w", err)
			}
			if err := json.Unmarshal(data, r.tracker); err != nil {
				return nil, &DivergedError{Detail: "malformed note tracker"}
			}
		}
	}
	r.trackerDirty = true
	return r.tracker, nil
}

// payload reads and decodes entry i's payload.
func (b *batch) payload(i int64) (any, error) {
	if p, ok := b.payloads[i]; ok {
		return p, nil
	}
	raw, e, err := b.v.src.Payload(i)
	if err != nil {
		return nil, err
	}
	p, err := encounter.DecodePayload(e.Leaf.Kind, raw)
	if err != nil {
		return nil, errUndecodable
	}
	b.payloads[i] = p
	return p, nil
}

// errUndecodable marks a payload this version cannot decode. It is not
// summarised, the same way by every rebuild; the error is not echoed, as
// decoder messages may quote the payload.
var errUndecodable = errors.New("summary: payload does not decode")

// apply applies entry i, whose leaf is l.
func (b *batch) apply(i int64, l *ledger.Leaf) error {
	if l.Encounter == encounter.AuditChain {
		return nil // the tenant's audit chain is not an encounter
	}
	r, err := b.record(l.Tenant, l.Encounter)
	if err != nil {
		return err
	}
	if l.Seq != r.Count {
		return &DivergedError{Detail: fmt.Sprintf("entry %d is at position %d of its chain, the view has %d entries of it", i, l.Seq, r.Count)}
	}
	r.Count++
	r.Head = i
	if l.Kind != ledger.KindAccess {
		r.Updated = l.Time.UnixNano()
	}
	switch l.Kind {
	case ledger.KindAccess, ledger.KindSegment, ledger.KindAudio:
		return nil
	case ledger.KindEncounter:
		if l.Seq != 0 {
			return nil
		}
		r.Open, r.Created, r.Actor = i, l.Time.UnixNano(), l.Actor
		p, err := b.payload(i)
		if err != nil {
			return b.skip(i, err)
		}
		if o := p.(*encounter.Opened); o.PatientRef != "" {
			r.Patient = b.v.patientDigest(l.Tenant, o.PatientRef)
		}
		return nil
	case ledger.KindRedaction:
		// The encounter was shredded: nothing of its note remains, nor
		// the digest of its patient reference.
		r.Redacted, r.Patient = true, nil
		r.tracker, r.trackerDirty = encounter.NewNoteTracker(), true
		r.Status, r.Flagged, r.Unresolved = encounter.NoteNone, 0, 0
		return nil
	}
	if r.Redacted {
		return nil
	}
	p, err := b.payload(i)
	if err != nil {
		return b.skip(i, err)
	}
	t, err := b.tracker(r)
	if err != nil {
		return err
	}
	if err := t.Apply(i, p, b.payload); err != nil {
		return b.skip(i, err)
	}
	r.Status = t.Status()
	r.Flagged, r.Unresolved = t.Flags()
	return nil
}

// skip passes over an entry whose payload (or an earlier one it needs) was
// destroyed or cannot be decoded; any other error stops the batch. A
// destroyed payload means the encounter is being shredded: its redaction
// entry follows and resets the summary.
func (b *batch) skip(i int64, err error) error {
	switch {
	case errors.Is(err, ledger.ErrRedacted):
		return nil
	case errors.Is(err, errUndecodable):
		b.v.opts.Logger.Warn("summary: payload not summarised", "leaf", i)
		return nil
	}
	return fmt.Errorf("summary: entry %d: %w", i, err)
}

// commit writes the batch's records, their index entries and the view's
// new position in one atomic write.
func (b *batch) commit(to int64, last ledger.Hash) error {
	var sb storage.Batch
	for k, r := range b.touched {
		if r.trackerDirty {
			nk := recordKey(tableNote, r.tenant, r.enc)
			if t := r.tracker; t.Draft < 0 && len(t.Sections) == 0 && t.SignedHash == "" {
				r.Noted = false
				sb.Delete(nk)
			} else {
				data, err := json.Marshal(t)
				if err != nil {
					return err
				}
				r.Noted = true
				sb.Set(nk, data)
			}
		}
		keys := r.indexKeys()
		for _, old := range r.stored {
			if !containsKey(keys, old) {
				sb.Delete(old)
			}
		}
		row := r.row()
		for _, key := range keys {
			sb.Set(key, row)
		}
		sb.Set([]byte(k), row[2:])
	}
	sb.Set(keyPosition, encodePosition(to, last))
	// Unsynced: the view is derived, and a write lost in a crash is
	// applied again from the position the view recorded before it.
	if err := b.v.store.Write(&sb, false); err != nil {
		return fmt.Errorf("summary: write batch: %w", err)
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if string(x) == string(k) {
			return true
		}
	}
	return false
}
