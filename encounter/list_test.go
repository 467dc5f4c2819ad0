package encounter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// clockedService is newService with a clock the test moves.
func clockedService(t *testing.T, opts ...Option) (*Service, *ledger.Appender, *time.Time) {
	t.Helper()
	kv := memstore.New()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "encounter.test/log")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	l, err := ledger.Open(kv, ledger.Options{Origin: "encounter.test/log", Key: key, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return New(l.Log, l, blob.New(kv, nil), opts...), l, &now
}

func TestFindWithoutView(t *testing.T) {
	svc, l, now := clockedService(t, WithAccessTrail())
	// Five visits an hour apart; the second gets a note (drafted, with an
	// unsupported sentence), the fourth a signed note.
	var ids []string
	for i := range 5 {
		*now = now.Add(time.Hour)
		info, _, err := svc.Create(ctx, alice, fmt.Sprintf("visit %d", i), fmt.Sprintf("mrn-%d", i%2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.RecordSegments(ctx, alice, info.ID, append([]Segment(nil), visit...)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	*now = now.Add(time.Hour)
	if _, err := svc.RecordModelOutput(ctx, alice, ids[1], ModelOutput{Model: Model{Name: "m"}, Note: flagDraft}); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Hour)
	rec, err := svc.RecordModelOutput(ctx, alice, ids[3], ModelOutput{Model: Model{Name: "m"}, Note: flagDraft})
	if err != nil {
		t.Fatal(err)
	}
	flagged := 0
	for _, sec := range rec.Note.Sections {
		for _, s := range sec.Sentences {
			if s.Flagged() {
				flagged++
				if _, err := svc.ResolveSentence(ctx, alice, ids[3], ResolveRequest{SentenceID: s.ID, Verdict: s.Verdict, Action: ResolveConfirmed, Reason: "as said"}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if flagged == 0 {
		t.Fatal("the test needs a flagged sentence")
	}
	n, err := svc.Note(ctx, alice, ids[3])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Sign(ctx, alice, ids[3], n.Hash[:], nil, ""); err != nil {
		t.Fatal(err)
	}
	// A read does not move a visit up the list.
	*now = now.Add(time.Hour)
	if _, err := svc.Note(ctx, alice, ids[0]); err != nil {
		t.Fatal(err)
	}

	list := func(q ListQuery) []string {
		t.Helper()
		var got []string
		for {
			p, err := svc.Find(ctx, alice, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Encounters {
				got = append(got, e.ID)
			}
			if p.NextPageToken == "" {
				return got
			}
			q.PageToken = p.NextPageToken
		}
	}
	order := []string{ids[3], ids[1], ids[4], ids[2], ids[0]}
	if got := list(ListQuery{}); !slices.Equal(got, order) {
		t.Fatalf("listed %v, want the most recently written first %v", got, order)
	}
	if got := list(ListQuery{PageSize: 2}); !slices.Equal(got, order) {
		t.Fatalf("listed %v in pages of 2, want %v", got, order)
	}
	cases := map[string]struct {
		f    Filter
		want []string
	}{
		"drafted":    {Filter{Status: NoteDrafted}, []string{ids[1]}},
		"signed":     {Filter{Status: NoteSigned}, []string{ids[3]}},
		"no note":    {Filter{Status: NoteNone}, []string{ids[4], ids[2], ids[0]}},
		"unresolved": {Filter{Unresolved: true}, []string{ids[1]}},
		"patient":    {Filter{PatientRef: "mrn-1"}, []string{ids[3], ids[1]}},
		// Written at 12:00 and 14:00; the start is inclusive, the end (when
		// ids[1] was last written) exclusive.
		"time": {Filter{UpdatedFrom: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), UpdatedTo: time.Date(2026, 3, 1, 15, 0, 0, 0, time.UTC)},
			[]string{ids[4], ids[2]}},
	}
	for name, c := range cases {
		if got := list(ListQuery{Filter: c.f, PageSize: 1}); !slices.Equal(got, c.want) {
			t.Errorf("%s: listed %v, want %v", name, got, c.want)
		}
	}
	p, err := svc.Find(ctx, alice, ListQuery{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := p.Encounters[0]
	if e.Title != "visit 3" || e.PatientRef != "mrn-1" || e.Status != NoteSigned || e.Flagged != flagged || e.Unresolved != 0 || e.Count == 0 {
		t.Fatalf("first row %+v", e)
	}
	// A token continues only the listing it came from.
	size := l.Size()
	for name, q := range map[string]ListQuery{
		"another filter": {Filter: Filter{Status: NoteSigned}, PageToken: p.NextPageToken},
		"garbage":        {PageToken: "l1!!"},
		"truncated":      {PageToken: p.NextPageToken[:10]},
	} {
		if _, err := svc.Find(ctx, alice, q); !isInvalid(err, "page_token") {
			t.Errorf("%s: %v, want an invalid page_token", name, err)
		}
	}
	if _, err := svc.Find(ctx, Caller{Tenant: "clinic-b", Actor: "x"}, ListQuery{PageToken: p.NextPageToken}); !isInvalid(err, "page_token") {
		t.Errorf("another tenant's token: %v", err)
	}
	for field, q := range map[string]ListQuery{
		"page_size":       {PageSize: -1},
		"note_status":     {Filter: Filter{Status: 9}},
		"update_time_end": {Filter: Filter{UpdatedFrom: *now, UpdatedTo: now.Add(-time.Second)}},
		"patient_ref":     {Filter: Filter{PatientRef: "a\x01b"}},
	} {
		if _, err := svc.Find(ctx, alice, q); !isInvalid(err, field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if l.Size() != size {
		t.Fatalf("refused listings appended %d entries", l.Size()-size)
	}
	// Another tenant lists nothing of alice's.
	if p, err := svc.Find(ctx, Caller{Tenant: "clinic-b", Actor: "x"}, ListQuery{}); err != nil || len(p.Encounters) != 0 {
		t.Fatalf("another tenant listed %d: %v", len(p.Encounters), err)
	}
}

func isInvalid(err error, field string) bool {
	var ie *ledger.InvalidError
	return errors.As(err, &ie) && ie.Field == field
}

// TestStateCacheBytes: the cache keeps the decoded visits within its
// budget, counts hits and misses, and never evicts a state in use.
func TestStateCacheBytes(t *testing.T) {
	svc, _, _ := clockedService(t, WithStateCacheBytes(12<<10))
	var ids []string
	for i := range 12 {
		info, _, err := svc.Create(ctx, alice, fmt.Sprint(i), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.RecordSegments(ctx, alice, info.ID, append([]Segment(nil), visit...)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	st := svc.CacheStats()
	if st.Bytes > st.MaxBytes || st.Evictions == 0 || st.States >= len(ids) {
		t.Fatalf("after 12 visits: %+v, want evictions and bytes within the budget", st)
	}
	// The latest visit is in memory; the first was evicted.
	before := svc.CacheStats()
	if _, _, err := svc.Transcript(ctx, alice, ids[len(ids)-1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Transcript(ctx, alice, ids[0]); err != nil {
		t.Fatal(err)
	}
	after := svc.CacheStats()
	if after.Hits != before.Hits+1 || after.Misses != before.Misses+1 {
		t.Fatalf("stats before %+v, after %+v: want one hit and one miss", before, after)
	}
	// A state in use stays, however far over budget the cache goes.
	pinned := svc.states.acquire(alice.Tenant, ids[5])
	pinned.mu.Lock()
	if err := pinned.refresh(svc.log); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if id == ids[5] {
			continue // its lock is held here
		}
		if _, _, err := svc.Transcript(ctx, alice, id); err != nil {
			t.Fatal(err)
		}
	}
	if again := svc.states.acquire(alice.Tenant, ids[5]); again != pinned {
		t.Fatal("a state in use was evicted: a second state object exists for its encounter")
	}
	svc.states.release(pinned)
	svc.states.release(pinned)
	pinned.mu.Unlock()
}

// behindView is a summary view that never catches up.
type behindView struct{}

func (behindView) Summaries(ctx context.Context, _ string, _ Filter, _ *Cursor, _ int, _ int64) ([]Info, *Cursor, int64, error) {
	<-ctx.Done()
	return nil, nil, 0, ctx.Err()
}

// TestFindBehind: a summary view that does not reach the log's size in
// time is ErrBehind, unless the caller gave up first.
func TestFindBehind(t *testing.T) {
	defer func(d time.Duration) { maxCatchUp = d }(maxCatchUp)
	maxCatchUp = 50 * time.Millisecond
	svc, _, _ := clockedService(t, WithSummaries(behindView{}))
	if _, err := svc.Find(ctx, alice, ListQuery{}); !errors.Is(err, ErrBehind) {
		t.Fatalf("a view behind the log: %v, want ErrBehind", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := svc.Find(cctx, alice, ListQuery{}); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrBehind) {
		t.Fatalf("a caller's own deadline: %v", err)
	}
}
