// Package baseline holds reference aligners to compare the engine in package align against.
// They are for evaluation only.
package baseline

import (
	"math"
	"slices"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/clinicaltext"
)

// TopK is how many spans TFIDF returns for every sentence with any term overlap.
const TopK = 5

// TFIDF ranks segments by the cosine similarity of TF-IDF vectors (log tf, smooth idf)
// over clinicaltext terms, and returns the TopK best. It never declares a sentence
// unsupported unless no term overlaps.
type TFIDF struct {
	segs  []align.Segment
	vecs  []map[string]float64
	norms []float64
	idf   map[string]float64
}

// NewTFIDF builds the baseline over one encounter's segments.
func NewTFIDF(segs []align.Segment) (*TFIDF, error) {
	if _, err := align.NewIndex(segs); err != nil { // same validation as the engine
		return nil, err
	}
	t := &TFIDF{segs: segs, vecs: make([]map[string]float64, len(segs)), norms: make([]float64, len(segs)), idf: map[string]float64{}}
	df := map[string]int{}
	for i, s := range segs {
		tf := map[string]float64{}
		for _, term := range clinicaltext.Terms(s.Text) {
			tf[term]++
		}
		for term := range tf {
			df[term]++
		}
		t.vecs[i] = tf
	}
	n := float64(len(segs))
	for term, d := range df {
		t.idf[term] = math.Log((1+n)/(1+float64(d))) + 1
	}
	for i, tf := range t.vecs {
		norm := 0.0
		for term, c := range tf {
			w := (1 + math.Log(c)) * t.idf[term]
			tf[term] = w
			norm += w * w
		}
		t.norms[i] = math.Sqrt(norm)
	}
	return t, nil
}

// Align returns the TopK segments by cosine similarity, best first.
func (t *TFIDF) Align(s align.Sentence) []align.Span {
	q := map[string]float64{}
	for _, term := range clinicaltext.Terms(s.Text) {
		q[term]++
	}
	qn := 0.0
	for term, c := range q {
		w := (1 + math.Log(c)) * t.idf[term]
		q[term] = w
		qn += w * w
	}
	type scored struct {
		i int
		s float64
	}
	var all []scored
	for i, v := range t.vecs {
		dot := 0.0
		for term, w := range q {
			dot += w * v[term]
		}
		if dot > 0 {
			all = append(all, scored{i, dot / (t.norms[i] * math.Sqrt(qn))})
		}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if a.s != b.s {
			if a.s > b.s {
				return -1
			}
			return 1
		}
		return a.i - b.i
	})
	spans := []align.Span{}
	for _, c := range all[:min(TopK, len(all))] {
		seg := t.segs[c.i]
		spans = append(spans, align.Span{SegmentID: seg.ID, CharStart: 0, CharEnd: len(seg.Text), StartMS: seg.StartMS, EndMS: seg.EndMS, Score: c.s})
	}
	return spans
}

// AlignNote aligns each sentence on its own.
func (t *TFIDF) AlignNote(sents []align.Sentence) [][]align.Span {
	out := make([][]align.Span, len(sents))
	for i, s := range sents {
		out[i] = t.Align(s)
	}
	return out
}
