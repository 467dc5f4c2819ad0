package align

import (
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/evidenceledger/evidence/clinicaltext"
	"github.com/evidenceledger/evidence/termassoc"
)

// query is one analysed sentence.
type query struct {
	seq     []int32   // term id of each content word in order (-1 when unknown), for phrases
	ids     []int32   // distinct known term ids, at most 64
	weights []float64 // idf of each
	number  []bool    // the term is a number
	total   float64   // sum of weights
	negated bool
	nTerms  int // content terms in the sentence, known or not
	// Semantic bridges (see bridges): transcript terms related to the sentence's terms but
	// not among them, weighted by idf times relatedness, and for each the query term
	// position (in terms, see below) it stands for.
	bridgeIDs []int32
	bridgeW   []float64
	bridgeOf  []int
	// terms are the distinct content terms of the sentence (known or not) and termW their
	// weights: idf when known, else the largest idf of the index (a word the conversation
	// never uses is rare in it).
	terms []string
	termW []float64
}

func (x *Index) analyseQuery(text string) query {
	return x.analyseText(text, nil)
}

// analyseText analyses a sentence or section. noteShare, when not nil, gives for a term the
// share of the note's other sentences that contain it; such note-wide terms ("patient",
// a participant's role) say little about where one sentence's evidence is, so their weight
// is divided by 1 + noteShareDamping * share.
func (x *Index) analyseText(text string, noteShare map[string]float64) query {
	if len(text) > MaxSentenceBytes {
		text = text[:MaxSentenceBytes]
	}
	var q query
	seen := map[int32]bool{}
	seenTerm := map[string]bool{}
	for _, t := range clinicaltext.Analyze(text) {
		if t.Flags&clinicaltext.Negation != 0 {
			q.negated = true
		}
		if t.Flags&clinicaltext.Stop != 0 {
			continue
		}
		id, ok := x.vocab[t.Term]
		if !seenTerm[t.Term] && t.Flags&clinicaltext.Number == 0 {
			seenTerm[t.Term] = true
			w := x.maxIDF
			if ok {
				w = x.idf[id]
			}
			q.terms = append(q.terms, t.Term)
			q.termW = append(q.termW, w/(1+noteShareDamping*noteShare[t.Term]))
		}
		if t.Flags&clinicaltext.Expansion == 0 {
			q.nTerms++
			if ok {
				q.seq = append(q.seq, id)
			} else {
				q.seq = append(q.seq, -1)
			}
		}
		if !ok || seen[id] || len(q.ids) == 64 {
			continue
		}
		seen[id] = true
		w := x.idf[id] / (1 + noteShareDamping*noteShare[t.Term])
		q.ids = append(q.ids, id)
		q.weights = append(q.weights, w)
		q.number = append(q.number, t.Flags&clinicaltext.Number != 0)
		q.total += w
	}
	return q
}

// maxBridges caps the bridge terms of one sentence.
const maxBridges = 32

// bridges fills q's semantic bridges from package termassoc: for each content term of the
// sentence, its related terms that the transcript uses and the sentence does not.
func (x *Index) bridges(q *query) {
	if x.assoc == nil {
		return
	}
	buf := nbPool.Get().(*[]termassoc.Neighbour)
	defer nbPool.Put(buf)
	var pos map[int32]int
	for ti, term := range q.terms {
		*buf = x.assoc((*buf)[:0], term)
		for _, nb := range *buf {
			id, ok := x.vocab[nb.Term]
			if !ok || slices.Contains(q.ids, id) {
				continue
			}
			w := x.idf[id] * nb.Score
			if k, ok := pos[id]; ok {
				if w > q.bridgeW[k] {
					q.bridgeW[k], q.bridgeOf[k] = w, ti
				}
				continue
			}
			if len(q.bridgeIDs) == maxBridges {
				continue
			}
			if pos == nil {
				pos = make(map[int32]int, maxBridges)
			}
			pos[id] = len(q.bridgeIDs)
			q.bridgeIDs = append(q.bridgeIDs, id)
			q.bridgeW = append(q.bridgeW, w)
			q.bridgeOf = append(q.bridgeOf, ti)
		}
	}
}

// nbPool holds neighbour buffers for bridges.
var nbPool = sync.Pool{New: func() any { return new([]termassoc.Neighbour) }}

// candidate is one segment considered as evidence, with its features.
type candidate struct {
	seg   int
	feat  [numFeatures]float64
	prob  float64
	match uint64
}

// Feature indices; names in featureNames. Changing them changes MethodVersion and needs
// retraining (see train_test.go).
const (
	fBias = iota
	fBM25Rel
	fBM25Abs
	fCover
	fCoverWin
	fCtx
	fLen
	fRankRecip
	fReplyQ
	fQuestion
	fNegAgree
	fNegSeg
	fRegion
	fNearTopTime
	fNumMatch
	fShort
	fZeroMatch
	fQueryLen
	fBestAbs
	fSecRel
	fPRFRel
	fPRFCtx
	fSameSpeaker
	fSecRegion
	fPhrase
	fPrecision
	fTurn
	fMatched
	fOrder
	fHasOrder
	fNearNeighbour
	fSectionDensity
	fRoleMatch
	fRoleKnown
	fPatient
	fKindPos
	fBridgeRel
	fBridgeCover
	fHub
	fFirst
	numFeatures
)

var featureNames = [numFeatures]string{
	"bias", "bm25_rel", "bm25_abs", "cover", "cover_win", "ctx", "len", "rank_recip",
	"reply_q", "question", "neg_agree", "neg_seg", "region", "near_top_time", "num_match",
	"short", "zero_match", "query_len", "best_abs", "section_rel", "prf_rel", "prf_ctx",
	"same_speaker", "section_region", "phrase", "precision", "turn", "matched",
	"order", "has_order", "near_neighbour", "section_density",
	"role_match", "role_known", "patient", "kind_pos", "bridge_rel", "bridge_cover", "hub", "first",
}

// noteShareDamping sets how strongly note-wide terms are down-weighted (see analyseText).
const noteShareDamping = 3.0

const (
	topCandidates   = 40 // segments kept by BM25 before reranking
	expandNeighbors = 10 // the best this many also bring their neighbours and replies
	ctxRadius       = 3
	coverRadius     = 2
)

// candidates scores the query against every segment and returns reranker features for the
// best ones and their conversational context. It returns nil when nothing matches.
func (x *Index) candidates(q, sec query, nc *noteContext, sc *scratch) []candidate {
	x.accumulate(q.ids, q.weights, sc.bm25, sc, true)
	if len(sc.touched) == 0 || q.total == 0 {
		return nil
	}
	x.accumulate(sec.ids, sec.weights, sc.sec, sc, false)
	// Pseudo-relevance feedback: terms shared by the best BM25 segments, as a second query.
	first := x.topBy(sc.bm25, sc.touched, prfDocs)
	prfIDs, prfW := x.feedbackTerms(first, q)
	x.accumulate(prfIDs, prfW, sc.prf, sc, false)
	x.accumulate(q.bridgeIDs, q.bridgeW, sc.bridge, sc, false)
	for _, i := range sc.touched {
		sc.comb[i] = sc.bm25[i] + 0.3*sc.prf[i] + 0.3*sc.sec[i] + bridgeMix*sc.bridge[i]
	}
	ranked := x.topBy(sc.comb, sc.touched, topCandidates)
	best := sc.bm25[first[0]]
	top := int(first[0])
	bestSec, bestPRF := maxAt(sc.sec, sc.touched), maxAt(sc.prf, sc.touched)
	bestBridge := maxAt(sc.bridge, sc.touched)
	termTotal := 0.0
	for _, w := range q.termW {
		termTotal += w
	}
	span01 := float64(x.segs[len(x.segs)-1].EndMS - x.segs[0].StartMS)
	bestTurn := x.scoreTurns(q, sc)
	span := float64(x.segs[len(x.segs)-1].StartMS - x.segs[0].StartMS)
	rank := make(map[int]int, len(ranked)*2)
	order := make([]int, 0, len(ranked)+2*expandNeighbors)
	for r, i := range ranked {
		rank[int(i)] = r + 1
		order = append(order, int(i))
	}
	add := func(i int) {
		if i < 0 || i >= len(x.segs) {
			return
		}
		if _, ok := rank[i]; !ok {
			rank[i] = 0
			order = append(order, i)
		}
	}
	for _, i := range ranked[:min(expandNeighbors, len(ranked))] {
		add(int(i) - 1)
		add(int(i) + 1)
		if r := x.info[i].replyTo; r >= 0 {
			add(int(r))
		}
		if x.info[i].question {
			for a := int(i) + 1; a < len(x.info) && a <= int(i)+3; a++ {
				if x.info[a].replyTo == i {
					add(a)
				}
			}
		}
	}

	cands := make([]candidate, len(order))
	qlen := math.Log1p(float64(len(q.ids)))
	for k, i := range order {
		c := &cands[k]
		c.seg = i
		c.match = sc.mask[i]
		in := &x.info[i]
		f := &c.feat
		f[fBias] = 1
		f[fBM25Rel] = sc.bm25[i] / best
		f[fBM25Abs] = sc.bm25[i] / q.total
		f[fCover] = q.mass(sc.mask[i])
		var win uint64
		for j := max(0, i-coverRadius); j <= min(len(x.segs)-1, i+coverRadius); j++ {
			win |= sc.mask[j]
		}
		f[fCoverWin] = q.mass(win)
		ctx, wgt := 0.0, 0.5
		for d := 1; d <= ctxRadius; d++ {
			if i-d >= 0 {
				ctx += wgt * sc.bm25[i-d]
			}
			if i+d < len(x.segs) {
				ctx += wgt * sc.bm25[i+d]
			}
			wgt /= 2
		}
		f[fCtx] = ctx / best
		f[fLen] = math.Log1p(float64(in.length))
		if r := rank[i]; r > 0 {
			f[fRankRecip] = 1 / float64(r)
		}
		if r := in.replyTo; r >= 0 {
			f[fReplyQ] = sc.bm25[r] / best
		}
		if in.question {
			f[fQuestion] = 1
		}
		neg := in.negated
		if r := in.replyTo; r >= 0 && x.info[r].negated {
			neg = true
		}
		if q.negated && neg {
			f[fNegAgree] = 1
		}
		if in.negated && !q.negated {
			f[fNegSeg] = 1
		}
		f[fRegion] = x.region(sc.bm25, i) / best
		if bestSec > 0 {
			f[fSecRegion] = x.region(sc.sec, i) / bestSec
		}
		dt := math.Abs(float64(x.segs[i].StartMS - x.segs[top].StartMS))
		f[fNearTopTime] = math.Exp(-dt / 60000)
		nm := 0
		for qi := range q.ids {
			if q.number[qi] && sc.mask[i]&(1<<uint(qi)) != 0 {
				nm++
			}
		}
		f[fNumMatch] = math.Min(float64(nm), 2) / 2
		if in.shortTurn {
			f[fShort] = 1
		}
		if sc.bm25[i] == 0 {
			f[fZeroMatch] = 1
		}
		f[fQueryLen] = qlen
		f[fBestAbs] = best / q.total
		if bestSec > 0 {
			f[fSecRel] = sc.sec[i] / bestSec
		}
		if bestPRF > 0 {
			f[fPRFRel] = sc.prf[i] / bestPRF
			pc, wgt := 0.0, 0.5
			for d := 1; d <= ctxRadius; d++ {
				if i-d >= 0 {
					pc += wgt * sc.prf[i-d]
				}
				if i+d < len(x.segs) {
					pc += wgt * sc.prf[i+d]
				}
				wgt /= 2
			}
			f[fPRFCtx] = pc / bestPRF
		}
		if in.speaker == x.info[top].speaker {
			f[fSameSpeaker] = 1
		}
		f[fPhrase] = x.phraseShare(q, i)
		if in.length > 0 {
			m := 0
			for k, id := range in.termIDs {
				if in.toks[k].Flags&clinicaltext.Expansion == 0 && sc.mask[i] != 0 && slices.Contains(q.ids, id) {
					m++
				}
			}
			f[fPrecision] = float64(m) / float64(in.length)
		}
		if bestTurn > 0 {
			f[fTurn] = sc.turn[x.info[i].turn] / bestTurn
		}
		f[fMatched] = math.Min(float64(bits.OnesCount64(sc.mask[i])), 5) / 5
		if nc.hasPos && span > 0 {
			rel := float64(x.segs[i].StartMS-x.segs[0].StartMS) / span
			f[fOrder] = 1 - math.Abs(rel-nc.relPos)
			f[fHasOrder] = 1
		}
		if len(nc.nearMS) > 0 {
			d := math.Inf(1)
			for _, t := range nc.nearMS {
				d = math.Min(d, math.Abs(float64(x.segs[i].StartMS-t)))
			}
			f[fNearNeighbour] = math.Exp(-d / 60000)
		}
		if len(nc.sectionMS) > 0 {
			n := 0
			for _, t := range nc.sectionMS {
				if math.Abs(float64(x.segs[i].StartMS-t)) <= 60000 {
					n++
				}
			}
			f[fSectionDensity] = float64(n) / float64(len(nc.sectionMS))
		}
		if nc.roleShare != nil {
			f[fRoleKnown] = 1
			f[fRoleMatch] = nc.roleShare[in.speaker]
		}
		if x.patient != nil && x.patient[in.speaker] {
			f[fPatient] = 1
		}
		if pos := x.model.SectionPos; nc.kind != kindOther && nc.kind < len(pos) && pos[nc.kind][1] > 0 && span01 > 0 {
			rel := float64(x.segs[i].StartMS-x.segs[0].StartMS) / span01
			z := (rel - pos[nc.kind][0]) / pos[nc.kind][1]
			f[fKindPos] = math.Exp(-z * z / 2)
		}
		if n := nc.hub[int32(i)]; n > 0 {
			if slices.Contains(nc.ownTop, int32(i)) {
				n--
			}
			f[fHub] = math.Min(float64(n), hubCap) / hubCap
		}
		f[fFirst] = x.firstMass(q, i, sc.mask[i])
		if bestBridge > 0 {
			f[fBridgeRel] = sc.bridge[i] / bestBridge
			if termTotal > 0 {
				f[fBridgeCover] = x.bridgeCover(q, i, termTotal)
			}
		}
	}
	return cands
}

// firstWindow is how many segments before a segment may hold a term's first mention and
// still count it as the segment's: a question often introduces what its answer confirms.
const firstWindow = 2

// firstMass is the share of the query's weight held by terms of segment i that the
// conversation mentions there for the first time (or within firstWindow segments before).
// Notes report a fact where it was first stated in full; later mentions are often read-backs
// and recaps.
func (x *Index) firstMass(q query, i int, mask uint64) float64 {
	m := 0.0
	for qi, id := range q.ids {
		if mask&(1<<uint(qi)) != 0 && int(x.postings[id][0].seg) >= i-firstWindow {
			m += q.weights[qi]
		}
	}
	return m / q.total
}

// hubCap caps the hub feature: the number of other sentences of the note whose best BM25
// segments include this one. A segment that matches many sentences is often a recap ("so
// just to recap, three days of diarrhoea, ...") rather than where each thing was said.
const hubCap = 4

// bridgeMix is the weight of the bridge score in the candidate-generation score.
const bridgeMix = 0.3

// bridgeCover is the share of the sentence's term weight that segment i holds only through a
// bridge: terms it lacks but whose related terms it has, counted by relatedness.
func (x *Index) bridgeCover(q query, i int, total float64) float64 {
	in := &x.info[i]
	var got [maxBridges]struct {
		ti  int
		rel float64
	}
	n := 0
	for k, id := range q.bridgeIDs {
		if !slices.Contains(in.termIDs, id) {
			continue
		}
		ti := q.bridgeOf[k]
		if qid, ok := x.vocab[q.terms[ti]]; ok && slices.Contains(in.termIDs, qid) {
			continue // the term itself is there
		}
		rel := q.bridgeW[k] / math.Max(x.idf[id], 1e-9)
		j := 0
		for j < n && got[j].ti != ti {
			j++
		}
		if j == n {
			got[n].ti = ti
			n++
		}
		got[j].rel = max(got[j].rel, rel)
	}
	c := 0.0
	for _, g := range got[:n] {
		c += q.termW[g.ti] * g.rel
	}
	return c / total
}

// mass is the share of the query's idf weight whose terms are set in mask.
func (q query) mass(mask uint64) float64 {
	m := 0.0
	for qi, w := range q.weights {
		if mask&(1<<uint(qi)) != 0 {
			m += w
		}
	}
	return m / q.total
}

// prfDocs and prfTerms size pseudo-relevance feedback: the terms of the best prfDocs BM25
// segments, the prfTerms heaviest of them.
const (
	prfDocs  = 3
	prfTerms = 10
)

// accumulate adds the BM25 score of a weighted query to arr for every segment holding one
// of its terms, recording touched segments; with setMask it also records in sc.mask which
// query terms each segment holds.
func (x *Index) accumulate(ids []int32, weights []float64, arr []float64, sc *scratch, setMask bool) {
	for qi, id := range ids {
		w := weights[qi]
		for _, p := range x.postings[id] {
			i := p.seg
			if !sc.mark[i] {
				sc.mark[i] = true
				sc.touched = append(sc.touched, i)
			}
			tf := float64(p.tf)
			norm := bm25K1 * (1 - bm25B + bm25B*float64(x.info[i].length)/x.avgLen)
			arr[i] += w * tf * (bm25K1 + 1) / (tf + norm)
			if setMask {
				sc.mask[i] |= 1 << uint(qi)
			}
		}
	}
}

// topBy returns up to k of the touched segments with the highest positive score, best
// first, ties broken by position.
func (x *Index) topBy(score []float64, touched []int32, k int) []int32 {
	var out []int32
	for _, i := range touched {
		if score[i] > 0 {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(a, b int32) int {
		if score[a] != score[b] {
			if score[a] > score[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	return out[:min(k, len(out))]
}

func maxAt(score []float64, touched []int32) float64 {
	m := 0.0
	for _, i := range touched {
		m = max(m, score[i])
	}
	return m
}

// feedbackTerms picks expansion terms from the given segments: terms not in the query,
// weighted by idf times the share of the segments that hold them.
func (x *Index) feedbackTerms(segs []int32, q query) ([]int32, []float64) {
	weight := map[int32]float64{}
	for _, i := range segs {
		seen := map[int32]bool{}
		for _, id := range x.info[i].termIDs {
			if seen[id] || slices.Contains(q.ids, id) {
				continue
			}
			seen[id] = true
			weight[id] += x.idf[id] / float64(len(segs))
		}
	}
	ids := make([]int32, 0, len(weight))
	for id := range weight {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int32) int {
		if weight[a] != weight[b] {
			if weight[a] > weight[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	ids = ids[:min(prfTerms, len(ids))]
	ws := make([]float64, len(ids))
	for k, id := range ids {
		ws[k] = weight[id]
	}
	return ids, ws
}

// regionRadius and regionDecay shape the topic-region feature: a wide, decaying sum of
// scores around a segment, because the evidence for a summary sentence clusters in time.
const (
	regionRadius = 10
	regionDecay  = 4.0
)

// regionWeights[d] = exp(-d / regionDecay).
var regionWeights = func() (w [regionRadius + 1]float64) {
	for d := range w {
		w[d] = math.Exp(-float64(d) / regionDecay)
	}
	return w
}()

func (x *Index) region(score []float64, i int) float64 {
	r := score[i]
	for d := 1; d <= regionRadius; d++ {
		if i-d >= 0 {
			r += score[i-d] * regionWeights[d]
		}
		if i+d < len(score) {
			r += score[i+d] * regionWeights[d]
		}
	}
	return r / 2 // about the weight of the segment and its two nearest neighbours
}

// phraseShare is the share of the query's adjacent word pairs (both known terms) that occur
// in segment i in the same order within two positions: a cheap phrase match.
func (x *Index) phraseShare(q query, i int) float64 {
	pairs, found := 0, 0
	in := &x.info[i]
	for k := 0; k+1 < len(q.seq); k++ {
		a, b := q.seq[k], q.seq[k+1]
		if a < 0 || b < 0 || a == b {
			continue
		}
		pairs++
		for m, id := range in.termIDs {
			if id != a {
				continue
			}
			pa := in.toks[m].Pos
			hit := false
			for n := m + 1; n < len(in.termIDs) && in.toks[n].Pos <= pa+2; n++ {
				if in.termIDs[n] == b {
					hit = true
					break
				}
			}
			if hit {
				found++
				break
			}
		}
	}
	if pairs == 0 {
		return 0
	}
	return float64(found) / float64(pairs)
}

// scoreTurns scores speaker turns (runs of one speaker's segments, see linkTurns) with BM25
// for the query and returns the best turn score.
func (x *Index) scoreTurns(q query, sc *scratch) float64 {
	best := 0.0
	for qi, id := range q.ids {
		w := q.weights[qi]
		for _, p := range x.turnPostings[id] {
			t := p.seg
			if sc.turn[t] == 0 {
				sc.turnTouched = append(sc.turnTouched, t)
			}
			tf := float64(p.tf)
			norm := bm25K1 * (1 - bm25B + bm25B*float64(x.turnLen[t])/x.avgTurnLen)
			sc.turn[t] += w * tf * (bm25K1 + 1) / (tf + norm)
			best = max(best, sc.turn[t])
		}
	}
	return best
}
