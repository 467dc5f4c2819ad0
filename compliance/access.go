package compliance

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// AccessEvent is one access entry: a read or export of PHI. It holds no
// PHI.
type AccessEvent struct {
	Leaf int64     `json:"leaf_index"`
	Time time.Time `json:"time"`
	// Tenant, Encounter and Actor come from the leaf. Encounter is
	// encounter.AuditChain for reads that were not about one encounter;
	// Encounters then lists the encounters they disclosed.
	Tenant       string   `json:"tenant"`
	Encounter    string   `json:"encounter_id"`
	Actor        string   `json:"actor"`
	Role         string   `json:"role,omitempty"`
	Action       string   `json:"action"`
	Channel      string   `json:"channel,omitempty"`
	Remote       string   `json:"remote,omitempty"`
	ForwardedFor string   `json:"forwarded_for,omitempty"`
	Head         int64    `json:"head"`
	Leaves       []int64  `json:"leaves,omitempty"`
	Encounters   []string `json:"encounters,omitempty"`
	Count        int      `json:"count,omitempty"`
	Format       string   `json:"format,omitempty"`
}

func accessEvent(e *ledger.StoredEntry, a *encounter.Access) AccessEvent {
	l := e.Leaf
	return AccessEvent{Leaf: e.Index, Time: l.Time, Tenant: l.Tenant, Encounter: l.Encounter, Actor: l.Actor,
		Role: a.Role, Action: a.Action, Channel: a.Channel, Remote: a.Remote, ForwardedFor: a.ForwardedFor,
		Head: a.Head, Leaves: a.Leaves, Encounters: a.Encounters, Count: a.Count, Format: a.Format}
}

// About reports whether the event disclosed PHI of encounter id.
func (ev AccessEvent) About(id string) bool {
	if ev.Encounter == id {
		return true
	}
	for _, e := range ev.Encounters {
		if e == id {
			return true
		}
	}
	return false
}

// AccessQuery selects access events. Zero fields do not filter.
type AccessQuery struct {
	// Encounter selects the accesses of one encounter: those in its chain
	// and those in the tenant's audit chain that list it.
	Encounter string
	// Actor selects the accesses by one user or service.
	Actor string
	// From and To bound the time, inclusive and exclusive.
	From, To time.Time
}

// timeSlack is how far a leaf's time may run behind an earlier leaf's:
// times are taken when an append is prepared, before it is sequenced.
const timeSlack = time.Minute

// Accesses calls fn with every access event of the caller's tenant that q
// selects, in log order. It reads leaves only, opening just the access
// entries' payloads. Roles: auditor, admin. Reading the trail is not itself
// recorded in it: it discloses no PHI.
func (s *Service) Accesses(ctx context.Context, c encounter.Caller, q AccessQuery, fn func(AccessEvent) error) error {
	if err := allow(c, "reading the access trail", rolesAccess...); err != nil {
		return err
	}
	if q.Encounter != "" {
		if err := ledger.CheckID("encounter_id", q.Encounter, ledger.MaxEncounterLen); err != nil {
			return err
		}
	}
	if q.Actor != "" {
		if err := ledger.CheckID("actor", q.Actor, ledger.MaxActorLen); err != nil {
			return err
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return &ledger.InvalidError{Field: "end_time", Reason: "must be after start_time"}
	}
	size := s.cfg.Log.Size()
	match := func(ev AccessEvent) bool {
		return (q.Actor == "" || ev.Actor == q.Actor) &&
			(q.From.IsZero() || !ev.Time.Before(q.From)) &&
			(q.To.IsZero() || ev.Time.Before(q.To)) &&
			(q.Encounter == "" || ev.About(q.Encounter))
	}
	if q.Encounter != "" {
		// The encounter's chain and the tenant's audit chain hold all of
		// its accesses; merge them in log order.
		var evs []AccessEvent
		for _, chain := range []string{q.Encounter, encounter.AuditChain} {
			err := s.walkAccesses(ctx, c.Tenant, chain, size, func(ev AccessEvent) error {
				if match(ev) {
					evs = append(evs, ev)
				}
				return nil
			})
			if err != nil && !(errors.Is(err, ledger.ErrNotFound) && chain == encounter.AuditChain) {
				return err
			}
		}
		sort.Slice(evs, func(i, j int) bool { return evs[i].Leaf < evs[j].Leaf })
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return err
			}
		}
		return nil
	}
	start, err := s.firstAtOrAfter(q.From.Add(-timeSlack), size)
	if err != nil {
		return err
	}
	for i := start; i < size; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e, err := s.cfg.Log.Entry(i)
		if err != nil {
			return err
		}
		l := e.Leaf
		if l.Kind != ledger.KindAccess || l.Tenant != c.Tenant || (q.Actor != "" && l.Actor != q.Actor) {
			continue
		}
		if !q.To.IsZero() && l.Time.After(q.To.Add(timeSlack)) {
			break
		}
		ev, err := s.accessAt(e)
		if err != nil {
			return err
		}
		if match(ev) {
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkAccesses calls fn with the access events in one chain, below size.
func (s *Service) walkAccesses(ctx context.Context, tenant, chain string, size int64, fn func(AccessEvent) error) error {
	idx, err := s.cfg.Log.EncounterIndexes(tenant, chain)
	if err != nil {
		return err
	}
	if len(idx) == 0 {
		return fmt.Errorf("%w: encounter %s", ledger.ErrNotFound, chain)
	}
	for _, x := range idx {
		if x >= size {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := s.cfg.Log.Entry(x)
		if err != nil {
			return err
		}
		if e.Leaf.Kind != ledger.KindAccess {
			continue
		}
		ev, err := s.accessAt(e)
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) accessAt(e *ledger.StoredEntry) (AccessEvent, error) {
	p, _, err := s.cfg.Log.Payload(e.Index)
	if err != nil {
		return AccessEvent{}, err
	}
	a, err := encounter.DecodeAccess(p)
	if err != nil {
		return AccessEvent{}, &ledger.CorruptionError{What: "payload", Index: e.Index, Detail: "access entry does not decode"}
	}
	return accessEvent(e, a), nil
}

// firstAtOrAfter returns the first leaf index whose time is at or after t,
// by binary search over the leaves' times, which only ever run behind by
// less than timeSlack (the caller subtracts it from t).
func (s *Service) firstAtOrAfter(t time.Time, size int64) (int64, error) {
	if t.IsZero() || t.Year() < 1971 {
		return 0, nil
	}
	var ferr error
	i := sort.Search(int(size), func(i int) bool {
		if ferr != nil {
			return true
		}
		e, err := s.cfg.Log.Entry(int64(i))
		if err != nil {
			ferr = err
			return true
		}
		return !e.Leaf.Time.Before(t)
	})
	return int64(i), ferr
}
