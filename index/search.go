package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// Order is the order of search results.
type Order uint8

// Result orders.
const (
	// OrderRelevance puts the best matches first, ties in log order. A
	// query with no positive term (filters only, or only NOT) has no
	// relevance and is returned in log order.
	OrderRelevance Order = iota
	// OrderOldest returns results in log order.
	OrderOldest
	// OrderNewest returns results in reverse log order.
	OrderNewest
)

// Page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// facetSizes caps the values each facet field reports: every kind and
// speaker pair, and the top encounters.
var facetSizes = map[string]int{fieldFacet: 16, fieldEncounter: 10}

// Request is a search. Tenant is required: every hit belongs to it.
type Request struct {
	Tenant string
	// Query is the query string (see parseQuery and docs/search.md).
	// Empty matches everything the filters allow.
	Query string
	// Filters; zero values do not filter.
	Encounter string
	Speaker   string        // encounter.RoleClinician, RolePatient or RoleOther
	Kinds     []ledger.Kind // any of segment, model_output, edit
	From, To  time.Time     // recorded time: From <= t < To
	// CurrentOnly leaves out sentence versions that are no longer in the
	// current note (earlier versions of edited sentences, sentences of
	// replaced drafts, deleted sentences).
	CurrentOnly bool
	Order       Order
	// Facets asks for counts by speaker, kind and encounter over all
	// matching documents.
	Facets bool
	// PageSize is the number of hits per page: 0 means DefaultPageSize;
	// more than MaxPageSize is capped.
	PageSize int
	// PageToken continues a search from the NextPageToken of its previous
	// page. The other fields (but PageSize and Facets) must not change.
	PageToken string
}

// Result is one page of results.
type Result struct {
	Hits []Hit
	// Total counts the matching documents at or below the bound.
	Total uint64
	// Facets is set when the request asked for them.
	Facets *Facets
	// NextPageToken continues the search; empty on the last page.
	NextPageToken string
	// TreeSize is the bound: every page of a search covers the log's
	// first TreeSize entries and nothing appended after its first page.
	TreeSize int64
}

// Hit is one matching segment or note sentence version, read back from the
// log.
type Hit struct {
	Leaf      int64
	Encounter string
	Kind      ledger.Kind
	Time      time.Time // recorded time
	Score     float64   // 0 in log order
	Text      string
	// Highlights are the matched spans of Text, in order, not
	// overlapping.
	Highlights []Highlight

	// Segments.
	Speaker        string
	SegmentID      string
	StartMS, EndMS int64

	// Note sentences.
	SentenceID string
	Section    string
	Model      encounter.Model // model outputs
	// Superseded: this version is no longer in the current note.
	Superseded bool
}

// Highlight is a matched span of a hit's text, as byte offsets and as
// UTF-16 code unit offsets (as JavaScript strings count), half-open.
type Highlight struct {
	Start, End           int
	UTF16Start, UTF16End int
}

// Facets count the matching documents by field.
type Facets struct {
	Speakers, Kinds, Encounters []FacetCount
	// OtherEncounters counts matches in encounters not listed.
	OtherEncounters int
}

// FacetCount is a value and how many matching documents have it.
type FacetCount struct {
	Value string
	Count int
}

var searchableKinds = []ledger.Kind{ledger.KindSegment, ledger.KindModelOutput, ledger.KindEdit}

func (r *Request) validate() error {
	if err := ledger.CheckID("tenant", r.Tenant, ledger.MaxTenantLen); err != nil {
		return invalid("tenant", "is not a valid tenant id")
	}
	if r.Encounter != "" {
		if err := ledger.CheckID("encounter_id", r.Encounter, ledger.MaxEncounterLen); err != nil {
			return invalid("encounter_id", "must be 1 to %d bytes of A-Z a-z 0-9 . _ - : @ / +", ledger.MaxEncounterLen)
		}
	}
	switch r.Speaker {
	case "", encounter.RoleClinician, encounter.RolePatient, encounter.RoleOther:
	default:
		return invalid("speaker_role", "must be clinician, patient or other")
	}
	if len(r.Kinds) > len(searchableKinds) {
		return invalid("kinds", "at most %d kinds", len(searchableKinds))
	}
	for i, k := range r.Kinds {
		if !slices.Contains(searchableKinds, k) {
			return invalid(fmt.Sprintf("kinds[%d]", i), "only segment, model_output and edit entries are searchable")
		}
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return invalid("start_time", "must be before end_time")
	}
	for _, t := range []struct {
		field string
		t     time.Time
	}{{"start_time", r.From}, {"end_time", r.To}} {
		if !t.t.IsZero() && (t.t.Year() < 1970 || t.t.Year() > 2261) {
			return invalid(t.field, "must be between 1970 and 2261")
		}
	}
	switch r.Order {
	case OrderRelevance, OrderOldest, OrderNewest:
	default:
		return invalid("order", "unknown order")
	}
	if r.PageSize < 0 {
		return invalid("page_size", "must not be negative")
	}
	return nil
}

// Search runs a search over the documents of the request's tenant. Hits
// are read back from the log: a hit whose entry is beyond the log, of
// another tenant or whose payload was destroyed is dropped, so a search
// never returns content the log does not hold.
//
// Bad input (a malformed or oversized query, bad filters, a page token of
// another search) returns an *InvalidError naming the field.
func (x *Index) Search(ctx context.Context, r Request) (*Result, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	ast, err := parseQuery(r.Query)
	if err != nil {
		return nil, err
	}
	var text compiled
	if ast != nil {
		text = compile(ast)
	}
	order := r.Order
	if text.match == nil && order == OrderRelevance {
		order = OrderOldest // nothing to rank by
	}
	size := r.PageSize
	if size == 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)

	applied, logSize := x.Applied(), x.src.Size()
	bound := min(applied, logSize)
	var after *pageToken
	if r.PageToken != "" {
		t, err := decodePageToken(r.PageToken)
		if err != nil {
			return nil, err
		}
		if t.digest != r.digest() || t.order != order {
			return nil, invalid("page_token", "belongs to a different search; repeat the query, filters and order of its first page")
		}
		if t.bound > logSize {
			return nil, invalid("page_token", "is for a larger log than this one")
		}
		if t.bound > applied {
			return nil, ErrBehind
		}
		after, bound = t, t.bound
	}

	t := x.tenant(r.Tenant)
	if t == nil {
		// The tenant has nothing indexed.
		out := &Result{TreeSize: bound}
		if r.Facets {
			out.Facets = &Facets{}
		}
		return out, nil
	}
	req := bleve.NewSearchRequestOptions(buildQuery(&r, text, bound), size+1, 0, false)
	ord := func(desc bool) search.SearchSort {
		return &search.SortField{Field: fieldOrd, Type: search.SortFieldAsString, Desc: desc}
	}
	switch order {
	case OrderRelevance:
		req.SortByCustom(search.SortOrder{&search.SortScore{Desc: true}, ord(false)})
	case OrderOldest:
		req.SortByCustom(search.SortOrder{ord(false)})
	case OrderNewest:
		req.SortByCustom(search.SortOrder{ord(true)})
	}
	if order != OrderRelevance {
		req.Score = "none"
	}
	if after != nil {
		if order == OrderRelevance {
			req.SearchAfter = []string{strconv.FormatFloat(after.score, 'g', -1, 64), after.id}
		} else {
			req.SearchAfter = []string{after.id}
		}
	}
	req.IncludeLocations = text.match != nil
	req.Fields = []string{fieldSection, fieldSuperseded}
	if r.Facets {
		for f, n := range facetSizes {
			req.AddFacet(f, bleve.NewFacetRequest(f, n))
		}
	}
	res, err := t.bleve.SearchInContext(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("index: search: %w", err)
	}

	out := &Result{Total: res.Total, TreeSize: bound}
	hits := res.Hits
	if len(hits) > size {
		hits = hits[:size]
		last := hits[size-1]
		t := pageToken{digest: r.digest(), bound: bound, order: order, id: last.ID}
		if order == OrderRelevance {
			t.score = last.Score
		}
		out.NextPageToken = t.encode()
	}
	rd := &hitReader{x: x, tenant: r.Tenant, bound: bound, payloads: map[int64]decoded{}}
	for _, h := range hits {
		hit, ok, err := rd.read(h)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if order != OrderRelevance {
			hit.Score = 0
		}
		out.Hits = append(out.Hits, hit)
	}
	if r.Facets {
		out.Facets = facetsOf(res.Facets)
	}
	return out, nil
}

// buildQuery returns the bleve query of r on its tenant's index: the text
// query, restricted by non-scoring filters and by the bound.
func buildQuery(r *Request, text compiled, bound int64) query.Query {
	term := func(field, v string) query.Query {
		q := query.NewTermQuery(v)
		q.SetField(field)
		return q
	}
	var filters []query.Query
	if r.Encounter != "" {
		filters = append(filters, term(fieldEncounter, r.Encounter))
	}
	if r.Speaker != "" {
		filters = append(filters, term(fieldSpeaker, r.Speaker))
	}
	if len(r.Kinds) > 0 {
		var ks []query.Query
		for _, k := range r.Kinds {
			ks = append(ks, term(fieldKind, k.String()))
		}
		filters = append(filters, query.NewDisjunctionQuery(ks))
	}
	if !r.From.IsZero() || !r.To.IsZero() {
		from, to := r.From, r.To
		if to.IsZero() {
			to = maxBucketTime
		}
		var ts []query.Query
		for _, b := range rangeTerms(from, to) {
			ts = append(ts, term(fieldTime, b))
		}
		if len(ts) == 0 {
			filters = append(filters, query.NewMatchNoneQuery())
		} else {
			filters = append(filters, query.NewDisjunctionQuery(ts))
		}
	}
	if r.CurrentOnly {
		q := query.NewBoolFieldQuery(false)
		q.SetField(fieldSuperseded)
		// Segments have no superseded field: keep them too.
		seg := term(fieldKind, ledger.KindSegment.String())
		filters = append(filters, query.NewDisjunctionQuery([]query.Query{q, seg}))
	}
	// Documents of entries at or beyond the bound are left out, so that
	// pages of one search never shift as the index grows.
	beyond := query.NewTermRangeQuery(docID(bound, ""), "")
	beyond.SetField(fieldID)
	exclude := append([]query.Query{beyond}, text.exclude...)

	if text.match == nil {
		var must query.Query = query.NewMatchAllQuery()
		if len(filters) > 0 {
			must = query.NewConjunctionQuery(filters)
		}
		return query.NewBooleanQuery([]query.Query{must}, nil, exclude)
	}
	b := query.NewBooleanQuery([]query.Query{text.match}, nil, exclude)
	if len(filters) > 0 {
		b.AddFilter(query.NewConjunctionQuery(filters))
	}
	return b
}

// hitReader turns index hits into Hits, reading each from the log.
type hitReader struct {
	x        *Index
	tenant   string
	bound    int64
	payloads map[int64]decoded
}

func (rd *hitReader) read(h *search.DocumentMatch) (Hit, bool, error) {
	leaf, sid, ok := parseDocID(h.ID)
	if !ok {
		rd.x.opts.Logger.Error("index: malformed document id")
		return Hit{}, false, nil
	}
	if leaf >= rd.bound {
		return Hit{}, false, nil
	}
	d, ok := rd.payloads[leaf]
	if !ok {
		raw, e, err := rd.x.src.Payload(leaf)
		switch {
		case errors.Is(err, ledger.ErrRedacted), errors.Is(err, ledger.ErrNotFound):
			return Hit{}, false, nil
		case err != nil:
			return Hit{}, false, fmt.Errorf("index: read hit %d: %w", leaf, err)
		}
		p, err := encounter.DecodePayload(e.Leaf.Kind, raw)
		if err != nil {
			return Hit{}, false, nil
		}
		d = decoded{e, p}
		rd.payloads[leaf] = d
	}
	l := d.entry.Leaf
	if l.Tenant != rd.tenant {
		// The tenant filter makes this impossible unless the index is
		// not a view of this log.
		rd.x.opts.Logger.Error("index: hit of another tenant dropped", "leaf", leaf)
		return Hit{}, false, nil
	}
	hit := Hit{Leaf: leaf, Encounter: l.Encounter, Kind: l.Kind, Time: l.Time, Score: h.Score, SentenceID: sid}
	switch p := d.payload.(type) {
	case *encounter.Segment:
		if sid != "" {
			return Hit{}, false, nil
		}
		hit.Text, hit.Speaker, hit.SegmentID, hit.StartMS, hit.EndMS = p.Text, p.Role, p.ID, p.StartMS, p.EndMS
	case *encounter.ModelOutput:
		text, ok := draftSentence(p, sid)
		if !ok {
			return Hit{}, false, nil
		}
		hit.Text, hit.Model = text, p.Model
	case *encounter.Edit:
		if p.SentenceID != sid {
			return Hit{}, false, nil
		}
		hit.Text = p.Text
	default:
		return Hit{}, false, nil
	}
	if sid != "" {
		hit.Section, _ = h.Fields[fieldSection].(string)
		sup, _ := h.Fields[fieldSuperseded].(bool)
		hit.Superseded = sup
	}
	hit.Highlights = highlights(hit.Text, h.Locations[fieldText])
	return hit, true, nil
}

// highlights merges the term locations of a hit into ordered,
// non-overlapping spans with byte and UTF-16 offsets.
func highlights(text string, locs search.TermLocationMap) []Highlight {
	var spans [][2]int
	for _, ls := range locs {
		for _, l := range ls {
			s, e := int(l.Start), int(l.End)
			if s < 0 || s >= e || e > len(text) {
				continue
			}
			spans = append(spans, [2]int{s, e})
		}
	}
	if len(spans) == 0 {
		return nil
	}
	slices.SortFunc(spans, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	merged := spans[:1]
	for _, s := range spans[1:] {
		last := &merged[len(merged)-1]
		if s[0] <= last[1] {
			last[1] = max(last[1], s[1])
			continue
		}
		merged = append(merged, s)
	}
	out := make([]Highlight, 0, len(merged))
	pos, u := 0, 0 // byte offset and its UTF-16 offset
	advance := func(to int) {
		for pos < to {
			r, w := utf8.DecodeRuneInString(text[pos:])
			if r == utf8.RuneError && w <= 1 {
				u++
			} else {
				u += utf16.RuneLen(r)
			}
			pos += w
		}
	}
	for _, s := range merged {
		if !utf8.RuneStart(text[s[0]]) || (s[1] < len(text) && !utf8.RuneStart(text[s[1]])) {
			continue
		}
		advance(s[0])
		h := Highlight{Start: s[0], End: s[1], UTF16Start: u}
		advance(s[1])
		h.UTF16End = u
		out = append(out, h)
	}
	return out
}

func facetsOf(fr search.FacetResults) *Facets {
	f := &Facets{}
	if r, ok := fr[fieldFacet]; ok && r.Terms != nil {
		speakers, kinds := map[string]int{}, map[string]int{}
		for _, t := range r.Terms.Terms() {
			kind, speaker, _ := strings.Cut(t.Term, "/")
			kinds[kind] += t.Count
			if speaker != "" {
				speakers[speaker] += t.Count
			}
		}
		f.Speakers, f.Kinds = sortedCounts(speakers), sortedCounts(kinds)
	}
	if r, ok := fr[fieldEncounter]; ok && r.Terms != nil {
		for _, t := range r.Terms.Terms() {
			f.Encounters = append(f.Encounters, FacetCount{Value: t.Term, Count: t.Count})
		}
		f.OtherEncounters = r.Other
	}
	return f
}

// sortedCounts returns m's values, most documents first, then by value.
func sortedCounts(m map[string]int) []FacetCount {
	out := make([]FacetCount, 0, len(m))
	for v, n := range m {
		out = append(out, FacetCount{Value: v, Count: n})
	}
	slices.SortFunc(out, func(a, b FacetCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}
