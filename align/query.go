package align

import (
	"math"
	"slices"

	"github.com/evidenceledger/evidence/clinicaltext"
)

// query is one analysed sentence.
type query struct {
	ids     []int32   // distinct known term ids, at most 64
	weights []float64 // idf of each
	number  []bool    // the term is a number
	total   float64   // sum of weights
	negated bool
	nTerms  int // content terms in the sentence, known or not
}

func (x *Index) analyseQuery(text string) query {
	if len(text) > MaxSentenceBytes {
		text = text[:MaxSentenceBytes]
	}
	var q query
	seen := map[int32]bool{}
	for _, t := range clinicaltext.Analyze(text) {
		if t.Flags&clinicaltext.Negation != 0 {
			q.negated = true
		}
		if t.Flags&clinicaltext.Stop != 0 {
			continue
		}
		if t.Flags&clinicaltext.Expansion == 0 {
			q.nTerms++
		}
		id, ok := x.vocab[t.Term]
		if !ok || seen[id] || len(q.ids) == 64 {
			continue
		}
		seen[id] = true
		q.ids = append(q.ids, id)
		q.weights = append(q.weights, x.idf[id])
		q.number = append(q.number, t.Flags&clinicaltext.Number != 0)
		q.total += x.idf[id]
	}
	return q
}

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
	fNearTop
	fNearTopTime
	fNumMatch
	fShort
	fZeroMatch
	fQueryLen
	fBestAbs
	numFeatures
)

var featureNames = [numFeatures]string{
	"bias", "bm25_rel", "bm25_abs", "cover", "cover_win", "ctx", "len", "rank_recip",
	"reply_q", "question", "neg_agree", "neg_seg", "near_top", "near_top_time", "num_match",
	"short", "zero_match", "query_len", "best_abs",
}

const (
	topCandidates   = 40 // segments kept by BM25 before reranking
	expandNeighbors = 10 // the best this many also bring their neighbours and replies
	ctxRadius       = 3
	coverRadius     = 2
)

// candidates scores the query against every segment and returns reranker features for the
// best ones and their conversational context. It returns nil when nothing matches.
func (x *Index) candidates(q query, sc *scratch) []candidate {
	for qi, id := range q.ids {
		w := q.weights[qi]
		for _, p := range x.postings[id] {
			i := p.seg
			if sc.mask[i] == 0 && sc.bm25[i] == 0 {
				sc.touched = append(sc.touched, i)
			}
			tf := float64(p.tf)
			norm := bm25K1 * (1 - bm25B + bm25B*float64(x.info[i].length)/x.avgLen)
			sc.bm25[i] += w * tf * (bm25K1 + 1) / (tf + norm)
			sc.mask[i] |= 1 << uint(qi)
		}
	}
	if len(sc.touched) == 0 || q.total == 0 {
		return nil
	}
	ranked := append([]int32(nil), sc.touched...)
	slices.SortFunc(ranked, func(a, b int32) int {
		if sc.bm25[a] != sc.bm25[b] {
			if sc.bm25[a] > sc.bm25[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	if len(ranked) > topCandidates {
		ranked = ranked[:topCandidates]
	}
	best := sc.bm25[ranked[0]]
	top := int(ranked[0])
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
		f[fNearTop] = math.Exp(-math.Abs(float64(i-top)) / 8)
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
	}
	return cands
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
