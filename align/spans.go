package align

import (
	"slices"

	"github.com/evidenceledger/evidence/clinicaltext"
)

// Align returns the evidence spans for one sentence, best first, or an empty (non-nil)
// slice when the sentence is unsupported. Text beyond MaxSentenceBytes is ignored; use the
// package-level Align to have sentences validated. Align is deterministic and safe to call
// concurrently. It sees only this sentence; AlignNote, which sees the whole note, is usually
// more accurate.
func (x *Index) Align(s Sentence) []Span {
	return x.alignWith(s, &noteContext{})
}

// AlignNote aligns all sentences of one note, in note order, and returns their spans in
// that order. Unlike calling Align per sentence, it uses the note as context: terms found in
// many of its sentences are down-weighted, evidence is expected to follow the order of the
// sentences within a section and to lie near the evidence of neighbouring sentences, speakers
// are mapped to the roles the note names, and each section's evidence is decoded jointly
// (see docs/align.md). Sections are Sentence.Section, or headings found in the text when it
// is empty (see SplitNote). It validates nothing; use the package-level Align for validated
// input.
func (x *Index) AlignNote(sentences []Sentence) [][]Span {
	out, _ := x.alignNote(sentences)
	return out
}

// alignNote is AlignNote that also returns each sentence's ranked candidates (after joint
// decoding), for training and evaluation.
func (x *Index) alignNote(sentences []Sentence) ([][]Span, [][]candidate) {
	ctxs := x.noteContexts(sentences)
	qs := make([]query, len(sentences))
	ranked := make([][]candidate, len(sentences))
	for i, s := range sentences {
		qs[i] = x.analyseText(s.Text, ctxs[i].share)
		x.bridges(&qs[i])
		ranked[i] = x.rank(qs[i], x.analyseText(ctxs[i].section, nil), &ctxs[i])
	}
	x.decodeSections(ctxs, ranked)
	out := make([][]Span, len(sentences))
	for i := range sentences {
		out[i] = x.selectSpans(qs[i], ranked[i])
	}
	return out, ranked
}

func (x *Index) alignWith(s Sentence, nc *noteContext) []Span {
	q := x.analyseText(s.Text, nc.share)
	x.bridges(&q)
	sec := s.Section
	if nc.section != "" {
		sec = nc.section
	}
	return x.selectSpans(q, x.rank(q, x.analyseText(sec, nil), nc))
}

// noteContext is what alignment knows about a sentence from the rest of its note.
type noteContext struct {
	share  map[string]float64 // share of the note's other sentences holding each term
	relPos float64            // position of the sentence within its section, 0..1
	hasPos bool               // the section has at least two sentences
	// nearMS are the start times of the best BM25 segments of the neighbouring sentences
	// of the same section.
	nearMS []int64
	// sectionMS are the start times of the best BM25 segments of the other sentences of
	// the same section.
	sectionMS []int64
	// section is the sentence's section (see noteSections), kind its kind.
	section string
	kind    int
	// roleShare, when the sentence names a role that some speaker holds, is each speaker's
	// share of that role.
	roleShare []float64
	// hub counts, for each segment, the sentences of the note that have it among their
	// roleTop best BM25 segments (shared by the note); ownTop are this sentence's.
	hub    map[int32]int
	ownTop []int32
}

// roleTop is how many best BM25 segments of a sentence vote for its role's speaker.
const roleTop = 3

// noteContexts computes the note context of every sentence against this index.
func (x *Index) noteContexts(sentences []Sentence) []noteContext {
	shares := noteShares(sentences)
	names, kinds := noteSections(sentences)
	out := make([]noteContext, len(sentences))
	bySection := map[string][]int{}
	for i := range sentences {
		bySection[names[i]] = append(bySection[names[i]], i)
	}
	topMS := make([]int64, len(sentences))
	roles := make([]int, len(sentences))
	topSpk := make([][]int32, len(sentences))
	tops := make([][]int32, len(sentences))
	sc := x.scratch.Get().(*scratch)
	for i, s := range sentences {
		topMS[i] = -1
		roles[i] = sentenceRole(s.Text)
		q := x.analyseText(s.Text, shares[i])
		x.accumulate(q.ids, q.weights, sc.bm25, sc, false)
		top := x.topBy(sc.bm25, sc.touched, roleTop)
		if len(top) > 0 {
			topMS[i] = x.segs[top[0]].StartMS
		}
		tops[i] = top
		for _, t := range top {
			topSpk[i] = append(topSpk[i], x.info[t].speaker)
		}
		sc.reset()
	}
	x.scratch.Put(sc)
	voted := roleVotes(x.nSpeakers, roles, topSpk)
	hub := map[int32]int{}
	for _, t := range tops {
		for _, seg := range t {
			hub[seg]++
		}
	}
	for i := range sentences {
		out[i].share = shares[i]
		out[i].hub, out[i].ownTop = hub, tops[i]
		out[i].section, out[i].kind = names[i], kinds[i]
		if r := roles[i]; r != roleNone {
			out[i].roleShare = x.labelled.share[r]
			if out[i].roleShare == nil && !x.hasLabels {
				out[i].roleShare = voted.share[r]
			}
		}
		sec := bySection[names[i]]
		k := slices.Index(sec, i)
		if len(sec) >= 2 {
			out[i].hasPos = true
			out[i].relPos = float64(k) / float64(len(sec)-1)
		}
		for _, j := range sec {
			if j != i && topMS[j] >= 0 {
				out[i].sectionMS = append(out[i].sectionMS, topMS[j])
			}
		}
		for _, j := range []int{k - 1, k + 1} {
			if j >= 0 && j < len(sec) && topMS[sec[j]] >= 0 {
				out[i].nearMS = append(out[i].nearMS, topMS[sec[j]])
			}
		}
	}
	return out
}

// rank returns the candidates for a query with reranker probabilities, best first.
func (x *Index) rank(q, sec query, nc *noteContext) []candidate {
	if len(q.ids) == 0 {
		return nil
	}
	sc := x.scratch.Get().(*scratch)
	cands := x.candidates(q, sec, nc, sc)
	sc.reset()
	x.scratch.Put(sc)
	for k := range cands {
		cands[k].prob = x.model.prob(&cands[k].feat)
	}
	sortCandidates(cands)
	if st := x.model.Stage2; st != nil {
		g := x.stage2Features(cands)
		for k := range cands {
			cands[k].prob = sigmoidDot(st.Weights, g[k][:])
		}
		sortCandidates(cands)
	}
	return cands
}

// sortCandidates orders candidates by probability, best first, ties by position.
func sortCandidates(cands []candidate) {
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.prob != b.prob {
			if a.prob > b.prob {
				return -1
			}
			return 1
		}
		return a.seg - b.seg
	})
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
			// Below the thresholds: only pad up to MinSpans, with segments that share a
			// term with the sentence.
			if len(spans) >= m.MinSpans {
				break
			}
			if c.match == 0 {
				continue
			}
		}
		spans = append(spans, x.span(q, c))
	}
	return x.addPartners(q, cands, spans)
}

// isShortAnswer reports whether turn a is a short answer that needs its question: at most
// bareAnswerTerms content terms, and either opening with an answer word ("No.", "Yeah,
// twice.") or holding a number or a term of the sentence. A short turn that is neither
// ("Have a good day.") is not an answer.
func (x *Index) isShortAnswer(a int, q query) bool {
	in := &x.info[a]
	if in.length > bareAnswerTerms {
		return false
	}
	if in.bareAnswer {
		return true
	}
	for k, t := range in.toks {
		if t.Flags&clinicaltext.Number != 0 || slices.Contains(q.ids, in.termIDs[k]) {
			return true
		}
	}
	return false
}

// partnerFactor scales a span's score onto the question or short answer it brings along.
const partnerFactor = 0.9

// addPartners completes question-answer pairs: a selected question brings the short answer
// that follows it ("Any blood in your stool?" / "No."), and a selected short answer brings
// its question, because neither half is evidence alone. A partner's score is partnerFactor
// times its primary's (or its own, if higher); spans are then re-sorted best first.
func (x *Index) addPartners(q query, cands []candidate, spans []Span) []Span {
	if len(spans) == 0 {
		return spans
	}
	pos := make(map[string]int, len(spans))
	for k, sp := range spans {
		pos[sp.SegmentID] = k
	}
	own := make(map[int]float64, len(cands))
	for _, c := range cands {
		own[c.seg] = c.prob
	}
	n := len(spans)
	for k := 0; k < n; k++ {
		i := x.segIndex[spans[k].SegmentID]
		partner := -1
		if x.info[i].question {
			for a := i + 1; a < len(x.info) && a <= i+3; a++ {
				if int(x.info[a].replyTo) == i && x.isShortAnswer(a, q) {
					partner = a
				}
			}
		} else if r := int(x.info[i].replyTo); r >= 0 && x.isShortAnswer(i, q) {
			partner = r
		}
		if partner < 0 {
			continue
		}
		if _, ok := pos[x.segs[partner].ID]; ok {
			continue
		}
		c := candidate{seg: partner, prob: max(partnerFactor*spans[k].Score, own[partner])}
		pos[x.segs[partner].ID] = len(spans)
		spans = append(spans, x.span(q, c))
	}
	slices.SortStableFunc(spans, func(a, b Span) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
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

// noteShares returns, for each sentence, the share of the other sentences of the note that
// contain each of its terms.
func noteShares(sentences []Sentence) []map[string]float64 {
	sets := make([]map[string]bool, len(sentences))
	count := map[string]int{}
	for i, s := range sentences {
		sets[i] = map[string]bool{}
		for _, t := range clinicaltext.Terms(s.Text) {
			if !sets[i][t] {
				sets[i][t] = true
				count[t]++
			}
		}
	}
	out := make([]map[string]float64, len(sentences))
	if len(sentences) < 2 {
		return out
	}
	for i := range sentences {
		out[i] = map[string]float64{}
		for t := range sets[i] {
			if c := count[t] - 1; c > 0 {
				out[i][t] = float64(c) / float64(len(sentences)-1)
			}
		}
	}
	return out
}
