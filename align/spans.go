package align

import (
	"slices"
)

// Align returns the evidence spans for one sentence, best first, or an empty (non-nil)
// slice when the sentence is unsupported. Text beyond MaxSentenceBytes is ignored; use the
// package-level Align to have sentences validated. Align is deterministic and safe to call
// concurrently.
func (x *Index) Align(s Sentence) []Span {
	q := x.analyseQuery(s.Text)
	return x.selectSpans(q, x.rank(q))
}

// rank returns the candidates for a query with reranker probabilities, best first.
func (x *Index) rank(q query) []candidate {
	if len(q.ids) == 0 {
		return nil
	}
	sc := x.scratch.Get().(*scratch)
	cands := x.candidates(q, sc)
	sc.reset()
	x.scratch.Put(sc)
	for k := range cands {
		cands[k].prob = x.model.prob(&cands[k].feat)
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.prob != b.prob {
			if a.prob > b.prob {
				return -1
			}
			return 1
		}
		return a.seg - b.seg
	})
	return cands
}

// selectSpans applies the model's selection rule to ranked candidates.
func (x *Index) selectSpans(q query, cands []candidate) []Span {
	m := x.model
	spans := []Span{}
	if len(cands) == 0 || cands[0].prob < m.MinTop {
		return spans
	}
	top := cands[0].prob
	for k, c := range cands {
		if len(spans) == m.MaxSpans {
			break
		}
		if k > 0 && (c.prob < m.Threshold || c.prob < m.Relative*top) {
			break
		}
		spans = append(spans, x.span(q, c))
	}
	return spans
}

// span builds the Span of a candidate: the stretch of matched terms, narrowed in time to
// its words when the segment has word timings.
func (x *Index) span(q query, c candidate) Span {
	seg := &x.segs[c.seg]
	in := &x.info[c.seg]
	sp := Span{SegmentID: seg.ID, CharStart: 0, CharEnd: len(seg.Text), StartMS: seg.StartMS, EndMS: seg.EndMS, Score: c.prob}
	if c.match != 0 {
		lo, hi := -1, -1
		for k, t := range in.toks {
			if slices.Contains(q.ids, in.termIDs[k]) {
				if lo < 0 || t.Start < lo {
					lo = t.Start
				}
				if t.End > hi {
					hi = t.End
				}
			}
		}
		if lo >= 0 {
			sp.CharStart, sp.CharEnd = lo, hi
		}
	}
	if in.words != nil {
		var s, e int64 = -1, -1
		for k, r := range in.words {
			if r[1] > sp.CharStart && r[0] < sp.CharEnd {
				w := seg.Words[k]
				if s < 0 || w.StartMS < s {
					s = w.StartMS
				}
				if w.EndMS > e {
					e = w.EndMS
				}
			}
		}
		if s >= 0 {
			sp.StartMS, sp.EndMS = s, e
		}
	}
	return sp
}
