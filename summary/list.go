package summary

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// MaxScan bounds the index entries one Summaries call reads. A filter
// that few encounters match (say, one patient's visits with unresolved
// flags, listed from the index of that patient) may have to pass over
// others; after MaxScan the call returns what it found with a cursor to
// continue from, so that no call's work grows with the history.
const MaxScan = 20_000

var _ encounter.SummaryView = (*View)(nil)

// Summaries implements encounter.SummaryView: it waits until the view
// reflects minSize entries, then reads one ordered index. The index is
// the most selective one the filter allows: the patient's, then the one of
// encounters with unresolved flags, then the status's, then all of the
// tenant's encounters, each ordered by last write (newest first) and id,
// so that the time range and the cursor are one key range. The other
// conditions are checked on each entry, which holds the whole row; the
// page is one consistent scan.
func (v *View) Summaries(ctx context.Context, tenant string, f encounter.Filter, after *encounter.Cursor, limit int, minSize int64) ([]encounter.Info, *encounter.Cursor, int64, error) {
	if limit <= 0 {
		return nil, nil, 0, fmt.Errorf("summary: limit %d", limit)
	}
	if err := ledger.CheckID("tenant", tenant, ledger.MaxTenantLen); err != nil {
		return nil, nil, 0, err
	}
	if err := v.WaitApplied(ctx, minSize); err != nil {
		return nil, nil, 0, err
	}
	applied := v.Applied()

	var prefix []byte
	checkStatus, checkUnresolved := f.Status != 0, f.Unresolved
	switch {
	case f.PatientRef != "":
		prefix = append(tenantPrefix(tablePatient, tenant), v.patientDigest(tenant, f.PatientRef)...)
	case f.Unresolved:
		prefix, checkUnresolved = tenantPrefix(tableFlagged, tenant), false
	case f.Status != 0:
		prefix, checkStatus = append(tenantPrefix(tableStatus, tenant), byte(f.Status)), false
	default:
		prefix = tenantPrefix(tableAll, tenant)
	}
	// Keys ascend as the last write's time descends: the range's end
	// (exclusive) is bound by the earliest time, its start by the latest.
	start, end := bytes.Clone(prefix), storage.PrefixEnd(prefix)
	if !f.UpdatedTo.IsZero() {
		to := clampNanos(f.UpdatedTo)
		if to <= 0 {
			return nil, nil, applied, nil // no entry is older than 1970
		}
		start = binary.BigEndian.AppendUint64(bytes.Clone(prefix), inv(to-1))
	}
	if !f.UpdatedFrom.IsZero() {
		if from := clampNanos(f.UpdatedFrom); from > 0 {
			end = binary.BigEndian.AppendUint64(bytes.Clone(prefix), inv(from)+1)
		}
	}
	if after != nil {
		c := append(appendOrder(bytes.Clone(prefix), after.Updated.UnixNano(), after.ID), 0)
		if bytes.Compare(c, start) > 0 {
			start = c
		}
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil, nil, applied, nil
	}

	var rows []encounter.Info
	var next *encounter.Cursor
	scanned := 0
	errStop := errors.New("stop")
	err := v.store.Scan(start, end, func(k, val []byte) error {
		if len(k) < len(prefix)+8 || len(val) < 2 {
			return &DivergedError{Detail: "malformed index entry"}
		}
		updated := int64(^binary.BigEndian.Uint64(k[len(prefix):]))
		enc := string(k[len(prefix)+8:])
		scanned++
		match := (!checkStatus || encounter.NoteStatus(val[0]) == f.Status) && (!checkUnresolved || val[1] == 1)
		if match {
			if len(rows) == limit {
				// One more matches: the page is full and more follow.
				last := rows[limit-1]
				next = &encounter.Cursor{Updated: last.Updated, ID: last.ID}
				return errStop
			}
			var r record
			if err := json.Unmarshal(val[2:], &r); err != nil {
				return &DivergedError{Detail: "malformed index entry"}
			}
			rows = append(rows, info(enc, &r))
		}
		if scanned >= MaxScan {
			// The work is bounded; continue after this entry.
			next = &encounter.Cursor{Updated: time.Unix(0, updated).UTC(), ID: enc}
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, nil, 0, fmt.Errorf("summary: list: %w", err)
	}
	return rows, next, applied, nil
}

// clampNanos returns t in Unix nanoseconds, clamped to [0, MaxInt64]:
// leaf times lie between 1970 and 2262.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}
