package soapgen

import (
	"regexp"
	"strconv"
	"strings"
)

// vital is a measurement the Objective section reports when a value is
// spoken next to its name.
type vital struct {
	name   string
	cues   cueSet
	lo, hi float64
	unit   string
	pair   bool // blood pressure: "120/80" or "120 over 80"
}

var vitals = []vital{
	{name: "Temperature", cues: newCues("temperature", "temp"), lo: 34, hi: 43, unit: " °C"},
	{name: "Temperature", cues: newCues("temperature", "temp"), lo: 93, hi: 108, unit: " °F"},
	{name: "Blood pressure", cues: newCues("blood pressure", "bp"), pair: true, unit: " mmHg"},
	{name: "Heart rate", cues: newCues("pulse", "heart rate", "heartbeat", "pulse rate", "beats per minute"), lo: 30, hi: 220, unit: " bpm"},
	{name: "Oxygen saturation", cues: newCues("sats", "saturation", "saturations", "oxygen level", "oxygen", "o2", "sat"), lo: 70, hi: 100, unit: "%"},
	{name: "Respiratory rate", cues: newCues("respiratory rate", "breathing rate", "breaths per minute", "resp rate"), lo: 5, hi: 60, unit: "/min"},
	{name: "Blood glucose", cues: newCues("blood sugar", "sugar level", "sugar levels", "glucose", "sugars"), lo: 1, hi: 35, unit: " mmol/L"},
	{name: "Peak flow", cues: newCues("peak flow"), lo: 50, hi: 900, unit: " L/min"},
}

// objective lists spoken measurements and the clinician's examination
// findings.
func objective(d *dialogue) []line {
	var out []line
	seen := map[string]bool{}
	for i, u := range d.utts {
		if u.role == roleOther {
			continue
		}
		for _, t := range measurements(d, i) {
			if !seen[t] {
				seen[t] = true
				out = append(out, line{t, i})
			}
		}
		if t, ok := examFinding(u); ok && !seen[t] {
			seen[t] = true
			out = append(out, line{t, i})
		}
	}
	return out
}

// measurements finds vitals in utterance i. A patient's value is marked as
// reported by the patient; a value in a patient's answer to "What was your
// temperature?" is found through the question.
func measurements(d *dialogue, i int) []string {
	u := d.utts[i]
	toks := numbersAsDigits(u.toks)
	var cueToks []string
	if ex, ok := d.answerTo[i]; ok {
		cueToks = d.questionToks(d.exchanges[ex])
	}
	var out []string
	for _, v := range vitals {
		val, ok := v.valueIn(toks)
		if !ok && u.role == rolePatient && v.cues.in(cueToks) && !v.cues.in(toks) {
			val, ok = v.valueAfter(toks, 0)
		}
		if !ok || (u.question && u.role == roleClinician) {
			continue
		}
		t := v.name + " " + val + v.unit
		if u.role == rolePatient {
			t += " (reported by patient)"
		}
		out = append(out, t+".")
	}
	return out
}

func (v vital) valueIn(toks []string) (string, bool) {
	for i := range toks {
		if end, ok := v.cues.lex.matchAt(toks, i); ok {
			if val, ok := v.valueAfter(toks, end.end); ok {
				return val, true
			}
		}
	}
	return "", false
}

// valueAfter looks for the value within a few words after the name,
// stopping at the end of the sentence.
func (v vital) valueAfter(toks []string, from int) (string, bool) {
	for k := from; k < len(toks) && k < from+8; k++ {
		t := toks[k]
		if t == "." || t == "?" || t == "!" {
			break
		}
		if v.pair {
			if bpRE.MatchString(t) {
				return t, true
			}
			continue
		}
		if !isNumeric(t) {
			continue
		}
		if k+1 < len(toks) && (timeUnits[toks[k+1]] != "" || (toks[k+1] == "percent" && v.unit != "%")) {
			return "", false // "temperature for 2 days", "not a hundred percent sure"
		}
		if f, err := strconv.ParseFloat(t, 64); err == nil && f >= v.lo && f <= v.hi {
			return withRange(toks, k, v), true
		}
	}
	return "", false
}

var bpRE = regexp.MustCompile(`^(?:[7-9]\d|1\d\d|2[0-4]\d)/(?:[3-9]\d|1[0-4]\d)$`)

// withRange extends a value to a spoken range ("66 to 74").
func withRange(toks []string, k int, v vital) string {
	if k+2 < len(toks) && (toks[k+1] == "to" || toks[k+1] == "-") && isNumeric(toks[k+2]) {
		if f, err := strconv.ParseFloat(toks[k+2], 64); err == nil && f >= v.lo && f <= v.hi {
			return toks[k] + "-" + toks[k+2]
		}
	}
	return toks[k]
}

// numbersAsDigits rewrites spoken numbers as digits and "120 over 80" as
// "120/80", so that vitals have one shape.
func numbersAsDigits(toks []string) []string {
	out := make([]string, 0, len(toks))
	for i := 0; i < len(toks); {
		num, n := parseNumber(toks, i)
		if n == 0 || (n == 1 && (toks[i] == "one" || toks[i] == "a")) && !isNumeric(toks[i]) {
			out = append(out, toks[i])
			i++
			continue
		}
		out = append(out, num)
		i += n
	}
	for i := 0; i+2 < len(out); i++ {
		if isNumeric(out[i]) && out[i+1] == "over" && isNumeric(out[i+2]) {
			out = append(out[:i], append([]string{out[i] + "/" + out[i+2]}, out[i+3:]...)...)
		}
	}
	return out
}

// strongFindings are examination words that make a clinician's statement a
// finding on their own; weakFindings ("normal", "fine") need a body part
// too, since "that sounds fine" is conversation.
var strongFindings = newCues("tender", "tenderness", "swollen", "swelling", "redness", "erythema", "erythematous",
	"rash", "murmur", "crackles", "crepitations", "wheeze", "wheezing", "inflamed", "inflammation", "pale",
	"pallor", "flushed", "bruising", "distressed", "edema", "oedema", "pitting", "lesion", "lesions", "ulcer",
	"discharge", "bulging", "effusion", "deformity", "range of motion", "range of movement", "guarding",
	"exudate", "pus", "palpable", "masses", "thickening", "lymph nodes", "droop", "drooping", "asymmetry",
	"full sentences", "breathing comfortably", "well perfused", "haemodynamically stable", "hemodynamically stable",
	"no airway compromise", "not in pain", "in pain", "looks well", "look well", "looks unwell", "look unwell",
	"elevated", "raised", "sounds clear", "sound clear", "is clear", "are clear", "clear chest", "red")

var weakFindings = newCues("normal", "fine", "ok", "okay", "good", "stable", "unremarkable", "intact", "regular",
	"irregular", "symmetrical", "reduced", "limited", "warm", "well", "soft")

var examContext = newCues("looks", "look", "looking", "appears", "appear", "seems", "i can see", "i can't see",
	"i see", "seen", "i can feel", "feels", "sounds", "examination", "examining", "examined", "exam", "appreciate",
	"i noticed", "i notice", "inspection", "palpation", "auscultation", "on listening", "tender", "tenderness",
	"observations", "obs", "vitals", "reading", "readings")

var examBody = newCues("chest", "lungs", "lung", "heart", "throat", "tonsils", "ear", "ears", "eardrum", "eye", "eyes",
	"skin", "arm", "arms", "leg", "legs", "elbow", "knee", "ankle", "abdomen", "tummy", "stomach", "rash", "pulse",
	"breathing", "saturations", "sats", "blood pressure", "temperature", "heart rate", "face", "lip", "lips",
	"tongue", "mouth", "neck", "glands", "hand", "hands", "wrist", "foot", "feet", "back", "joint", "that", "it",
	"area", "wound", "bite", "swelling")

// notExam marks talk that is not a present finding: conditionals, plans,
// history being recapped, instructions and small talk.
var notExam = newCues("if", "when you", "should", "would", "could", "might", "will", "going to", "gonna", "want to",
	"wanna", "need to", "i'd like", "can you", "try", "you said", "you mentioned", "you told", "you've been",
	"you have been", "you've had", "have you", "do you", "history", "last time", "usually", "let me", "let's",
	"make sure", "hopefully", "sounds good", "sounds great", "sounds fine", "sounds like", "that sounds",
	"looks like", "look out", "looking for", "look after", "looking after", "what", "because", "cause",
	"whether", "i know", "i think you", "red flag", "red flags", "seems like", "glad", "worry", "worried", "mean", "bit of a", "to see you",
	"if you", "check", "sure", "hope", "feel free", "in the past", "previously", "last year", "ago", "sorry")

// examFinding rewrites a clinician's spoken finding ("You're tender in the
// right lower quadrant.") as a note finding ("Tender in the right lower
// quadrant."). Statements it cannot put in the third person are skipped
// rather than guessed at.
func examFinding(u utterance) (string, bool) {
	if u.role != roleClinician || u.question || len(u.toks) > 30 || notExam.in(u.toks) {
		return "", false
	}
	strong := strongFindings.in(u.toks) && examContext.in(u.toks)
	weak := weakFindings.in(u.toks) && examContext.in(u.toks) && examBody.in(u.toks)
	if !strong && !weak {
		return "", false
	}
	t := thirdPerson(u.text)
	if t == "" || len(strings.Fields(t)) < 2 {
		return "", false
	}
	return sentence(t), true
}

var (
	leadDiscourse = regexp.MustCompile(`(?i)^(?:(?:ok|okay|so|right|and|um|well|alright|all right|great|good|now|yeah|yes|fine|fantastic|perfect|brilliant|excellent)\b[,.]?\s*)+`)
	seeingPrefix  = regexp.MustCompile(`(?i)^(?:(?:i can see|i do appreciate|i appreciate|i noticed|i notice|i can feel|i think|looking at (?:it|that|this|you)|examining you|from what i can see|on examination|on exam)\b(?: now)?(?: that)?,?\s*)`)
	examinedLead  = regexp.MustCompile(`(?i)^.*\b(?:having examined you|on examination|examining you now|having looked at (?:your \w+|the \w+|you|it))\b\s*,?\s*`)
	youPrefix     = regexp.MustCompile(`(?i)^(?:you're|you are|you've got|you have got|you have|your)\s+`)
	trailingTag   = regexp.MustCompile(`(?i)(?:,\s*(?:okay|ok|alright|all right|yeah|right|though|as well|at the moment))?\s*[,.?!]*$`)
	toMe          = regexp.MustCompile(`(?i)\s+to me\b`)
	yourMid       = regexp.MustCompile(`(?i)\byour\b`)
	firstSecond   = regexp.MustCompile(`(?i)\b(?:you|you're|you've|yours|i|i'm|i've|i'd|i'll|me|my|we|we'll|us)\b`)
)

// thirdPerson strips the speaker's framing and second person from a
// finding, or returns "" when first or second person would remain.
func thirdPerson(s string) string {
	s = strings.TrimSpace(examinedLead.ReplaceAllString(strings.TrimSpace(s), ""))
	for range 3 {
		s = leadDiscourse.ReplaceAllString(s, "")
		s = seeingPrefix.ReplaceAllString(s, "")
	}
	s = youPrefix.ReplaceAllString(s, "")
	s = toMe.ReplaceAllString(s, "")
	s = strings.Join(strings.Fields(yourMid.ReplaceAllString(s, "")), " ")
	s = trailingTag.ReplaceAllString(s, "")
	if firstSecond.MatchString(s) {
		return ""
	}
	return strings.TrimSpace(s)
}
