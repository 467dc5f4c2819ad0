package clinicaltext

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode"
)

//go:embed lexicon.tsv
var lexiconTSV string

// lexicon holds the parsed tables of lexicon.tsv. Expansion values are analysed lazily,
// because analysing them needs the tables themselves.
type lexicon struct {
	abbrExact map[string]string // key as written -> expansion text
	abbrUpper map[string]string // upper-cased key (keys with an upper-case letter) -> expansion
	abbrLower map[string]string // all-lower-case keys -> expansion
	syn       map[string]string // lower-case word -> canonical word
	unit      map[string]string // lower-case unit -> canonical word
	variant   map[string]string // lower-case spelling -> replacement

	once     sync.Once
	expanded map[string][]string // expansion text -> analysed, non-stop terms
}

var lex = mustParseLexicon(lexiconTSV)

func mustParseLexicon(src string) *lexicon {
	l, err := parseLexicon(src)
	if err != nil {
		panic("clinicaltext: " + err.Error())
	}
	return l
}

// parseLexicon parses the lexicon format described in lexicon.tsv's header.
func parseLexicon(src string) (*lexicon, error) {
	l := &lexicon{
		abbrExact: map[string]string{},
		abbrUpper: map[string]string{},
		abbrLower: map[string]string{},
		syn:       map[string]string{},
		unit:      map[string]string{},
		variant:   map[string]string{},
	}
	seen := map[string]int{}
	for n, line := range strings.Split(src, "\n") {
		ln := n + 1
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("lexicon.tsv:%d: want 3 or 4 tab-separated fields, got %d", ln, len(f))
		}
		kind, key, val := f[0], f[1], strings.TrimSpace(f[2])
		if key == "" || val == "" || strings.ContainsAny(key, " ") {
			return nil, fmt.Errorf("lexicon.tsv:%d: empty field or space in key", ln)
		}
		if prev, dup := seen[kind+"\x00"+key]; dup {
			return nil, fmt.Errorf("lexicon.tsv:%d: duplicate %s %q (first on line %d)", ln, kind, key, prev)
		}
		seen[kind+"\x00"+key] = ln
		switch kind {
		case "abbr":
			l.abbrExact[key] = val
			if hasUpper(key) {
				l.abbrUpper[strings.ToUpper(key)] = val
			} else {
				l.abbrLower[key] = val
			}
		case "syn":
			l.syn[strings.ToLower(key)] = val
		case "unit":
			l.unit[strings.ToLower(key)] = val
		case "variant":
			l.variant[strings.ToLower(key)] = val
		default:
			return nil, fmt.Errorf("lexicon.tsv:%d: unknown kind %q", ln, kind)
		}
	}
	return l, nil
}

func hasUpper(s string) bool {
	for _, r := range s {
		if unicode.IsUpper(r) {
			return true
		}
	}
	return false
}

func hasLower(s string) bool {
	for _, r := range s {
		if unicode.IsLower(r) {
			return true
		}
	}
	return false
}

// abbreviation returns the expansion text of surface word w, following the case rule of
// lexicon.tsv: exact spelling first, then the all-caps form of a key with capitals, then
// any spelling of an all-lower-case key.
func (l *lexicon) abbreviation(w string) (string, bool) {
	if v, ok := l.abbrExact[w]; ok {
		return v, true
	}
	if !hasLower(w) {
		if v, ok := l.abbrUpper[w]; ok {
			return v, true
		}
	}
	// Title case of an all-caps key ("Fh" for "FH"), unless it is a common word or name.
	if n := len(w); n >= 2 && n <= 5 && isTitle(w) && !titleBlock[w] {
		if v, ok := l.abbrUpper[strings.ToUpper(w)]; ok {
			return v, true
		}
	}
	v, ok := l.abbrLower[strings.ToLower(w)]
	return v, ok
}

// expansionTerms returns the analysed terms of an expansion text.
func (l *lexicon) expansionTerms(val string) []string {
	l.once.Do(func() {
		l.expanded = map[string][]string{}
		add := func(v string) {
			if _, ok := l.expanded[v]; ok {
				return
			}
			var terms []string
			seen := map[string]bool{}
			for _, t := range analyze(v, Tokenize(v), false) {
				if (t.Flags&Stop == 0 || t.Flags&Negation != 0) && !seen[t.Term] {
					seen[t.Term] = true
					terms = append(terms, t.Term)
				}
			}
			l.expanded[v] = terms
		}
		for _, v := range l.abbrExact {
			add(v)
		}
	})
	return l.expanded[val]
}

// AbbreviationCount reports how many abbreviation keys the embedded lexicon holds.
func AbbreviationCount() int { return len(lex.abbrExact) }

// Expand returns the expansion text of an abbreviation as the lexicon spells it, following the
// lexicon's case rule ("SOB" expands, "sob" does not). It reports false for unknown words.
func Expand(abbrev string) (string, bool) { return lex.abbreviation(abbrev) }

// isTitle reports whether w is an upper-case ASCII letter followed by lower-case ASCII letters.
func isTitle(w string) bool {
	if w[0] < 'A' || w[0] > 'Z' {
		return false
	}
	for i := 1; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			return false
		}
	}
	return true
}

// titleBlock lists title-case words that are words or names, not abbreviations.
var titleBlock = map[string]bool{
	"Ed": true, "Er": true, "Ha": true, "Ms": true, "Mo": true, "Pe": true, "Am": true,
	"Pm": true, "Ra": true, "Ca": true, "Uc": true, "Sp": true, "Bo": true, "Ace": true,
	"Ice": true, "Loc": true, "Low": true, "Echo": true, "Post": true, "Pop": true, "Rom": true,
	"Hiv": true, "Imp": true, "Asap": true, "Stat": true, "Dose": true, "Mane": true, "Sob": true,
	"Cad": true, "Gad": true, "Sad": true, "Ml": true, "Ct": true, "Us": true, "Ot": true,
}
