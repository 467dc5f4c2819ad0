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
	if m.MaxSpans < 1 {
		return nil, fmt.Errorf("max_spans %d < 1", m.MaxSpans)
	}
	return &m, nil
}

// prob is the reranker's probability for one feature vector.
func (m *model) prob(f *[numFeatures]float64) float64 {
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
