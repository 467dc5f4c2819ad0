package align

import (
	_ "embed"
	"strconv"
	"strings"

	"github.com/evidenceledger/evidence/clinicaltext"
)

//go:embed claimterms.tsv
var claimTermsTSV string

// claimTermMinCount is how often a word must be written in the training notes to get its own
// rate in claimterms.tsv.
const claimTermMinCount = 3

// termSaid holds, for words of clinicians' notes, how often they were said in their own
// consultation (see TestTrainClaimTerms).
var termSaid = parseClaimTerms(claimTermsTSV)

type saidRate struct{ n, found float64 }

func parseClaimTerms(src string) map[string]saidRate {
	out := map[string]saidRate{}
	for _, line := range strings.Split(src, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			panic("align: claimterms.tsv: bad line " + strconv.Quote(line))
		}
		n, err1 := strconv.Atoi(f[1])
		found, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || found > n {
			panic("align: claimterms.tsv: bad counts " + strconv.Quote(line))
		}
		out[f[0]] = saidRate{float64(n), float64(found)}
	}
	return out
}

// numberTerm stands for every number in claimterms.tsv: how often a number written in a note
// is said in the consultation.
const numberTerm = "<number>"

// saidPriorCount is the weight, in pseudo-counts, of the rate assumed for a word before its
// counts (saidPrior).
const saidPriorCount = 3

// saidPrior is the rate assumed for a word with no counts: the rarer the word in general
// English, the more specific it is, and the more likely a right note's use of it was said.
func saidPrior(term string) float64 {
	switch r := clinicaltext.WordRank(term); {
	case r == 0:
		return 0.9
	case r <= 2:
		return 0.3
	case r <= 10:
		return 0.5
	case r <= 30:
		return 0.7
	}
	return 0.8
}

// sayRate estimates how likely a word written in a note is to have been said in the
// consultation when the note is right: the share of its training uses that were, smoothed
// towards saidPrior.
func sayRate(term string) float64 {
	if isNum(term) {
		term = numberTerm
	}
	r := termSaid[term]
	return (r.found + saidPrior(term)*saidPriorCount) / (r.n + saidPriorCount)
}
