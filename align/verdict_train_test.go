package align

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
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
	// The model decides only sentences without conflicts (those are contradicted anyway), so
	// it learns from those.
	rowsOf := func(keep func(verifyExample) bool) []trainExample {
		var rows []trainExample
		for _, e := range ex {
			y := verdictTarget(e.label)
			if y < 0 || len(e.a.conflicts) > 0 || unsaid(&e.a.feat) || !keep(e) {
				continue
			}
			var r trainExample
			copy(r.feat[:], e.a.feat[:])
			r.label = y
			rows = append(rows, r)
		}
		return rows
	}
	rows := rowsOf(func(verifyExample) bool { return true })
	w := fitRaw(rows, numVerdictFeatures, verdictLambda)
	m := &verdictModel{Features: verdictFeatureNames[:], Weights: w}
	// The threshold is set on out-of-fold probabilities (three folds of train consultations),
	// which estimate what the model does on consultations it has not seen better than its
	// probabilities on its own training sentences do. Sentences with conflicts are flagged
	// whatever the model says; the threshold spends the rest of the false-flag budget.
	var probs []float64
	conflicted := 0
	for k := 0; k < verdictFolds; k++ {
		wk := fitRaw(rowsOf(func(e verifyExample) bool { return verdictFold(e) != k }), numVerdictFeatures, verdictLambda)
		mk := &verdictModel{Weights: wk}
		for _, e := range ex {
			if verdictFold(e) != k || e.label.Class != "original" || e.label.Verdict != "supported" {
				continue
			}
			if len(e.a.conflicts) > 0 || unsaid(&e.a.feat) {
				conflicted++ // flagged by rule
				continue
			}
			probs = append(probs, mk.prob(&e.a.feat))
		}
	}
	slices.Sort(probs)
	ff := maxTrainFalseFlag
	if v, err := strconv.ParseFloat(os.Getenv("VFF"), 64); err == nil {
		ff = v
	}
	budget := int(math.Floor(float64(len(probs)+conflicted)*ff)) - conflicted
	k := len(probs) - max(budget, 0)
	m.Threshold = math.Min(0.99, math.Max(0.01, probs[min(k, len(probs)-1)]+1e-6))
	catch, major, ff, contra := verdictMetrics(ex, m)
	m.Note = fmt.Sprintf("TestTrainVerdict: L2 logistic regression (lambda %g) on %d sentences of the train consultations of align/testdata/verify; threshold keeps out-of-fold train false flags <= %.2f. Train: catch %.3f, major %.3f, false_flag %.3f, contra %.3f.",
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

// verdictFold assigns a train sentence to one of verdictFolds folds by its consultation.
func verdictFold(e verifyExample) int {
	id := e.label.SentenceID
	enc := id[:strings.LastIndex(id, "-s")]
	h := 0
	for _, c := range enc {
		h = h*31 + int(c)
	}
	return (h%verdictFolds + verdictFolds) % verdictFolds
}

// Training settings of the verdict model.
const (
	verdictFolds      = 3
	verdictLambda     = 1.0
	maxTrainFalseFlag = 0.08
)

var flagVerdictCV = flag.Bool("verdictcv", false, "cross-validate verdict model choices on the train consultations (by consultation)")

// TestVerdictCV compares verdict learners by 3-fold cross-validation over the train
// consultations: catch at a threshold that keeps the training folds' false flags at
// maxTrainFalseFlag, and the false flags that threshold gives on the held-out fold.
func TestVerdictCV(t *testing.T) {
	if !*flagVerdictCV {
		t.Skip("run with -verdictcv")
	}
	ex := loadVerifyExamples(t, "train")
	fold := func(e verifyExample) int {
		id := e.label.SentenceID
		enc := id[:strings.LastIndex(id, "-s")]
		h := 0
		for _, c := range enc {
			h = h*31 + int(c)
		}
		return (h%3 + 3) % 3
	}
	type learner struct {
		name string
		fit  func([]trainExample) func(*[numFeatures]float64) float64
	}
	learners := []learner{
		{"lr1", func(rows []trainExample) func(*[numFeatures]float64) float64 {
			w := fitRaw(rows, numVerdictFeatures, 1)
			return func(f *[numFeatures]float64) float64 { return sigmoidDot(w, f[:numVerdictFeatures]) }
		}},
		{"lr10", func(rows []trainExample) func(*[numFeatures]float64) float64 {
			w := fitRaw(rows, numVerdictFeatures, 10)
			return func(f *[numFeatures]float64) float64 { return sigmoidDot(w, f[:numVerdictFeatures]) }
		}},
	}
	for _, nt := range []int{50, 150} {
		for _, d := range []int{2, 3} {
			nt, d := nt, d
			learners = append(learners, learner{fmt.Sprintf("gbt%d-d%d", nt, d), func(rows []trainExample) func(*[numFeatures]float64) float64 {
				base, trees := fitBoosted(rows, nt, d, 0.1)
				return func(f *[numFeatures]float64) float64 {
					s := base
					for _, tr := range trees {
						s += tr.eval(f)
					}
					return 1 / (1 + math.Exp(-s))
				}
			}})
		}
	}
	rowOf := func(e verifyExample) trainExample {
		var r trainExample
		copy(r.feat[:], e.a.feat[:])
		r.label = verdictTarget(e.label)
		return r
	}
	for _, l := range learners {
		var alt, caught, orig, ff float64
		for k := 0; k < 3; k++ {
			var rows []trainExample
			for _, e := range ex {
				if fold(e) != k && verdictTarget(e.label) >= 0 {
					rows = append(rows, rowOf(e))
				}
			}
			p := l.fit(rows)
			var op []float64
			for _, e := range ex {
				if fold(e) != k && e.label.Class == "original" && e.label.Verdict == "supported" {
					r := rowOf(e)
					op = append(op, p(&r.feat))
				}
			}
			slices.Sort(op)
			th := op[min(int(float64(len(op))*(1-maxTrainFalseFlag)), len(op)-1)] + 1e-9
			for _, e := range ex {
				if fold(e) != k {
					continue
				}
				r := rowOf(e)
				fl := p(&r.feat) >= th
				switch {
				case e.label.Class != "original":
					alt++
					if fl {
						caught++
					}
				case e.label.Verdict == "supported":
					orig++
					if fl {
						ff++
					}
				}
			}
		}
		t.Logf("%-10s catch %.3f false_flag %.3f", l.name, caught/alt, ff/orig)
	}
}

var (
	flagVerifyDev = flag.Bool("verifydev", false, "score the claim checker on align/testdata/verify, per part and split")
	flagVerifyOut = flag.String("verifyout", "", "with -verifydev: also write each part's sentences and labels per split here, for verdictscore")
)

// TestVerifyDevSet scores the checker on the dev set with verdictscore's definitions (catch,
// major, false_flag, contra), per dataset and split. With -verifyout it also writes
// <dir>/<part>-<split>-sentences.jsonl and -labels.jsonl for the official scorer.
//
//	go test ./align -run TestVerifyDevSet -verifydev -v
func TestVerifyDevSet(t *testing.T) {
	if !*flagVerifyDev {
		t.Skip("run with -verifydev")
	}
	for _, split := range []string{"train", "test"} {
		ex := loadVerifyExamples(t, split)
		byPart := map[string][]verifyExample{}
		for _, e := range ex {
			part := "aci-bench"
			if strings.HasPrefix(e.label.SentenceID, "day") {
				part = "primock57"
			}
			byPart[part] = append(byPart[part], e)
			byPart["all"] = append(byPart["all"], e)
		}
		for _, part := range []string{"primock57", "aci-bench", "all"} {
			c, m, ff, contra := verdictMetrics(byPart[part], defaultVerdictModel)
			t.Logf("%-5s %-9s catch=%.3f major=%.3f false_flag=%.3f contra=%.3f n=%d", split, part, c, m, ff, contra, len(byPart[part]))
		}
	}
	if *flagVerifyOut != "" {
		writeVerifyParts(t, *flagVerifyOut)
	}
}

// writeVerifyParts writes each part's lines of sentences.jsonl and labels.jsonl, per split.
func writeVerifyParts(t *testing.T, dir string) {
	splits := clinicalSplit(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, set := range verifySets {
		part := set[strings.LastIndex(set, "/")+1:]
		sents, err := os.ReadFile(set + "/sentences.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		labels, err := os.ReadFile(set + "/labels.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		splitOf := map[string]string{}
		out := map[string]*strings.Builder{}
		for _, line := range strings.Split(strings.TrimSpace(string(sents)), "\n") {
			var s devSentence
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatal(err)
			}
			sp := splits[s.EncounterID]
			splitOf[s.SentenceID] = sp
			key := part + "-" + sp + "-sentences.jsonl"
			if out[key] == nil {
				out[key] = &strings.Builder{}
			}
			out[key].WriteString(line + "\n")
		}
		for _, line := range strings.Split(strings.TrimSpace(string(labels)), "\n") {
			var l verifyLabel
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatal(err)
			}
			key := part + "-" + splitOf[l.SentenceID] + "-labels.jsonl"
			if out[key] == nil {
				out[key] = &strings.Builder{}
			}
			out[key].WriteString(line + "\n")
		}
		for name, b := range out {
			if err := os.WriteFile(dir+"/"+name, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
