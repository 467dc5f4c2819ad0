package index

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/ledger"
)

// collect pages through a search, appending more entries to the log and
// indexing them between pages, and returns every hit's id.
func collect(t *testing.T, x *Index, w writer, r Request, grow bool) []string {
	t.Helper()
	var ids []string
	var bound int64 = -1
	for page := 0; ; page++ {
		res, err := x.Search(context.Background(), r)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if bound >= 0 && res.TreeSize != bound {
			t.Fatalf("page %d: bound moved from %d to %d", page, bound, res.TreeSize)
		}
		bound = res.TreeSize
		for _, h := range res.Hits {
			ids = append(ids, docID(h.Leaf, h.SentenceID))
		}
		if res.NextPageToken == "" {
			return ids
		}
		if len(res.Hits) != r.PageSize {
			t.Fatalf("page %d has %d hits, want %d", page, len(res.Hits), r.PageSize)
		}
		r.PageToken = res.NextPageToken
		if grow && page < 10 {
			// New entries that match the query must not shift the pages.
			w.segs(r.Tenant, "enc-0", "patient: chest pain again, a new cough and warfarin")
			catchUp(t, x)
		}
	}
}

func TestPagination(t *testing.T) {
	l := memLog(t)
	scenario(t, l, rand.New(rand.NewPCG(11, 11)), 300)
	x := openIndex(t, tempIndexDir(t), l, Options{})
	catchUp(t, x)
	w := writer{t, l}
	for _, r := range []Request{
		{Query: "", Order: OrderOldest},
		{Query: "chest OR cough OR warfarin", Order: OrderOldest},
		{Query: "chest OR cough OR warfarin", Order: OrderNewest},
		{Query: "pain OR cough OR warfarin -chest"},
		{Query: "chest OR cough OR warfarin"},
	} {
		sizes := []int{7}
		if r.Query == "" {
			sizes = []int{1, 7, 100}
		}
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%q/%d/size%d", r.Query, r.Order, size), func(t *testing.T) {
				r.Tenant, r.PageSize = "tenant-a", MaxPageSize
				// The reference: the largest pages, on a log that does
				// not change, with no hit twice and as many as Total.
				want := collect(t, x, w, r, false)
				first, err := x.Search(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				for _, id := range want {
					if seen[id] {
						t.Fatalf("hit %s twice", id)
					}
					seen[id] = true
				}
				if uint64(len(want)) != first.Total || len(want) <= MaxPageSize {
					t.Fatalf("%d hits, total %d: want more than one page, and all of them", len(want), first.Total)
				}
				r.PageSize = size
				// Relevance depends on corpus statistics, which new
				// entries change: that order is checked on a still log.
				grow := r.Order != OrderRelevance
				got := collect(t, x, w, r, grow)
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Fatalf("paged hits differ from one page:\n got %v\nwant %v", got, want)
				}
			})
		}
	}
}

func TestPageTokenChecks(t *testing.T) {
	l := memLog(t)
	scenario(t, l, rand.New(rand.NewPCG(12, 12)), 200)
	x := openIndex(t, tempIndexDir(t), l, Options{})
	catchUp(t, x)
	ctx := context.Background()
	r := Request{Tenant: "tenant-a", Query: "chest OR pain", PageSize: 2}
	res, err := x.Search(ctx, r)
	if err != nil || res.NextPageToken == "" {
		t.Fatalf("first page: %v, token %q", err, res.NextPageToken)
	}
	tok := res.NextPageToken
	for _, tc := range []struct {
		name   string
		change func(r *Request)
	}{
		{"other tenant", func(r *Request) { r.Tenant = "tenant-b" }},
		{"other query", func(r *Request) { r.Query = "chest" }},
		{"other filter", func(r *Request) { r.Speaker = "patient" }},
		{"other kinds", func(r *Request) { r.Kinds = []ledger.Kind{ledger.KindSegment} }},
		{"other order", func(r *Request) { r.Order = OrderOldest }},
		{"current only", func(r *Request) { r.CurrentOnly = true }},
		{"garbage", func(r *Request) { r.PageToken = "not a token!" }},
		{"truncated", func(r *Request) { r.PageToken = tok[:len(tok)-3] }},
		{"too long", func(r *Request) { r.PageToken = strings.Repeat("A", 1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r2 := r
			r2.PageToken = tok
			tc.change(&r2)
			_, err := x.Search(ctx, r2)
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "page_token" {
				t.Fatalf("err = %v, want an InvalidError for page_token", err)
			}
			if strings.Contains(err.Error(), "chest") {
				t.Fatalf("error echoes the query: %v", err)
			}
		})
	}
	// The page size and facets may change between pages.
	r2 := r
	r2.PageToken, r2.PageSize, r2.Facets = tok, 5, true
	if _, err := x.Search(ctx, r2); err != nil {
		t.Fatal(err)
	}
	// A token for more entries than the index has applied (it was
	// dropped and is rebuilding) asks the caller to retry.
	y := openIndex(t, tempIndexDir(t), l, Options{BatchEntries: 3})
	if _, err := y.step(3); err != nil {
		t.Fatal(err)
	}
	r2.PageToken = tok
	if _, err := y.Search(ctx, r2); !errors.Is(err, ErrBehind) {
		t.Fatalf("token beyond the applied entries: %v, want ErrBehind", err)
	}
}

func TestBadRequests(t *testing.T) {
	l := memLog(t)
	x := openIndex(t, tempIndexDir(t), l, Options{})
	for _, tc := range []struct {
		r     Request
		field string
	}{
		{Request{Tenant: "a", Query: `"chest pain`}, "query"},
		{Request{Tenant: "a", Query: "(chest"}, "query"},
		{Request{Tenant: "a", Query: "chest)"}, "query"},
		{Request{Tenant: "a", Query: "()"}, "query"},
		{Request{Tenant: "a", Query: "chest OR"}, "query"},
		{Request{Tenant: "a", Query: "OR chest"}, "query"},
		{Request{Tenant: "a", Query: "chest AND"}, "query"},
		{Request{Tenant: "a", Query: "chest NOT"}, "query"},
		{Request{Tenant: "a", Query: "chest AND OR pain"}, "query"},
		{Request{Tenant: "a", Query: "the and of"}, "query"},
		{Request{Tenant: "a", Query: strings.Repeat("pain ", 250)}, "query"},
		{Request{Tenant: "a", Query: strings.Repeat("pain ", 65)}, "query"},
		{Request{Tenant: "a", Query: strings.Repeat("(", 40) + "pain" + strings.Repeat(")", 40)}, "query"},
		{Request{Tenant: "a", Query: "chest \x00 pain"}, "query"},
		{Request{Tenant: "a", Query: "chest \xff pain"}, "query"},
		{Request{Tenant: ""}, "tenant"},
		{Request{Tenant: "a", Encounter: "bad id"}, "encounter_id"},
		{Request{Tenant: "a", Speaker: "doctor"}, "speaker_role"},
		{Request{Tenant: "a", Kinds: []ledger.Kind{ledger.KindAudio}}, "kinds[0]"},
		{Request{Tenant: "a", PageSize: -1}, "page_size"},
		{Request{Tenant: "a", Order: 9}, "order"},
	} {
		_, err := x.Search(context.Background(), tc.r)
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("%q: err = %v, want an InvalidError for %s", tc.r.Query, err, tc.field)
			continue
		}
		if strings.Contains(ie.Reason, "chest") || strings.Contains(ie.Reason, "pain") {
			t.Errorf("error echoes the query: %v", err)
		}
	}
}
