package align

import (
	"regexp"
	"strings"
)

// Note sections. Clinical notes come as sections (the Sentence.Section of each sentence) or as
// plain text with headings: SOAP letters ("S:", "O:", "A:", "P:"), UK shorthand ("PC:",
// "HPC:", "PMH:", "DH:", "SH:", "FH:", "Imp:", "Plan:"), or ACI-style capitalised heading lines
// ("HISTORY OF PRESENT ILLNESS", "ASSESSMENT AND PLAN"). SplitNote finds them in plain text;
// AlignNote groups sentences by section for joint decoding (see decode.go) and gives each
// section a kind whose typical place in the conversation is a reranker feature.

// Section kinds: the part of a consultation a note section reports. Their order is the order
// of featureless kinds in reranker.json's section_pos table.
const (
	kindOther = iota
	kindHistory
	kindPMH
	kindMeds
	kindSocial
	kindFamily
	kindReview
	kindExam
	kindResults
	kindAssessment
	kindPlan
	numKinds
)

var kindNames = [numKinds]string{"other", "history", "pmh", "meds", "social", "family", "review", "exam", "results", "assessment", "plan"}

// kindWords maps heading words (lower case) to kinds; the first match in heading order wins,
// except that a plan word anywhere wins ("Assessment and plan" is mostly plan).
var kindWords = map[string]int{
	"s": kindHistory, "subjective": kindHistory, "hpi": kindHistory, "hpc": kindHistory, "pc": kindHistory,
	"cc": kindHistory, "complaint": kindHistory, "presenting": kindHistory, "hx": kindHistory,
	"history": kindHistory, "ice": kindHistory, "symptoms": kindHistory,
	"pmh": kindPMH, "pmhx": kindPMH, "past": kindPMH, "psh": kindPMH, "surgical": kindPMH, "birth": kindPMH,
	"dh": kindMeds, "dhx": kindMeds, "medication": kindMeds, "medications": kindMeds, "drug": kindMeds,
	"drugs": kindMeds, "allergies": kindMeds, "allergy": kindMeds, "nkda": kindMeds,
	"sh": kindSocial, "shx": kindSocial, "social": kindSocial, "alcohol": kindSocial, "tobacco": kindSocial,
	"smoking": kindSocial, "employment": kindSocial, "occupation": kindSocial,
	"fh": kindFamily, "fhx": kindFamily, "fmh": kindFamily, "fmhx": kindFamily, "family": kindFamily,
	"ros": kindReview, "review": kindReview, "systems": kindReview,
	"o": kindExam, "objective": kindExam, "exam": kindExam, "examination": kindExam, "ex": kindExam,
	"oe": kindExam, "vitals": kindExam, "physical": kindExam, "msk": kindExam, "musculoskeletal": kindExam,
	"cardiovascular": kindExam, "cv": kindExam, "respiratory": kindExam, "rs": kindExam, "neuro": kindExam,
	"neurological": kindExam, "auscultation": kindExam, "palpation": kindExam, "constitutional": kindExam,
	"gastrointestinal": kindExam, "abdomen": kindExam, "skin": kindExam, "heent": kindExam, "hent": kindExam,
	"results": kindResults, "labs": kindResults, "investigations": kindResults, "bloods": kindResults,
	"imaging": kindResults, "testing": kindResults, "tests": kindResults,
	"a": kindAssessment, "assessment": kindAssessment, "imp": kindAssessment, "impression": kindAssessment,
	"diagnosis": kindAssessment, "ddx": kindAssessment, "reasoning": kindAssessment,
	"p": kindPlan, "plan": kindPlan, "pln": kindPlan, "treatment": kindPlan, "instructions": kindPlan,
	"agreements": kindPlan, "referral": kindPlan, "referrals": kindPlan, "follow": kindPlan,
	"safety": kindPlan, "management": kindPlan, "advice": kindPlan, "mx": kindPlan,
}

var headingWord = regexp.MustCompile(`[A-Za-z]+`)

// sectionKind returns the kind of a section heading, kindOther when no word says. A heading
// that reads as a sentence or question (over six words, or ending in "." or "?", as the
// query-focused sections of meeting summaries do) has no kind.
func sectionKind(heading string) int {
	h := strings.TrimSpace(heading)
	if strings.HasSuffix(h, "?") || strings.HasSuffix(h, ".") || len(strings.Fields(h)) > 6 {
		return kindOther
	}
	k := kindOther
	for _, w := range headingWord.FindAllString(heading, 8) {
		kw, ok := kindWords[strings.ToLower(w)]
		if !ok {
			continue
		}
		if kw == kindPlan {
			return kindPlan
		}
		if k == kindOther {
			k = kw
		}
	}
	return k
}

// inlineHeading matches a heading at the start of a line or sentence: "Plan: ...",
// "PMH - asthma", "S: ...". At most four words before the colon, and the words must name a
// kind (so "Note: ..." or a time "10:30" is not a heading).
var inlineHeading = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z /&]{0,30}?)\s*(?::|\s-\s)\s*`)

// headingOf splits a known heading off the start of text. ok is false when text does not
// start with one.
func headingOf(text string) (heading, rest string, ok bool) {
	m := inlineHeading.FindStringSubmatchIndex(text)
	if m == nil {
		return "", text, false
	}
	h := text[m[2]:m[3]]
	if len(strings.Fields(h)) > 4 || sectionKind(h) == kindOther {
		return "", text, false
	}
	return h, text[m[1]:], true
}

// headingLine reports whether a whole line is a heading: a short line of capitals ("HISTORY OF
// PRESENT ILLNESS", "ASSESSMENT AND PLAN") or of known heading words ending in a colon
// ("Plan:", "Past medical history:").
func headingLine(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if t == "" || len(t) > 60 {
		return "", false
	}
	if strings.HasSuffix(t, ":") {
		h := strings.TrimSpace(strings.TrimSuffix(t, ":"))
		if h != "" && len(strings.Fields(h)) <= 5 && headingWord.MatchString(h) && !strings.ContainsAny(h, ".,;") {
			return h, true
		}
		return "", false
	}
	if strings.ToUpper(t) != t || !headingWord.MatchString(t) || strings.ContainsAny(t, ".,;?!0123456789") {
		return "", false
	}
	if len(strings.Fields(t)) > 6 || len(t) < 2 {
		return "", false
	}
	// All capitals: a heading if it names a kind or has at least two words ("CHIEF COMPLAINT").
	if sectionKind(t) != kindOther || len(strings.Fields(t)) >= 2 {
		return t, true
	}
	return "", false
}

var (
	listMark  = regexp.MustCompile(`^\s*(\d+[.)]|[-*•])\s+`)
	sentBreak = regexp.MustCompile(`([.!?])\s+([A-Z0-9])`)
)

// SplitNote splits a plain-text note into sentences with their sections. Each line is one
// or more sentences (split after ". ", "! " or "? " before a capital or digit; list markers
// dropped). A line that is only a heading (see above) starts a section and is not a
// sentence; a line starting with a known heading ("Plan: rest and fluids") starts a section
// and keeps the rest as its first sentence. Sentences before any heading have Section "".
// IDs are "s1", "s2", ... in order. Notes that already come as sections need not use it:
// AlignNote reads Sentence.Section, and detects an inline heading only when Section is empty.
func SplitNote(note string) []Sentence {
	var out []Sentence
	section := ""
	for _, line := range strings.Split(note, "\n") {
		if h, ok := headingLine(line); ok {
			section = h
			continue
		}
		line = strings.TrimSpace(listMark.ReplaceAllString(line, ""))
		if h, rest, ok := headingOf(line); ok {
			section, line = h, strings.TrimSpace(rest)
		}
		if line == "" {
			continue
		}
		for _, s := range strings.Split(sentBreak.ReplaceAllString(line, "$1\n$2"), "\n") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, Sentence{ID: "s" + itoa(len(out)+1), Section: section, Text: s})
			}
		}
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// noteSections gives every sentence its section for decoding: Sentence.Section when set;
// otherwise an inline heading at the start of its text, or else the section of the previous
// sentence (plain-text notes name a section once). It returns the section name of each
// sentence and its kind.
func noteSections(sentences []Sentence) ([]string, []int) {
	names := make([]string, len(sentences))
	kinds := make([]int, len(sentences))
	cur := ""
	for i, s := range sentences {
		switch {
		case s.Section != "":
			cur = s.Section
		default:
			if h, _, ok := headingOf(s.Text); ok {
				cur = h
			}
		}
		names[i] = cur
		kinds[i] = sectionKind(cur)
	}
	return names, kinds
}
