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

	"github.com/evidenceledger/evidence/clinicaltext"
)

var flagTrainVerdict = flag.Bool("trainverdict", false, "refit the verdict model on the train consultations of align/testdata/verify and rewrite verdict.json")

// verifyLabel is one line of a labels.jsonl of align/testdata/verify (verdictscore's format).
type verifyLabel struct {
	SentenceID string `json:"sentence_id"`
	Verdict    string `json:"verdict"`
	Class      string `json:"class"`
	Severity   string `json:"severity"`
	Doubtful   bool   `json:"doubtful"`
}

// verifyExample is one labelled sentence with the checker's analysis of it.
type verifyExample struct {
	label verifyLabel
	a     analysis
	split string
}

// verifySets are the parts of the claim-verification dev set.
var verifySets = []string{"testdata/verify/primock57", "testdata/verify/aci-bench"}

// clinicalSplit reads testdata/clinical/split.tsv: consultation -> "train" or "test".
func clinicalSplit(tb testing.TB) map[string]string {
	b, err := os.ReadFile("testdata/clinical/split.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 3 && !strings.HasPrefix(f[0], "#") {
			out[f[0]] = f[2]
		}
	}
	return out
}

// loadVerifyExamples analyses every labelled sentence of the dev set whose consultation is in
// split ("train", "test" or "" for both), aligning each consultation's sentences as one note,
// as align batch does.
func loadVerifyExamples(tb testing.TB, split string) []verifyExample {
	segs, _ := devSegments(tb, "testdata/clinical/segments.jsonl")
	splits := clinicalSplit(tb)
	var out []verifyExample
	for _, dir := range verifySets {
		sents := readJSONL[devSentence](tb, dir+"/sentences.jsonl")
		labels := map[string]verifyLabel{}
		for _, l := range readJSONL[verifyLabel](tb, dir+"/labels.jsonl") {
			labels[l.SentenceID] = l
		}
		var order []string
		byEnc := map[string][]Sentence{}
		for _, s := range sents {
			if split != "" && splits[s.EncounterID] != split {
				continue
			}
			if _, ok := byEnc[s.EncounterID]; !ok {
				order = append(order, s.EncounterID)
			}
			byEnc[s.EncounterID] = append(byEnc[s.EncounterID], Sentence{ID: s.SentenceID, Section: s.Section, Text: s.Text})
		}
		for _, enc := range order {
			x, err := NewIndex(segs[enc])
			if err != nil {
				tb.Fatal(err)
			}
			note := byEnc[enc]
			spans := x.AlignNote(note)
			for i, s := range note {
				l, ok := labels[s.ID]
				if !ok {
					tb.Fatalf("%s: no label for %s", dir, s.ID)
				}
				out = append(out, verifyExample{label: l, a: x.analyse(s, clinicaltext.Analyze(s.Text), spans[i]), split: splits[enc]})
			}
		}
	}
	return out
}

// verdictTarget is 1 for a sentence that should be flagged, 0 for one that should not, and
// -1 for one left out of training (an original whose support is doubtful).
func verdictTarget(l verifyLabel) float64 {
	switch {
	case l.Verdict != "supported":
		return 1
	case l.Doubtful:
		return -1
	}
	return 0
}

// verdictMetrics are verdictscore's catch and false_flag for a model over examples.
func verdictMetrics(ex []verifyExample, m *verdictModel) (catch, major, falseFlag, contra float64) {
	var nAlt, nMajor, nOrig, nContra, flagged, flaggedMajor, ff, contraOK float64
	for i := range ex {
		v, _, _, _ := verdictFrom(&ex[i].a, m)
		fl := v.Flagged()
		l := ex[i].label
		if l.Class == "original" {
			if l.Verdict == "supported" {
				nOrig++
				if fl {
					ff++
				}
			}
			continue
		}
		nAlt++
		if fl {
			flagged++
		}
		if l.Severity == "major" {
			nMajor++
			if fl {
				flaggedMajor++
			}
		}
		if l.Verdict == "contradicted" {
			nContra++
			if v == Contradicted {
				contraOK++
			}
		}
	}
	return flagged / nAlt, flaggedMajor / nMajor, ff / nOrig, contraOK / nContra
}

// TestTrainVerdict fits the verdict model on the train consultations of the dev set and picks
// the threshold that catches the most altered sentences while flagging at most maxTrainFalseFlag
// of the train originals.
//
//	go test ./align -run TestTrainVerdict -trainverdict -v
func TestTrainVerdict(t *testing.T) {
	if !*flagTrainVerdict {
		t.Skip("run with -trainverdict to refit verdict.json")
	}
	ex := loadVerifyExamples(t, "train")
	var rows []trainExample
	for _, e := range ex {
		y := verdictTarget(e.label)
		if y < 0 {
			continue
		}
		var r trainExample
		copy(r.feat[:], e.a.feat[:])
		r.label = y
		rows = append(rows, r)
	}
	w := fitRaw(rows, numVerdictFeatures, verdictLambda)
	m := &verdictModel{Features: verdictFeatureNames[:], Weights: w}
	// The threshold: the lowest that keeps train false flags at or under the bound.
	var probs []float64
	for _, e := range ex {
		if e.label.Class == "original" && e.label.Verdict == "supported" {
			probs = append(probs, m.prob(&e.a.feat))
		}
	}
	slices.Sort(probs)
	k := int(math.Floor(float64(len(probs)) * (1 - maxTrainFalseFlag)))
	m.Threshold = math.Min(0.99, math.Max(0.01, probs[min(k, len(probs)-1)]+1e-6))
	catch, major, ff, contra := verdictMetrics(ex, m)
	m.Note = fmt.Sprintf("TestTrainVerdict: L2 logistic regression (lambda %g) on %d sentences of the train consultations of align/testdata/verify; threshold keeps train false flags <= %.2f. Train: catch %.3f, major %.3f, false_flag %.3f, contra %.3f.",
		verdictLambda, len(rows), maxTrainFalseFlag, catch, major, ff, contra)
	for i, n := range verdictFeatureNames {
		t.Logf("%-20s %+.3f", n, w[i])
	}
	t.Log(m.Note)
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("verdict.json", append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Training settings of the verdict model.
const (
	verdictLambda     = 1.0
	maxTrainFalseFlag = 0.06
)
