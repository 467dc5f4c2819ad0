package clinicaltext

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/blevesearch/snowballstem"
	"github.com/blevesearch/snowballstem/english"
)

// stopWords are English function words and conversational fillers. Negation cues are kept
// apart in negationCues and are flagged as both Stop and Negation.
var stopWords = setOf(`a about above after again against all also am an and any anybody anyone
anything are aren as at be because been before being below between both but by can could
did do does doing done down during each either else ever every few for from further get gets
getting got had has have having he her here hers herself him himself his how however i if in
into is it its itself just let lets may me might mine more most much must my myself of off on
once only or other our ours ourselves out over own per quite rather really same shall she
should since so some somebody someone something such than that the their theirs them
themselves then there these they this those though through thus to too under until up upon
us very was we were what whatever when where whether which while who whom whose why will with
would yet you your yours yourself yourselves
um umm uh uhm uhh er erm ehm hmm hm mm mmm mhm mm-hmm ah aha oh ooh eh huh yeah yep yes yup
okay ok alright right well like gonna gotta wanna kinda sorta actually basically literally
cos cause anyway anyways sure thing things stuff bit lot lots kind sort guess mean
im ive id ill youre youve youd theyre weve thats theres whats lets dont doesnt didnt isnt
s t d ll re ve m o`)

// negationCues flag negation. "n't" is produced by the contraction rule as "not".
var negationCues = setOf(`no not nil never none nothing without denies denied deny denying
negative neither nor nobody nowhere nope cannot absent`)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// IsStopWord reports whether the lower-case word w is a stop word or filler.
func IsStopWord(w string) bool { return stopWords[w] || negationCues[w] }

// IsNegationCue reports whether the lower-case word w is a negation cue.
func IsNegationCue(w string) bool { return negationCues[w] }

// Stem returns the normalized stem of a lower-case word: spelling variants from the lexicon
// (UK to US), the British "-our" ending as "-or", then the Snowball English stemmer.
func Stem(w string) string {
	if v, ok := stemCache.Load(w); ok {
		return v.(string)
	}
	st := stem(w)
	if stemCacheSize.Add(1) <= maxStemCache {
		stemCache.Store(w, st)
	}
	return st
}

// stemCache memoizes Stem; it stops growing at maxStemCache entries.
var (
	stemCache     sync.Map
	stemCacheSize atomic.Int64
)

const maxStemCache = 200_000

func stem(w string) string {
	if v, ok := lex.variant[w]; ok {
		w = v
	}
	if k := strings.Index(w, "our"); k >= 2 && !ourWords[w[:k+3]] {
		w = w[:k] + "or" + w[k+3:] // colour, favourite, behaviours
	}
	if !isASCIILetters(w) {
		return w
	}
	env := snowballstem.NewEnv(w)
	english.Stem(env)
	return env.Current()
}

// ourWords end in "our" but are not British spellings of "-or" words.
var ourWords = setOf(`detour devour flour scour hour pour tour contour your four amour velour
paramour sour dour glamour`)

func isASCIILetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return s != ""
}

// numberWords maps number words to their value and kind.
type numKind uint8

const (
	numUnit numKind = iota + 1 // 0-9
	numTeen                    // 10-19
	numTens                    // 20, 30, ... 90
	numHundred
	numThousand
)

var numberWords = map[string]struct {
	v    int
	kind numKind
}{
	"zero": {0, numUnit}, "one": {1, numUnit}, "two": {2, numUnit}, "three": {3, numUnit},
	"four": {4, numUnit}, "five": {5, numUnit}, "six": {6, numUnit}, "seven": {7, numUnit},
	"eight": {8, numUnit}, "nine": {9, numUnit}, "ten": {10, numTeen}, "eleven": {11, numTeen},
	"twelve": {12, numTeen}, "thirteen": {13, numTeen}, "fourteen": {14, numTeen},
	"fifteen": {15, numTeen}, "sixteen": {16, numTeen}, "seventeen": {17, numTeen},
	"eighteen": {18, numTeen}, "nineteen": {19, numTeen}, "twenty": {20, numTens},
	"thirty": {30, numTens}, "forty": {40, numTens}, "fourty": {40, numTens},
	"fifty": {50, numTens}, "sixty": {60, numTens}, "seventy": {70, numTens},
	"eighty": {80, numTens}, "ninety": {90, numTens}, "hundred": {100, numHundred},
	"thousand": {1000, numThousand},
}

// multiplicatives are words that mean "N times".
var multiplicatives = map[string]string{"once": "1", "twice": "2", "thrice": "3"}

// contractions maps the part before "n't" to its base word.
var contractions = map[string]string{"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}
