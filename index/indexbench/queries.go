package indexbench

import (
	"context"
	"fmt"
	"time"

	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
)

// Query is one benchmark query.
type Query struct {
	Name string
	Req  index.Request
}

// Queries returns the representative queries: single terms (rare and
// common), conjunctions, phrases, booleans, an abbreviation, filters
// (speaker, kind, encounter, time, current note), facets, orders and a
// second page. from and to bound the corpus's recorded times; reps is
// the number of times the corpus was repeated (encounter ids r00- to
// r<reps-1>-).
func Queries(from, to time.Time, reps int) []Query {
	enc := func(i int) string { return fmt.Sprintf("r%02d-ES2002a", min(i, reps-1)) }
	third := to.Sub(from) / 3
	notes := []ledger.Kind{ledger.KindModelOutput, ledger.KindEdit}
	return []Query{
		{"term, rare", index.Request{Query: "gastroenteritis"}},
		{"term, clinical", index.Request{Query: "metformin"}},
		{"term, common", index.Request{Query: "pain"}},
		{"term, very common (AMI)", index.Request{Query: "remote"}},
		{"two terms", index.Request{Query: "chest pain"}},
		{"three terms", index.Request{Query: "shortness breath exertion"}},
		{"phrase", index.Request{Query: `"chest pain"`}},
		{"phrase with stop word", index.Request{Query: `"short of breath"`}},
		{"long phrase", index.Request{Query: `"past medical history"`}},
		{"OR", index.Request{Query: "diarrhea OR vomiting"}},
		{"NOT", index.Request{Query: "pain -chest"}},
		{"nested boolean", index.Request{Query: "(cough OR fever) AND NOT covid"}},
		{"abbreviation", index.Request{Query: "SOB"}},
		{"speaker filter", index.Request{Query: "pain", Speaker: "patient"}},
		{"kind filter (notes)", index.Request{Query: "hypertension", Kinds: notes}},
		{"current note only", index.Request{Query: "history", Kinds: notes, CurrentOnly: true}},
		{"time range", index.Request{Query: "pain", From: from.Add(third), To: from.Add(2 * third)}},
		{"encounter, filters only", index.Request{Encounter: enc(3)}},
		{"encounter + term", index.Request{Query: "button", Encounter: enc(5)}},
		{"facets", index.Request{Query: "pain", Facets: true}},
		{"facets, common term", index.Request{Query: "remote control", Facets: true}},
		{"newest first", index.Request{Query: "headache", Order: index.OrderNewest}},
		{"second page", index.Request{Query: "pain"}}, // a page token is added in timeQueries
		{"facets, filters only (worst case)", index.Request{Speaker: "clinician", Facets: true}},
	}
}

type timings struct {
	results []QueryResult
	all     []time.Duration
}

// timeQueries runs each query twice to warm up, then runs round robin
// until each has run runs times.
func timeQueries(ctx context.Context, x *index.Index, l *ledger.Log, runs, reps int) (*timings, error) {
	first, err := l.Entry(0)
	if err != nil {
		return nil, err
	}
	last, err := l.Entry(l.Size() - 1)
	if err != nil {
		return nil, err
	}
	qs := Queries(first.Leaf.Time, last.Leaf.Time, reps)
	for i := range qs {
		qs[i].Req.Tenant = Tenant
		if qs[i].Name == "second page" {
			res, err := x.Search(ctx, qs[i].Req)
			if err != nil {
				return nil, err
			}
			qs[i].Req.PageToken = res.NextPageToken
		}
	}
	per := make([][]time.Duration, len(qs))
	hits := make([]uint64, len(qs))
	for run := -2; run < runs; run++ {
		for i, q := range qs {
			t := time.Now()
			res, err := x.Search(ctx, q.Req)
			d := time.Since(t)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", q.Name, err)
			}
			hits[i] = res.Total
			if run >= 0 {
				per[i] = append(per[i], d)
			}
		}
	}
	out := &timings{}
	for i, q := range qs {
		p50, p99 := percentile(per[i], 50), percentile(per[i], 99)
		text := q.Req.Query
		if q.Req.Speaker != "" {
			text += " speaker:" + q.Req.Speaker
		}
		if q.Req.Encounter != "" {
			text += " encounter:" + q.Req.Encounter
		}
		out.results = append(out.results, QueryResult{Name: q.Name, Query: text, Hits: hits[i], P50: p50, P99: p99, P50MS: ms(p50), P99MS: ms(p99)})
		out.all = append(out.all, per[i]...)
	}
	return out, nil
}
