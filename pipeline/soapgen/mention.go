package soapgen

// A mention is one occurrence of a lexicon term in an utterance, with the
// NegEx-style status of its context.
type mention struct {
	canon      string
	start, end int // token range in the utterance
	status     status
	side       string // "left" or "right" for lateralised site pains
}

// status is what the words before a mention say about it.
type status uint8

const (
	asserted status = iota
	negated         // "no fever", "I haven't had a fever"
	hedged          // "not sure if I had a fever", "haven't measured my temperature", "stopped vomiting"
)

// negationCues turn the following term into a denial.
var negationCues = map[string]bool{
	"no": true, "not": true, "never": true, "without": true, "denies": true, "deny": true, "denied": true,
	"none": true, "nor": true, "neither": true, "haven't": true, "hasn't": true, "hadn't": true,
	"don't": true, "doesn't": true, "didn't": true, "isn't": true, "wasn't": true, "aren't": true,
	"weren't": true, "won't": true, "wouldn't": true, "nothing": true, "nil": true, "negative": true,
}

// hedgeCues make a mention unusable as evidence either way: uncertainty,
// worry, measurement talk ("I haven't taken my temperature" says nothing
// about fever) and resolution ("I've stopped vomiting").
var hedgeCues = map[string]bool{
	"sure": true, "know": true, "unsure": true, "maybe": true, "might": true, "wonder": true,
	"wondering": true, "whether": true, "if": true, "measure": true, "measured": true, "measuring": true,
	"thermometer": true, "check": true, "checked": true, "taken": true, "take": true, "worried": true,
	"worry": true, "afraid": true, "scared": true, "concerned": true, "stopped": true, "longer": true,
	"resolved": true, "gone": true, "prevent": true, "avoid": true, "risk": true,
}

// uncertaintyCues are the hedges that apply to every kind of term; the
// measurement and treatment words of hedgeCues would wrongly hedge "I take
// metformin".
var uncertaintyCues = map[string]bool{
	"sure": true, "know": true, "unsure": true, "maybe": true, "might": true, "wonder": true,
	"wondering": true, "whether": true, "if": true, "stopped": true, "longer": true, "worried": true,
}

// scopeStops end the reach of a cue: a new clause, or "apart from",
// "other than" and friends, which introduce the exception.
var scopeStops = map[string]bool{
	".": true, "?": true, "!": true, ";": true, ":": true, "but": true, "although": true, "though": true,
	"however": true, "except": true, "apart": true, "besides": true, "other": true, "whereas": true,
	"yet": true, "only": true, "just": true, "because": true, "cause": true, "since": true,
	"when": true, "which": true, "then": true, "now": true, "yeah": true, "yes": true,
}

// negWindow is how many words back a cue can reach.
const negWindow = 6

// contextStatus walks back from a term starting at start, up to negWindow
// words, as NegEx does: commas do not end the scope ("it hasn't been
// burning, or hurting when I pee"), but an answer word set off by a comma
// does not reach past it ("No, I've got a cough" asserts the cough).
func contextStatus(toks []string, start int, starts map[int]bool, hedges map[string]bool) status {
	words := 0
	for i := start - 1; i >= 0 && words < negWindow; i-- {
		t := toks[i]
		switch {
		case t == ",":
			continue
		case (t == "know" || t == "mean") && i > 0 && (toks[i-1] == "you" || toks[i-1] == "i"):
			i-- // "you know", "I mean": fillers, not doubt
			continue
		case interjection(toks, i):
			return asserted
		case scopeStops[t]:
			return asserted
		case hedges[t]:
			return hedged
		case negationCues[t]:
			if i+1 < start && (toks[i+1] == "doubt" || toks[i+1] == "only") {
				return asserted
			}
			return negated
		}
		words++
	}
	return asserted
}

// interjection reports a standalone answer word ("No," "Nope,") at i, which
// answers the question rather than negating what follows.
func interjection(toks []string, i int) bool {
	t := toks[i]
	if t != "no" && t != "nope" && t != "nah" && t != "not" {
		return false
	}
	return i+1 < len(toks) && toks[i+1] == "," && (i == 0 || isPunct(toks[i-1]) || discourse[toks[i-1]])
}

// findMentions returns the mentions of lex's terms in toks with their
// status, judged with the given hedge cues.
func findMentions(lex *lexicon, toks []string, hedges map[string]bool) []mention {
	spans := lex.find(toks)
	starts := make(map[int]bool, len(spans))
	for _, sp := range spans {
		starts[sp.start] = true
	}
	out := make([]mention, 0, len(spans))
	for _, sp := range spans {
		out = append(out, mention{
			canon:  lex.terms[sp.term].canon,
			start:  sp.start,
			end:    sp.end,
			status: contextStatus(toks, sp.start, starts, hedges),
		})
	}
	return out
}

// symptomMentions finds symptoms, including pains named by a body site
// next to a pain word ("pain in my lower stomach" is lower abdominal pain,
// "my knee hurts" is knee pain).
func symptomMentions(toks []string) []mention {
	ms := findMentions(symptomLex, toks, hedgeCues)
	covered := make([]bool, len(toks))
	starts := map[int]bool{}
	for _, m := range ms {
		for k := m.start; k < m.end; k++ {
			covered[k] = true
		}
		starts[m.start] = true
	}
	for _, sp := range siteLex.find(toks) {
		if covered[sp.start] {
			continue
		}
		p, ok := painNear(toks, sp, covered)
		if !ok {
			continue
		}
		from := min(p, sp.start)
		canon := siteLex.terms[sp.term].canon
		if canon != "headache" && canon != "sore throat" && canon != "painful urination" {
			canon += " pain"
		}
		ms = append(ms, mention{canon: canon, start: from, end: max(p+1, sp.end),
			status: contextStatus(toks, from, starts, hedgeCues), side: sideOf(toks, sp.start)})
	}
	sortMentions(ms)
	refineSites(ms, toks)
	return ms
}

// refineSites makes general mentions specific when the utterance names
// where: "pain in my tummy, the lower part of my tummy" is lower abdominal
// pain; "swelling" with "ankles" is ankle swelling.
func refineSites(ms []mention, toks []string) {
	var sites []string
	for _, sp := range siteLex.find(toks) {
		sites = append(sites, siteLex.terms[sp.term].canon)
	}
	for i := range ms {
		switch ms[i].canon {
		case "abdominal pain":
			for _, s := range sites {
				if s == "lower abdominal" || s == "upper abdominal" || s == "suprapubic" {
					ms[i].canon = s + " pain"
					break
				}
			}
		case "swelling":
			for _, s := range sites {
				if swellingSites[s] != "" {
					ms[i].canon = swellingSites[s]
					break
				}
			}
		}
	}
}

var swellingSites = map[string]string{"ankle": "ankle swelling", "leg": "leg swelling", "foot": "ankle swelling",
	"knee": "knee swelling", "elbow": "elbow swelling", "hand": "hand swelling", "wrist": "wrist swelling",
	"eye": "eye swelling", "neck": "neck swelling", "arm": "arm swelling", "shoulder": "shoulder swelling",
	"lip": "lip swelling"}

// siteBridge are the words that may stand between a pain word and its
// site: "pain on the left side of my head", "my knee is really sore".
var siteBridge = map[string]bool{
	"in": true, "on": true, "the": true, "my": true, "your": true, "of": true, "left": true, "right": true,
	"side": true, "hand": true, "a": true, "bit": true, "at": true, "around": true, "across": true, "over": true,
	"just": true, "to": true, "one": true, "lower": true, "upper": true, "front": true, "top": true, "bottom": true,
	",": true, "is": true, "was": true, "has": true, "been": true, "really": true, "very": true, "quite": true,
	"it's": true, "feels": true, "little": true, "some": true, "and": true, "down": true, "back": true, "part": true,
	"this": true, "horrible": true, "bad": true, "sharp": true, "dull": true, "severe": true, "mild": true,
	"when": true, "i": true, "you": true, "kind": true, "sort": true, "like": true, "use": true,
}

// painNear finds an uncovered pain word before or after a site, with only
// bridging words between them.
func painNear(toks []string, sp span, covered []bool) (int, bool) {
	for k, n := sp.start-1, 0; k >= 0 && n < 8; k, n = k-1, n+1 {
		if painWords[toks[k]] && !covered[k] {
			return k, true
		}
		if !siteBridge[toks[k]] {
			break
		}
	}
	for k, n := sp.end, 0; k < len(toks) && n < 5; k, n = k+1, n+1 {
		if painWords[toks[k]] && !covered[k] {
			return k, true
		}
		if !siteBridge[toks[k]] {
			break
		}
	}
	return 0, false
}

// sideOf finds "left" or "right" just before a site ("right knee") or in
// an "on the left side" phrase near it, within the clause.
func sideOf(toks []string, site int) string {
	for k := site - 1; k >= 0 && k >= site-3 && !isPunct(toks[k]); k-- {
		if toks[k] == "left" || toks[k] == "right" {
			return toks[k]
		}
	}
	return sideWord(toks[max(0, site-8):min(len(toks), site+8)])
}

// sideWord finds "left side", "right-hand side" or "left <site>".
func sideWord(toks []string) string {
	for k := 0; k+1 < len(toks); k++ {
		if toks[k] != "left" && toks[k] != "right" {
			continue
		}
		if toks[k+1] == "side" || toks[k+1] == "hand" || toks[k+1] == "sided" {
			return toks[k]
		}
		if _, ok := siteLex.matchAt(toks, k+1); ok {
			return toks[k]
		}
	}
	return ""
}

func sortMentions(ms []mention) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].start < ms[j-1].start; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}
