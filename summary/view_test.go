package summary

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// services returns a Service listing through v and one listing from the
// chains (the reference), both without the access trail so that listing
// changes nothing.
func services(l *ledger.Appender, v *View) (viewed, chains *encounter.Service) {
	blobs := blob.New(memstore.New(), nil)
	return encounter.New(l.Log, l, blobs, encounter.WithSummaries(v)), encounter.New(l.Log, l, blobs)
}

// TestViewMatchesChains follows a random history as it is written and
// checks, every few dozen writes, that listing through the view gives
// exactly what summarising every chain gives, under every filter and page
// size.
func TestViewMatchesChains(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			l := openLog(t, memstore.New())
			v := openView(t, t.TempDir(), l, Options{BatchEntries: 7 + int(seed)*50})
			w := newWorkload(t, l, seed)
			viewed, chains := services(l, v)
			for round := range 6 {
				w.run(40, true)
				catchUp(t, v)
				sameListings(t, fmt.Sprintf("round %d", round), viewed, chains)
			}
			// The history reached every status the filters select.
			for name, f := range map[string]encounter.Filter{"signed": {Status: encounter.NoteSigned}, "unresolved": {Unresolved: true},
				"drafted, resolved": {Status: encounter.NoteDrafted}} {
				n := 0
				for _, c := range tenants {
					n += len(listAll(t, chains, c, f, 0))
				}
				if n == 0 {
					t.Errorf("no visit is %s; the test needs some", name)
				}
			}
		})
	}
}

// TestRebuildAnswersIdentically builds one view by following the log as
// it grows, with restarts and random batch sizes, and another in one pass
// over the finished log, and checks that both answer every listing as the
// chains do. It also checks that a restart resumes where the view was,
// applying nothing twice.
func TestRebuildAnswersIdentically(t *testing.T) {
	l := openLog(t, memstore.New())
	w := newWorkload(t, l, 11)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	var v *View
	for round := range 8 {
		if v != nil {
			before := v.Applied()
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			v, err = Open(dir, l, Options{BatchEntries: 1 + rng.IntN(300)})
			if err != nil {
				t.Fatalf("reopen %d: %v", round, err)
			}
			if v.Applied() != before {
				t.Fatalf("reopened at %d entries, closed at %d", v.Applied(), before)
			}
		} else {
			v = openView(t, dir, l, Options{BatchEntries: 5})
		}
		w.run(30, round%3 == 2)
		// Sometimes only part of the way: a restart mid-log.
		target := l.Size()
		if rng.IntN(2) == 0 {
			target = v.Applied() + rng.Int64N(target-v.Applied()+1)
		}
		for v.Applied() < target {
			if _, err := v.step(target); err != nil {
				t.Fatal(err)
			}
		}
	}
	catchUp(t, v)
	t.Cleanup(func() { v.Close() })

	rebuilt := openView(t, t.TempDir(), l, Options{})
	catchUp(t, rebuilt)
	if rebuilt.Applied() != v.Applied() {
		t.Fatalf("the rebuild applied %d entries, the followed view %d", rebuilt.Applied(), v.Applied())
	}
	followed, chains := services(l, v)
	fresh, _ := services(l, rebuilt)
	sameListings(t, "followed view", followed, chains)
	sameListings(t, "rebuilt view", fresh, followed)
	redacted := 0
	for _, c := range tenants {
		for _, i := range listAll(t, fresh, c, encounter.Filter{}, 0) {
			if i.Redacted {
				redacted++
			}
		}
	}
	if redacted == 0 {
		t.Fatal("the history shredded no visit; the test needs one")
	}
}

// TestDiverged: a view is refused when it is not of the log it is opened
// on: another log, a log shorter than what the view applied, or another
// format.
func TestDiverged(t *testing.T) {
	l := openLog(t, memstore.New())
	newWorkload(t, l, 1).run(20, false)
	dir := t.TempDir()
	v := openView(t, dir, l, Options{})
	catchUp(t, v)
	v.Close()

	other := openLog(t, memstore.New())
	newWorkload(t, other, 2).run(40, false)
	var d *DivergedError
	if _, err := Open(dir, other, Options{}); !errors.As(err, &d) {
		t.Fatalf("a view of another log opened: %v", err)
	}
	short := openLog(t, memstore.New())
	newWorkload(t, short, 1).run(2, false)
	if _, err := Open(dir, short, Options{}); !errors.As(err, &d) {
		t.Fatalf("a view longer than its log opened: %v", err)
	}
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(batchOf(keyPosition, []byte(`{"format":"evidence-summary-0","applied":0}`)), true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := Open(dir, l, Options{}); !errors.As(err, &d) {
		t.Fatalf("a view of another format opened: %v", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	v = openView(t, dir, l, Options{})
	catchUp(t, v)
	viewed, chains := services(l, v)
	sameListings(t, "rebuilt after divergence", viewed, chains)
}

// TestChainPositionChecked: an entry whose chain position does not follow
// what the view holds of its encounter (as when entries were applied
// twice) stops the view with a DivergedError.
func TestChainPositionChecked(t *testing.T) {
	l := openLog(t, memstore.New())
	newWorkload(t, l, 5).run(15, false)
	v := openView(t, t.TempDir(), l, Options{})
	catchUp(t, v)
	v.write.Lock()
	v.write.applied -= 3 // as if the last entries were not recorded as applied
	v.write.Unlock()
	newWorkload(t, l, 6).run(3, false)
	var d *DivergedError
	if _, err := v.CatchUp(ctx); !errors.As(err, &d) {
		t.Fatalf("entries applied twice: %v, want a DivergedError", err)
	}
}

// TestListingWaitsForTheView: Find waits until the view reflects what the
// log held when it was called, so a visit written just before a listing is
// in it.
func TestListingWaitsForTheView(t *testing.T) {
	l := openLog(t, memstore.New())
	v := openView(t, t.TempDir(), l, Options{})
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- v.Follow(fctx) }()
	svc := encounter.New(l.Log, l, blob.New(memstore.New(), nil), encounter.WithSummaries(v))
	for i := range 20 {
		info, _, err := svc.Create(ctx, tenants[0], fmt.Sprint(i), "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := svc.Find(ctx, tenants[0], encounter.ListQuery{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Encounters) != 1 || p.Encounters[0].ID != info.ID || p.Encounters[0].Title != fmt.Sprint(i) || p.TreeSize < l.Size()-1 {
			t.Fatalf("listing after creating %s: %+v", info.ID, p)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow ended with %v", err)
	}
}

// TestScanBound: a filter that passes over more than MaxScan entries
// returns a short page with a cursor, and the pages still add up.
func TestScanBound(t *testing.T) {
	l := openLog(t, memstore.New())
	svc := encounter.New(l.Log, l, blob.New(memstore.New(), nil))
	c := tenants[0]
	// One drafted visit of a patient, then MaxScan+10 later visits of the
	// same patient without a note: listing the patient's drafted visits
	// reads the patient's index and passes over all of those first.
	info, _, err := svc.Create(ctx, c, "drafted", "mrn-x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RecordModelOutput(ctx, c, info.ID, encounter.ModelOutput{Model: encounter.Model{Name: "m"}, Note: draft}); err != nil {
		t.Fatal(err)
	}
	var entries []ledger.Entry
	for i := range MaxScan + 10 {
		entries = append(entries, ledger.Entry{Kind: ledger.KindEncounter, Tenant: c.Tenant, Encounter: fmt.Sprintf("enc_%06d", i), Actor: c.Actor,
			Payload: []byte(`{"v":1,"patient_ref":"mrn-x"}`)})
		if len(entries) == 5000 {
			if _, err := l.Append(ctx, entries); err != nil {
				t.Fatal(err)
			}
			entries = entries[:0]
		}
	}
	if _, err := l.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	v := openView(t, t.TempDir(), l, Options{})
	catchUp(t, v)
	f := encounter.Filter{PatientRef: "mrn-x", Status: encounter.NoteDrafted}
	rows, next, _, err := v.Summaries(ctx, c.Tenant, f, nil, 5, 0)
	if err != nil || len(rows) != 0 || next == nil {
		t.Fatalf("the first call: %d rows, next %v, %v; want none and a cursor", len(rows), next, err)
	}
	rows, next, _, err = v.Summaries(ctx, c.Tenant, f, next, 5, 0)
	if err != nil || len(rows) != 1 || rows[0].ID != info.ID || next != nil {
		t.Fatalf("the second call: %d rows, next %v, %v; want the drafted visit and the end", len(rows), next, err)
	}
	viewed := encounter.New(l.Log, l, blob.New(memstore.New(), nil), encounter.WithSummaries(v))
	if got := listAll(t, viewed, c, f, 0); len(got) != 1 || got[0].ID != info.ID || got[0].Title != "drafted" {
		t.Fatalf("Find over the bounded scans: %s", brief(got))
	}
	// A filter every entry matches fills a large page up to the bound.
	rows, next, _, err = v.Summaries(ctx, c.Tenant, encounter.Filter{}, nil, MaxScan+100, 0)
	if err != nil || len(rows) != MaxScan || next == nil {
		t.Fatalf("a listing past the scan bound: %d rows, next %v, %v", len(rows), next, err)
	}
	rest, next, _, err := v.Summaries(ctx, c.Tenant, encounter.Filter{}, next, MaxScan+100, 0)
	if err != nil || next != nil || len(rows)+len(rest) != MaxScan+11 {
		t.Fatalf("the rest: %d rows, next %v, %v", len(rest), next, err)
	}
}
