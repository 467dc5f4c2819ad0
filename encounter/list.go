package encounter

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/evidenceledger/evidence/ledger"
)

// Filter selects encounters for Find. The zero value selects all.
type Filter struct {
	// UpdatedFrom and UpdatedTo bound Info.Updated to [from, to); a zero
	// time leaves that side open.
	UpdatedFrom, UpdatedTo time.Time
	// Status, when set, selects notes in that status.
	Status NoteStatus
	// Unresolved selects encounters with at least one unresolved flagged
	// sentence.
	Unresolved bool
	// PatientRef, when set, selects the encounters opened with exactly
	// that patient reference.
	PatientRef string
}

// Match reports whether the encounter summarised by i matches f.
func (f Filter) Match(i *Info) bool {
	switch {
	case !f.UpdatedFrom.IsZero() && i.Updated.Before(f.UpdatedFrom),
		!f.UpdatedTo.IsZero() && !i.Updated.Before(f.UpdatedTo),
		f.Status != 0 && i.Status != f.Status,
		f.Unresolved && i.Unresolved == 0,
		f.PatientRef != "" && i.PatientRef != f.PatientRef:
		return false
	}
	return true
}

// Cursor is a position in the order Find lists encounters in: the most
// recently updated first, then by id. A page continues after it: with
// encounters updated earlier, or at the same time with a greater id.
type Cursor struct {
	Updated time.Time
	ID      string
}

// Passed reports whether a listing after c has passed the encounter i: i
// is c's encounter or comes before it in the order. A nil cursor has
// passed nothing.
func (c *Cursor) Passed(i *Info) bool {
	if c == nil {
		return false
	}
	if u, cu := i.Updated.UnixNano(), c.Updated.UnixNano(); u != cu {
		return u > cu
	}
	return i.ID <= c.ID
}

// SummaryView is a derived view of the log that summarises every encounter
// (package summary implements it). Find reads it instead of the chains.
type SummaryView interface {
	// Summaries waits (ctx) until the view reflects at least minSize log
	// entries, then returns up to limit summaries of the tenant's
	// encounters that match f, in Find's order, after the cursor (nil:
	// from the first). Title and PatientRef are left empty; Created.Index
	// is the opening entry. next is where the listing continues, nil
	// when nothing follows; a view may stop before limit rows to bound
	// its work, with next set. applied is the number of log entries the
	// answer reflects.
	Summaries(ctx context.Context, tenant string, f Filter, after *Cursor, limit int, minSize int64) (rows []Info, next *Cursor, applied int64, err error)
}

// WithSummaries makes Find read the encounter summaries of v, a view of
// the Service's log. Without it Find reads every encounter's chain (for
// embedded use and tests; the server always has the view).
func WithSummaries(v SummaryView) Option {
	return func(s *Service) { s.summaries = v }
}

// ErrBehind marks a listing the summary view could not serve yet: it has
// not applied the entries the log held when the request came (it is being
// rebuilt, say). Retry later.
var ErrBehind = errors.New("encounter: the encounter summaries are catching up with the log; retry")

// Page sizes of Find.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// maxCatchUp bounds how long Find waits for the summary view (a variable
// for tests).
var maxCatchUp = 5 * time.Second

// ListQuery asks Find for one page.
type ListQuery struct {
	Filter
	// PageSize is at most MaxPageSize; 0 means DefaultPageSize.
	PageSize int
	// PageToken continues a listing: a NextPageToken returned by Find
	// for the same tenant and filter.
	PageToken string
}

// ListPage is one page of Find.
type ListPage struct {
	Encounters []Info
	// NextPageToken continues the listing; "" after the last page. A
	// page may hold fewer than PageSize encounters and still be followed
	// by more.
	NextPageToken string
	// TreeSize is the number of log entries the page reflects.
	TreeSize int64
}

// Find lists the caller's tenant's encounters that match q, the most
// recently updated first, a page at a time, reading the summary view
// (WithSummaries) and, for the titles and patient references, each listed
// encounter's opening entry. With the access trail on it records one
// access entry naming the listed encounters.
//
// The listing waits until the view reflects every entry the log held when
// it was called, for up to five seconds, or fails with ErrBehind. Paging
// is by cursor: an encounter updated while a client pages moves to the top
// of the order, so later pages do not show it again (nor, if it was not
// shown yet, at all); a new listing shows it first.
func (svc *Service) Find(ctx context.Context, c Caller, q ListQuery) (*ListPage, error) {
	f := q.Filter
	size := q.PageSize
	switch {
	case size < 0:
		return nil, invalid("page_size", "must not be negative")
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	if f.Status != 0 && !f.Status.Valid() {
		return nil, invalid("note_status", "must be none, drafted or signed")
	}
	if !f.UpdatedFrom.IsZero() && !f.UpdatedTo.IsZero() && !f.UpdatedFrom.Before(f.UpdatedTo) {
		return nil, invalid("update_time_end", "must be after update_time_start")
	}
	if err := checkLabel("patient_ref", f.PatientRef, false); err != nil {
		return nil, err
	}
	if err := ledger.CheckID("tenant", c.Tenant, ledger.MaxTenantLen); err != nil {
		return nil, err
	}
	after, err := decodeListToken(q.PageToken, c.Tenant, f)
	if err != nil {
		return nil, err
	}
	var rows []Info
	var next *Cursor
	var applied int64
	if svc.summaries != nil {
		wctx, cancel := context.WithTimeout(ctx, maxCatchUp)
		rows, next, applied, err = svc.summaries.Summaries(wctx, c.Tenant, f, after, size, svc.log.Size())
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = ErrBehind
		}
		if err == nil {
			err = svc.titles(rows)
		}
	} else {
		rows, next, applied, err = svc.findInChains(c, f, after, size)
	}
	if err != nil {
		return nil, err
	}
	page := &ListPage{Encounters: rows, TreeSize: applied}
	if next != nil {
		page.NextPageToken = encodeListToken(next, c.Tenant, f)
	}
	if len(rows) > 0 {
		ids := make([]string, len(rows))
		for i := range rows {
			ids[i] = rows[i].ID
		}
		if err := svc.audit(ctx, c, "", Access{Action: AccessListEncounters, Head: -1, Encounters: ids, Count: len(ids)}); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// titles reads each row's title and patient reference from its opening
// entry; a destroyed payload marks the row Redacted.
func (svc *Service) titles(rows []Info) error {
	for i := range rows {
		r := &rows[i]
		if r.Created.Index < 0 {
			continue
		}
		p, e, err := svc.log.Payload(r.Created.Index)
		if errors.Is(err, ledger.ErrRedacted) {
			r.Redacted = true
			continue
		}
		if err != nil {
			return err
		}
		if e.Leaf.Kind != ledger.KindEncounter || e.Leaf.Encounter != r.ID {
			return &ledger.CorruptionError{What: "summary", Index: r.Created.Index, Detail: "the summary's opening entry is not the encounter's"}
		}
		v, err := DecodePayload(ledger.KindEncounter, p)
		if err != nil {
			return fmt.Errorf("encounter: opening entry %d: payload does not decode", r.Created.Index)
		}
		r.Title, r.PatientRef = v.(*Opened).Title, v.(*Opened).PatientRef
	}
	return nil
}

// findInChains is Find without a summary view: it summarises every
// encounter of the tenant from its chain, then filters, sorts and pages.
// Its cost grows with the tenant's history; it is the reference the view
// is tested against.
func (svc *Service) findInChains(c Caller, f Filter, after *Cursor, limit int) ([]Info, *Cursor, int64, error) {
	applied := svc.log.Size()
	var all []Info
	err := svc.log.Encounters(c.Tenant, "", func(id string, _ ledger.Head) error {
		if id == AuditChain {
			return nil
		}
		info, err := svc.get(c, id)
		if errors.Is(err, ledger.ErrRedacted) {
			info, err = svc.redactedInfo(c, id)
		}
		if err != nil {
			return err
		}
		if !f.Match(&info) || after.Passed(&info) {
			return nil
		}
		all = append(all, info)
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	slices.SortFunc(all, compareListed)
	var next *Cursor
	if len(all) > limit {
		all = all[:limit]
		last := all[limit-1]
		next = &Cursor{Updated: last.Updated, ID: last.ID}
	}
	return all, next, applied, nil
}

// compareListed orders encounters as Find lists them.
func compareListed(a, b Info) int {
	if c := b.Updated.Compare(a.Updated); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// redactedInfo summarises a shredded encounter from its leaves alone, as
// the summary view does once it applies the redaction entry: no title,
// patient reference or note.
func (svc *Service) redactedInfo(c Caller, id string) (Info, error) {
	info := Info{ID: id, Head: -1, Status: NoteNone, Redacted: true, Created: meta{Index: -1}}
	err := svc.log.WalkEncounter(c.Tenant, id, func(e *ledger.StoredEntry) error {
		if info.Count == 0 {
			info.Created = meta{Index: e.Index, Actor: e.Leaf.Actor, Time: e.Leaf.Time}
		}
		if e.Leaf.Kind != ledger.KindAccess {
			info.Updated = e.Leaf.Time
		}
		info.Count++
		info.Head = e.Index
		return nil
	})
	return info, err
}

// List tokens: "l1" version, then base64url of digest(12) || updated
// nanoseconds(8) || encounter id. The digest binds a token to its tenant
// and filter, so that it cannot continue another listing.
const listTokenVersion = "l1"

func filterDigest(tenant string, f Filter) []byte {
	h := sha256.New()
	for _, s := range []string{tenant, timeKey(f.UpdatedFrom), timeKey(f.UpdatedTo), strconv.Itoa(int(f.Status)), strconv.FormatBool(f.Unresolved), f.PatientRef} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:12]
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func encodeListToken(c *Cursor, tenant string, f Filter) string {
	b := filterDigest(tenant, f)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Updated.UnixNano()))
	b = append(b, c.ID...)
	return listTokenVersion + base64.RawURLEncoding.EncodeToString(b)
}

func decodeListToken(tok, tenant string, f Filter) (*Cursor, error) {
	if tok == "" {
		return nil, nil
	}
	bad := invalid("page_token", "is not a token of this listing")
	rest, ok := strings.CutPrefix(tok, listTokenVersion)
	if !ok {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) < 12+8+1 || string(b[:12]) != string(filterDigest(tenant, f)) {
		return nil, bad
	}
	id := string(b[20:])
	if ledger.CheckID("page_token", id, ledger.MaxEncounterLen) != nil {
		return nil, bad
	}
	return &Cursor{Updated: time.Unix(0, int64(binary.BigEndian.Uint64(b[12:20]))).UTC(), ID: id}, nil
}
