package soapgen

import (
	"sort"
	"strings"
	"sync"
)

// term is one lexicon entry: a canonical clinical name and the everyday
// phrasings that patients and clinicians use for it.
type term struct {
	canon   string
	phrases []string
}

// lexicon finds the terms of a word list in token sequences. Phrases are
// written as plain lowercase words with two bits of syntax, expanded when
// the lexicon is built: "{a|b|}" is an alternation (an empty alternative
// makes the group optional), and a final word also matches its plural in
// "s" or "es".
type lexicon struct {
	terms   []term
	byFirst map[string][]phrase // first token -> phrases, longest first
}

type phrase struct {
	term int
	toks []string
}

// span is one match: term index and token range [start, end).
type span struct {
	term       int
	start, end int
}

func newLexicon(terms []term) *lexicon {
	l := &lexicon{terms: terms, byFirst: map[string][]phrase{}}
	for ti, t := range terms {
		for _, p := range t.phrases {
			for _, e := range expand(p) {
				toks := tokenize(e)
				if len(toks) == 0 {
					continue
				}
				l.byFirst[toks[0]] = append(l.byFirst[toks[0]], phrase{term: ti, toks: toks})
			}
		}
	}
	for k, ps := range l.byFirst {
		// Longest first so that "chest pain" wins over "chest"; ties keep
		// lexicon order, which is the documented priority.
		sort.SliceStable(ps, func(i, j int) bool { return len(ps[i].toks) > len(ps[j].toks) })
		l.byFirst[k] = ps
	}
	return l
}

// expand unfolds "{a|b}" alternations into every combination.
func expand(p string) []string {
	open := strings.IndexByte(p, '{')
	if open < 0 {
		return []string{strings.Join(strings.Fields(p), " ")}
	}
	end := strings.IndexByte(p[open:], '}')
	if end < 0 {
		return []string{p}
	}
	end += open
	var out []string
	for _, alt := range strings.Split(p[open+1:end], "|") {
		out = append(out, expand(p[:open]+alt+p[end+1:])...)
	}
	return out
}

// find returns the leftmost-longest, non-overlapping matches in toks.
func (l *lexicon) find(toks []string) []span {
	var out []span
	for i := 0; i < len(toks); {
		if sp, ok := l.matchAt(toks, i); ok {
			out = append(out, sp)
			i = sp.end
			continue
		}
		i++
	}
	return out
}

func (l *lexicon) matchAt(toks []string, i int) (span, bool) {
	for _, p := range l.byFirst[toks[i]] {
		if n, ok := matchPhrase(toks[i:], p.toks); ok {
			return span{term: p.term, start: i, end: i + n}, true
		}
	}
	return span{}, false
}

func matchPhrase(toks, p []string) (int, bool) {
	if len(toks) < len(p) {
		return 0, false
	}
	last := len(p) - 1
	for k := 0; k < last; k++ {
		if toks[k] != p[k] {
			return 0, false
		}
	}
	t, w := toks[last], p[last]
	return len(p), t == w || (len(w) > 2 && (t == w+"s" || t == w+"es" || t == w+"'s"))
}

// has reports whether any phrase of the lexicon occurs in toks.
func (l *lexicon) has(toks []string) bool {
	for i := range toks {
		if _, ok := l.matchAt(toks, i); ok {
			return true
		}
	}
	return false
}

// phraseToks caches the tokens of the literal phrases used in code, which
// are few and fixed; only tokenising them once matters for speed.
var phraseToks sync.Map // string -> []string

func tokensOf(phrase string) []string {
	if v, ok := phraseToks.Load(phrase); ok {
		return v.([]string)
	}
	p := tokenize(phrase)
	phraseToks.Store(phrase, p)
	return p
}

// containsSeq reports whether the words of phrase (tokenised) occur in toks
// contiguously, and where.
func containsSeq(toks []string, phrase string) (int, bool) {
	p := tokensOf(phrase)
	if len(p) == 0 {
		return 0, false
	}
	for i := 0; i+len(p) <= len(toks); i++ {
		if _, ok := matchPhrase(toks[i:], p); ok {
			return i, true
		}
	}
	return 0, false
}

// lastSeq is containsSeq's last occurrence.
func lastSeq(toks []string, phrase string) (int, bool) {
	p := tokensOf(phrase)
	for i := len(toks) - len(p); i >= 0 && len(p) > 0; i-- {
		if _, ok := matchPhrase(toks[i:], p); ok {
			return i, true
		}
	}
	return 0, false
}

// hasAny reports whether any of the phrases occurs in toks.
func hasAny(toks []string, phrases ...string) bool {
	for _, p := range phrases {
		if _, ok := containsSeq(toks, p); ok {
			return true
		}
	}
	return false
}

// cueSet is a set of phrases compiled once, for the many "does this
// utterance contain one of these cues" checks.
type cueSet struct{ lex *lexicon }

func newCues(phrases ...string) cueSet {
	return cueSet{lex: newLexicon([]term{{canon: "cue", phrases: phrases}})}
}

func (c cueSet) in(toks []string) bool { return c.lex.has(toks) }

// atEnd returns the index just after the first cue in toks.
func (c cueSet) atEnd(toks []string) (int, bool) {
	for i := range toks {
		if sp, ok := c.lex.matchAt(toks, i); ok {
			return sp.end, true
		}
	}
	return 0, false
}
