package clinicaltext

import (
	"unicode"
	"unicode/utf8"
)

// Token is one term of a text with its place in that text.
type Token struct {
	// Term is the surface text for Tokenize and the normalized term for Analyze.
	Term string
	// Start and End are byte offsets into the analysed string, half-open: 0 <= Start < End <= len.
	Start, End int
	// Pos numbers the surface words from 0. Terms derived from one word share its Pos.
	Pos int
	// Flags describe the term.
	Flags Flags
}

// Flags describe a token.
type Flags uint8

const (
	// Stop marks a stop word or a conversational filler ("the", "um", "yeah").
	Stop Flags = 1 << iota
	// Negation marks a negation cue ("no", "not", "n't", "denies", "nil", "never", "without",
	// "negative"). Negation cues are also marked Stop.
	Negation
	// Number marks a number in canonical digits ("25", "0.5").
	Number
	// Expansion marks a term synthesized from a word: an abbreviation expansion, a unit,
	// a synonym or the "time" of "twice". It carries the offsets of that word.
	Expansion
	// ClauseStart marks the first token of the text and the first after ". ! ? ; :".
	ClauseStart
	// Question marks tokens of a clause that ends with "?".
	Question
)

// Tokenize splits text into surface word tokens, in order and without overlap
// (tokens[i].End <= tokens[i+1].Start), with Term == text[Start:End].
//
// A word is a run of letters and digits. These join a run when they sit between suitable
// characters: "'" between letters ("don't"), "." between digits ("37.5"), "/" and "&"
// between letters or digits ("3/7", "c/o", "N&V"), and "_" after a letter ("L_C_D_", the
// AMI spelling of spoken letters). Transcript markup tags — "<" optional "/" letters or "_"
// optional "/" ">" — are skipped; the words between an opening and a closing tag are kept.
func Tokenize(text string) []Token {
	var toks []Token
	clause := true
	questionFrom := 0 // index of the first token of the current clause
	pos := 0
	for i := 0; i < len(text); {
		if text[i] == '<' {
			if n := markupLen(text[i:]); n > 0 {
				if text[i+n-2] == '/' {
					clause = true // <UNIN/>, <INAUDIBLE_SPEECH/>: a gap in the speech
					questionFrom = len(toks)
				}
				i += n
				continue
			}
		}
		r, w := utf8.DecodeRuneInString(text[i:])
		if isAlnum(r) {
			j := scanWord(text, i)
			t := Token{Term: text[i:j], Start: i, End: j, Pos: pos}
			if clause {
				t.Flags |= ClauseStart
				clause = false
			}
			toks = append(toks, t)
			pos++
			i = j
			continue
		}
		switch r {
		case '?':
			for k := questionFrom; k < len(toks); k++ {
				toks[k].Flags |= Question
			}
			fallthrough
		case '.', '!', ';', ':':
			clause = true
			questionFrom = len(toks)
		}
		i += w
	}
	return toks
}

// markupLen returns the length of a transcript markup tag at the start of s, or 0.
func markupLen(s string) int {
	i := 1
	if i < len(s) && s[i] == '/' {
		i++
	}
	start := i
	for i < len(s) && i-start <= 40 && (s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')) {
		i++
	}
	if i == start {
		return 0
	}
	if i < len(s) && s[i] == '/' {
		i++
	}
	if i < len(s) && s[i] == '>' {
		return i + 1
	}
	return 0
}

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// scanWord returns the end of the word that starts at i (text[i] begins a letter or digit).
func scanWord(text string, i int) int {
	prev, w := utf8.DecodeRuneInString(text[i:])
	j := i + w
	for j < len(text) {
		r, w := utf8.DecodeRuneInString(text[j:])
		if isAlnum(r) {
			prev = r
			j += w
			continue
		}
		next, nw := utf8.DecodeRuneInString(text[j+w:])
		if j+w >= len(text) {
			next, nw = utf8.RuneError, 0
		}
		_ = nw
		ok := false
		switch r {
		case '\'', '\u2019':
			ok = unicode.IsLetter(prev) && unicode.IsLetter(next)
		case '.':
			ok = unicode.IsDigit(prev) && unicode.IsDigit(next)
		case '/', '&':
			ok = isAlnum(prev) && isAlnum(next)
		case '_':
			ok = unicode.IsLetter(prev)
		}
		if !ok {
			break
		}
		prev = r
		j += w
	}
	return j
}
