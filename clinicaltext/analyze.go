package clinicaltext

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Analyze returns the normalized terms of text in order of Start (terms derived from one
// word follow it and share its offsets). Stop words and negation cues are returned with their
// flags rather than dropped, so callers can decide; Terms gives the usual indexing view.
//
// Invariants, checked by FuzzTokens: every token has a non-empty Term and
// 0 <= Start < End <= len(text), and Start never decreases from one token to the next.
func Analyze(text string) []Token { return analyze(text, Tokenize(text), true) }

// AnalyzeTokens is Analyze for a text whose Tokenize result the caller already has (raw must
// be Tokenize(text)); it saves tokenizing twice.
func AnalyzeTokens(text string, raw []Token) []Token { return analyze(text, raw, true) }

// Terms returns the terms of Analyze that are neither stop words nor negation cues:
// the terms a bag-of-words index should hold.
func Terms(text string) []string {
	var out []string
	for _, t := range Analyze(text) {
		if t.Flags&Stop == 0 {
			out = append(out, t.Term)
		}
	}
	return out
}

type analyzer struct {
	abbrev bool
	out    []Token
	cur    Token // the surface token being analysed: offsets, Pos and flags
	first  bool  // the next emitted token is the first of cur
}

func analyze(text string, raw []Token, abbrev bool) []Token {
	a := analyzer{abbrev: abbrev, out: make([]Token, 0, len(raw)+len(raw)/4)}
	for i := 0; i < len(raw); {
		if n := a.numberGroup(raw[i:]); n > 0 {
			i += n
			continue
		}
		a.cur, a.first = raw[i], true
		a.surface(raw[i].Term, raw[i].Start)
		i++
	}
	return a.out
}

// emit appends a term at [start, end) of the current surface token.
func (a *analyzer) emit(term string, start, end int, f Flags) {
	if term == "" || start >= end {
		return
	}
	f |= a.cur.Flags & Question
	if a.first {
		f |= a.cur.Flags & ClauseStart
		a.first = false
	}
	a.out = append(a.out, Token{Term: term, Start: start, End: end, Pos: a.cur.Pos, Flags: f})
}

// surface analyses one surface token s that starts at byte off.
func (a *analyzer) surface(s string, off int) {
	end := off + len(s)
	if strings.Contains(s, "_") {
		parts := strings.Split(s, "_")
		acronym := true
		for _, p := range parts {
			if utf8.RuneCountInString(p) > 1 {
				acronym = false
			}
		}
		if acronym {
			a.emit(strings.ToLower(strings.Join(parts, "")), off, end, 0)
			return
		}
		a.split(s, off, "_", a.compound)
		return
	}
	a.compound(s, off)
}

// compound analyses a token that may contain "/" or "&".
func (a *analyzer) compound(s string, off int) {
	if !strings.ContainsAny(s, "/&") {
		a.part(s, off)
		return
	}
	end := off + len(s)
	if a.abbrev {
		if exp, ok := lex.abbreviation(s); ok {
			a.emit(strings.ToLower(s), off, end, 0)
			a.expand(exp, off, end)
			return
		}
	}
	if n, d, ok := strings.Cut(s, "/"); ok && isDigits(n) && !strings.Contains(d, "/") {
		if unit, ok := durationDenominators[d]; ok {
			if nv, err := strconv.Atoi(n); err == nil {
				if dv, _ := strconv.Atoi(d); nv <= dv {
					a.emit(canonicalNumber(n), off, off+len(n), Number)
					a.emit(unit, off+len(n), end, Expansion)
					return
				}
			}
		}
	}
	a.split(s, off, "/&", a.part)
}

// durationDenominators read "3/7" as 3 days, "2/52" as 2 weeks, "3/12" as 3 months and
// "6/24" as 6 hours (UK clinical shorthand).
var durationDenominators = map[string]string{"7": "day", "52": "week", "12": "month", "24": "hour"}

// split calls fn for each non-empty piece of s between characters of seps.
func (a *analyzer) split(s string, off int, seps string, fn func(string, int)) {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || strings.IndexByte(seps, s[i]) >= 0 {
			if i > start {
				fn(s[start:i], off+start)
			}
			start = i + 1
		}
	}
}

// part analyses a piece with no separators: a word, a number, or letters and digits mixed.
func (a *analyzer) part(s string, off int) {
	if strings.ContainsAny(s, "'\u2019") {
		a.apostrophe(s, off)
		return
	}
	// Runs of letters and of digits ("5mg", "x6", "3d", "6x").
	type run struct {
		s     string
		off   int
		digit bool
	}
	var runs []run
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		d := unicode.IsDigit(r) || r == '.'
		j := i + w
		for j < len(s) {
			r2, w2 := utf8.DecodeRuneInString(s[j:])
			if (unicode.IsDigit(r2) || r2 == '.') != d {
				break
			}
			j += w2
		}
		runs = append(runs, run{s[i:j], off + i, d})
		i = j
	}
	if len(runs) == 1 {
		if runs[0].digit {
			a.number(runs[0].s, off)
		} else {
			a.word(s, off)
		}
		return
	}
	for k, r := range runs {
		end := r.off + len(r.s)
		switch {
		case r.digit:
			a.number(r.s, r.off)
		case k > 0 && runs[k-1].digit && lex.unit[strings.ToLower(r.s)] != "":
			a.emit(Stem(lex.unit[strings.ToLower(r.s)]), r.off, end, 0)
		case k+1 < len(runs) && runs[k+1].digit && strings.EqualFold(r.s, "x"):
			a.emit("time", r.off, end, 0)
		default:
			a.word(r.s, r.off)
		}
	}
}

func (a *analyzer) number(s string, off int) {
	s = strings.Trim(s, ".")
	if s == "" {
		return
	}
	a.emit(canonicalNumber(s), off, off+len(s), Number)
}

// apostrophe handles contractions and possessives: "don't" -> "do" + "not",
// "can't" -> "can" + "not", "I've" -> "i", "patient's" -> "patient".
func (a *analyzer) apostrophe(s string, off int) {
	norm := strings.ReplaceAll(s, "\u2019", "'")
	lower := strings.ToLower(norm)
	if strings.HasSuffix(lower, "n't") && len(lower) > 3 {
		base := lower[:len(lower)-3]
		if b, ok := contractions[base]; ok {
			base = b
		}
		cut := len(s) - len("n't")
		if strings.HasSuffix(s, "n\u2019t") {
			cut = len(s) - len("n\u2019t")
		}
		a.wordAs(base, off, off+cut)
		a.emit("not", off+cut, off+len(s), Stop|Negation)
		return
	}
	i := strings.IndexByte(norm, '\'')
	switch lower[i+1:] {
	case "s", "re", "ve", "ll", "d", "m":
		a.word(s[:i], off)
	default:
		a.word(strings.ReplaceAll(norm, "'", ""), off)
	}
}

// word analyses a word made of letters (and possibly digits for abbreviations).
func (a *analyzer) word(w string, off int) { a.wordAs(w, off, off+len(w)) }

// wordAs analyses word w found at [off, end); w may differ from the text there
// ("can" for the "ca" of "can't").
func (a *analyzer) wordAs(w string, off, end int) {
	lower := strings.ToLower(w)
	if m, ok := multiplicatives[lower]; ok {
		a.emit(m, off, end, Number)
		a.emit("time", off, end, Expansion)
		return
	}
	if a.abbrev {
		if exp, ok := lex.abbreviation(w); ok {
			a.emit(lower, off, end, 0)
			a.expand(exp, off, end)
			return
		}
	}
	switch {
	case negationCues[lower]:
		a.emit(lower, off, end, Stop|Negation)
	case stopWords[lower]:
		a.emit(lower, off, end, Stop)
	default:
		st := Stem(lower)
		a.emit(st, off, end, 0)
		if c, ok := lex.syn[lower]; ok {
			if cs := Stem(c); cs != st {
				a.emit(cs, off, end, Expansion)
			}
		}
	}
}

// expand emits the analysed terms of an abbreviation's expansion at [off, end).
func (a *analyzer) expand(exp string, off, end int) {
	for _, t := range lex.expansionTerms(exp) {
		f := Expansion
		if negationCues[t] || t == "not" {
			f |= Negation | Stop
		}
		a.emit(t, off, end, f)
	}
}

// numberGroup consumes a run of number words at the start of raw ("twenty five", "one
// hundred and twenty", "six or seven" is two runs) and emits one Number token per number.
// It returns how many raw tokens it consumed, or 0 when raw[0] is not a number word.
func (a *analyzer) numberGroup(raw []Token) int {
	if _, ok := numberWords[strings.ToLower(raw[0].Term)]; !ok {
		return 0
	}
	var (
		active           bool
		total, small     int
		last             numKind
		startTok, endTok int
	)
	flush := func() {
		if active {
			a.cur, a.first = raw[startTok], true
			a.emit(strconv.Itoa(total+small), raw[startTok].Start, raw[endTok].End, Number)
		}
		active, total, small = false, 0, 0
	}
	begin := func(i, v int, k numKind) {
		flush()
		active, startTok, endTok, last = true, i, i, k
		if k == numThousand {
			total = v
		} else {
			small = v
		}
	}
	i := 0
	for ; i < len(raw); i++ {
		lw := strings.ToLower(raw[i].Term)
		if lw == "and" && active && (last == numHundred || last == numThousand) && i+1 < len(raw) {
			if nw, ok := numberWords[strings.ToLower(raw[i+1].Term)]; ok && nw.kind <= numTens {
				continue
			}
			break
		}
		nw, ok := numberWords[lw]
		if !ok || (i > 0 && raw[i].Flags&ClauseStart != 0) {
			break
		}
		afterBig := active && (last == numHundred || last == numThousand)
		switch nw.kind {
		case numUnit:
			if active && (afterBig || (last == numTens && small%10 == 0)) {
				small += nw.v
			} else {
				begin(i, nw.v, nw.kind)
			}
		case numTeen, numTens:
			if afterBig && small%100 == 0 {
				small += nw.v
			} else {
				begin(i, nw.v, nw.kind)
			}
		case numHundred:
			if active && small > 0 && small < 100 {
				small *= 100
			} else {
				begin(i, 100, nw.kind)
			}
		case numThousand:
			if active && last != numThousand {
				total = (total + max(small, 1)) * 1000
				small = 0
			} else {
				begin(i, 1000, nw.kind)
			}
		}
		last, endTok = nw.kind, i
	}
	flush()
	return i
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalNumber strips leading zeros of the integer part and trailing zeros of a
// fraction: "007" -> "7", "37.50" -> "37.5", "2.0" -> "2".
func canonicalNumber(s string) string {
	intPart, frac, hasFrac := strings.Cut(s, ".")
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	if hasFrac {
		frac = strings.TrimRight(frac, "0")
		frac = strings.ReplaceAll(frac, ".", "")
		if frac != "" {
			return intPart + "." + frac
		}
	}
	return intPart
}
