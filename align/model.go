package align

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
)

// model is the logistic-regression reranker and the span-selection rule. Its parameters are
// learned by TestTrainReranker (train_test.go) on the training split of align-dev and
// committed as reranker.json.
type model struct {
	Features []string  `json:"features"`
	Weights  []float64 `json:"weights"`
	// Mean and Scale standardize each feature before the dot product.
	Mean  []float64 `json:"mean"`
	Scale []float64 `json:"scale"`
	// MinTop: a sentence whose best candidate scores below it is unsupported.
	MinTop float64 `json:"min_top"`
	// Threshold and Relative: further spans need Score >= Threshold and
	// Score >= Relative * best score.
	Threshold float64 `json:"threshold"`
	Relative  float64 `json:"relative"`
	// MaxSpans caps the spans returned for one sentence.
	MaxSpans int `json:"max_spans"`
	// MinSpans: a supported sentence gets at least this many spans when enough candidates
	// share a term with it, whatever their scores; the scores tell the weak ones apart.
	MinSpans int `json:"min_spans,omitempty"`
	// Trees, when present, replace the linear first stage: a gradient-boosted ensemble
	// whose raw score is Base plus the sum of the trees' leaf values (a logit).
	Trees []tree  `json:"trees,omitempty"`
	Base  float64 `json:"base,omitempty"`
	// Stage2 rescores candidates with the first stage's probabilities of their
	// neighbourhood (stacking); nil means one stage.
	Stage2 *stage2 `json:"stage2,omitempty"`
	// SectionPos gives, for each section kind (see sections.go), the mean and standard
	// deviation of the relative time (0..1) of its gold evidence on the train parts.
	SectionPos [][2]float64 `json:"section_pos,omitempty"`
	// Decode holds the joint decoding parameters (decode.go); nil turns decoding off.
	Decode *decodeParams `json:"decode,omitempty"`
	// Note says how the parameters were made.
	Note string `json:"note"`
}

//go:embed reranker.json
var rerankerJSON []byte

var defaultModel = mustLoadModel(rerankerJSON)

func mustLoadModel(b []byte) *model {
	m, err := loadModel(b)
	if err != nil {
		panic("align: reranker.json: " + err.Error())
	}
	return m
}

func loadModel(b []byte) (*model, error) {
	var m model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m.Features) != numFeatures || len(m.Weights) != numFeatures || len(m.Mean) != numFeatures || len(m.Scale) != numFeatures {
		return nil, fmt.Errorf("want %d features, weights, means and scales", numFeatures)
	}
	for i, n := range m.Features {
		if n != featureNames[i] {
			return nil, fmt.Errorf("feature %d is %q, want %q", i, n, featureNames[i])
		}
	}
	for i, t := range m.Trees {
		if err := t.valid(); err != nil {
			return nil, fmt.Errorf("tree %d: %v", i, err)
		}
	}
	if m.Stage2 != nil {
		if err := m.Stage2.valid(); err != nil {
			return nil, err
		}
	}
	if m.MaxSpans < 1 {
		return nil, fmt.Errorf("max_spans %d < 1", m.MaxSpans)
	}
	return &m, nil
}

// tree is one regression tree in array form: node 0 is the root; a node with Feature < 0 is a
// leaf holding Value; otherwise rows with feature value <= Threshold go Left, others Right.
type tree []treeNode

type treeNode struct {
	Feature   int     `json:"f"`
	Threshold float64 `json:"t,omitempty"`
	Left      int     `json:"l,omitempty"`
	Right     int     `json:"r,omitempty"`
	Value     float64 `json:"v,omitempty"`
}

func (t tree) eval(f *[numFeatures]float64) float64 {
	n := 0
	for t[n].Feature >= 0 {
		if f[t[n].Feature] <= t[n].Threshold {
			n = t[n].Left
		} else {
			n = t[n].Right
		}
	}
	return t[n].Value
}

func (t tree) valid() error {
	if len(t) == 0 {
		return fmt.Errorf("empty tree")
	}
	for i, n := range t {
		if n.Feature >= numFeatures {
			return fmt.Errorf("node %d: feature %d out of range", i, n.Feature)
		}
		if n.Feature >= 0 && (n.Left <= i || n.Right <= i || n.Left >= len(t) || n.Right >= len(t)) {
			return fmt.Errorf("node %d: children %d, %d out of order", i, n.Left, n.Right)
		}
	}
	return nil
}

// prob is the reranker's probability for one feature vector.
func (m *model) prob(f *[numFeatures]float64) float64 {
	if len(m.Trees) > 0 {
		z := m.Base
		for _, t := range m.Trees {
			z += t.eval(f)
		}
		return 1 / (1 + math.Exp(-z))
	}
	z := 0.0
	for i, v := range f {
		s := m.Scale[i]
		if s == 0 {
			s = 1
		}
		z += m.Weights[i] * (v - m.Mean[i]) / s
	}
	return 1 / (1 + math.Exp(-z))
}

// Second-stage features: how a candidate's first-stage probability sits among the others.
const (
	g2Bias = iota
	g2Logit
	g2NeighbourMax
	g2RelTop
	g2NearTopTime
	g2SameSpeaker
	g2RankRecip
	numStage2
)

var stage2Names = [numStage2]string{"bias", "logit", "neighbour_max", "rel_top", "near_top_time", "same_speaker", "rank_recip"}

type stage2 struct {
	Features []string  `json:"features"`
	Weights  []float64 `json:"weights"`
}

func (s *stage2) valid() error {
	if len(s.Features) != numStage2 || len(s.Weights) != numStage2 {
		return fmt.Errorf("stage2: want %d features and weights", numStage2)
	}
	for i, n := range s.Features {
		if n != stage2Names[i] {
			return fmt.Errorf("stage2: feature %d is %q, want %q", i, n, stage2Names[i])
		}
	}
	return nil
}

// stage2Features computes second-stage features for candidates whose prob holds the first
// stage's probability and that are sorted best first.
func (x *Index) stage2Features(cands []candidate) [][numStage2]float64 {
	out := make([][numStage2]float64, len(cands))
	if len(cands) == 0 {
		return out
	}
	byseg := make(map[int]float64, len(cands))
	for _, c := range cands {
		byseg[c.seg] = c.prob
	}
	top := cands[0]
	for k, c := range cands {
		g := &out[k]
		g[g2Bias] = 1
		p := math.Min(math.Max(c.prob, 1e-6), 1-1e-6)
		g[g2Logit] = math.Log(p / (1 - p))
		for d := -2; d <= 2; d++ {
			if d != 0 {
				g[g2NeighbourMax] = math.Max(g[g2NeighbourMax], byseg[c.seg+d])
			}
		}
		g[g2RelTop] = c.prob / top.prob
		dt := math.Abs(float64(x.segs[c.seg].StartMS - x.segs[top.seg].StartMS))
		g[g2NearTopTime] = math.Exp(-dt / 30000)
		if x.info[c.seg].speaker == x.info[top.seg].speaker {
			g[g2SameSpeaker] = 1
		}
		g[g2RankRecip] = 1 / float64(k+1)
	}
	return out
}

func sigmoidDot(w []float64, f []float64) float64 {
	z := 0.0
	for i, v := range f {
		z += w[i] * v
	}
	return 1 / (1 + math.Exp(-z))
}
