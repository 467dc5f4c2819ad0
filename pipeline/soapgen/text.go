package soapgen

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// markupRE matches transcriber tags such as <UNSURE>, </UNSURE>, <UNIN/> and
// <INAUDIBLE_SPEECH/>. Only tag-shaped text is removed, so a literal "< 5"
// survives. The words inside <UNSURE> are kept: the transcriber's doubt is
// no reason to drop what the patient probably said.
var markupRE = regexp.MustCompile(`</?[A-Za-z][A-Za-z_]*\s*/?>`)

// replacer normalises typography and the tokenisation of ACI-BENCH style
// transcripts ("do n't", "gon na") so that one set of patterns serves both.
var replacer = strings.NewReplacer(
	"\u2019", "'", "\u2018", "'", "\u201c", `"`, "\u201d", `"`,
	"\u2026", ", ", "...", ", ", "--", ", ", "\t", " ", "\n", " ", "\r", " ",
)

var (
	splitContraction = regexp.MustCompile(`(?i)\s+(n't|'s|'ve|'re|'ll|'m|'d)\b`)
	splitGonna       = regexp.MustCompile(`(?i)\b(gon|wan) na\b`)
)

// fillers are hesitation sounds that carry no content. "mm-hmm" and
// "uh-huh" are not fillers: as answers they mean yes.
var fillers = map[string]bool{
	"um": true, "umm": true, "uhm": true, "uh": true, "uhh": true, "er": true, "erm": true,
	"ah": true, "ahh": true, "hmm": true, "hm": true, "mmm": true, "eh": true,
}

// cleanText strips markup, hesitations and stutters from one segment's text
// and returns display text with tidy spacing and punctuation.
func cleanText(s string) string {
	s = validUTF8(s)
	if strings.IndexByte(s, '<') >= 0 {
		s = markupRE.ReplaceAllString(s, " ")
	}
	s = replacer.Replace(s)
	if strings.Contains(s, " '") || strings.Contains(s, " n'") || strings.Contains(s, " N'") {
		s = splitContraction.ReplaceAllString(s, "$1")
	}
	if strings.Contains(s, " na") {
		s = splitGonna.ReplaceAllString(s, "${1}na")
	}
	words := dropStutters(dropFillers(strings.Fields(s)))
	s = tidyPunctuation(strings.Join(words, " "))
	for range 2 { // adjacent fillers share a comma
		s = hedgeWords.ReplaceAllString(s, ",")
	}
	return tidyPunctuation(s)
}

// hedgeWords are discourse fillers set off by commas ("some pain in my,
// like, lower stomach"); between commas they never carry content.
var hedgeWords = regexp.MustCompile(`(?i),\s*(?:like|you know|y'know|i mean|sort of|kind of|basically|actually|literally)\s*,`)

// wordCore is a word without surrounding punctuation, lowercased.
func wordCore(w string) string {
	return strings.ToLower(strings.TrimFunc(w, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	}))
}

// dropFillers removes hesitation words but keeps sentence-final punctuation
// they carried, so "how um. Good" still ends a sentence after "how".
func dropFillers(words []string) []string {
	out := words[:0:0]
	for _, w := range words {
		if !fillers[wordCore(w)] {
			out = append(out, w)
			continue
		}
		if end := strings.TrimLeft(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,"); strings.ContainsAny(end, ".?!") && len(out) > 0 {
			out[len(out)-1] = strings.TrimRight(out[len(out)-1], ",;:") + end[:1]
		}
	}
	return out
}

// dropStutters removes immediate repetitions of one to three words ("I I",
// "it's, it's, it's", "a wee bit, a wee bit"), keeping the last copy, which
// is the one that continues the sentence.
func dropStutters(words []string) []string {
	for n := 3; n >= 1; n-- {
		words = dropRepeats(words, n)
	}
	return words
}

func dropRepeats(words []string, n int) []string {
	out := make([]string, 0, len(words))
	for i := 0; i < len(words); i++ {
		if i+2*n <= len(words) && sameWords(words[i:i+n], words[i+n:i+2*n]) && !endsSentence(words[i+n-1]) {
			continue
		}
		out = append(out, words[i])
	}
	return out
}

func sameWords(a, b []string) bool {
	for i := range a {
		ca := wordCore(a[i])
		if ca == "" || ca != wordCore(b[i]) || isDigits(ca) {
			return false
		}
	}
	return true
}

func endsSentence(w string) bool { return strings.ContainsAny(w[len(w)-1:], ".?!") }

// tidyPunctuation repairs what removing words leaves behind: no space
// before punctuation, one mark where several meet (a full stop beats a
// comma), no punctuation at the start, single spaces.
func tidyPunctuation(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	var last byte // last byte written, 0 at the start
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = last != 0
		case c == ',' || c == ';' || c == ':':
			space = false
			if last == 0 || isMark(last) {
				continue // leading, or after another mark
			}
			b.WriteByte(c)
			last = c
		case c == '.' || c == '?' || c == '!':
			space = false
			if last == 0 {
				continue
			}
			if last == ',' || last == ';' || last == ':' {
				str := b.String()
				b.Reset()
				b.WriteString(str[:len(str)-1]) // "word, ." is "word."
			}
			b.WriteByte(c)
			last = c
		default:
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteByte(c)
			last = c
		}
	}
	return strings.TrimRight(b.String(), ",;: ")
}

func isMark(c byte) bool { return strings.IndexByte(",;:.?!", c) >= 0 }

// splitSentences splits display text after '.', '?' or '!' followed by a
// space, so decimals ("38.5") and times stay whole.
func splitSentences(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(".?!", rune(s[i])) {
			continue
		}
		j := i
		for j+1 < len(s) && strings.ContainsRune(".?!", rune(s[j+1])) {
			j++
		}
		if j+1 == len(s) || s[j+1] == ' ' {
			if t := strings.TrimSpace(s[start : j+1]); hasWord(t) {
				out = append(out, t)
			}
			start = j + 1
		}
		i = j
	}
	if t := strings.TrimSpace(s[start:]); hasWord(t) {
		out = append(out, t)
	}
	return out
}

func hasWord(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0
}

// tokenize lowercases s and splits it into word tokens and the punctuation
// tokens that matter for scope: "," ";" ":" "." "?" "!". Apostrophes stay
// inside words ("don't", "i've"); hyphens split words ("light-headed" is
// "light headed"); "38.5" and "130/80" stay whole.
func tokenize(s string) []string {
	var toks []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			toks = append(toks, strings.Trim(b.String(), "'"))
			b.Reset()
		}
	}
	rs := []rune(strings.ToLower(s))
	for i, r := range rs {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		case r == '\'' && b.Len() > 0:
			b.WriteRune(r)
		case (r == '.' || r == '/') && b.Len() > 0 && i+1 < len(rs) && unicode.IsDigit(rs[i+1]) && unicode.IsDigit(rs[i-1]):
			b.WriteRune(r)
		case r == '&' && b.Len() > 0 && i+1 < len(rs) && unicode.IsLetter(rs[i+1]):
			b.WriteRune(r) // "a&e"
		case strings.ContainsRune(",;:.?!", r):
			flush()
			toks = append(toks, string(r))
		default:
			flush()
		}
	}
	flush()
	return dropEmpty(toks)
}

func dropEmpty(toks []string) []string {
	out := toks[:0]
	for _, t := range toks {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

func isPunct(t string) bool { return len(t) == 1 && strings.ContainsRune(",;:.?!", rune(t[0])) }

func isDigits(s string) bool {
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return s != ""
}

var units = map[string]int{
	"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
	"eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
	"fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}

var tens = map[string]int{
	"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}

// parseNumber reads a number at toks[i]: digits ("38.5"), or words ("six",
// "twenty four", "a hundred and twenty", "thirty eight point five"). It
// returns the number as a canonical decimal string and how many tokens it
// used, or n == 0 when there is no number at i.
func parseNumber(toks []string, i int) (num string, n int) {
	if i >= len(toks) {
		return "", 0
	}
	if t := toks[i]; isNumeric(t) {
		return t, 1
	}
	v, n := parseWordInt(toks, i)
	if n == 0 {
		return "", 0
	}
	num = strconv.Itoa(v)
	if i+n+1 < len(toks) && toks[i+n] == "point" {
		if d, ok := units[toks[i+n+1]]; ok && d < 10 {
			return num + "." + strconv.Itoa(d), n + 2
		}
	}
	return num, n
}

func isNumeric(t string) bool {
	if t == "" || !unicode.IsDigit(rune(t[0])) {
		return false
	}
	_, err := strconv.ParseFloat(t, 64)
	return err == nil
}

// parseWordInt reads an integer written in words, up to the hundreds.
func parseWordInt(toks []string, i int) (v, n int) {
	at := func(k int) string {
		if i+k < len(toks) {
			return toks[i+k]
		}
		return ""
	}
	if (at(0) == "a" || at(0) == "one") && at(1) == "hundred" {
		v, n = 100, 2
		if at(n) == "and" {
			if w, m := parseTens(toks, i+n+1); m > 0 {
				return v + w, n + 1 + m
			}
		}
		if w, m := parseTens(toks, i+n); m > 0 {
			return v + w, n + m
		}
		return v, n
	}
	if w, m := parseTens(toks, i); m > 0 {
		if at(m) == "hundred" {
			v, n = w*100, m+1
			if at(n) == "and" {
				n++
			}
			if w2, m2 := parseTens(toks, i+n); m2 > 0 {
				return v + w2, n + m2
			}
			return v, n
		}
		return w, m
	}
	return 0, 0
}

func parseTens(toks []string, i int) (v, n int) {
	if i >= len(toks) {
		return 0, 0
	}
	if t, ok := tens[toks[i]]; ok {
		if i+1 < len(toks) {
			if u, ok := units[toks[i+1]]; ok && u > 0 && u < 10 {
				return t + u, 2
			}
		}
		return t, 1
	}
	if u, ok := units[toks[i]]; ok {
		return u, 1
	}
	return 0, 0
}

// capitalize upper-cases the first letter, for sentence starts.
func capitalize(s string) string {
	for i, r := range s {
		if unicode.IsLetter(r) {
			return s[:i] + string(unicode.ToUpper(r)) + s[i+len(string(r)):]
		}
	}
	return s
}

// sentence finishes a rendered sentence: capitalised, one final full stop.
func sentence(s string) string {
	s = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(s), ",;:."))
	if s == "" {
		return ""
	}
	return capitalize(s) + "."
}

// joinList joins items as "a", "a and b", "a, b and c".
func joinList(items []string, conj string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}
