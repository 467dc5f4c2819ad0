package align

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/align/internal/devsplit"
	"github.com/evidenceledger/evidence/termassoc"
)

var (
	flagTrain = flag.Bool("train", false, "retrain the reranker on the train parts of align-dev and the clinical gold set and rewrite reranker.json")
	flagTrees = flag.Int("trees", 0, "with -train: number of boosted trees for the first stage (0 = linear)")
	flagList  = flag.Float64("listwise", 1, "with -train: weight of the listwise (softmax over each sentence's candidates) loss added to the pointwise logistic loss of the linear first stage; 0 = pointwise only")
	flagClinW = flag.Float64("clinical-weight", 5, "with -train: weight of a clinical train row relative to an align-dev one (0 = align-dev only)")
	flagOff   = flag.String("off", "", "with -train: comma-separated changes to leave out, for ablations: bridges, roles, kindpos, hub, first, decode, clinical, listwise")
	flagWrite = flag.Bool("write", true, "with -train: rewrite reranker.json")
)

// trainExample is one candidate of one training sentence.
type trainExample struct {
	sent   int // group of the sentence (for listwise training); negative for mismatched meetings
	feat   [numFeatures]float64
	label  float64
	weight float64 // the row's weight in the loss; 0 means 1 (unweighted callers)
}

// w is the row's weight: weight, or 1 when it is unset.
func (r trainExample) w() float64 {
	if r.weight == 0 {
		return 1
	}
	return r.weight
}

// devSplitData is one development set (align-dev or the clinical gold set) prepared for
// training and evaluation.
type devSplitData struct {
	name        string
	segs        map[string][]Segment
	order       []string
	sents       []devSentence
	gold        map[string][]devGoldSpan
	alt         map[string][]devGoldSpan // other acceptable evidence (precision only)
	unsupported map[string]bool          // sentences the gold marks unsupported
	idx         map[string]*Index
	share       []map[string]float64 // note shares by sentence index
	notes       map[string][]int     // sentence indices by encounter, in note order
	ctx         []noteContext        // note context of each sentence against its own encounter
	heldOut     func(encounter string) bool
	series      func(encounter string) string // encounters of one series never pair as negatives
}

// contextIn returns the note context of sentence si computed against index x (its own
// meeting or, for negatives, another one).
func (d *devSplitData) contextIn(x *Index, si int) noteContext {
	if x == d.idx[d.sents[si].EncounterID] {
		return d.ctx[si]
	}
	is := d.notes[d.sents[si].EncounterID]
	k := slices.Index(is, si)
	return x.noteContexts(d.note(is))[k]
}

func (d *devSplitData) note(is []int) []Sentence {
	note := make([]Sentence, len(is))
	for k, i := range is {
		note[k] = Sentence{ID: d.sents[i].SentenceID, Section: d.sents[i].Section, Text: d.sents[i].Text}
	}
	return note
}

func loadAlignDev(tb testing.TB) *devSplitData {
	d := &devSplitData{name: "align-dev", gold: map[string][]devGoldSpan{}, heldOut: devsplit.HeldOut, series: devsplit.Series}
	d.segs, d.order = devSegments(tb, devPath(tb, "align-dev", "segments.jsonl"))
	d.sents = readJSONL[devSentence](tb, devPath(tb, "align-dev", "sentences.jsonl"))
	for _, g := range readJSONL[devGold](tb, devPath(tb, "align-dev", "gold.jsonl")) {
		d.gold[g.SentenceID] = g.Gold
	}
	d.prepare(tb)
	return d
}

// clinicalGold is a line of align/testdata/clinical-gold/gold.jsonl.
type clinicalGold struct {
	SentenceID  string        `json:"sentence_id"`
	Gold        []devGoldSpan `json:"gold"`
	AltGold     []devGoldSpan `json:"alt_gold"`
	Unsupported bool          `json:"unsupported"`
}

// loadClinical reads the clinical gold set: the consultations that have gold, their whole
// notes, and the train/test split of align/testdata/clinical/split.tsv.
func loadClinical(tb testing.TB) *devSplitData {
	d := &devSplitData{name: "clinical", gold: map[string][]devGoldSpan{}, alt: map[string][]devGoldSpan{},
		unsupported: map[string]bool{}, series: func(e string) string { return e }}
	split := map[string]string{}
	raw, err := os.ReadFile("testdata/clinical/split.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 3 && !strings.HasPrefix(line, "#") {
			split[f[0]] = f[2]
		}
	}
	d.heldOut = func(e string) bool { return split[e] == "test" }
	for _, g := range readJSONL[clinicalGold](tb, "testdata/clinical-gold/gold.jsonl") {
		d.gold[g.SentenceID] = g.Gold
		d.alt[g.SentenceID] = g.AltGold
		if g.Unsupported {
			d.unsupported[g.SentenceID] = true
		}
	}
	all := readJSONL[devSentence](tb, "testdata/clinical/sentences.jsonl")
	has := map[string]bool{}
	for _, s := range all {
		if _, ok := d.gold[s.SentenceID]; ok {
			has[s.EncounterID] = true
		}
	}
	for _, s := range all {
		if has[s.EncounterID] {
			d.sents = append(d.sents, s)
		}
	}
	segs, order := devSegments(tb, "testdata/clinical/segments.jsonl")
	d.segs = map[string][]Segment{}
	for _, e := range order {
		if has[e] {
			d.segs[e] = segs[e]
			d.order = append(d.order, e)
		}
	}
	d.prepare(tb)
	return d
}

func (d *devSplitData) prepare(tb testing.TB) {
	d.idx = map[string]*Index{}
	byEnc := map[string][]int{}
	for i, s := range d.sents {
		byEnc[s.EncounterID] = append(byEnc[s.EncounterID], i)
	}
	d.share = make([]map[string]float64, len(d.sents))
	for _, is := range byEnc {
		for k, sh := range noteShares(d.note(is)) {
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
		for k, c := range d.idx[e].noteContexts(d.note(is)) {
			d.ctx[is[k]] = c
		}
	}
}

// setAssoc turns semantic bridges on or off in every index.
func (d *devSplitData) setAssoc(on bool) {
	for _, x := range d.idx {
		x.assoc = nil
		if on {
			x.assoc = termassoc.AppendNeighbours
		}
	}
}

// goldSet is the set of gold segment ids of a sentence.
func (d *devSplitData) goldSet(id string) map[string]bool {
	gold := map[string]bool{}
	for _, g := range d.gold[id] {
		gold[g.SegmentID] = true
	}
	return gold
}

// examples returns reranker training rows for the sentences of one side of the split, each
// of the given weight. Besides each sentence's own encounter, every third sentence is also
// paired with an encounter of another series, whose candidates are all negatives: this
// teaches the reranker what "no evidence here" looks like.
func (d *devSplitData) examples(heldOut bool, weight float64, group int) []trainExample {
	var rows []trainExample
	var pool []string
	for _, e := range d.order {
		if d.heldOut(e) == heldOut {
			pool = append(pool, e)
		}
	}
	k := 0
	for si, s := range d.sents {
		if d.heldOut(s.EncounterID) != heldOut || len(d.gold[s.SentenceID]) == 0 {
			continue
		}
		gold := d.goldSet(s.SentenceID)
		x := d.idx[s.EncounterID]
		ctx := d.ctx[si]
		for _, c := range x.rawCandidates(s.Text, s.Section, &ctx) {
			lab := 0.0
			if gold[x.segs[c.seg].ID] {
				lab = 1
			}
			rows = append(rows, trainExample{sent: group + si, feat: c.feat, label: lab, weight: weight})
		}
		k++
		if k%3 == 0 && len(pool) > 1 {
			other := pool[(k*7)%len(pool)]
			for d.series(other) == d.series(s.EncounterID) {
				k++
				other = pool[(k*7)%len(pool)]
			}
			octx := d.contextIn(d.idx[other], si)
			for _, c := range d.idx[other].rawCandidates(s.Text, s.Section, &octx) {
				rows = append(rows, trainExample{sent: -1 - group - si, feat: c.feat, weight: weight})
			}
		}
	}
	return rows
}

// rawCandidates returns candidates with features but without probabilities.
func (x *Index) rawCandidates(text, section string, nc *noteContext) []candidate {
	q := x.analyseText(text, nc.share)
	x.bridges(&q)
	if len(q.ids) == 0 {
		return nil
	}
	if nc.section != "" {
		section = nc.section
	}
	sc := x.scratch.Get().(*scratch)
	defer x.scratch.Put(sc)
	defer sc.reset()
	return x.candidates(q, x.analyseText(section, nil), nc, sc)
}

// fitLogistic fits an L2-regularized linear model by Newton's method on standardized
// features: the weighted logistic loss of every row plus, with listW > 0, listW times the
// listwise loss of each sentence (softmax cross-entropy of its own-encounter candidates
// against its gold ones), which trains the ranking within a sentence directly. It returns
// weights, means and scales.
func fitLogistic(rows []trainExample, lambda, listW float64) (w, mean, scale []float64) {
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
	// Groups for the listwise loss: runs of rows of one sentence with at least one positive.
	var groups [][2]int
	for i := 0; i < len(rows); {
		j := i
		pos := 0.0
		for j < len(rows) && rows[j].sent == rows[i].sent {
			pos += rows[j].label
			j++
		}
		if rows[i].sent >= 0 && pos > 0 {
			groups = append(groups, [2]int{i, j})
		}
		i = j
	}
	for iter := 0; iter < 15; iter++ {
		grad := make([]float64, nf)
		hess := make([][]float64, nf)
		for j := range hess {
			hess[j] = make([]float64, nf)
		}
		s := make([]float64, len(rows))
		for i, r := range rows {
			for j := range w {
				s[i] += w[j] * z[i][j]
			}
			p := 1 / (1 + math.Exp(-s[i]))
			for j := range w {
				grad[j] += r.w() * (p - r.label) * z[i][j]
				for k := j; k < nf; k++ {
					hess[j][k] += r.w() * p * (1 - p) * z[i][j] * z[i][k]
				}
			}
		}
		if listW > 0 {
			for _, g := range groups {
				mx, pos := math.Inf(-1), 0.0
				for i := g[0]; i < g[1]; i++ {
					mx = math.Max(mx, s[i])
					pos += rows[i].label
				}
				tot := 0.0
				for i := g[0]; i < g[1]; i++ {
					tot += math.Exp(s[i] - mx)
				}
				var m [nf]float64
				c := listW * rows[g[0]].w()
				for i := g[0]; i < g[1]; i++ {
					p := math.Exp(s[i]-mx) / tot
					t := rows[i].label / pos
					for j := range w {
						grad[j] += c * (p - t) * z[i][j]
						m[j] += p * z[i][j]
						for k := j; k < nf; k++ {
							hess[j][k] += c * p * z[i][j] * z[i][k]
						}
					}
				}
				for j := range w {
					for k := j; k < nf; k++ {
						hess[j][k] -= c * m[j] * m[k]
					}
				}
			}
		}
		for j := range w {
			for k := 0; k < j; k++ {
				hess[j][k] = hess[k][j]
			}
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

// rankedNote is one encounter's note ranked by a model, before joint decoding.
type rankedNote struct {
	x      *Index
	sents  []int // sentence indices, in note order
	ctxs   []noteContext
	qs     []query
	ranked [][]candidate
}

// rankAll ranks the notes of one side of the split with model m.
func (d *devSplitData) rankAll(m *model, heldOut bool) []rankedNote {
	var out []rankedNote
	for _, e := range d.order {
		if d.heldOut(e) != heldOut {
			continue
		}
		x := d.idx[e]
		x.model = m // test-only: sequential
		is := d.notes[e]
		rn := rankedNote{x: x, sents: is, ctxs: make([]noteContext, len(is)), qs: make([]query, len(is)), ranked: make([][]candidate, len(is))}
		for k, si := range is {
			rn.ctxs[k] = d.ctx[si]
			rn.qs[k] = x.analyseText(d.sents[si].Text, d.ctx[si].share)
			x.bridges(&rn.qs[k])
			rn.ranked[k] = x.rank(rn.qs[k], x.analyseText(d.ctx[si].section, nil), &rn.ctxs[k])
		}
		out = append(out, rn)
	}
	return out
}

// evalOut is the evaluation of one side of a development set.
type evalOut struct {
	agg aggMetrics
	// tops are the best probabilities of every gold sentence (supported or not) and unsup
	// whether the gold marks it unsupported.
	tops  []float64
	unsup []bool
}

// score decodes (with m.Decode) and selects spans (with m's rule) for ranked notes and
// scores them against the gold as alignscore does.
func (d *devSplitData) score(m *model, notes []rankedNote) evalOut {
	var o evalOut
	var ms []sentMetrics
	for _, rn := range notes {
		rn.x.model = m
		ranked := make([][]candidate, len(rn.ranked))
		for k, c := range rn.ranked {
			ranked[k] = slices.Clone(c)
		}
		rn.x.decodeSections(rn.ctxs, ranked)
		for k, si := range rn.sents {
			id := d.sents[si].SentenceID
			if _, ok := d.gold[id]; !ok {
				continue
			}
			top := 0.0
			if len(ranked[k]) > 0 {
				top = ranked[k][0].prob
			}
			o.tops = append(o.tops, top)
			o.unsup = append(o.unsup, len(d.gold[id]) == 0)
			if len(d.gold[id]) == 0 {
				continue
			}
			var pred, gold, ga []ival
			for _, sp := range rn.x.selectSpans(rn.qs[k], ranked[k]) {
				pred = append(pred, ival{float64(sp.StartMS), float64(sp.EndMS)})
			}
			for _, g := range d.gold[id] {
				gold = append(gold, ival{float64(g.StartMS), float64(g.EndMS)})
			}
			ga = append(ga, gold...)
			for _, g := range d.alt[id] {
				ga = append(ga, ival{float64(g.StartMS), float64(g.EndMS)})
			}
			ms = append(ms, scoreSentence(gold, ga, pred))
		}
	}
	o.agg = aggregate(ms)
	return o
}

// unsupportedPR returns the precision and recall of "unsupported" (best probability below
// minTop) against the gold's unsupported marks, and how many sentences were flagged.
func unsupportedPR(o evalOut, minTop float64) (p, r float64, flagged, truth int) {
	tp := 0
	for i, t := range o.tops {
		if o.unsup[i] {
			truth++
		}
		if t < minTop {
			flagged++
			if o.unsup[i] {
				tp++
			}
		}
	}
	if flagged > 0 {
		p = float64(tp) / float64(flagged)
	}
	if truth > 0 {
		r = float64(tp) / float64(truth)
	}
	return p, r, flagged, truth
}

// fitSectionPos fits, for each section kind, the mean and standard deviation of the
// relative time of the gold evidence of train sentences.
func fitSectionPos(sets ...*devSplitData) [][2]float64 {
	var sum, sq, n [numKinds]float64
	for _, d := range sets {
		for si, s := range d.sents {
			if d.heldOut(s.EncounterID) {
				continue
			}
			k := d.ctx[si].kind
			segs := d.segs[s.EncounterID]
			span := float64(segs[len(segs)-1].EndMS - segs[0].StartMS)
			if k == kindOther || span <= 0 {
				continue
			}
			for _, g := range d.gold[s.SentenceID] {
				rel := float64(g.StartMS-segs[0].StartMS) / span
				sum[k] += rel
				sq[k] += rel * rel
				n[k]++
			}
		}
	}
	out := make([][2]float64, numKinds)
	for k := range out {
		if n[k] >= 10 {
			mu := sum[k] / n[k]
			out[k] = [2]float64{mu, math.Max(0.05, math.Sqrt(sq[k]/n[k]-mu*mu))}
		}
	}
	return out
}

// offSet parses -off.
func offSet() map[string]bool {
	off := map[string]bool{}
	for _, f := range strings.Split(*flagOff, ",") {
		if f = strings.TrimSpace(f); f != "" {
			off[f] = true
		}
	}
	return off
}

// TestTrainReranker fits the reranker, the joint decoding and the selection rule on the train
// parts of align-dev (devsplit) and of the clinical gold set (split.tsv), chooses min_top on
// the clinical train part, reports both test parts, and rewrites reranker.json. Run:
//
//	go test ./align -run TestTrainReranker -train -data /work/shared/data -v
//
// With -off=bridges,roles,kindpos,hub,first,decode,clinical,listwise (any subset) it
// trains and reports the engine without those changes, for ablations.
func TestTrainReranker(t *testing.T) {
	if !*flagTrain {
		t.Skip("run with -train to retrain the reranker")
	}
	off := offSet()
	dev, cl := loadAlignDev(t), loadClinical(t)
	sets := []*devSplitData{dev, cl}
	for _, d := range sets {
		d.setAssoc(!off["bridges"])
	}
	base := &model{Features: featureNames[:], Weights: make([]float64, numFeatures), Mean: make([]float64, numFeatures), Scale: make([]float64, numFeatures), MaxSpans: 1}
	if !off["kindpos"] {
		base.SectionPos = fitSectionPos(sets...)
	}
	for _, d := range sets {
		for _, x := range d.idx {
			x.model = base // candidates read SectionPos
		}
	}
	rows := dev.examples(false, 1, 0)
	clinW := *flagClinW
	if off["clinical"] {
		clinW = 0
	}
	if clinW > 0 {
		rows = append(rows, cl.examples(false, clinW, 1<<20)...)
	}
	var masked []int
	if off["roles"] {
		masked = append(masked, fRoleMatch, fRoleKnown, fPatient)
	}
	if off["kindpos"] {
		masked = append(masked, fKindPos)
	}
	if off["hub"] {
		masked = append(masked, fHub)
	}
	if off["first"] {
		masked = append(masked, fFirst)
	}
	for i := range rows {
		for _, f := range masked {
			rows[i].feat[f] = 0
		}
	}
	pos := 0
	for _, r := range rows {
		pos += int(r.label)
	}
	t.Logf("training rows: %d (%d positive); clinical weight %.1f; off %v", len(rows), pos, clinW, off)
	listW := *flagList
	if off["listwise"] {
		listW = 0
	}
	w, mean, scale := fitLogistic(rows, 1.0, listW)
	m := &model{Features: featureNames[:], Weights: w, Mean: mean, Scale: scale, MaxSpans: 5, Threshold: 0.3, Relative: 0.5, SectionPos: base.SectionPos}
	for j, n := range featureNames {
		t.Logf("%-16s %+.3f", n, w[j])
	}
	if *flagTrees > 0 {
		m.Base, m.Trees = fitBoosted(rows, *flagTrees, 3, 0.1)
	}
	m.Stage2 = fitStage2(t, m, []*devSplitData{dev, cl}, []float64{1, clinW})
	// Rank the train parts once; decoding and selection only reorder and cut.
	trainNotes := [][]rankedNote{dev.rankAll(m, false), cl.rankAll(m, false)}
	evalTrain := func(c *model) []evalOut {
		return []evalOut{dev.score(c, trainNotes[0]), cl.score(c, trainNotes[1])}
	}
	// Joint decoding: maximize the mean train hit@1 of the two sets.
	if !off["decode"] {
		best := -1.0
		for _, k := range []int{1, 3, 5, 8} {
			for _, back := range []float64{0.25, 0.5, 1, 2, 4} {
				for _, jump := range []float64{0, 1, 2, 4, 8} {
					c := *m
					c.Decode = &decodeParams{K: k, Back: back, Jump: jump}
					o := evalTrain(&c)
					if v := (o[0].agg.Hit1 + o[1].agg.Hit1) / 2; v > best+1e-9 {
						best, m.Decode = v, c.Decode
					}
					if k == 1 {
						break
					}
				}
				if k == 1 {
					break
				}
			}
		}
		t.Logf("decode: k=%d back=%.2f jump=%.2f (train mean hit@1 %.3f)", m.Decode.K, m.Decode.Back, m.Decode.Jump, best)
	}
	// Selection rule: maximize train F1 + R@5 summed over the two sets (hit@1 does not
	// depend on it).
	best := -1.0
	var bm model
	for _, minSpans := range []int{0, 1, 2, 3} {
		for _, maxSpans := range []int{3, 5, 8} {
			for _, th := range []float64{0.1, 0.15, 0.2, 0.3, 0.4} {
				for _, rel := range []float64{0, 0.3, 0.5} {
					c := *m
					c.MinSpans, c.MaxSpans, c.Threshold, c.Relative = minSpans, maxSpans, th, rel
					o := evalTrain(&c)
					if v := o[0].agg.F1 + o[0].agg.R5 + o[1].agg.F1 + o[1].agg.R5; v > best+1e-9 {
						best, bm = v, c
					}
				}
			}
		}
	}
	// Unsupported threshold: the min_top that maximizes the F1 of "unsupported" on the
	// clinical train part (the only train data with unsupported sentences).
	ct := cl.score(&bm, trainNotes[1])
	bestF := -1.0
	cands := append([]float64{0}, ct.tops...)
	slices.Sort(cands)
	for _, th := range cands {
		th += 1e-9 // flag tops strictly below a value just above th
		p, r, _, _ := unsupportedPR(ct, th)
		f := 0.0
		if p+r > 0 {
			f = 2 * p * r / (p + r)
		}
		if f > bestF+1e-9 {
			bestF, bm.MinTop = f, th
		}
	}
	t.Logf("selection: min_spans=%d max_spans=%d threshold=%.2f relative=%.2f min_top=%.4f (clinical train unsupported F1 %.3f)", bm.MinSpans, bm.MaxSpans, bm.Threshold, bm.Relative, bm.MinTop, bestF)
	for _, d := range sets {
		for _, side := range []bool{false, true} {
			o := d.score(&bm, d.rankAll(&bm, side))
			a := o.agg
			p, r, fl, tr := unsupportedPR(o, bm.MinTop)
			name := map[bool]string{false: "train", true: "test"}[side]
			t.Logf("RESULT %-9s %-5s n=%d cov=%.3f hit@1=%.3f R@5=%.3f P=%.3f R=%.3f F1=%.3f unsupported: flagged %d of %d gold-unsupported %d, P=%.3f R=%.3f",
				d.name, name, a.N, a.Cov, a.Hit1, a.R5, a.P, a.R, a.F1, fl, len(o.tops), tr, p, r)
		}
	}
	if !*flagWrite || len(off) > 0 {
		return
	}
	kind := "linear, logistic + listwise"
	if listW == 0 {
		kind = "logistic regression"
	}
	if *flagTrees > 0 {
		kind = fmt.Sprintf("%d boosted trees", *flagTrees)
	}
	bm.Note = fmt.Sprintf("stage 1 %s (L2 1.0, Newton, listwise weight %.1f) on %d candidate rows of the train parts of align-dev (devsplit) and the clinical gold set (split.tsv; rows weighted %.1f), %d positive; stage 2 logistic on stage 1; section_pos from train gold; decode and selection grid-searched on train; min_top maximizes the F1 of unsupported on clinical train. Made by: go test ./align -run TestTrainReranker -train", kind, listW, len(rows), clinW, pos)
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

// fitStage2 fits the stacking stage on the train parts: first-stage probabilities of the
// candidates of each sentence (own encounter and mismatched encounters, as in examples)
// become second-stage features. Rows of set i have weight weights[i].
func fitStage2(t *testing.T, m *model, sets []*devSplitData, weights []float64) *stage2 {
	var rows []trainExample
	for di, d := range sets {
		if weights[di] == 0 {
			continue
		}
		var pool []string
		for _, e := range d.order {
			if !d.heldOut(e) {
				pool = append(pool, e)
			}
		}
		add := func(x *Index, si int, gold map[string]bool) {
			s := d.sents[si]
			saved := x.model
			x.model = &model{Features: m.Features, Weights: m.Weights, Mean: m.Mean, Scale: m.Scale, Trees: m.Trees, Base: m.Base, SectionPos: m.SectionPos, MaxSpans: 1}
			nc := d.contextIn(x, si)
			q := x.analyseText(s.Text, nc.share)
			x.bridges(&q)
			cands := x.rank(q, x.analyseText(nc.section, nil), &nc)
			x.model = saved
			for c, g := range x.stage2Features(cands) {
				r := trainExample{weight: weights[di]}
				copy(r.feat[:], g[:])
				if gold[x.segs[cands[c].seg].ID] {
					r.label = 1
				}
				rows = append(rows, r)
			}
		}
		k := 0
		for si, s := range d.sents {
			if d.heldOut(s.EncounterID) || len(d.gold[s.SentenceID]) == 0 {
				continue
			}
			add(d.idx[s.EncounterID], si, d.goldSet(s.SentenceID))
			k++
			if k%3 == 0 && len(pool) > 1 {
				other := pool[(k*7)%len(pool)]
				for d.series(other) == d.series(s.EncounterID) {
					k++
					other = pool[(k*7)%len(pool)]
				}
				add(d.idx[other], si, nil)
			}
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
				grad[j] += r.w() * (p - r.label) * r.feat[j]
				for k := 0; k < nf; k++ {
					hess[j][k] += r.w() * p * (1 - p) * r.feat[j] * r.feat[k]
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
	pos, tot := 0.0, 0.0
	for _, r := range rows {
		pos += r.w() * r.label
		tot += r.w()
	}
	base := math.Log(pos / (tot - pos))
	score := make([]float64, n)
	for i := range score {
		score[i] = base
	}
	grad, hess := make([]float64, n), make([]float64, n)
	var trees []tree
	for it := 0; it < nTrees; it++ {
		for i, r := range rows {
			p := 1 / (1 + math.Exp(-score[i]))
			grad[i], hess[i] = r.w()*(p-r.label), r.w()*p*(1-p)
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

var (
	flagCV      = flag.Bool("cv", false, "cross-validate first-stage choices on the clinical TRAIN part (two folds by consultation)")
	flagCVW     = flag.String("cv-weights", "1,5,20", "with -cv: clinical row weights to try")
	flagCVTrees = flag.String("cv-trees", "0,100", "with -cv: numbers of boosted trees to try (0 = linear)")
)

// TestCrossValidateClinical chooses first-stage settings without touching the clinical test
// part: the clinical train consultations are split into two folds; each setting is trained on
// align-dev train plus one fold and scored (hit@1, R@5, F1) on the other, with fixed decoding
// and selection. Run:
//
//	go test ./align -run TestCrossValidateClinical -cv -v -timeout 60m
func TestCrossValidateClinical(t *testing.T) {
	if !*flagCV {
		t.Skip("run with -cv")
	}
	dev, cl := loadAlignDev(t), loadClinical(t)
	var trainEnc []string
	for _, e := range cl.order {
		if !cl.heldOut(e) {
			trainEnc = append(trainEnc, e)
		}
	}
	slices.Sort(trainEnc)
	fold := map[string]int{}
	for i, e := range trainEnc {
		fold[e] = i % 2
	}
	isTest := cl.heldOut
	base := &model{Features: featureNames[:], Weights: make([]float64, numFeatures), Mean: make([]float64, numFeatures), Scale: make([]float64, numFeatures), MaxSpans: 1, SectionPos: fitSectionPos(dev, cl)}
	for _, d := range []*devSplitData{dev, cl} {
		for _, x := range d.idx {
			x.model = base
		}
	}
	devRows := dev.examples(false, 1, 0)
	parse := func(s string) []float64 {
		var out []float64
		for _, f := range strings.Split(s, ",") {
			var v float64
			fmt.Sscan(f, &v)
			out = append(out, v)
		}
		return out
	}
	for _, w := range parse(*flagCVW) {
		for _, nt := range parse(*flagCVTrees) {
			var ms []aggMetrics
			for f := 0; f < 2; f++ {
				// Train on the other fold: "held out" here means test or this fold.
				cl.heldOut = func(e string) bool { return isTest(e) || fold[e] == f }
				rows := append(slices.Clone(devRows), cl.examples(false, w, 1<<20)...)
				wt, mean, scale := fitLogistic(rows, 1.0, *flagList)
				m := &model{Features: featureNames[:], Weights: wt, Mean: mean, Scale: scale, MaxSpans: 5, MinSpans: 2, Threshold: 0.1, SectionPos: base.SectionPos,
					Decode: &decodeParams{K: 8, Back: 0.5, Jump: 2}}
				if nt > 0 {
					m.Base, m.Trees = fitBoosted(rows, int(nt), 3, 0.1)
				}
				m.Stage2 = fitStage2(t, m, []*devSplitData{dev, cl}, []float64{1, w})
				// Score this fold of clinical train.
				cl.heldOut = func(e string) bool { return !isTest(e) && fold[e] == f }
				ms = append(ms, cl.score(m, cl.rankAll(m, true)).agg)
				cl.heldOut = isTest
			}
			n := float64(ms[0].N + ms[1].N)
			avg := func(g func(aggMetrics) float64) float64 {
				return (g(ms[0])*float64(ms[0].N) + g(ms[1])*float64(ms[1].N)) / n
			}
			t.Logf("CV clinical-weight=%.0f trees=%.0f: hit@1=%.3f R@5=%.3f F1=%.3f (n=%.0f)", w, nt,
				avg(func(a aggMetrics) float64 { return a.Hit1 }), avg(func(a aggMetrics) float64 { return a.R5 }), avg(func(a aggMetrics) float64 { return a.F1 }), n)
		}
	}
}
