package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// visit records two encounters of tenant-a and one of tenant-b.
type visit struct {
	log               *ledger.Appender
	x                 *Index
	seg1, out1, edit1 int64
}

func newVisit(t *testing.T) *visit {
	t.Helper()
	l := memLog(t)
	w := writer{t, l}
	v := &visit{log: l}
	w.open("tenant-a", "enc-1")
	v.seg1 = w.segs("tenant-a", "enc-1",
		"clinician: Any chest pain?",
		"patient: Yes, I've had chest pains for three days, worse on the stairs.",
		"patient: I get short of breath at night.",
		"clinician: Do you take any blood thinners?",
		"patient: Warfarin, 5mg twice a day. Café au lait 😀 chest pain again.",
	)
	v.out1 = w.output("tenant-a", "enc-1",
		"Subjective|s1=Chest pain for 3/7, worse on exertion.|s2=SOB at night.",
		"Medications|m1=Warfarin 5mg BD.")
	v.edit1 = w.edit("tenant-a", "enc-1", encounter.Edit{Action: encounter.ActionReplace, SentenceID: "s2", Text: "Shortness of breath at night, no orthopnoea."})
	w.open("tenant-a", "enc-2")
	w.segs("tenant-a", "enc-2", "patient: My tummy hurts after meals.", "clinician: Any vomiting?")
	w.open("tenant-b", "enc-9")
	w.segs("tenant-b", "enc-9", "patient: Chest pain since Monday.", "clinician: Do you take warfarin?")
	w.output("tenant-b", "enc-9", "Subjective|s1=Chest pain since Monday.")
	v.x = openIndex(t, tempIndexDir(t), l, Options{BatchEntries: 4})
	catchUp(t, v.x)
	return v
}

func (v *visit) search(t *testing.T, r Request) *Result {
	t.Helper()
	if r.Tenant == "" {
		r.Tenant = "tenant-a"
	}
	res, err := v.x.Search(context.Background(), r)
	if err != nil {
		t.Fatalf("Search(%+v): %v", r, err)
	}
	return res
}

// leaves returns "leaf" or "leaf/sid" for each hit.
func leaves(res *Result) []string {
	var out []string
	for _, h := range res.Hits {
		s := fmt.Sprint(h.Leaf)
		if h.SentenceID != "" {
			s += "/" + h.SentenceID
		}
		out = append(out, s)
	}
	return out
}

func TestQueries(t *testing.T) {
	v := newVisit(t)
	s := v.seg1 // segments s..s+4
	o, e := v.out1, v.edit1
	for _, tc := range []struct {
		name  string
		r     Request
		want  []string // in log order
		total uint64
	}{
		{"word, stemmed, and a lay word for it", Request{Query: "pains"}, []string{fmt.Sprint(s), fmt.Sprint(s + 1), fmt.Sprint(s + 4), fmt.Sprintf("%d/s1", o), fmt.Sprint(s + 8)}, 0},
		{"implicit AND", Request{Query: "chest stairs"}, []string{fmt.Sprint(s + 1), fmt.Sprintf("%d/s1", o)}, 0}, // "exertion" is also read as stairs
		{"phrase", Request{Query: `"short of breath"`}, []string{fmt.Sprint(s + 2), fmt.Sprintf("%d/s2", e)}, 0},
		{"phrase with a stop word in the gap", Request{Query: `"short at breath"`}, []string{fmt.Sprint(s + 2), fmt.Sprintf("%d/s2", e)}, 0},
		{"phrase needs the gap", Request{Query: `"short breath"`}, nil, 0},
		{"phrase order matters", Request{Query: `"breath short"`}, nil, 0},
		{"expanded abbreviation is found by its meaning", Request{Query: "shortness breath"}, []string{fmt.Sprint(s + 2), fmt.Sprintf("%d/s2", o), fmt.Sprintf("%d/s2", e)}, 0},
		{"abbreviation", Request{Query: "SOB"}, []string{fmt.Sprintf("%d/s2", o)}, 0},
		{"OR", Request{Query: "warfarin OR tummy"}, []string{fmt.Sprint(s + 4), fmt.Sprintf("%d/m1", o), fmt.Sprint(s + 8)}, 0},
		{"OR across encounters", Request{Query: "tummy OR vomiting"}, []string{fmt.Sprint(s + 8), fmt.Sprint(s + 9)}, 0},
		{"NOT", Request{Query: "chest NOT stairs"}, []string{fmt.Sprint(s), fmt.Sprint(s + 4)}, 0},
		{"minus", Request{Query: "chest -stairs -warfarin"}, []string{fmt.Sprint(s)}, 0},
		{"plus and parentheses", Request{Query: "+chest (stairs OR warfarin)"}, []string{fmt.Sprint(s + 1), fmt.Sprint(s + 4), fmt.Sprintf("%d/s1", o)}, 0},
		{"NOT binds tighter than AND", Request{Query: "chest NOT stairs warfarin"}, []string{fmt.Sprint(s + 4)}, 0},
		{"pure negation", Request{Query: "-chest", Encounter: "enc-1", Kinds: []ledger.Kind{ledger.KindSegment}}, []string{fmt.Sprint(s + 2), fmt.Sprint(s + 3)}, 0},
		{"number normalized", Request{Query: "5mg"}, []string{fmt.Sprint(s + 4), fmt.Sprintf("%d/m1", o)}, 0},
		{"duration shorthand", Request{Query: `"three days"`}, []string{fmt.Sprint(s + 1), fmt.Sprintf("%d/s1", o)}, 0},
		{"speaker filter", Request{Query: "chest", Speaker: "clinician"}, []string{fmt.Sprint(s)}, 0},
		{"kind filter", Request{Query: "chest", Kinds: []ledger.Kind{ledger.KindModelOutput, ledger.KindEdit}}, []string{fmt.Sprintf("%d/s1", o)}, 0},
		{"encounter filter", Request{Query: "OR tummy", Encounter: "enc-2"}, nil, 0},
		{"current only", Request{Query: "night", CurrentOnly: true}, []string{fmt.Sprint(s + 2), fmt.Sprintf("%d/s2", e)}, 0},
		{"superseded included by default", Request{Query: "night"}, []string{fmt.Sprint(s + 2), fmt.Sprintf("%d/s2", o), fmt.Sprintf("%d/s2", e)}, 0},
		{"filters only", Request{Encounter: "enc-2"}, []string{fmt.Sprint(s + 8), fmt.Sprint(s + 9)}, 0},
		{"time range", Request{From: time.Date(2025, 3, 1, 8, 1, 0, 0, time.UTC), To: time.Date(2025, 3, 1, 8, 3, 0, 0, time.UTC), Query: "chest"}, []string{fmt.Sprint(s), fmt.Sprint(s + 1), fmt.Sprint(s + 4)}, 0},
		{"time range excludes", Request{From: time.Date(2025, 3, 1, 8, 3, 0, 0, time.UTC), Query: "chest"}, []string{fmt.Sprintf("%d/s1", o)}, 0},
		{"lay synonym indexed", Request{Query: "abdomen"}, []string{fmt.Sprint(s + 8)}, 0},
		{"tenant b sees its own", Request{Tenant: "tenant-b", Query: "chest OR warfarin"}, []string{fmt.Sprint(s + 11), fmt.Sprint(s + 12), fmt.Sprintf("%d/s1", s+13)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.r.Query, "OR") {
				_, err := v.x.Search(context.Background(), Request{Tenant: "tenant-a", Query: tc.r.Query})
				var ie *InvalidError
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want InvalidError", err)
				}
				return
			}
			r := tc.r
			r.Order = OrderOldest
			res := v.search(t, r)
			if got := leaves(res); !slices.Equal(got, tc.want) {
				t.Errorf("hits %v, want %v", got, tc.want)
			}
			if res.Total != uint64(len(tc.want)) {
				t.Errorf("total %d, want %d", res.Total, len(tc.want))
			}
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	v := newVisit(t)
	for _, q := range []string{"", "chest", "warfarin OR tummy OR monday", "-zzz", `"chest pain"`} {
		for _, tenant := range []string{"tenant-a", "tenant-b", "tenant-c"} {
			for _, enc := range []string{"", "enc-1", "enc-9"} {
				res := v.search(t, Request{Tenant: tenant, Query: q, Encounter: enc, Facets: true, PageSize: 100})
				for _, h := range res.Hits {
					e, err := v.log.Entry(h.Leaf)
					if err != nil {
						t.Fatal(err)
					}
					if e.Leaf.Tenant != tenant {
						t.Fatalf("tenant %s query %q: hit %d belongs to %s", tenant, q, h.Leaf, e.Leaf.Tenant)
					}
				}
				for _, f := range res.Facets.Encounters {
					if (tenant == "tenant-b") != (f.Value == "enc-9") {
						t.Fatalf("tenant %s sees encounter %s in facets", tenant, f.Value)
					}
				}
				if tenant == "tenant-c" && (res.Total != 0 || len(res.Hits) != 0) {
					t.Fatalf("tenant-c found %d", res.Total)
				}
			}
		}
	}
}

func TestHitFields(t *testing.T) {
	v := newVisit(t)
	res := v.search(t, Request{Query: "chest", Order: OrderOldest})
	h := res.Hits[len(res.Hits)-2] // the last segment
	if h.Leaf != v.seg1+4 || h.Encounter != "enc-1" || h.Kind != ledger.KindSegment || h.Speaker != "patient" || h.StartMS != 20000 || h.EndMS != 24000 || h.SegmentID == "" {
		t.Errorf("segment hit = %+v", h)
	}
	if !strings.HasPrefix(h.Text, "Warfarin, 5mg") {
		t.Errorf("text = %q", h.Text)
	}
	s := res.Hits[len(res.Hits)-1]
	if s.SentenceID != "s1" || s.Section != "Subjective" || s.Model.Name != "soapgen" || s.Superseded || s.Kind != ledger.KindModelOutput {
		t.Errorf("sentence hit = %+v", s)
	}
	res = v.search(t, Request{Query: "orthopnoea", Order: OrderOldest})
	if len(res.Hits) != 1 || res.Hits[0].Section != "Subjective" || res.Hits[0].Kind != ledger.KindEdit || res.Hits[0].Superseded {
		t.Errorf("edit hit = %+v", res.Hits)
	}
	res = v.search(t, Request{Query: "SOB"})
	if len(res.Hits) != 1 || !res.Hits[0].Superseded {
		t.Errorf("replaced sentence = %+v", res.Hits)
	}
}

func TestHighlights(t *testing.T) {
	v := newVisit(t)
	res := v.search(t, Request{Query: "chest pain", Encounter: "enc-1", Kinds: []ledger.Kind{ledger.KindSegment}, Order: OrderOldest})
	var got []string
	for _, h := range res.Hits {
		u := utf16.Encode([]rune(h.Text))
		for _, hl := range h.Highlights {
			b := h.Text[hl.Start:hl.End]
			w := string(utf16.Decode(u[hl.UTF16Start:hl.UTF16End]))
			if b != w {
				t.Errorf("leaf %d: byte span %q, UTF-16 span %q", h.Leaf, b, w)
			}
			got = append(got, b)
		}
	}
	want := []string{"chest", "pain", "chest", "pains", "chest", "pain"}
	if !slices.Equal(got, want) {
		t.Errorf("highlights %q, want %q", got, want)
	}
	// The last segment has an emoji before "chest": UTF-16 offsets differ
	// from byte offsets there.
	last := res.Hits[len(res.Hits)-1]
	if hl := last.Highlights[0]; hl.Start == hl.UTF16Start {
		t.Errorf("expected UTF-16 offsets to differ from byte offsets after non-ASCII text: %+v", hl)
	}
	// An abbreviation matched through its expansion highlights the
	// abbreviation.
	res = v.search(t, Request{Query: "breathless", Order: OrderOldest})
	h := res.Hits[0]
	if h.Leaf != v.out1 || h.SentenceID != "s2" || len(h.Highlights) != 1 || h.Text[h.Highlights[0].Start:h.Highlights[0].End] != "SOB" {
		t.Errorf("highlights of %q: %+v", h.Text, h.Highlights)
	}
}

func TestFacets(t *testing.T) {
	v := newVisit(t)
	res := v.search(t, Request{Query: "chest OR warfarin OR tummy OR night", Facets: true})
	f := res.Facets
	counts := func(fc []FacetCount) string {
		var s []string
		for _, c := range fc {
			s = append(s, fmt.Sprintf("%s=%d", c.Value, c.Count))
		}
		return strings.Join(s, " ")
	}
	if got, want := counts(f.Speakers), "patient=4 clinician=1"; got != want {
		t.Errorf("speakers %s, want %s", got, want)
	}
	if got, want := counts(f.Kinds), "segment=5 model_output=3 edit=1"; got != want {
		t.Errorf("kinds %s, want %s", got, want)
	}
	if got, want := counts(f.Encounters), "enc-1=8 enc-2=1"; got != want {
		t.Errorf("encounters %s, want %s", got, want)
	}
}

func TestRelevanceOrder(t *testing.T) {
	v := newVisit(t)
	res := v.search(t, Request{Query: "chest OR pain OR stairs"})
	for i := 1; i < len(res.Hits); i++ {
		a, b := res.Hits[i-1], res.Hits[i]
		if a.Score < b.Score || (a.Score == b.Score && a.Leaf > b.Leaf) {
			t.Fatalf("hits %d and %d out of order: %v then %v", i-1, i, a.Score, b.Score)
		}
	}
	if res.Hits[0].Leaf != v.seg1+1 {
		t.Errorf("best hit %d, want %d (chest, pains and stairs)", res.Hits[0].Leaf, v.seg1+1)
	}
	res = v.search(t, Request{Query: "chest", Order: OrderNewest})
	for i := 1; i < len(res.Hits); i++ {
		if res.Hits[i-1].Leaf < res.Hits[i].Leaf || res.Hits[i].Score != 0 {
			t.Fatalf("newest first: %v", leaves(res))
		}
	}
}
