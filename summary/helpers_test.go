package summary

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

var ctx = context.Background()

const testOrigin = "evidence.test/summary"

// clock is the log's time: each call advances it by a minute.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
	return c.t
}

var start = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func openLog(t testing.TB, s storage.Store) *ledger.Appender {
	t.Helper()
	k, err := ledger.LoadOrCreateKey(t.TempDir(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: start}
	l, err := ledger.Open(s, ledger.Options{Origin: testOrigin, Key: k, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func openView(t testing.TB, dir string, src Source, opts Options) *View {
	t.Helper()
	v, err := Open(dir, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func catchUp(t testing.TB, v *View) {
	t.Helper()
	if _, err := v.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
}

var tenants = []encounter.Caller{{Tenant: "clinic-a", Actor: "dr.a"}, {Tenant: "clinic-b", Actor: "dr.b"}}

var segments = []encounter.Segment{
	{ID: "s1", Role: encounter.RoleClinician, Text: "What brings you in today?", StartMS: 0, EndMS: 2000},
	{ID: "s2", Role: encounter.RolePatient, Text: "I've had a sore throat for three days and a bit of a temperature.", StartMS: 2100, EndMS: 6000},
	{ID: "s3", Role: encounter.RoleClinician, Text: "Any trouble swallowing?", StartMS: 6100, EndMS: 7500},
	{ID: "s4", Role: encounter.RolePatient, Text: "No.", StartMS: 7600, EndMS: 8000},
	{ID: "s5", Role: encounter.RoleClinician, Text: "I think this is a viral throat infection, so take paracetamol and drink plenty of fluids.", StartMS: 8100, EndMS: 14000},
}

var draft = &encounter.Draft{Sections: []encounter.DraftSection{
	{Name: "Subjective", Sentences: []encounter.DraftSentence{
		{ID: "S1", Text: "Sore throat for 3 days with a temperature."},
		{ID: "S2", Text: "No difficulty swallowing."},
	}},
	{Name: "Assessment", Sentences: []encounter.DraftSentence{
		{ID: "A1", Text: "Likely viral throat infection."},
		{ID: "A2", Text: "Allergic to penicillin."},  // unmentioned: flagged
		{ID: "A3", Text: "Sore throat for 2 weeks."}, // contradicted: flagged
	}},
	{Name: "Plan", Sentences: []encounter.DraftSentence{{ID: "P1", Text: "Paracetamol and fluids."}}},
}}

// workload writes a random history through an encounter service with the
// access trail: visits of two tenants, transcripts, drafts, edits,
// sign-offs, reads, and (with shred) crypto-shredded visits. It returns
// the visits by tenant.
type workload struct {
	t      testing.TB
	l      *ledger.Appender
	svc    *encounter.Service
	rng    *rand.Rand
	visits map[string][]string
}

func newWorkload(t testing.TB, l *ledger.Appender, seed uint64) *workload {
	return &workload{t: t, l: l, rng: rand.New(rand.NewPCG(seed, 7)), visits: map[string][]string{},
		svc: encounter.New(l.Log, l, blob.New(memstore.New(), nil), encounter.WithAccessTrail())}
}

// run does n random operations.
func (w *workload) run(n int, shred bool) {
	t := w.t
	t.Helper()
	for range n {
		c := tenants[w.rng.IntN(len(tenants))]
		ids := w.visits[c.Tenant]
		op := w.rng.IntN(12)
		if len(ids) == 0 || op == 0 {
			ref := ""
			if w.rng.IntN(3) > 0 {
				ref = fmt.Sprintf("mrn-%d", w.rng.IntN(4))
			}
			info, _, err := w.svc.Create(ctx, c, fmt.Sprintf("visit %d", len(ids)), ref)
			if err != nil {
				t.Fatal(err)
			}
			w.visits[c.Tenant] = append(ids, info.ID)
			continue
		}
		id := ids[w.rng.IntN(len(ids))]
		n, err := w.svc.Note(ctx, c, id)
		if err != nil {
			continue // shredded
		}
		switch {
		case op <= 2:
			segs := append([]encounter.Segment(nil), segments...)
			for i := range segs {
				segs[i].ID = fmt.Sprintf("%s-%d", segs[i].ID, w.rng.Uint64())
			}
			_, err = w.svc.RecordSegments(ctx, c, id, segs)
		case op == 3 || (op <= 5 && n.ModelOutput < 0):
			_, err = w.svc.RecordModelOutput(ctx, c, id, encounter.ModelOutput{Model: encounter.Model{Name: "m"}, Note: draft})
		case op <= 5:
			var sids []string
			for _, sec := range n.Sections {
				for _, s := range sec.Sentences {
					sids = append(sids, s.ID)
				}
			}
			if len(sids) == 0 {
				continue
			}
			_, err = w.svc.RecordEdit(ctx, c, id, encounter.EditRequest{Action: encounter.ActionReplace, SentenceID: sids[w.rng.IntN(len(sids))],
				Text: fmt.Sprintf("Reviewed %d.", w.rng.IntN(1000))})
		case op == 6 && n.ModelOutput >= 0:
			// Resolve every flagged sentence, then sign.
			for w.resolveOne(c, id, n) {
				if n, err = w.svc.Note(ctx, c, id); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.svc.Sign(ctx, c, id, n.Hash[:], nil, ""); err != nil {
				t.Fatal(err)
			}
		case op == 8 && n.ModelOutput >= 0:
			w.resolveOne(c, id, n)
		case op == 7 && shred && w.rng.IntN(3) == 0:
			w.shred(c, id)
		default:
			_, _, err = w.svc.Transcript(ctx, c, id) // a read: an access entry
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// resolveOne confirms one of the note's unresolved flagged sentences, if
// there is one.
func (w *workload) resolveOne(c encounter.Caller, id string, n *encounter.Note) bool {
	for _, sec := range n.Sections {
		for _, s := range sec.Sentences {
			if s.NeedsResolution() {
				req := encounter.ResolveRequest{SentenceID: s.ID, Verdict: s.Verdict, Action: encounter.ResolveConfirmed, Reason: "as said"}
				if _, err := w.svc.ResolveSentence(ctx, c, id, req); err != nil {
					w.t.Fatal(err)
				}
				return true
			}
		}
	}
	return false
}

// shred destroys an encounter's payloads and records the redaction through
// the encounter service, as compliance's shredding does (without
// encryption, which the view does not see).
func (w *workload) shred(c encounter.Caller, id string) {
	t := w.t
	t.Helper()
	n, err := w.svc.DestroyPayloads(ctx, c, id)
	if err != nil {
		t.Fatal(err)
	}
	w.svc.Forget(c, id)
	if _, err := w.svc.RecordRedaction(ctx, encounter.Caller{Tenant: c.Tenant, Actor: "admin"}, id, encounter.Redaction{Reason: "test", Payloads: n}); err != nil {
		t.Fatal(err)
	}
}

// filters are the listings the tests compare.
func filters() map[string]encounter.Filter {
	at := func(m int) time.Time { return start.Add(time.Duration(m) * time.Minute) }
	return map[string]encounter.Filter{
		"all":                    {},
		"drafted":                {Status: encounter.NoteDrafted},
		"signed":                 {Status: encounter.NoteSigned},
		"none":                   {Status: encounter.NoteNone},
		"unresolved":             {Unresolved: true},
		"unresolved drafted":     {Unresolved: true, Status: encounter.NoteDrafted},
		"patient":                {PatientRef: "mrn-1"},
		"patient unresolved":     {PatientRef: "mrn-2", Unresolved: true},
		"patient signed":         {PatientRef: "mrn-0", Status: encounter.NoteSigned},
		"unknown patient":        {PatientRef: "mrn-404"},
		"window":                 {UpdatedFrom: at(40), UpdatedTo: at(160)},
		"since":                  {UpdatedFrom: at(100)},
		"until":                  {UpdatedTo: at(100)},
		"window unresolved":      {UpdatedFrom: at(20), UpdatedTo: at(300), Unresolved: true},
		"before 1970":            {UpdatedTo: time.Unix(-5, 0)},
		"from before 1970":       {UpdatedFrom: time.Unix(-5, 0), Status: encounter.NoteDrafted},
		"window patient drafted": {UpdatedFrom: at(10), UpdatedTo: at(400), PatientRef: "mrn-3", Status: encounter.NoteDrafted},
	}
}

// listAll lists every page of a filter.
func listAll(t testing.TB, svc *encounter.Service, c encounter.Caller, f encounter.Filter, pageSize int) []encounter.Info {
	t.Helper()
	var out []encounter.Info
	q := encounter.ListQuery{Filter: f, PageSize: pageSize}
	for {
		p, err := svc.Find(ctx, c, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Encounters...)
		if p.NextPageToken == "" {
			return out
		}
		q.PageToken = p.NextPageToken
	}
}

// sameListings checks that two services list the same encounters, field
// for field, under every filter and several page sizes.
func sameListings(t testing.TB, what string, got, want *encounter.Service) {
	t.Helper()
	total := 0
	for _, c := range tenants {
		for name, f := range filters() {
			w := listAll(t, want, c, f, 0)
			total += len(w)
			for _, size := range []int{1, 3, 50} {
				g := listAll(t, got, c, f, size)
				if !reflect.DeepEqual(g, w) {
					t.Fatalf("%s: %s, %s, pages of %d:\n got %d: %s\nwant %d: %s", what, c.Tenant, name, size, len(g), brief(g), len(w), brief(w))
				}
			}
		}
	}
	if total == 0 {
		t.Fatalf("%s: the listings compared are all empty", what)
	}
}

func brief(xs []encounter.Info) string {
	s := ""
	for _, x := range xs {
		s += fmt.Sprintf("\n  %s %q %s n=%d h=%d %v f=%d u=%d r=%v p=%q", x.ID, x.Title, x.Updated.Format("15:04"), x.Count, x.Head, x.Status, x.Flagged, x.Unresolved, x.Redacted, x.PatientRef)
	}
	return s
}

func openStore(dir string) (storage.Store, error) {
	return pebblestore.Open(dir, pebblestore.Options{})
}

func batchOf(k, v []byte) *storage.Batch {
	var b storage.Batch
	b.Set(k, v)
	return &b
}
