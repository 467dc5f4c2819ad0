package soapgen

import "strings"

// Assessment: the clinician's stated impression. A diagnosis from the
// condition lexicon said by the clinician next to an impression cue becomes
// one sentence, worded by the strength of the cue.

var likelyCues = newCues("i think", "likely", "most likely", "probably", "sounds like", "seems like", "looks like",
	"sound like", "sounds quite like", "sound quite like", "sounds very much like", "from the sounds of it", "suspicious of",
	"in keeping with", "consistent with", "my impression", "diagnosis", "what you have is", "what you've got is",
	"essentially have", "i suspect", "suspect", "fairly sure", "pretty sure", "i believe", "suggests", "suggestive of",
	"my assessment", "this is a", "that's a", "it is a", "it's a", "it is", "this is", "due to", "caused by",
	"picture of", "in favour of", "i'm confident")

var possibleCues = newCues("could be", "might be", "may be", "could have", "might have", "may have", "possibly",
	"possible", "possibility", "perhaps", "maybe", "differential", "one of two things", "other possibility",
	"can't rule out", "not sure", "query", "wonder", "wondering", "element of", "or it could", "or maybe", "either")

var excludeCues = newCues("rule out", "exclude", "make sure it's not", "make sure that it's not", "make sure it isn't",
	"check it's not", "check that it isn't", "worried about", "concerned about", "don't want to miss", "need to exclude",
	"worry about", "exclude any", "ruling out", "to be safe")

var unlikelyCues = newCues("unlikely", "don't think", "do not think", "no evidence", "no sign", "doesn't sound like",
	"don't have", "haven't got", "don't feel", "doesn't look", "reassured", "isn't", "not having",
	"doesn't look like", "not a", "isn't a", "not likely", "less likely", "reassuring", "wouldn't think")

var problemCues = newCues("for your first problem", "for your second problem", "for your third problem",
	"for your last problem", "for your next problem", "regarding your", "in terms of your", "standpoint",
	"from a", "for your")

// notImpression marks clinician talk that names a condition without
// diagnosing it: history, questions about family, tests and services.
var notImpression = newCues("history", "in the past", "previously", "diagnosed", "you said", "you mentioned",
	"family", "runs in", "have you", "do you", "did you", "before", "last time", "leaflet", "information",
	"website", "link", "if it", "if you", "if your", "if there", "if this", "when you", "refer", "referral", "clinic",
	"risk of", "reduce the risk", "checked", "check for", "given that", "given you", "you've got high", "you have high")

var serviceWords = map[string]bool{"test": true, "tests": true, "testing": true, "clinic": true, "team": true,
	"service": true, "specialist": true, "nurse": true, "screen": true, "screening": true, "medication": true,
	"medications": true, "tablets": true, "tablet": true, "cream": true, "treatment": true, "pill": true,
	"inhaler": true, "inhalers": true, "check": true, "review": true, "diary": true, "prevention": true}

// diagnosisIn reports a condition named as a diagnosis, not as the name of
// a test or service ("pregnancy test", "TIA clinic") nor as history.
func diagnosisIn(toks []string) bool {
	for _, m := range findMentions(conditionLex, toks, uncertaintyCues) {
		if (m.end >= len(toks) || !serviceWords[toks[m.end]]) && !notImpression.in(clauseOf(toks, m.start, m.end)) {
			return true
		}
	}
	return false
}

// clauseOf returns the clause around a token range: from the previous
// comma, full stop or "but" to the next one.
func clauseOf(toks []string, start, end int) []string {
	a, b := start, end
	for a > 0 && !clauseBreak(toks[a-1]) {
		a--
	}
	for b < len(toks) && !clauseBreak(toks[b]) {
		b++
	}
	return toks[a:b]
}

func clauseBreak(t string) bool { return isPunct(t) || t == "but" }

func contrastBreak(t string) bool {
	return t == "but" || t == "although" || t == "though" || t == "however" || t == "." || t == ";" || t == "?"
}

type impression int

const (
	impNone impression = iota
	impLikely
	impPossible
	impExclude
	impUnlikely
	impProblem
)

// assessment lists each diagnosis the clinician stated, in order of first
// statement. When a diagnosis is discussed more than once the last
// statement wins, since clinicians reason aloud and conclude at the end
// ("we'd worry about an allergic reaction if..." then "this is a localised
// allergic reaction").
func assessment(d *dialogue, from int) []line {
	var out []line
	index := map[string]int{}
	for i := from; i < len(d.utts); i++ {
		u := d.utts[i]
		if u.role != roleClinician || u.question {
			continue
		}
		for _, m := range findMentions(conditionLex, u.toks, uncertaintyCues) {
			if (m.end < len(u.toks) && serviceWords[u.toks[m.end]]) || notImpression.in(clauseOf(u.toks, m.start, m.end)) {
				continue
			}
			imp := classify(u.toks, m)
			if imp == impPossible && excludeCues.in(nextClinician(d, i)) && !conditionLex.has(nextClinician(d, i)) {
				imp = impExclude // "Someone might have impacted wax." / "So we need to exclude that first."
			}
			t := impressionText(m, imp)
			if t == "" {
				continue
			}
			if k, ok := index[m.canon]; ok {
				out[k].text = t
				continue
			}
			index[m.canon] = len(out)
			out = append(out, line{t, i})
		}
	}
	return dropGenericLines(out)
}

// dropGenericLines drops "Possible dermatitis." beside "Possible contact
// dermatitis.".
func dropGenericLines(ls []line) []line {
	var out []line
	for _, l := range ls {
		generic := false
		for _, o := range ls {
			if o.text != l.text && strings.Contains(strings.ToLower(o.text), " "+strings.ToLower(strings.TrimSuffix(impressionName(l.text), "."))) {
				generic = true
			}
		}
		if !generic {
			out = append(out, l)
		}
	}
	return out
}

// impressionName is the condition named by an assessment sentence.
func impressionName(t string) string {
	for _, p := range []string{"Likely ", "Possible "} {
		if strings.HasPrefix(t, p) {
			return strings.TrimPrefix(t, p)
		}
	}
	for _, s := range []string{" to be excluded.", " considered unlikely."} {
		if strings.HasSuffix(t, s) {
			return strings.TrimSuffix(t, s)
		}
	}
	return t
}

// classify weighs the cues of the mention's clause ("most likely a chest
// infection, but it could be pneumonia" has two). A denial beats
// everything ("I don't think you've got a chest infection"), then a plan to
// exclude, then hedging ("it could be"), then confident wording.
func classify(all []string, m mention) impression {
	a, b := m.start, m.end
	for a > 0 && !contrastBreak(all[a-1]) {
		a--
	}
	for b < len(all) && !contrastBreak(all[b]) {
		b++
	}
	toks := all[a:b]
	m.start -= a
	switch {
	case unlikelyCues.in(toks[:m.start]):
		return impUnlikely
	case excludeCues.in(toks):
		return impExclude
	case possibleCues.in(toks):
		return impPossible
	case likelyCues.in(toks):
		return impLikely
	case problemCues.in(toks[:m.start]):
		return impProblem
	}
	return impNone
}

func impressionText(m mention, imp impression) string {
	switch imp {
	case impLikely:
		return "Likely " + m.canon + "."
	case impPossible:
		return "Possible " + m.canon + "."
	case impExclude:
		return capitalize(m.canon) + " to be excluded."
	case impUnlikely:
		return capitalize(m.canon) + " considered unlikely."
	case impProblem:
		return capitalize(m.canon) + "."
	}
	return ""
}
