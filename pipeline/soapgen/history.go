package soapgen

import "strings"

// line is one rendered note sentence with the utterance that supports it
// first, used to order sentences within a section.
type line struct {
	text string
	at   int
}

// exchangesAbout returns the exchanges whose questions contain one of the
// cues and that come before the plan: history is taken before the plan is
// given.
func exchangesAbout(d *dialogue, c cueSet, before int) []exchange {
	var out []exchange
	for _, e := range d.exchanges {
		if e.q[0] < before && c.in(d.questionToks(e)) {
			out = append(out, e)
		}
	}
	return out
}

var pmhQuestion = newCues("medical problems", "medical history", "health problems", "medical conditions",
	"any conditions", "fit and well", "fit and healthy", "other illnesses", "any illnesses", "problems with your health",
	"past medical", "any history of", "diagnosed with", "any other problems", "health conditions",
	"long term conditions", "ongoing conditions", "medical issues", "heart or lungs", "other conditions",
	"any other illness", "generally well", "generally fit", "normally well", "any problems with your")

var healthyQuestion = newCues("fit and well", "fit and healthy", "generally well", "generally fit", "normally well", "healthy")

var ownershipCues = newCues("i have", "i've got", "i've had", "i had", "i've been diagnosed", "diagnosed with",
	"i suffer", "i get", "history of", "i am", "i'm", "got the", "i've also got", "also have", "i also have", "my")

var opinionCues = newCues("think", "thought", "gonna have", "going to have", "felt like", "worried", "could it", "maybe", "might", "wonder", "scared", "afraid", "in case",
	"checked", "tested", "screened", "risk of", "read")

// pastHistory lists the patient's conditions ("Past medical history: asthma.")
// and conditions asked about and denied ("No history of hypertension.").
func pastHistory(d *dialogue, planStart int) []line {
	var conds []string
	at := -1
	add := func(c string, i int) {
		if !contains(conds, c) {
			conds = append(conds, c)
			if at < 0 {
				at = i
			}
		}
	}
	for i, u := range d.utts[:planStart] {
		if !patientStatement(u) || relationLex.has(u.toks) || opinionCues.in(u.toks) || answersAbout(d, i, familyQuestion) {
			continue
		}
		for _, m := range findMentions(conditionLex, u.toks, uncertaintyCues) {
			if (m.end < len(u.toks) && serviceWords[u.toks[m.end]]) || acuteOnly[m.canon] {
				continue // "my last STD screen"; "normal stuff like cold, flu"
			}
			if m.status == asserted && (ownershipCues.in(u.toks[:m.start]) || answersAbout(d, i, pmhQuestion)) {
				add(m.canon, i)
			}
		}
	}
	var out []line
	if conds = dropGeneric(conds); len(conds) > 0 {
		out = append(out, line{"Past medical history: " + joinList(conds, "and") + ".", at})
	} else if i, ok := noPastHistory(d, planStart); ok {
		out = append(out, line{"No significant past medical history.", i})
	}
	return append(out, deniedConditions(d, planStart, conds)...)
}

// noPastHistory finds a plain "no" to "any medical problems?" or a "yes"
// to "are you normally fit and well?".
func noPastHistory(d *dialogue, planStart int) (int, bool) {
	for _, e := range exchangesAbout(d, pmhQuestion, planStart) {
		ans := d.answerToks(e)
		if conditionLex.has(ans) {
			continue
		}
		pol := answerPolarity(ans)
		healthy := healthyQuestion.in(d.questionToks(e))
		if (healthy && pol == polYes) || (!healthy && pol == polNo) {
			return e.a[0], true
		}
	}
	return 0, false
}

// deniedConditions reads "Have you ever been diagnosed with high blood
// pressure?" / "No." as "No history of hypertension."
func deniedConditions(d *dialogue, planStart int, have []string) []line {
	var out []line
	var seen []string
	for _, e := range d.exchanges {
		if e.q[0] >= planStart {
			break
		}
		ans := d.answerToks(e)
		if answerPolarity(ans) != polNo || conditionLex.has(ans) {
			continue
		}
		q := d.utts[e.q[len(e.q)-1]].toks
		if isWhQuestion(q) || relationLex.has(d.questionToks(e)) || familyQuestion.in(d.questionToks(e)) {
			continue
		}
		if !conditionQuestion.in(q) {
			continue // "Do you use cotton buds to clean out wax?"
		}
		var denied []string
		for _, m := range findMentions(conditionLex, q, uncertaintyCues) {
			if m.canon == "pregnancy" {
				continue // a fact about now, not history; see facts
			}
			if !contains(have, m.canon) && !contains(seen, m.canon) && !contains(denied, m.canon) {
				denied = append(denied, m.canon)
			}
		}
		if len(denied) > 0 {
			seen = append(seen, denied...)
			out = append(out, line{"No history of " + joinList(denied, "or") + ".", e.a[0]})
		}
	}
	return out
}

// acuteOnly conditions are illnesses of the moment, never a past medical
// history worth a line.
var acuteOnly = map[string]bool{"influenza": true, "common cold": true, "viral illness": true, "dehydration": true,
	"upper respiratory tract infection": true, "COVID-19": true, "insect bite reaction": true, "allergic reaction": true,
	"pregnancy": true, "sprain": true, "muscle strain": true, "stress": true}

var conditionQuestion = newCues("have you had", "have you ever", "do you have", "diagnosed", "history of",
	"suffer", "told you", "ever had", "been told", "do you get", "have you got", "any", "problems with")

// dropGeneric removes a condition when a more specific one ending in it is
// also present ("diabetes" beside "type 2 diabetes").
func dropGeneric(conds []string) []string {
	var out []string
	for _, c := range conds {
		generic := false
		for _, o := range conds {
			if o != c && strings.HasSuffix(o, " "+c) {
				generic = true
			}
		}
		if !generic {
			out = append(out, c)
		}
	}
	return out
}

var medQuestion = newCues("medication", "medications", "medicines", "medicine", "tablets", "any pills",
	"take anything", "taking anything", "on anything", "prescribed", "regular", "contraception", "contraceptive",
	"the pill", "creams", "inhalers", "take any", "taking any")

var triedCues = newCues("tried", "taken", "took", "used", "been using", "been taking", "had some", "applied",
	"bought", "put some", "using some", "take some", "have been using", "given me", "gave me")

// medications lists regular medicines and medicines the patient has tried
// for this problem, and a plain "no" to the medication question. Once the
// plan has started, only "I've tried ..." still counts: "so I take the
// antibiotics?" is not a medication history.
func medications(d *dialogue, planStart int) []line {
	var regular, tried []string
	regAt, triedAt := -1, -1
	doses := map[string]string{}
	for i, u := range d.utts {
		if !patientStatement(u) || hasAny(u.toks, "allergic", "allergy", "allergies") || answersAbout(d, i, allergyQuestion) {
			continue
		}
		for _, m := range findMentions(medicationLex, u.toks, uncertaintyCues) {
			if m.status != asserted || relationLex.has(u.toks[max(0, m.start-4):m.start]) {
				continue
			}
			triedIt := triedCues.in(u.toks[max(0, m.start-5):m.start]) || (triedCues.in(u.toks) && !answersAbout(d, i, medQuestion))
			switch {
			case triedIt:
				tried, triedAt = appendNew(tried, m.canon, triedAt, i)
			case i < planStart:
				regular, regAt = appendNew(regular, m.canon, regAt, i)
				// "I take an aspirin, seventy five milligrams, once a day."
				if rest := u.toks[m.end:]; doses[m.canon] == "" && doseAmount(rest) != "" && !medicationLex.has(rest) {
					doses[m.canon] = doseOf(rest)
				}
			}
		}
	}
	// A medicine "taken for this" anywhere is not a regular medicine, even
	// if it also comes up in the medication review.
	regular = dropGeneric(without(regular, tried))
	var out []line
	if len(regular) > 0 {
		named := make([]string, len(regular))
		for k, m := range regular {
			named[k] = strings.TrimSpace(m + " " + doses[m])
		}
		out = append(out, line{"Medications: " + joinList(named, "and") + ".", regAt})
	} else if i, other, ok := noMedications(d, len(d.utts)); ok {
		t := "No regular medications."
		if other {
			t = "No other regular medications."
		}
		out = append(out, line{t, i})
	}
	if tried = dropGeneric(tried); len(tried) > 0 {
		out = append(out, line{"Has tried " + joinList(tried, "and") + ".", triedAt})
	}
	return out
}

func appendNew(xs []string, x string, at, i int) ([]string, int) {
	if contains(xs, x) {
		return xs, at
	}
	if at < 0 {
		at = i
	}
	return append(xs, x), at
}

func without(xs, drop []string) []string {
	var out []string
	for _, x := range xs {
		if !contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

// answersAbout reports whether utterance i answers a question with one of
// the cues.
func answersAbout(d *dialogue, i int, c cueSet) bool {
	ex, ok := d.answerTo[i]
	return ok && c.in(d.questionToks(d.exchanges[ex]))
}

func noMedications(d *dialogue, planStart int) (at int, other, ok bool) {
	for _, e := range exchangesAbout(d, medQuestion, planStart) {
		ans := d.answerToks(e)
		q := d.questionToks(e)
		if medicationLex.has(ans) || hasAny(q, "allergic", "allergies", "allergy") {
			continue
		}
		if answerPolarity(ans) == polNo {
			return e.a[0], hasAny(q, "other", "else"), true
		}
	}
	return 0, false, false
}

var allergyQuestion = newCues("allergies", "allergic", "allergy")

// medsOrAllergies asks two things at once; a medicine in the answer is then
// not an allergy unless the patient says so.
var medsOrAllergies = newCues("{medication|medications|medicines|tablets} {or|and} {allergies|allergy}",
	"{allergies|allergy} {or|and} {medication|medications|medicines|tablets}")

// allergies reads "Allergic to clindamycin." or "No known drug allergies."
func allergies(d *dialogue, planStart int) []line {
	for i, u := range d.utts {
		if !patientStatement(u) {
			continue
		}
		k, ok := containsSeq(u.toks, "allergic to")
		if !ok || contextStatus(u.toks, k, nil, uncertaintyCues) != asserted {
			continue
		}
		if what := allergen(u.toks[k+2:]); what != "" {
			return []line{{"Allergic to " + what + ".", i}}
		}
	}
	for _, e := range exchangesAbout(d, allergyQuestion, planStart) {
		ans := d.answerToks(e)
		if medsOrAllergies.in(d.questionToks(e)) && !hasAny(ans, "allergic", "allergy", "allergies", "reaction") {
			continue // "Any medications or allergies?" / "Only the ibuprofen I took."
		}
		// The last medicine named is the specific one: "an antibiotic,
		// called clindamycin".
		named := ""
		for _, m := range findMentions(medicationLex, ans, uncertaintyCues) {
			if m.status == asserted {
				named = m.canon
			}
		}
		if named != "" {
			return []line{{"Allergic to " + named + ".", e.a[0]}}
		}
		if answerPolarity(ans) == polNo || hasAny(ans, "not that i'm aware", "not that i know", "none", "nothing") {
			return []line{{"No known drug allergies.", e.a[0]}}
		}
	}
	return nil
}

// allergen names what follows "allergic to": a medicine from the lexicon,
// or the next few words ("peanuts").
func allergen(toks []string) string {
	if ms := medicationLex.find(toks); len(ms) > 0 && ms[0].start <= 1 {
		return medicationLex.terms[ms[0].term].canon
	}
	return phraseUntilBreak(toks, 3)
}

// phraseUntilBreak returns up to n words from the start of toks, skipping
// leading articles and stopping at punctuation or a conjunction.
func phraseUntilBreak(toks []string, n int) string {
	var words []string
	for _, t := range toks {
		if len(words) == 0 && (t == "a" || t == "an" || t == "the" || t == "some" || t == "my" || t == ",") {
			continue
		}
		if isPunct(t) || breakWords[t] || len(words) == n {
			break
		}
		words = append(words, t)
	}
	return strings.Join(words, " ")
}

var breakWords = map[string]bool{
	"and": true, "but": true, "so": true, "or": true, "which": true, "that": true, "as": true, "because": true,
	"cause": true, "if": true, "when": true, "who": true, "yeah": true, "like": true, "um": true, "really": true,
	"though": true, "then": true, "now": true, "at": true, "for": true, "you": true, "i": true, "it's": true,
	"actually": true, "basically": true, "currently": true,
}
