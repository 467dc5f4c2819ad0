package soapgen

import (
	"strings"
)

// planOpeners mark the point where the clinician stops taking the history
// and starts explaining and planning.
var planOpeners = newCues("what i'd recommend", "what we'd recommend", "i would recommend", "i'd recommend",
	"i'd suggest", "i would suggest", "what i'd like to do", "what i would like to do", "what we'll do",
	"what we can do", "what i think we", "the plan", "my plan", "i'm going to prescribe", "i'll prescribe",
	"i'm going to give you", "i'll give you", "to summarise", "to summarize", "just to recap", "to recap",
	"based on your story", "based on what you've told me", "having listened", "my assessment", "what i suggest",
	"i'd like you to", "what we're going to do", "going forward", "in terms of management", "treatment",
	"management", "prescribe", "prescription")

// planStart is the index of the first utterance of the planning part of
// the consultation: the first plan opener or stated impression after the
// first third. found is false when there is none, and start is then three
// fifths of the way through.
func planStart(d *dialogue) (start int, found bool) {
	for i := len(d.utts) / 3; i < len(d.utts); i++ {
		u := d.utts[i]
		if u.role != roleClinician || u.question {
			continue
		}
		if planOpeners.in(u.toks) || (likelyCues.in(u.toks) || possibleCues.in(u.toks)) && diagnosisIn(u.toks) {
			return i, true
		}
	}
	return len(d.utts) * 3 / 5, false
}

// planItem is one plan sentence; key merges repeats (a medicine said three
// times is one item, with the most detailed wording).
type planItem struct {
	key    string
	text   string
	detail int
	at     int
	med    string // the medicine, for items that only recommend one
}

type planList struct{ items []*planItem }

func (p *planList) add(key, text string, detail, at int) {
	for _, it := range p.items {
		if it.key == key {
			if detail > it.detail {
				it.text, it.detail = text, detail
			}
			return
		}
	}
	p.items = append(p.items, &planItem{key: key, text: text, detail: detail, at: at})
}

var antibioticNames = []string{"amoxicillin", "penicillin", "flucloxacillin", "clarithromycin", "erythromycin",
	"doxycycline", "nitrofurantoin", "trimethoprim", "ciprofloxacin", "metronidazole", "clindamycin", "cefalexin", "co-amoxiclav"}

// dropGenericAntibiotics removes "Antibiotics ..." when a named antibiotic
// is prescribed: "a course of antibiotics, something like amoxicillin" is
// one prescription. A "not needed" statement stays.
func (p *planList) dropGenericAntibiotics() {
	named := false
	for _, it := range p.items {
		named = named || contains(antibioticNames, strings.TrimPrefix(it.key, "med:"))
	}
	if !named {
		return
	}
	kept := p.items[:0]
	for _, it := range p.items {
		if it.key != "med:antibiotics" || it.detail == 0 {
			kept = append(kept, it)
		}
	}
	p.items = kept
}

func plan(d *dialogue, from int) []line {
	p := &planList{}
	for i := from; i < len(d.utts); i++ {
		u := d.utts[i]
		if u.role != roleClinician || askingQuestion(u) || recap.in(u.toks) {
			continue
		}
		medicationPlan(p, d, i)
		testPlan(p, u, i)
		referralPlan(p, u, i)
		advicePlan(p, u, i)
	}
	safetyNet(p, d, from)
	followUp(p, d, from)
	p.dropGenericAntibiotics()
	p.mergeOptions()
	out := make([]line, 0, len(p.items))
	for _, it := range p.items {
		out = append(out, line{it.text, it.at})
	}
	sortLines(out)
	return out
}

// askingQuestion tells a real question from a statement said with a rising
// tone ("I would recommend ... something like ibuprofen?").
func askingQuestion(u utterance) bool {
	return u.question && isQuestionWord(u.toks)
}

// recap marks the clinician repeating the history back, which names
// medicines and tests the patient already has.
var recap = newCues("you've been taking", "you're taking", "you said", "you mentioned", "you told me",
	"you've tried", "you've taken", "you took", "you've had", "you were", "you've been using", "you're on",
	"you are on", "you've got some", "were you", "had you", "result", "results", "showed", "we did", "you had",
	"used to", "guidelines", "you've already")

var prescribeCues = newCues("prescribe", "prescription", "script", "give you", "start you on", "start", "take",
	"taking", "try", "trial", "recommend", "use", "using", "apply", "put you on", "continue", "increase",
	"decrease", "reduce", "stop", "switch", "change", "course of", "pharmacy", "pharmacist", "over the counter",
	"can help", "would help", "will help", "suggest", "send", "get some", "get you", "buy", "double", "carry on",
	"keep taking", "first line", "advisable", "think about", "such as", "something like", "things like",
	"give to you", "i can give", "worth trying", "worth using", "worth taking", "would be good", "have some", "you can have")

var noNeedCues = newCues("don't think you need", "don't need", "no need for", "not necessary", "won't need",
	"wouldn't recommend", "don't recommend", "not going to give", "don't want to give", "not needed",
	"no need to", "on the edge about", "don't think we need", "hold off", "not at this stage")

var medVerbs = []struct{ cue, verb string }{
	{"start", "Start"}, {"start you on", "Start"}, {"put you on", "Start"},
	{"increase", "Increase"}, {"double", "Increase"}, {"reduce", "Reduce"}, {"decrease", "Reduce"},
	{"stop", "Stop"}, {"switch", "Switch"}, {"change", "Change"}, {"continue", "Continue"}, {"carry on", "Continue"},
	{"keep taking", "Continue"}, {"keep on taking", "Continue"}, {"carry on taking", "Continue"},
}

// medicationPlan turns "taking some paracetamol, two tablets up to four
// times a day" into "Paracetamol 2 tablets up to 4 times a day."
func medicationPlan(p *planList, d *dialogue, i int) {
	toks := d.utts[i].toks
	ms := findMentions(medicationLex, toks, nil) // "maybe something like ibuprofen" is advice, not doubt
	if len(ms) == 0 {
		return
	}
	if noNeedCues.in(toks) {
		for _, m := range ms {
			p.add("med:"+m.canon, capitalize(m.canon)+" not needed at present.", 0, i)
		}
		return
	}
	dose := doseOf(toks)
	if dose == "" {
		dose = doseOf(nextClinician(d, i))
	}
	for k, m := range ms {
		if m.status != asserted || (dose == "" && !prescribeCues.in(toks[max(0, m.start-8):min(len(toks), m.end+8)])) {
			continue
		}
		if k+1 < len(ms) && hasAny(toks[m.end:ms[k+1].start], "sorry", "i mean", "rather", "actually") {
			continue // "penicillin or, I'm sorry, amoxicillin"
		}
		if hasAny(toks[max(0, m.start-3):m.start], "allergic", "allergy") {
			continue // "because you're allergic to penicillin"
		}
		text, detail := medicationText(toks, m, dose)
		p.add("med:"+m.canon, text, detail, i)
		if strings.HasSuffix(text, " recommended.") {
			p.items[len(p.items)-1].med = m.canon
		}
	}
}

// medClass maps medicines to the class a clinician names with them
// ("anti-inflammatories, such as ibuprofen and naproxen").
var medClass = map[string]string{
	"ibuprofen": "NSAIDs", "naproxen": "NSAIDs", "diclofenac": "NSAIDs",
	"cetirizine": "antihistamines", "loratadine": "antihistamines", "fexofenadine": "antihistamines", "chlorphenamine": "antihistamines",
	"amoxicillin": "antibiotics", "penicillin": "antibiotics", "flucloxacillin": "antibiotics", "clarithromycin": "antibiotics",
	"erythromycin": "antibiotics", "doxycycline": "antibiotics", "nitrofurantoin": "antibiotics", "trimethoprim": "antibiotics",
	"ciprofloxacin": "antibiotics", "metronidazole": "antibiotics", "cefalexin": "antibiotics", "co-amoxiclav": "antibiotics",
	"hydrocortisone cream": "steroid cream", "betamethasone cream": "steroid cream",
}

// mergeOptions writes alternatives said together as one item: "think
// about paracetamol, or even co-codamol" is "Paracetamol or co-codamol
// recommended."; a class followed by examples is "Antihistamines
// (loratadine or chlorphenamine) recommended."
func (p *planList) mergeOptions() {
	var out []*planItem
	for _, it := range p.items {
		if it.med == "" || len(out) == 0 {
			out = append(out, it)
			continue
		}
		prev := out[len(out)-1]
		switch {
		case prev.med != "" && medClass[it.med] == firstMed(prev.med) && it.at-prev.at <= 2:
			prev.med += "|" + it.med
		case prev.med != "" && prev.at == it.at && medClass[firstMed(prev.med)] == "":
			prev.med += "|" + it.med
		default:
			out = append(out, it)
			continue
		}
		prev.text = optionsText(prev.med)
	}
	p.items = out
}

func firstMed(joined string) string { return strings.Split(joined, "|")[0] }

func optionsText(joined string) string {
	meds := strings.Split(joined, "|")
	if _, isMember := medClass[meds[1]]; isMember && medClass[meds[1]] == meds[0] {
		return capitalize(meds[0]) + " (" + joinList(meds[1:], "or") + ") recommended."
	}
	return capitalize(joinList(meds, "or")) + " recommended."
}

func medicationText(toks []string, m mention, dose string) (string, int) {
	verb, at := "", -1
	for _, v := range medVerbs {
		if k, ok := lastSeq(toks[:m.start], v.cue); ok && k >= m.start-8 && k > at {
			verb, at = v.verb, k
		}
	}
	parts := []string{m.canon}
	switch {
	case verb != "":
		parts = []string{verb, m.canon}
	case dose == "regularly":
		parts, dose = []string{"regular", m.canon}, "" // "Regular paracetamol."
	}
	if dose != "" {
		parts = append(parts, dose)
	}
	if verb == "" && dose == "" && parts[0] != "regular" {
		if hedgedMed.in(toks) {
			parts = append(parts, "may be needed") // "we may need to think about an antibiotic"
		} else {
			parts = append(parts, "recommended")
		}
	}
	if cond := conditionOf(toks); cond != "" {
		parts = append(parts, cond)
	}
	detail := len(dose) + 1
	return sentence(strings.Join(parts, " ")), detail
}

var hedgedMed = newCues("may need", "might need", "may have to", "might have to", "may consider", "might consider", "could consider", "may be needed")

// conditionOf renders the "if" of a delayed prescription ("if your
// symptoms don't get better, start the antibiotics"). Other conditions are
// left out rather than paraphrased.
func conditionOf(toks []string) string {
	if hasAny(toks, "if") && hasAny(toks, "don't get better", "not getting better", "doesn't get better", "not better",
		"not improving", "don't improve", "doesn't improve", "still", "haven't improved", "not settling", "don't settle") {
		return "if symptoms do not improve"
	}
	return ""
}

// nextClinician returns the tokens of the next clinician utterance, where
// a dose often follows the drug name ("...something like amoxicillin." /
// "One tablet, three times a day.").
func nextClinician(d *dialogue, i int) []string {
	for k := i + 1; k < len(d.utts) && k <= i+3; k++ {
		if d.utts[k].role == roleClinician {
			if medicationLex.has(d.utts[k].toks) {
				return nil
			}
			return d.utts[k].toks
		}
	}
	return nil
}

var doseUnits = map[string]string{
	"mg": "mg", "milligram": "mg", "milligrams": "mg", "microgram": "micrograms", "micrograms": "micrograms",
	"mcg": "micrograms", "g": "g", "gram": "g", "grams": "g", "ml": "ml", "mls": "ml", "millilitres": "ml",
	"tablet": "tablet", "tablets": "tablet", "capsule": "capsule", "capsules": "capsule", "puff": "puff",
	"puffs": "puff", "sachet": "sachet", "sachets": "sachet", "drop": "drop", "drops": "drop", "pill": "pill",
	"pills": "pill", "spray": "spray", "sprays": "spray",
}

// doseOf reads amount, frequency and duration: "2 tablets up to 4 times a
// day for 3 days".
func doseOf(toks []string) string {
	var parts []string
	if a := doseAmount(toks); a != "" {
		parts = append(parts, a)
	}
	if f := doseFrequency(toks); f != "" {
		parts = append(parts, f)
	}
	if dur := courseLength(toks); dur != "" {
		parts = append(parts, dur)
	}
	return strings.Join(parts, " ")
}

// doseAmount returns the last amount said: clinicians correct themselves
// ("you can take two tablets, uh, one tablet twice a day").
func doseAmount(toks []string) string {
	last := ""
	for i := range toks {
		num, n := parseNumber(toks, i)
		if n == 0 && (toks[i] == "a" || toks[i] == "an") {
			num, n = "1", 1
		}
		if n == 0 || i+n >= len(toks) || midNumber(toks, i) {
			continue
		}
		u, ok := doseUnits[toks[i+n]]
		if !ok || (num == "1" && (toks[i] == "a" || toks[i] == "an") && u != "tablet" && u != "puff" && u != "sachet") {
			continue
		}
		if num != "1" && (u == "tablet" || u == "capsule" || u == "puff" || u == "sachet" || u == "drop" || u == "pill" || u == "spray") {
			u += "s"
		}
		last = num + " " + u
	}
	return last
}

var fixedFrequencies = []struct{ phrase, text string }{
	{"once a day", "once a day"}, {"once daily", "once daily"}, {"twice a day", "twice a day"},
	{"twice daily", "twice daily"}, {"every day", "daily"}, {"daily", "daily"}, {"at night", "at night"},
	{"in the morning", "in the morning"}, {"as needed", "as needed"}, {"when needed", "as needed"},
	{"when required", "as needed"}, {"as required", "as needed"}, {"regularly", "regularly"},
	{"regular", "regularly"}, {"every four hours", "every 4 hours"}, {"every 4 hours", "every 4 hours"},
	{"every six hours", "every 6 hours"}, {"every 6 hours", "every 6 hours"}, {"every eight hours", "every 8 hours"},
	{"every 8 hours", "every 8 hours"}, {"every twelve hours", "every 12 hours"},
	{"tablets a day", "a day"}, {"tablet a day", "a day"}, {"a day", "a day"},
}

func doseFrequency(toks []string) string {
	upTo := ""
	if f, ok := findFrequency(toks); ok {
		if k, ok := containsSeq(toks, "up to"); ok && k+2 < len(toks) {
			j := k + 2
			for j < len(toks) && approxWords[toks[j]] {
				j++
			}
			if _, ok := frequencyAt(toks, j); ok {
				upTo = "up to "
			}
		}
		return upTo + f
	}
	for _, f := range fixedFrequencies {
		if _, ok := containsSeq(toks, f.phrase); ok {
			return f.text
		}
	}
	return ""
}

// courseLength reads "for 3 days" or "for the first few days".
func courseLength(toks []string) string {
	for i := 0; i+1 < len(toks); i++ {
		if toks[i] != "for" {
			continue
		}
		j := i + 1
		prefix := ""
		if startsSeq(toks, j, "the first") || startsSeq(toks, j, "the next") {
			prefix = "the " + toks[j+1] + " "
			j += 2
		}
		if a, n := amount(toks, j); n > 0 {
			if prefix != "" {
				a = strings.TrimPrefix(a, "a ") // "the next a couple of weeks"
			}
			return "for " + prefix + a
		}
	}
	return ""
}

var orderCues = newCues("arrange", "organise", "organize", "book", "send", "request", "order", "do some", "do a", "do an",
	"get some", "get a", "take some", "take a", "need", "needs", "like to", "want to", "we'll", "we will", "i'll",
	"i will", "check", "should have", "going to", "get you", "refer", "repeat", "recommend", "would be", "could do",
	"can do", "let's", "schedule", "due for", "have a", "doing", "think about", "organise for", "organize for",
	"worth doing", "worth getting", "get it checked", "done")

var hedgeCuesPlan = newCues("may", "might", "possibly", "if", "consider", "maybe", "perhaps", "could")

// testPlan reads ordered investigations: "we may need to do further tests
// like taking a sample of your stool" is "Stool sample may be needed."
func testPlan(p *planList, u utterance, i int) {
	if !orderCues.in(u.toks) {
		return
	}
	for _, m := range findMentions(testLex, u.toks, uncertaintyCues) {
		if m.status == negated {
			p.add("test:"+m.canon, capitalize(m.canon)+" not needed at present.", 0, i)
			continue
		}
		text, detail := "Arrange "+lowerFirst(m.canon)+".", 2
		if hedgeCuesPlan.in(u.toks) {
			text, detail = capitalize(m.canon)+" may be needed.", 1
		}
		p.add("test:"+m.canon, text, detail, i)
	}
}

func lowerFirst(s string) string {
	if s == "" || strings.ToUpper(s[:1]) == s[:1] && len(s) > 1 && strings.ToUpper(s[1:2]) == s[1:2] {
		return s // acronyms: "ECG", "MRI scan"
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// services the patient can be referred or sent to.
var serviceTerms = []term{
	{"A&E", []string{"a&e", "a and e", "accident and emergency", "emergency department", "the emergency", "casualty"}},
	{"emergency services (999)", []string{"999", "nine nine nine", "an ambulance", "ambulance team", "ambulance", "paramedics"}},
	{"NHS 111", []string{"111", "one one one"}},
	{"TIA clinic", []string{"tia clinic", "stroke clinic"}},
	{"sexual health clinic", []string{"sexual health clinic", "gum clinic"}},
	{"dermatology", []string{"dermatologist", "dermatology", "skin specialist"}},
	{"cardiology", []string{"cardiologist", "cardiology", "heart specialist", "chest pain clinic"}},
	{"ENT", []string{"ent", "ear nose and throat"}},
	{"physiotherapy", []string{"physio", "physiotherapy", "physiotherapist"}},
	{"counselling", []string{"counselling", "counseling", "counsellor", "counselor", "talking therapies", "therapy", "therapist", "iapt"}},
	{"orthopaedics", []string{"orthopaedic", "orthopaedics", "orthopedic", "orthopedics"}},
	{"rheumatology", []string{"rheumatology", "rheumatologist"}},
	{"gynaecology", []string{"gynaecology", "gynecology", "gynaecologist"}},
	{"neurology", []string{"neurology", "neurologist"}},
	{"a specialist", []string{"specialist"}},
	{"hospital", []string{"the hospital", "hospital"}},
	{"face-to-face review", []string{"face to face", "in person", "see a gp", "see a doctor", "come in to the surgery", "come into the surgery"}},
	{"pharmacist", []string{"pharmacist"}},
}

var serviceLex = newLexicon(serviceTerms)

var referCues = newCues("be with you", "on their way", "should be there", "on its way", "on it's way", "going into", "go into",
	"take yourself to", "go to the hospital", "into hospital", "refer", "referral", "referring", "self refer", "i'll send you", "send you to", "go to", "attend",
	"go straight to", "head to", "need to be seen", "needs to be seen", "to be seen", "arrange for you", "book you",
	"called", "calling", "i've called", "on its way", "coming", "fax", "contact them", "see you face to face",
	"face to face", "in person")

// referralPlan reads referrals and urgent transfers. Conditional ones ("if
// it gets worse go to A&E") are safety-netting, handled there.
func referralPlan(p *planList, u utterance, i int) {
	conditional := hasAny(u.toks, "if", "unless", "in case", "should you", "in that instance", "in that case")
	if !referCues.in(u.toks) || (conditional && worseningCues.in(u.toks)) || hasAny(u.toks, "isn't", "not", "don't need", "no need") {
		return
	}
	emergency := map[string]bool{"A&E": true, "emergency services (999)": true, "NHS 111": true, "hospital": true}
	for _, m := range findMentions(serviceLex, u.toks, uncertaintyCues) {
		if m.status == negated || (emergency[m.canon] && conditional) {
			continue // "if it gets worse, go to A&E" is safety-netting
		}
		var text string
		switch {
		case m.canon == "emergency services (999)" && hasAny(u.toks, "called", "calling", "on its way", "coming", "i've called", "i'm calling", "will be with you", "be with you", "on their way", "should be there", "be there", "on it's way"):
			text = "Ambulance called."
		case m.canon == "face-to-face review":
			text = "Face-to-face review arranged."
			if hedgeCuesPlan.in(u.toks) {
				text = "Face-to-face review may be needed."
			}
		case hasAny(u.toks, "self refer", "self referral", "refer yourself"):
			text = "Self-referral to " + m.canon + "."
		case hasAny(u.toks, "refer", "referral", "referring", "fax"):
			text = "Referral to " + m.canon + "."
		default:
			text = "Advised to attend " + m.canon + "."
		}
		p.add("ref:"+m.canon, text, 1, i)
	}
}

// advice is self-care advice, each written only when its cue is said.
var advice = []struct {
	key  string
	cues cueSet
	text string
}{
	{"conservative", newCues("conservative management", "supportive", "self care", "self-care", "settle on its own", "settle down on its own", "get better on its own", "settle by itself"), "Conservative management."},
	{"fluids", newCues("fluids", "hydrated", "hydration", "drink plenty", "drinking plenty", "drink lots", "plenty of water", "litres of water", "litres uh of water", "lots of water"), "Advised to drink plenty of fluids."},
	{"rest", newCues("rest", "resting", "take it easy", "bed rest", "stay rested"), "Advised rest."},
	{"off work", newCues("time off work", "off work", "week off", "days off", "time off", "self certify", "sick note", "fit note"), "Advised time off work."},
	{"diary", newCues("diary"), ""},
	{"smoking", newCues("stop smoking", "quit smoking", "quitting", "on your journey to quit", "cut down on the cigarettes", "cut down smoking", "smoking cessation"), "Smoking cessation advised."},
	{"alcohol", newCues("cut down on alcohol", "cut down on drinking", "reduce your alcohol", "cut down on the alcohol", "drink less"), "Advised to reduce alcohol intake."},
	{"sleep", newCues("hours sleep", "hours of sleep", "sleep hygiene"), "Advised adequate sleep."},
	{"gloves", newCues("wear gloves", "wearing gloves", "use gloves", "pair of gloves"), "Advised to wear gloves."},
	{"avoid", newCues("avoid"), ""},
	{"information", newCues("leaflet", "link", "information sheet", "website", "patient.info", "patient info", "nhs website"), "Written information provided."},
}

func advicePlan(p *planList, u utterance, i int) {
	if hasAny(u.toks, "if you", "if it", "if the", "if your") && !hasAny(u.toks, "rest", "fluids", "hydrated") {
		return
	}
	for _, a := range advice {
		if !a.cues.in(u.toks) {
			continue
		}
		text := a.text
		switch a.key {
		case "diary":
			text = diaryText(u.toks)
		case "avoid":
			text = avoidText(u.toks)
		case "off work":
			if dur := courseLength(u.toks); dur != "" {
				text = "Advised time off work " + dur + "."
			}
		}
		if text != "" {
			p.add("adv:"+a.key, text, 1, i)
		}
	}
}

func diaryText(toks []string) string {
	k, _ := containsSeq(toks, "diary")
	kind := ""
	if k > 0 && (toks[k-1] == "headache" || toks[k-1] == "symptom" || toks[k-1] == "food" || toks[k-1] == "trigger" || toks[k-1] == "pain" || toks[k-1] == "bladder" || toks[k-1] == "sleep" || toks[k-1] == "mood") {
		kind = toks[k-1] + " "
	}
	return "Advised to keep a " + kind + "diary."
}

func avoidText(toks []string) string {
	k, _ := containsSeq(toks, "avoid")
	what := phraseUntilBreak(toks[k+1:], 4)
	if what == "" || strings.Contains(what, "you") || strings.Contains(what, "it") && len(strings.Fields(what)) == 1 {
		return ""
	}
	return "Advised to avoid " + what + "."
}

var worseningCues = newCues("progress", "progressing", "deteriorates", "become", "becomes", "spread", "spreads",
	"any problem", "any problems", "any issues", "gets worse", "get worse", "worse", "worsening", "not better", "no better", "don't get better", "doesn't get better",
	"not getting better", "isn't getting better", "not improving", "don't improve", "doesn't improve", "persist",
	"persists", "persistent", "ongoing", "doesn't settle", "don't settle", "not settling", "isn't settling",
	"haven't got better", "hasn't got better", "haven't improved", "develop", "new symptoms", "any concerns",
	"concerned", "worried", "red flag", "red flags", "danger signs", "warning signs", "change", "changes",
	"deteriorate", "deteriorating", "still", "struggling", "high temperature", "unwell")

var contactCues = newCues("call", "ring", "contact", "come back", "get back", "speak to", "speak with", "seek",
	"attend", "a&e", "a and e", "999", "111", "book", "see a doctor", "see someone", "let us know", "go to",
	"phone", "get in touch", "get help", "medical attention", "see you", "call us", "ring us", "touch base",
	"reassess", "review", "emergency", "urgent", "straight away", "straightaway", "immediately", "ambulance")

// safetyNet merges the clinician's "if it gets worse, call us" statements
// into one sentence, naming the warning symptoms that were mentioned.
func safetyNet(p *planList, d *dialogue, from int) {
	at := -1
	var warn []string
	urgent := false
	prev := -1
	for i := from; i < len(d.utts); i++ {
		u := d.utts[i]
		if u.role != roleClinician || u.question {
			continue
		}
		// "Or your neck pain is getting worse..." continues the advice
		// of the sentence before.
		fc := firstContent(u.toks)
		continues := prev >= 0 && prev >= i-2 && fc < len(u.toks) && u.toks[fc] == "or"
		lookOut := hasAny(u.toks, "look out for", "watch out for", "things to look out", "red flag", "warning signs", "danger signs")
		if !continues && !lookOut {
			if !hasAny(u.toks, "if", "should", "in case", "any time") || !worseningCues.in(u.toks) ||
				!(contactCues.in(u.toks) || contactCues.in(nextClinician(d, i))) {
				continue
			}
		}
		prev = i
		if at < 0 {
			at = i
		}
		urgent = urgent || hasAny(u.toks, "a&e", "a and e", "999", "111", "emergency", "urgent", "urgently", "ambulance", "straight away", "immediately")
		for _, m := range symptomMentions(u.toks) {
			if m.status != negated && !contains(warn, m.canon) && len(warn) < 5 {
				warn = append(warn, m.canon)
			}
		}
	}
	if at < 0 {
		return
	}
	text := "Safety-netting advice given: to seek review if symptoms worsen or do not improve"
	if urgent {
		text = "Safety-netting advice given: to seek urgent review if symptoms worsen or do not improve"
	}
	if len(warn) > 0 {
		text += "; warning symptoms discussed: " + joinList(warn, "and")
	}
	p.add("safety", text+".", 1, at)
}

var followUpCues = newCues("follow up", "follow-up", "followup", "review", "come back", "see you again", "see you in",
	"speak to you again", "speak again", "book an appointment", "book a", "another appointment", "touch base",
	"check in", "catch up", "call you back", "ring you back", "give you a call", "phone you", "call you",
	"reassess", "have another look", "another look", "see me", "come and see", "get back in touch", "appointment",
	"next time i see you", "see you next", "speak to you in", "speak in")

// followUp reads when the clinician will see the patient again: "if you're
// still not better by next week, come back and see me" is "Follow-up in 1
// week if not improving."
func followUp(p *planList, d *dialogue, from int) {
	untimed := -1
	for i := from; i < len(d.utts); i++ {
		u := d.utts[i]
		if u.role != roleClinician || u.question || !followUpCues.in(u.toks) {
			continue
		}
		when, ok := followUpTime(u.toks)
		if !ok {
			if untimed < 0 && explicitFollowUp.in(u.toks) && !hasAny(u.toks, "if", "result", "results") {
				untimed = i
			}
			continue
		}
		text := "Follow-up " + when
		if hasAny(u.toks, "if") && worseningCues.in(u.toks) {
			text += " if not improving"
		}
		p.add("followup", text+".", 1, i)
		return
	}
	if untimed >= 0 {
		p.add("followup", "Follow-up appointment to be arranged.", 1, untimed)
	}
}

// explicitFollowUp names a further appointment without saying when ("I'll
// book another appointment to see you soon").
var explicitFollowUp = newCues("follow up appointment", "follow-up appointment", "book another appointment",
	"arrange a follow up", "arrange a review", "review appointment", "book you in", "another appointment")

// followUpTime reads "in a week's time", "in 3-4 days", "next week".
func followUpTime(toks []string) (string, bool) {
	for i := 0; i < len(toks); i++ {
		switch {
		case toks[i] == "in" || toks[i] == "within" || toks[i] == "after":
			if a, n := amount(toks, i+1); n > 0 {
				return toks[i] + " " + a, true
			}
		case startsSeq(toks, i, "next week"):
			return "next week", true
		case startsSeq(toks, i, "tomorrow"):
			return "tomorrow", true
		case startsSeq(toks, i, "a week's time") || startsSeq(toks, i, "a weeks time"):
			return "in 1 week", true
		case toks[i] == "by" && i+2 < len(toks) && toks[i+1] == "next" && timeUnits[toks[i+2]] != "":
			return "in 1 " + timeUnits[toks[i+2]], true
		}
		if a, n := amount(toks, i); n > 0 && i+n < len(toks) && (toks[i+n] == "time" || toks[i+n] == "later") && !midNumber(toks, i) {
			return "in " + a, true
		}
	}
	return "", false
}

func sortLines(ls []line) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].at < ls[j-1].at; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}
