package align

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/evidenceledger/evidence/align/internal/devsplit"
)

var (
	flagTrain = flag.Bool("train", false, "retrain the reranker on the align-dev train split and rewrite reranker.json")
	flagTrees = flag.Int("trees", 0, "with -train: number of boosted trees for the first stage (0 = logistic regression)")
)

// trainExample is one candidate of one training sentence.
type trainExample struct {
	sent  int // index of the sentence (for grouping)
	feat  [numFeatures]float64
	label float64
}

// devSplitData is align-dev prepared for training and evaluation.
type devSplitData struct {
	segs  map[string][]Segment
	order []string
	sents []devSentence
	gold  map[string][]devGoldSpan
	idx   map[string]*Index
	share []map[string]float64 // note shares by sentence index
	notes map[string][]int     // sentence indices by encounter, in note order
	ctx   []noteContext        // note context of each sentence against its own meeting
}

// contextIn returns the note context of sentence si computed against index x (its own
// meeting or, for negatives, another one).
func (d *devSplitData) contextIn(x *Index, si int) noteContext {
	if x == d.idx[d.sents[si].EncounterID] {
		return d.ctx[si]
	}
	is := d.notes[d.sents[si].EncounterID]
	note := make([]Sentence, len(is))
	k := 0
	for j, i := range is {
		note[j] = Sentence{ID: d.sents[i].SentenceID, Section: d.sents[i].Section, Text: d.sents[i].Text}
		if i == si {
			k = j
		}
	}
	return x.noteContexts(note)[k]
}

func loadAlignDev(tb testing.TB) *devSplitData {
	d := &devSplitData{idx: map[string]*Index{}, gold: map[string][]devGoldSpan{}}
	d.segs, d.order = devSegments(tb, devPath(tb, "align-dev", "segments.jsonl"))
	d.sents = readJSONL[devSentence](tb, devPath(tb, "align-dev", "sentences.jsonl"))
	for _, g := range readJSONL[devGold](tb, devPath(tb, "align-dev", "gold.jsonl")) {
		d.gold[g.SentenceID] = g.Gold
	}
	byEnc := map[string][]int{}
	for i, s := range d.sents {
		byEnc[s.EncounterID] = append(byEnc[s.EncounterID], i)
	}
	d.share = make([]map[string]float64, len(d.sents))
	for _, is := range byEnc {
		note := make([]Sentence, len(is))
		for k, i := range is {
			note[k] = Sentence{Text: d.sents[i].Text}
		}
		for k, sh := range noteShares(note) {
			d.share[is[k]] = sh
		}
	}
	for _, e := range d.order {
		x, err := NewIndex(d.segs[e])
		if err != nil {
			tb.Fatal(err)
		}
		d.idx[e] = x
	}
	d.notes = byEnc
	d.ctx = make([]noteContext, len(d.sents))
	for e, is := range byEnc {
		note := make([]Sentence, len(is))
		for k, i := range is {
			note[k] = Sentence{ID: d.sents[i].SentenceID, Section: d.sents[i].Section, Text: d.sents[i].Text}
		}
		for k, c := range d.idx[e].noteContexts(note) {
			d.ctx[is[k]] = c
		}
	}
	return d
}

// examples returns reranker training rows for the sentences of one side of the split.
// Besides each sentence's own meeting, every third sentence is also paired with a meeting of
// another series, whose candidates are all negatives: this teaches the reranker what
// "no evidence here" looks like.
func (d *devSplitData) examples(heldOut bool) []trainExample {
	var rows []trainExample
	var pool []string
	for _, e := range d.order {
		if devsplit.HeldOut(e) == heldOut {
			pool = append(pool, e)
		}
	}
	k := 0
	for si, s := range d.sents {
		if devsplit.HeldOut(s.EncounterID) != heldOut {
			continue
		}
		gold := map[string]bool{}
		for _, g := range d.gold[s.SentenceID] {
			gold[g.SegmentID] = true
		}
		x := d.idx[s.EncounterID]
		ctx := d.ctx[si]
		for _, c := range x.rawCandidates(s.Text, s.Section, &ctx) {
			lab := 0.0
			if gold[x.segs[c.seg].ID] {
				lab = 1
			}
			rows = append(rows, trainExample{sent: si, feat: c.feat, label: lab})
		}
		k++
		if k%3 == 0 {
			other := pool[(k*7)%len(pool)]
			for devsplit.Series(other) == devsplit.Series(s.EncounterID) {
				k++
				other = pool[(k*7)%len(pool)]
			}
			octx := d.contextIn(d.idx[other], si)
			for _, c := range d.idx[other].rawCandidates(s.Text, s.Section, &octx) {
				rows = append(rows, trainExample{sent: -1 - si, feat: c.feat})
			}
		}
	}
	return rows
}

// rawCandidates returns candidates with features but without probabilities.
func (x *Index) rawCandidates(text, section string, nc *noteContext) []candidate {
	q := x.analyseText(text, nc.share)
	if len(q.ids) == 0 {
		return nil
	}
	sc := x.scratch.Get().(*scratch)
	defer x.scratch.Put(sc)
	defer sc.reset()
	return x.candidates(q, x.analyseText(section, nil), nc, sc)
}

// fitLogistic fits L2-regularized logistic regression by Newton's method on standardized
// features. It returns weights, means and scales.
func fitLogistic(rows []trainExample, lambda float64) (w, mean, scale []float64) {
	const nf = numFeatures
	mean, scale = make([]float64, nf), make([]float64, nf)
	for _, r := range rows {
		for j, v := range r.feat {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(len(rows))
	}
	for _, r := range rows {
		for j, v := range r.feat {
			scale[j] += (v - mean[j]) * (v - mean[j])
		}
	}
	for j := range scale {
		scale[j] = math.Sqrt(scale[j] / float64(len(rows)))
		if scale[j] < 1e-9 {
			scale[j] = 1
		}
	}
	mean[fBias], scale[fBias] = 0, 1
	w = make([]float64, nf)
	z := make([][nf]float64, len(rows))
	for i, r := range rows {
		for j, v := range r.feat {
			z[i][j] = (v - mean[j]) / scale[j]
		}
	}
	for iter := 0; iter < 12; iter++ {
		grad := make([]float64, nf)
		hess := make([][]float64, nf)
		for j := range hess {
			hess[j] = make([]float64, nf)
		}
		for i, r := range rows {
			s := 0.0
			for j := range w {
				s += w[j] * z[i][j]
			}
			p := 1 / (1 + math.Exp(-s))
			for j := range w {
				grad[j] += (p - r.label) * z[i][j]
				for k := range w {
					hess[j][k] += p * (1 - p) * z[i][j] * z[i][k]
				}
			}
		}
		for j := range w {
			if j != fBias {
				grad[j] += lambda * w[j]
				hess[j][j] += lambda
			}
		}
		step := solve(hess, grad)
		maxStep := 0.0
		for j := range w {
			w[j] -= step[j]
			maxStep = math.Max(maxStep, math.Abs(step[j]))
		}
		if maxStep < 1e-6 {
			break
		}
	}
	return w, mean, scale
}

// solve solves A x = b by Gaussian elimination with partial pivoting.
func solve(a [][]float64, b []float64) []float64 {
	n := len(b)
	m := make([][]float64, n)
	for i := range a {
		m[i] = append(append([]float64(nil), a[i]...), b[i])
	}
	for c := 0; c < n; c++ {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		m[c], m[p] = m[p], m[c]
		if math.Abs(m[c][c]) < 1e-12 {
			continue
		}
		for r := 0; r < n; r++ {
			if r == c {
				continue
			}
			f := m[r][c] / m[c][c]
			for k := c; k <= n; k++ {
				m[r][k] -= f * m[c][k]
			}
		}
	}
	x := make([]float64, n)
	for i := range x {
		if m[i][i] != 0 {
			x[i] = m[i][n] / m[i][i]
		}
	}
	return x
}

// evalSplit aligns one side of the split with model m and returns the metrics, plus the
// best-candidate probability of every sentence (for choosing MinTop).
func (d *devSplitData) evalSplit(m *model, heldOut bool) (aggMetrics, []float64) {
	var ms []sentMetrics
	var tops []float64
	for si, s := range d.sents {
		if devsplit.HeldOut(s.EncounterID) != heldOut {
			continue
		}
		x := d.idx[s.EncounterID]
		x.model = m // test-only: sequential, and restored by the caller's next use
		q := x.analyseText(s.Text, d.share[si])
		cands := x.rank(q, x.analyseText(s.Section, nil), &d.ctx[si])
		if len(cands) > 0 {
			tops = append(tops, cands[0].prob)
		} else {
			tops = append(tops, 0)
		}
		var pred, gold []ival
		for _, sp := range x.selectSpans(q, cands) {
			pred = append(pred, ival{float64(sp.StartMS), float64(sp.EndMS)})
		}
		for _, g := range d.gold[s.SentenceID] {
			gold = append(gold, ival{float64(g.StartMS), float64(g.EndMS)})
		}
		ms = append(ms, scoreSentence(gold, pred))
	}
	return aggregate(ms), tops
}

// TestTrainReranker fits the reranker and the selection rule on the align-dev train split
// and rewrites reranker.json. Run:
//
//	go test ./align -run TestTrainReranker -train -data /work/shared/data
func TestTrainReranker(t *testing.T) {
	if !*flagTrain {
		t.Skip("run with -train to retrain the reranker")
	}
	d := loadAlignDev(t)
	rows := d.examples(false)
	pos := 0
	for _, r := range rows {
		pos += int(r.label)
	}
	t.Logf("training rows: %d (%d positive)", len(rows), pos)
	w, mean, scale := fitLogistic(rows, 1.0)
	m := &model{Features: featureNames[:], Weights: w, Mean: mean, Scale: scale, MaxSpans: 5, Threshold: 0.3, Relative: 0.5}
	for j, n := range featureNames {
		t.Logf("%-14s %+.3f", n, w[j])
	}
	if *flagTrees > 0 {
		m.Base, m.Trees = fitBoosted(rows, *flagTrees, 3, 0.1)
	}
	m.Stage2 = d.fitStage2(t, m)
	// Selection rule: maximize train F1 + R@5 (two of the target metrics; hit@1 does not
	// depend on it) over a small grid.
	best := -1.0
	var bm model
	for _, minSpans := range []int{0, 2, 3, 4, 5} {
		for _, maxSpans := range []int{5, 6, 8} {
			for _, th := range []float64{0.1, 0.15, 0.2, 0.3} {
				for _, rel := range []float64{0, 0.3, 0.5} {
					c := *m
					c.MinSpans, c.MaxSpans, c.Threshold, c.Relative = minSpans, maxSpans, th, rel
					a, _ := d.evalSplit(&c, false)
					if a.F1+a.R5 > best {
						best, bm = a.F1+a.R5, c
					}
				}
			}
		}
	}
	// Unsupported: flag a sentence when its best candidate scores below the 3rd percentile
	// of best scores of the (all supported) train sentences.
	_, tops := d.evalSplit(&bm, false)
	bm.MinTop = percentile(tops, 0.03)
	a, _ := d.evalSplit(&bm, false)
	h, _ := d.evalSplit(&bm, true)
	t.Logf("selection: min_spans=%d max_spans=%d threshold=%.2f relative=%.2f min_top=%.4f", bm.MinSpans, bm.MaxSpans, bm.Threshold, bm.Relative, bm.MinTop)
	t.Logf("train    %+v", a)
	t.Logf("held-out %+v", h)
	bm.Note = fmt.Sprintf("logistic regression (L2 1.0, Newton) on %d candidate rows of the align-dev train split (devsplit, %d positive); selection grid-searched for train F1 + R@5; min_top = 3rd percentile of best scores on train. Made by: go test ./align -run TestTrainReranker -train", len(rows), pos)
	out, err := json.MarshalIndent(&bm, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("reranker.json", append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func percentile(v []float64, p float64) float64 {
	c := append([]float64(nil), v...)
	sortFloats(c)
	if len(c) == 0 {
		return 0
	}
	return c[int(p*float64(len(c)-1))]
}

// fitStage2 fits the stacking stage on the train split: first-stage probabilities of the
// candidates of each sentence (own meeting and mismatched meetings, as in examples) become
// second-stage features.
func (d *devSplitData) fitStage2(t *testing.T, m *model) *stage2 {
	var rows []trainExample
	k := 0
	var pool []string
	for _, e := range d.order {
		if !devsplit.HeldOut(e) {
			pool = append(pool, e)
		}
	}
	add := func(x *Index, si int, gold map[string]bool) {
		s := d.sents[si]
		saved := x.model
		x.model = &model{Features: m.Features, Weights: m.Weights, Mean: m.Mean, Scale: m.Scale, Trees: m.Trees, Base: m.Base, MaxSpans: 1}
		nc := d.contextIn(x, si)
		cands := x.rank(x.analyseText(s.Text, d.share[si]), x.analyseText(s.Section, nil), &nc)
		x.model = saved
		for c, g := range x.stage2Features(cands) {
			var r trainExample
			copy(r.feat[:], g[:])
			if gold[x.segs[cands[c].seg].ID] {
				r.label = 1
			}
			rows = append(rows, r)
		}
	}
	for si, s := range d.sents {
		if devsplit.HeldOut(s.EncounterID) {
			continue
		}
		gold := map[string]bool{}
		for _, g := range d.gold[s.SentenceID] {
			gold[g.SegmentID] = true
		}
		add(d.idx[s.EncounterID], si, gold)
		k++
		if k%3 == 0 {
			other := pool[(k*7)%len(pool)]
			for devsplit.Series(other) == devsplit.Series(s.EncounterID) {
				k++
				other = pool[(k*7)%len(pool)]
			}
			add(d.idx[other], si, nil)
		}
	}
	w := fitRaw(rows, numStage2, 1.0)
	for j, n := range stage2Names {
		t.Logf("stage2 %-14s %+.3f", n, w[j])
	}
	return &stage2{Features: stage2Names[:], Weights: w}
}

// fitRaw fits logistic regression on the first nf features, unstandardized, by Newton.
func fitRaw(rows []trainExample, nf int, lambda float64) []float64 {
	w := make([]float64, nf)
	for iter := 0; iter < 15; iter++ {
		grad := make([]float64, nf)
		hess := make([][]float64, nf)
		for j := range hess {
			hess[j] = make([]float64, nf)
		}
		for _, r := range rows {
			p := sigmoidDot(w, r.feat[:nf])
			for j := 0; j < nf; j++ {
				grad[j] += (p - r.label) * r.feat[j]
				for k := 0; k < nf; k++ {
					hess[j][k] += p * (1 - p) * r.feat[j] * r.feat[k]
				}
			}
		}
		for j := 1; j < nf; j++ {
			grad[j] += lambda * w[j]
			hess[j][j] += lambda
		}
		step := solve(hess, grad)
		for j := range w {
			w[j] -= step[j]
		}
	}
	return w
}

// fitBoosted fits gradient-boosted regression trees for logistic loss (Newton leaf values,
// L2 1.0 on leaves, at least 20 hessian mass per leaf) on quantile bins of the features.
func fitBoosted(rows []trainExample, nTrees, depth int, rate float64) (float64, []tree) {
	const nBins = 32
	const lambda, minHess = 1.0, 20.0
	n := len(rows)
	// Quantile thresholds per feature.
	thr := make([][]float64, numFeatures)
	bin := make([][numFeatures]uint8, n)
	for j := 0; j < numFeatures; j++ {
		vals := make([]float64, n)
		for i, r := range rows {
			vals[i] = r.feat[j]
		}
		sortFloats(vals)
		var ts []float64
		for b := 1; b < nBins; b++ {
			v := vals[b*n/nBins]
			if len(ts) == 0 || v > ts[len(ts)-1] {
				ts = append(ts, v)
			}
		}
		thr[j] = ts
		for i, r := range rows {
			k := 0
			for k < len(ts) && r.feat[j] > ts[k] {
				k++
			}
			bin[i][j] = uint8(k)
		}
	}
	pos := 0.0
	for _, r := range rows {
		pos += r.label
	}
	base := math.Log(pos / (float64(n) - pos))
	score := make([]float64, n)
	for i := range score {
		score[i] = base
	}
	grad, hess := make([]float64, n), make([]float64, n)
	var trees []tree
	for it := 0; it < nTrees; it++ {
		for i, r := range rows {
			p := 1 / (1 + math.Exp(-score[i]))
			grad[i], hess[i] = p-r.label, p*(1-p)
		}
		var tr tree
		var grow func(idx []int, d int) int
		grow = func(idx []int, d int) int {
			G, H := 0.0, 0.0
			for _, i := range idx {
				G += grad[i]
				H += hess[i]
			}
			me := len(tr)
			tr = append(tr, treeNode{Feature: -1, Value: -rate * G / (H + lambda)})
			if d == depth || H < 2*minHess {
				return me
			}
			bestGain, bestF, bestB := 0.0, -1, 0
			for j := 0; j < numFeatures; j++ {
				var gs, hs [nBins]float64
				for _, i := range idx {
					gs[bin[i][j]] += grad[i]
					hs[bin[i][j]] += hess[i]
				}
				gl, hl := 0.0, 0.0
				for b := 0; b < len(thr[j]); b++ {
					gl += gs[b]
					hl += hs[b]
					gr, hr := G-gl, H-hl
					if hl < minHess || hr < minHess {
						continue
					}
					gain := gl*gl/(hl+lambda) + gr*gr/(hr+lambda) - G*G/(H+lambda)
					if gain > bestGain {
						bestGain, bestF, bestB = gain, j, b
					}
				}
			}
			if bestF < 0 {
				return me
			}
			var left, right []int
			for _, i := range idx {
				if int(bin[i][bestF]) <= bestB {
					left = append(left, i)
				} else {
					right = append(right, i)
				}
			}
			tr[me] = treeNode{Feature: bestF, Threshold: thr[bestF][bestB]}
			l := grow(left, d+1)
			r := grow(right, d+1)
			tr[me].Left, tr[me].Right = l, r
			return me
		}
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		grow(all, 0)
		for i, r := range rows {
			score[i] += tr.eval(&r.feat)
		}
		trees = append(trees, tr)
	}
	return base, trees
}
