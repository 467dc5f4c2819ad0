package align

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/clinicaltext"
)

var flagTrainClaims = flag.Bool("trainclaims", false, "recount how often note words are said in their own consultation (train split of align/testdata/clinical) and rewrite claimterms.tsv")

// TestTrainClaimTerms counts, for every word of the clinicians' notes in the train
// consultations of the clinical corpus, how often the word (or a term it expands to) is said
// anywhere in that consultation. Words notes use without anyone saying them ("patient",
// "reports", "discussed") weigh little when the checker finds them absent; words that are
// nearly always said when written ("diabetes", "knee") weigh much.
//
//	go test ./align -run TestTrainClaimTerms -trainclaims
func TestTrainClaimTerms(t *testing.T) {
	if !*flagTrainClaims {
		t.Skip("run with -trainclaims to rewrite claimterms.tsv")
	}
	segs, _ := devSegments(t, "testdata/clinical/segments.jsonl")
	split := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(mustRead(t, "testdata/clinical/split.tsv")))
	for sc.Scan() {
		if f := strings.Split(sc.Text(), "\t"); len(f) == 3 && !strings.HasPrefix(f[0], "#") {
			split[f[0]] = f[2]
		}
	}
	sents := readJSONL[devSentence](t, "testdata/clinical/sentences.jsonl")
	type count struct{ n, found int }
	counts := map[string]*count{}
	idx := map[string]*Index{}
	for _, s := range sents {
		if split[s.EncounterID] != "train" {
			continue
		}
		x := idx[s.EncounterID]
		if x == nil {
			var err error
			if x, err = NewIndex(segs[s.EncounterID]); err != nil {
				t.Fatal(err)
			}
			idx[s.EncounterID] = x
		}
		r := read(s.Text, clinicaltext.Analyze(s.Text))
		for k := range r.facts {
			f := &r.facts[k]
			if f.expansion || f.phrase {
				continue
			}
			found := len(x.tr.mentions[f.term]) > 0 || x.bridged(f)
			for _, a := range alternatives(r.facts, k) {
				found = found || len(x.tr.mentions[r.facts[a].term]) > 0
			}
			key := f.term
			if isNum(key) {
				key = numberTerm // all numbers share one rate
			}
			c := counts[key]
			if c == nil {
				c = &count{}
				counts[key] = c
			}
			c.n++
			if found {
				c.found++
			}
		}
	}
	var terms []string
	for w, c := range counts {
		if c.n >= claimTermMinCount {
			terms = append(terms, w)
		}
	}
	slices.Sort(terms)
	var b strings.Builder
	fmt.Fprintf(&b, "# How often a word of the clinicians' notes is said in its own consultation: term, times\n")
	fmt.Fprintf(&b, "# written, times said. Counted by TestTrainClaimTerms (go test ./align -run TestTrainClaimTerms\n")
	fmt.Fprintf(&b, "# -trainclaims) over the train consultations of align/testdata/clinical (PriMock57 and\n")
	fmt.Fprintf(&b, "# ACI-BENCH, CC BY 4.0); words written fewer than %d times are left out.\n", claimTermMinCount)
	for _, w := range terms {
		fmt.Fprintf(&b, "%s\t%d\t%d\n", w, counts[w].n, counts[w].found)
	}
	if err := os.WriteFile("claimterms.tsv", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d terms written", len(terms))
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
