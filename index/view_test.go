package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// TestMatchesReference indexes generated histories in batches of several
// sizes and checks the index against the reference computed from the log
// and the encounter service's projection.
func TestMatchesReference(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		for _, batch := range []int{1, 7, 5000} {
			t.Run(fmt.Sprintf("seed%d/batch%d", seed, batch), func(t *testing.T) {
				l := memLog(t)
				steps := 200
				if batch < 5 {
					steps = 50 // every batch waits for a sync
				}
				scenario(t, l, rand.New(rand.NewPCG(seed, 0)), steps)
				x := openIndex(t, tempIndexDir(t), l, Options{BatchEntries: batch})
				catchUp(t, x)
				if x.Applied() != l.Size() {
					t.Fatalf("applied %d, log size %d", x.Applied(), l.Size())
				}
				diffDocs(t, dump(t, x), reference(t, l))
			})
		}
	}
}

// TestResume stops and reopens the index between batches while the log
// grows, and checks that it ends with exactly the log's content.
func TestResume(t *testing.T) {
	l := memLog(t)
	rng := rand.New(rand.NewPCG(9, 9))
	dir := tempIndexDir(t)
	for round := range 8 {
		scenario(t, l, rng, 40)
		x, err := Open(dir, l, Options{BatchEntries: 1 + rng.IntN(30)})
		if err != nil {
			t.Fatal(err)
		}
		if round%2 == 0 {
			// Apply only part of the log before closing.
			if _, err := x.step(x.Applied() + int64(rng.IntN(50))); err != nil {
				t.Fatal(err)
			}
		} else {
			catchUp(t, x)
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
	x := openIndex(t, dir, l, Options{})
	catchUp(t, x)
	diffDocs(t, dump(t, x), reference(t, l))
}

// TestStateBehindTenants reopens the index with its recorded position
// behind what its tenant indexes hold, as after a crash between a batch
// and the state write: each tenant index skips what it already has, so
// nothing is applied twice and the index ends the same.
func TestStateBehindTenants(t *testing.T) {
	l := memLog(t)
	scenario(t, l, rand.New(rand.NewPCG(4, 4)), 200)
	dir := tempIndexDir(t)
	x := openIndex(t, dir, l, Options{BatchEntries: 13})
	catchUp(t, x)
	want := dump(t, x)
	x.Close()
	for _, back := range []int64{1, 17, l.Size() / 2, l.Size()} {
		x, err := Open(dir, l, Options{BatchEntries: 7})
		if err != nil {
			t.Fatal(err)
		}
		n := l.Size() - back
		var h ledger.Hash
		if n > 0 {
			e, err := l.Entry(n - 1)
			if err != nil {
				t.Fatal(err)
			}
			h = e.Hash
		}
		if err := x.writeState(n, h); err != nil {
			t.Fatal(err)
		}
		x.Close()
		x = openIndex(t, dir, l, Options{BatchEntries: 7})
		if x.Applied() != n {
			t.Fatalf("applied %d after rewinding to %d", x.Applied(), n)
		}
		catchUp(t, x)
		if got := dump(t, x); !reflect.DeepEqual(got, want) {
			diffDocs(t, got, want)
		}
		x.Close()
	}
}

// testQueries exercise terms, phrases, booleans, filters, facets and
// highlights.
var testQueries = []Request{
	{Query: "chest pain", Facets: true},
	{Query: `"chest pain"`},
	{Query: "warfarin OR cardiology", Facets: true},
	{Query: "cough -night"},
	{Query: "SOB"},
	{Query: "shortness breath", CurrentOnly: true},
	{Query: "pain", Speaker: "patient", Facets: true},
	{Query: "fever", Kinds: []ledger.Kind{ledger.KindModelOutput, ledger.KindEdit}},
	{Query: "", Encounter: "enc-3", Facets: true},
	{Query: "dizzy OR dizziness", Order: OrderNewest},
	{Query: "(blood OR pressure) AND NOT thinners"},
	{Query: "edited", Facets: true},
	{Query: "-chest", PageSize: 50},
	{Query: "tummy OR abdomen"},
	{Query: `"twice a day"`},
}

func runQueries(t *testing.T, x *Index) []*Result {
	t.Helper()
	var out []*Result
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		for _, r := range testQueries {
			r.Tenant = tenant
			for {
				res, err := x.Search(context.Background(), r)
				if err != nil {
					t.Fatalf("%+v: %v", r, err)
				}
				out = append(out, res)
				if res.NextPageToken == "" {
					break
				}
				r.PageToken = res.NextPageToken
			}
		}
	}
	return out
}

// TestRebuildAnswersIdentically builds one index by following the log as
// it grows, with restarts and small batches, and another by rebuilding
// from the finished log in one pass: every query answers the same, to the
// score, highlight and facet.
func TestRebuildAnswersIdentically(t *testing.T) {
	l := memLog(t)
	rng := rand.New(rand.NewPCG(5, 5))
	dir := tempIndexDir(t)
	for range 5 {
		x, err := Open(dir, l, Options{BatchEntries: 1 + rng.IntN(20)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := x.Follow(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Follow: %v", err)
			}
		}()
		scenario(t, l, rng, 100)
		cancel()
		wg.Wait()
		x.Close()
	}
	followed := openIndex(t, dir, l, Options{})
	catchUp(t, followed)

	rebuilt := openIndex(t, tempIndexDir(t), l, Options{})
	catchUp(t, rebuilt)

	a, b := runQueries(t, followed), runQueries(t, rebuilt)
	hits := 0
	for i := range a {
		a[i].NextPageToken, b[i].NextPageToken = "", "" // equal bounds give equal tokens; compared below
		if !reflect.DeepEqual(a[i], b[i]) {
			t.Fatalf("result %d differs:\nfollowed %+v\nrebuilt  %+v", i, a[i], b[i])
		}
		hits += len(a[i].Hits)
	}
	if hits < 100 {
		t.Fatalf("only %d hits: the queries test too little", hits)
	}
	diffDocs(t, dump(t, followed), reference(t, l))
}

// shrunk is a log that reports a smaller size than it holds, as a log
// restored from an older backup would to an index built on the newer one.
type shrunk struct {
	Source
	size int64
}

func (s shrunk) Size() int64 { return s.size }

func (s shrunk) Payload(i int64) ([]byte, *ledger.StoredEntry, error) {
	if i >= s.size {
		return nil, nil, fmt.Errorf("%w: %d", ledger.ErrNotFound, i)
	}
	return s.Source.Payload(i)
}

func (s shrunk) Entry(i int64) (*ledger.StoredEntry, error) {
	if i >= s.size {
		return nil, fmt.Errorf("%w: %d", ledger.ErrNotFound, i)
	}
	return s.Source.Entry(i)
}

func TestNeverBeyondTheLog(t *testing.T) {
	l := memLog(t)
	scenario(t, l, rand.New(rand.NewPCG(6, 6)), 200)
	dir := tempIndexDir(t)
	x := openIndex(t, dir, l, Options{})
	catchUp(t, x)
	half := l.Size() / 2

	// The index is ahead of the (restored) log: Open refuses it.
	x.Close()
	if _, err := Open(dir, shrunk{l, half}, Options{}); !errors.As(err, new(*DivergedError)) {
		t.Fatalf("Open on a shorter log: %v, want DivergedError", err)
	}

	// Had it been opened (or the log shrunk under it), searches still
	// return nothing at or beyond the log's size.
	x = openIndex(t, dir, l, Options{})
	x.src = shrunk{l, half}
	total := 0
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		for _, q := range []string{"", "chest OR pain OR cough OR warfarin"} {
			r := Request{Tenant: tenant, Query: q, PageSize: 100}
			for {
				res, err := x.Search(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				if res.TreeSize > half {
					t.Fatalf("bound %d beyond the log's %d", res.TreeSize, half)
				}
				for _, h := range res.Hits {
					if h.Leaf >= half {
						t.Fatalf("hit %d beyond the log's size %d", h.Leaf, half)
					}
				}
				total += len(res.Hits)
				if res.NextPageToken == "" {
					break
				}
				r.PageToken = res.NextPageToken
			}
		}
	}
	if total == 0 {
		t.Fatal("no hits at all")
	}
}

func TestDivergedLog(t *testing.T) {
	l1, l2 := memLog(t), memLog(t)
	scenario(t, l1, rand.New(rand.NewPCG(7, 7)), 50)
	scenario(t, l2, rand.New(rand.NewPCG(8, 8)), 50)
	dir := tempIndexDir(t)
	x := openIndex(t, dir, l1, Options{})
	catchUp(t, x)
	x.Close()
	if l2.Size() < l1.Size() {
		t.Skip("second log is shorter")
	}
	_, err := Open(dir, l2, Options{})
	var de *DivergedError
	if !errors.As(err, &de) {
		t.Fatalf("Open on another log: %v, want DivergedError", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	x = openIndex(t, dir, l2, Options{})
	catchUp(t, x)
	diffDocs(t, dump(t, x), reference(t, l2))
}

// shredder is a Sealer whose keys for some encounters were destroyed.
type shredder struct {
	mu   sync.Mutex
	gone map[string]bool
}

func (s *shredder) Seal(_, _ string, _ ledger.Hash, p []byte) ([]byte, error) { return p, nil }

func (s *shredder) Open(tenant, enc string, _ ledger.Hash, p []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone[tenant+"/"+enc] {
		return nil, ledger.ErrRedacted
	}
	return p, nil
}

func (s *shredder) shred(tenant, enc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone[tenant+"/"+enc] = true
}

func TestRedaction(t *testing.T) {
	sh := &shredder{gone: map[string]bool{}}
	l, err := ledger.Open(memstore.New(), ledger.Options{Origin: testOrigin, Key: testKey(t), Sealer: sh})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := writer{t, l}
	for _, enc := range []string{"enc-1", "enc-2", "enc-3"} {
		w.open("tenant-a", enc)
		w.segs("tenant-a", enc, "patient: chest pain", "clinician: any warfarin?")
		w.output("tenant-a", enc, "Subjective|s1=Chest pain.")
		w.edit("tenant-a", enc, encounter.Edit{Action: encounter.ActionReplace, SentenceID: "s1", Text: "Chest pain, worse on stairs."})
	}
	x := openIndex(t, tempIndexDir(t), l, Options{BatchEntries: 5})
	// enc-3 is shredded before it is indexed: nothing of it is indexed.
	sh.shred("tenant-a", "enc-3")
	catchUp(t, x)
	count := func() map[string]int {
		res, err := x.Search(context.Background(), Request{Tenant: "tenant-a", Query: "chest", Facets: true})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, h := range res.Hits {
			m[h.Encounter]++
		}
		for _, f := range res.Facets.Encounters {
			m["facet:"+f.Value] = f.Count
		}
		return m
	}
	if got, want := count(), map[string]int{"enc-1": 3, "enc-2": 3, "facet:enc-1": 3, "facet:enc-2": 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("before shredding: %v, want %v", got, want)
	}
	// enc-2 is shredded after it was indexed: its hits are dropped at
	// once (their text cannot be read back), and DeleteEncounter removes
	// its documents.
	sh.shred("tenant-a", "enc-2")
	if got, want := count(), map[string]int{"enc-1": 3, "facet:enc-1": 3, "facet:enc-2": 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after shredding: %v, want %v", got, want)
	}
	if err := x.DeleteEncounter("tenant-a", "enc-2"); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), map[string]int{"enc-1": 3, "facet:enc-1": 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after DeleteEncounter: %v, want %v", got, want)
	}
	// Indexing continues, and the index equals a rebuild of the log.
	w.segs("tenant-a", "enc-1", "patient: more chest pain")
	catchUp(t, x)
	rebuilt := openIndex(t, tempIndexDir(t), l, Options{})
	catchUp(t, rebuilt)
	if a, b := dump(t, x), dump(t, rebuilt); !reflect.DeepEqual(a, b) {
		diffDocs(t, a, b)
	}
	var ie *InvalidError
	if err := x.DeleteEncounter("tenant-a", "bad encounter"); !errors.As(err, &ie) || ie.Field != "encounter_id" {
		t.Errorf("DeleteEncounter with a bad id: %v", err)
	}
}

// TestRedactionDuringReadAhead redacts an encounter while the indexer has
// already read its entries ahead: they must not enter the index.
func TestRedactionDuringReadAhead(t *testing.T) {
	sh := &shredder{gone: map[string]bool{}}
	l, err := ledger.Open(memstore.New(), ledger.Options{Origin: testOrigin, Key: testKey(t), Sealer: sh})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := writer{t, l}
	w.open("tenant-a", "enc-1")
	w.segs("tenant-a", "enc-1", "patient: chest pain", "patient: chest pain again")
	first := l.Size()
	w.open("tenant-a", "enc-2")
	w.segs("tenant-a", "enc-2", "patient: chest pain", "patient: more chest pain")
	x := openIndex(t, tempIndexDir(t), l, Options{BatchEntries: int(first)})
	if _, err := x.step(l.Size()); err != nil {
		t.Fatal(err)
	}
	x.mu.Lock()
	pf := x.mu.prefetch
	x.mu.Unlock()
	if pf == nil {
		t.Fatal("no read-ahead started")
	}
	<-pf.done // enc-2's payloads were read before the redaction
	sh.shred("tenant-a", "enc-2")
	if err := x.DeleteEncounter("tenant-a", "enc-2"); err != nil {
		t.Fatal(err)
	}
	catchUp(t, x)
	res, err := x.Search(context.Background(), Request{Tenant: "tenant-a", Query: "chest", Facets: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Facets.Encounters {
		if f.Value == "enc-2" {
			t.Fatalf("the redacted encounter was indexed from entries read ahead: %+v", res.Facets.Encounters)
		}
	}
	if res.Total != 2 {
		t.Fatalf("%d hits, want enc-1's 2", res.Total)
	}
}

// TestNoTextInIndexFiles checks that the index files hold no text, only
// terms: a phrase of a segment is in no file.
func TestNoTextInIndexFiles(t *testing.T) {
	l := memLog(t)
	w := writer{t, l}
	w.open("tenant-a", "enc-1")
	w.segs("tenant-a", "enc-1", "patient: the quick brown fox jumps over the lazy dog near the riverbank today")
	w.output("tenant-a", "enc-1", "Plan|p1=Review the quick brown fox in clinic next week.")
	dir := tempIndexDir(t)
	x := openIndex(t, dir, l, Options{})
	catchUp(t, x)
	if res, err := x.Search(context.Background(), Request{Tenant: "tenant-a", Query: `"quick brown fox"`}); err != nil || res.Total != 2 {
		t.Fatalf("search: %v, %v", res, err)
	}
	x.Close()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range []string{"quick brown", "brown fox", "riverbank today", "in clinic next"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%q is in %s", s, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
