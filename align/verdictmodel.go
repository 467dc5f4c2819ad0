package align

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
)

// Features of the verdict model, computed by Index.analyse. Changing them changes
// MethodVersion and needs retraining (TestTrainVerdict).
const (
	vBias              = iota
	vMaxAbsent         // the heaviest claim found nowhere (claimWeight)
	vSumAbsent         // the total weight of claims found nowhere
	vUnsupShare        // the share of the sentence's claim weight found nowhere
	vAbsentSpecific    // how many claims found nowhere are specific words (not everyday English)
	vAbsentQuantity    // the heaviest quantity found nowhere
	vAbsentNumber      // a number found nowhere
	vAbsentDrug        // a drug found nowhere
	vAbsentConcept     // a condition or procedure found nowhere
	vConflictNeg       // conflicts: said the other way
	vConflictOther     // conflicts: said of someone else
	vConflictValue     // conflicts: another side, site, quality or severity
	vConflictQuantity  // conflicts: another number, duration, dose or frequency
	vConflictDrug      // conflicts: another drug, or its class denied
	vConflictCondition // conflicts: another condition
	vTopScore          // the retrieval score of the best evidence span
	vNoSpans           // retrieval found no evidence
	vFacts             // log(1 + total claim weight): how much the sentence says
	vOutOfWindow       // the heaviest claim said only away from where the rest is said
	vFirmNegation      // negation conflicts where the claim is never said the sentence's way
	numVerdictFeatures
)

var verdictFeatureNames = [numVerdictFeatures]string{"bias", "max_absent", "sum_absent", "unsupported_share",
	"absent_specific", "absent_quantity", "absent_number", "absent_drug", "absent_concept", "conflict_negation",
	"conflict_other", "conflict_value", "conflict_quantity", "conflict_drug", "conflict_condition",
	"top_score", "no_spans", "facts", "out_of_window", "firm_negation"}

// verdictModel is a logistic regression over the analysis features that estimates the
// probability that a sentence is wrong (contradicted or unmentioned); sentences at or above
// Threshold are flagged. It is fitted by TestTrainVerdict on the train consultations of the
// claim-verification dev set (align/testdata/verify) and committed as verdict.json.
type verdictModel struct {
	Features  []string  `json:"features"`
	Weights   []float64 `json:"weights"`
	Threshold float64   `json:"threshold"`
	Note      string    `json:"note"`
}

//go:embed verdict.json
var verdictJSON []byte

var defaultVerdictModel = mustLoadVerdictModel(verdictJSON)

func mustLoadVerdictModel(b []byte) *verdictModel {
	var m verdictModel
	if err := json.Unmarshal(b, &m); err != nil {
		panic("align: verdict.json: " + err.Error())
	}
	if err := m.valid(); err != nil {
		panic("align: verdict.json: " + err.Error())
	}
	return &m
}

func (m *verdictModel) valid() error {
	if len(m.Features) != numVerdictFeatures || len(m.Weights) != numVerdictFeatures {
		return fmt.Errorf("want %d features and weights", numVerdictFeatures)
	}
	for i, n := range m.Features {
		if n != verdictFeatureNames[i] {
			return fmt.Errorf("feature %d is %q, want %q", i, n, verdictFeatureNames[i])
		}
	}
	if m.Threshold <= 0 || m.Threshold >= 1 {
		return fmt.Errorf("threshold %v outside (0, 1)", m.Threshold)
	}
	return nil
}

func (m *verdictModel) prob(f *[numVerdictFeatures]float64) float64 {
	s := 0.0
	for i, w := range m.Weights {
		s += w * f[i]
	}
	return 1 / (1 + math.Exp(-s))
}
