package align

import (
	"math"
	"strconv"
	"strings"

	"github.com/evidenceledger/evidence/clinicaltext"
)

// A reading is what one text (a note sentence or a transcript segment) says, claim by claim:
// each content word with whether it is negated, whether it belongs to someone other than
// the patient and what kind of thing it names, and the quantities it states. The claim
// checker (verify.go) compares the reading of a sentence with the readings of the segments.
type reading struct {
	facts  []fact
	quants []quantity
}

// fact is one content term of a text.
type fact struct {
	term       string // analysed term (a clinicaltext stem), or two joined by a space
	start, end int    // bytes of the word in the text
	cue        int    // start of the negation cue or relative that governs it, else start
	pos        int    // surface word number
	cat        clinicaltext.Category
	group      string // attribute group of the term, if any ("side", "cough", ...)
	value      string // the value it names within its group ("crampy" and "colicky" are one)
	neg        bool   // in the scope of a negation
	other      bool   // said of someone other than the patient (a relative, a friend)
	asked      bool   // in a question with no known answer, or a hypothetical ("if ...")
	expansion  bool   // synthesized from an abbreviation or a synonym
	phrase     bool   // a two-word concept ending at this word
	aside      bool   // set apart by "apart from", "besides", "other than": presupposed
	others     bool   // after "other", "else", "more": a question of other things than these
	never      bool   // negated by "never": a statement about the past as a whole
	deniedQA   bool   // asked about and answered "no"
}

// quantity classes.
type qclass uint8

const (
	qDuration  qclass = iota + 1 // how long or how long ago, in days
	qFrequency                   // how often, per day
	qDose                        // an amount of a drug, in its unit
	qMeasure                     // a measurement or count, in its unit
)

// quantity is one number a text states, with what it counts.
type quantity struct {
	lo, hi     float64 // a single value has lo == hi; "3-5 days" is a range
	class      qclass
	unit       string // canonical unit, the same for comparable quantities
	start, end int    // bytes in the text
	neg        bool
}

// negation scope: a cue negates the content words after it in its clause, up to
// negScopeWords of them, unless a scope terminator comes first.
const negScopeWords = 5

// scopeEnd words end a negation's scope ("no fever but a cough") and, in speech, move from an
// answer to what follows it ("no, just watery").
var scopeEnd = map[string]bool{"but": true, "however": true, "although": true, "though": true,
	"except": true, "apart": true, "whereas": true, "yeah": true, "yes": true, "yep": true,
	"just": true, "only": true, "still": true, "now": true, "otherwise": true}

// newClause words after "and" start a new statement, out of a negation's scope.
var newClause = map[string]bool{"some": true, "a": true, "an": true, "is": true, "are": true, "was": true,
	"were": true, "has": true, "have": true, "had": true, "i": true, "she": true, "he": true, "it": true, "they": true}

// hypothetical cues make the rest of their clause not a statement of fact.
var hypothetical = map[string]bool{"if": true, "unless": true, "should": true, "whether": true,
	"might": true, "may": true, "could": true, "would": true, "risk": true, "possibl": true, "rule": true}

// listGoesOn reports whether a negated list continues at toks[i], after a comma: an "or" or
// "nor" comes later in the sentence, or the item names a symptom or condition.
func listGoesOn(text string, toks []clinicaltext.Token, i int) bool {
	for k := i; k < len(toks); k++ {
		if k > i && toks[k].Flags&clinicaltext.ClauseStart != 0 {
			break
		}
		if toks[k].Term == "or" || toks[k].Term == "nor" {
			return true
		}
	}
	for k := i; k < len(toks) && k < i+3; k++ {
		if toks[k].Flags&clinicaltext.Stop != 0 {
			continue
		}
		c := clinicaltext.CategoryOf(toks[k].Term)
		if c&(clinicaltext.Symptom|clinicaltext.Condition) != 0 {
			return true
		}
		if toks[k].Flags&clinicaltext.Expansion == 0 && k+1 < len(toks) && toks[k+1].Pos == toks[k].Pos &&
			clinicaltext.CategoryOf(toks[k+1].Term)&(clinicaltext.Symptom|clinicaltext.Condition) != 0 {
			return true
		}
		return false
	}
	return false
}

// firstPersonBetween reports whether a first-person pronoun lies in [from, to).
func firstPersonBetween(toks []clinicaltext.Token, from, to int) bool {
	for _, t := range toks {
		if t.Start >= from && t.End <= to && firstPerson[t.Term] {
			return true
		}
	}
	return false
}

// someone words name other people before "else" ("anyone else unwell?").
var someone = map[string]bool{"anyone": true, "anybody": true, "someone": true, "somebody": true,
	"everyone": true, "everybody": true, "one": true, "nobody": true, "noone": true}

// firstPerson words take a clause back to the patient after a relative was named ("my mum has
// asthma but I don't").
var firstPerson = map[string]bool{"i": true, "me": true, "myself": true, "im": true, "ive": true}

// breaksClause reports whether the text between two tokens holds punctuation that ends a
// list item or clause for scoping: a comma, dash, colon, semicolon or bracket.
func breaksClause(between string) bool {
	return strings.ContainsAny(between, ",;:()[]–—") || strings.Contains(between, " - ")
}

// read reads text, whose analysis (clinicaltext.Analyze) is toks.
func read(text string, toks []clinicaltext.Token) reading { return readText(text, toks, false) }

// readSpeech reads a transcript segment: there "he", "she" or "they" after a relative speak of
// that relative, where in a note they speak of the patient.
func readSpeech(text string, toks []clinicaltext.Token) reading { return readText(text, toks, true) }

// negHeads are the words after which "of" keeps a negation going: "no history of asthma",
// "no signs of infection".
var negHeads = map[string]bool{"evid": true, "histori": true, "hx": true, "sign": true, "symptom": true,
	"episod": true, "complaint": true, "report": true, "featur": true, "suggest": true, "indic": true,
	"pmhx": true, "pmh": true, "phx": true, "fhx": true, "fh": true, "dhx": true, "use": true, "known": true}

// scopePrepositions end a negation's scope after its head: "no blood in the vomit" denies the
// blood, not the vomit.
var scopePrepositions = map[string]bool{"in": true, "on": true, "at": true, "from": true, "with": true,
	"to": true, "over": true, "during": true, "after": true, "into": true, "around": true, "under": true, "of": true}

// thirdPerson pronouns, which in speech refer back to a relative named before them.
var thirdPerson = map[string]bool{"he": true, "she": true, "they": true, "him": true, "her": true, "his": true, "their": true, "them": true}

func readText(text string, toks []clinicaltext.Token, speech bool) reading {
	r := reading{facts: make([]fact, 0, len(toks))}
	negHead := ""                 // the first content word a negation covers
	lastRelative := -1            // start of the last relative named, for pronouns in speech
	negCue, negLeft := -1, 0      // start of the governing cue, content words it may still cover
	negOther := false             // the negation is of "other" or "more" things, not of what it names
	aside, others := false, false // in the clause: after "apart from", after "other"
	neverCue := false
	otherCue := -1 // start of the relative the clause is about
	hypo := false
	lastContent := -1 // index in r.facts of the last non-expansion content fact
	for i, t := range toks {
		if i > 0 && t.Flags&clinicaltext.ClauseStart != 0 && toks[i-1].Pos != t.Pos {
			negCue, otherCue, hypo, aside, others = -1, -1, false, false, false
		}
		if i > 0 && toks[i-1].Pos != t.Pos && breaksClause(text[min(toks[i-1].End, t.Start):t.Start]) {
			// A list carries a negation over commas ("no fever, cough or rash", "denies
			// nausea, vomiting") but not into a new statement ("nil smoking, social
			// alcohol"); a hypothetical ends at the clause.
			if negCue >= 0 && !listGoesOn(text, toks, i) {
				negCue = -1
			}
			// A hypothetical lasts to the end of its sentence or a semicolon ("earlier if
			// worsening (fever, pain, vomiting)").
			if strings.Contains(text[min(toks[i-1].End, t.Start):t.Start], ";") {
				hypo = false
			}
		}
		switch {
		case t.Flags&clinicaltext.Negation != 0:
			if t.Flags&clinicaltext.Expansion == 0 && postNegates(toks, i, text) && lastContent >= 0 {
				// "smoking: nil", "chest pain - denies": the cue closes its clause and
				// negates what came before it in the clause.
				for k := lastContent; k >= 0; k-- {
					f := &r.facts[k]
					if t.Term == "negative" && f.cat&clinicaltext.Procedure != 0 {
						continue // "test negative" reports a result, not a test not done
					}
					if f.end <= t.Start && !breaksClause(text[f.end:t.Start]) || k == lastContent {
						f.neg, f.cue = true, min(f.cue, t.Start)
						continue
					}
					break
				}
			}
			if t.Flags&clinicaltext.Expansion == 0 && absencePredicate(toks, i) {
				// "antibiotics are not needed", "rash was not seen": the subject is what
				// is absent.
				for k := len(r.facts) - 1; k >= 0; k-- {
					f := &r.facts[k]
					if breaksClause(text[f.end:t.Start]) {
						break
					}
					f.neg, f.cue = true, min(f.cue, f.start)
				}
			}
			negCue, negLeft, negOther, neverCue, negHead = t.Start, negScopeWords, false, t.Term == "never", ""
			continue
		case t.Flags&clinicaltext.Stop != 0:
			w := t.Term
			if scopeEnd[w] || w == "and" && i+1 < len(toks) && newClause[toks[i+1].Term] {
				negCue = -1 // "can't catch her breath and some wheezing"
			}
			if negCue >= 0 && negHead != "" && scopePrepositions[w] &&
				!(w == "of" && (negHeads[negHead] || lastContent >= 0 && negHeads[r.facts[lastContent].term])) {
				negCue = -1 // "no blood in the vomit", but "no obvious signs of fracture"
			}
			if speech && thirdPerson[w] && lastRelative >= 0 && otherCue < 0 {
				otherCue = lastRelative // "my dad ... he died of bowel cancer"
			}
			if w == "other" || w == "more" || w == "further" || w == "else" {
				negOther = negCue >= 0
				others = !(w == "other" && i+1 < len(toks) && toks[i+1].Term == "than")
			}
			if w == "besides" || w == "than" && i > 0 && toks[i-1].Term == "other" || w == "from" && i > 0 && (toks[i-1].Term == "apart" || toks[i-1].Term == "asid") {
				aside, others = true, false
			}
			if w == "else" && i > 0 && someone[toks[i-1].Term] {
				otherCue = toks[i-1].Start
			}
			if hypothetical[w] {
				hypo = true
			}
			if firstPerson[w] {
				otherCue = -1
			}
			if (w == "right") && lateralContext(text, toks, i) {
				r.facts = append(r.facts, fact{term: "right", start: t.Start, end: t.End, cue: t.Start, pos: t.Pos,
					group: "side", neg: negCue >= 0, other: otherCue >= 0, asked: hypo})
			}
			continue
		}
		if t.Flags&clinicaltext.Expansion == 0 {
			if hypothetical[t.Term] {
				hypo = true
			}
			if scopeEnd[t.Term] {
				negCue = -1
			}
		}
		cat := clinicaltext.CategoryOf(t.Term)
		if cat == 0 && clinicaltext.LooksLikeDrug(t.Term) {
			cat = clinicaltext.Drug
		}
		if cat == 0 && clinicaltext.LooksLikeProcedure(t.Term) {
			cat = clinicaltext.Procedure
		}
		if t.Start > 0 && text[t.Start-1] == '?' && t.Flags&clinicaltext.Expansion == 0 {
			hypo = true // "?related to stress": a query, not a finding
		}
		if cat&clinicaltext.Relative != 0 && t.Flags&clinicaltext.Expansion == 0 && !possessedByPatient(toks, i) {
			otherCue, lastRelative = t.Start, t.Start
			// What came before it in the same clause is theirs too ("atrial fibrillation in
			// her mother").
			for k := len(r.facts) - 1; k >= 0; k-- {
				g := &r.facts[k]
				if breaksClause(text[g.end:t.Start]) || g.cat&clinicaltext.Relative != 0 || firstPersonBetween(toks, g.end, t.Start) {
					break
				}
				g.other = true
			}
		}
		if t.Term == "non" && t.Flags&clinicaltext.Expansion == 0 {
			// "non-tender", "non smoker": a prefix that negates the next word.
			negCue, negLeft, negOther = t.Start, 1, false
			continue
		}
		if t.Term == "except" || t.Term == "besid" {
			aside, others = true, false
		}
		f := fact{term: t.Term, start: t.Start, end: t.End, cue: t.Start, pos: t.Pos, cat: cat,
			group: clinicaltext.GroupOf(t.Term), value: clinicaltext.ValueOf(t.Term), asked: hypo,
			expansion: t.Flags&clinicaltext.Expansion != 0, aside: aside, others: others}
		if f.group == "side" && !lateralContext(text, toks, i) {
			f.group = ""
		}
		if f.expansion && lastContent >= 0 && r.facts[lastContent].pos == t.Pos {
			// An expansion is said the way its word is.
			w := r.facts[lastContent]
			f.neg, f.other, f.asked, f.cue, f.never = w.neg, w.other, w.asked, w.cue, w.never
		} else if negCue >= 0 {
			if negOther {
				f.asked = true // "no other medications" says nothing of the ones named
			} else {
				f.neg, f.cue, f.never = true, negCue, neverCue
			}
		}
		if !f.expansion && (negOther || others) {
			// Only the category word is "other": "any other symptoms, like nausea?"
			// asks about nausea itself.
			negOther, others = false, false
		}
		if otherCue >= 0 && cat&clinicaltext.Relative == 0 && !f.expansion {
			f.other = true
			f.cue = min(f.cue, otherCue)
		}
		r.facts = append(r.facts, f)
		if !f.expansion {
			lastContent = len(r.facts) - 1
			if negCue >= 0 && t.Flags&clinicaltext.Number == 0 {
				if negHead == "" {
					negHead = t.Term
				}
				negLeft--
				if negLeft <= 0 {
					negCue = -1
				}
			}
			// Two-word concepts ("heart attack", "blood pressure") and values ("comes and
			// goes"), allowing one stop word between the words.
			if i > 0 {
				if p := prevContent(toks, i); p >= 0 && toks[p].Pos >= t.Pos-2 {
					ph := toks[p].Term + " " + t.Term
					if c, gr := clinicaltext.CategoryOf(ph), clinicaltext.GroupOf(ph); c != 0 || gr != "" {
						if c != 0 {
							// "blood pressure" is a measurement, not blood, and its
							// pressure no quality of pain.
							for k := len(r.facts) - 1; k >= 0; k-- {
								if r.facts[k].start == toks[p].Start && !r.facts[k].expansion {
									r.facts[k].cat = 0
									break
								}
							}
							r.facts[len(r.facts)-1].group, r.facts[len(r.facts)-1].value = "", ""
						}
						g := f
						g.term, g.start, g.cat, g.phrase = ph, toks[p].Start, c, true
						g.group, g.value = gr, clinicaltext.ValueOf(ph)
						g.cue = min(g.cue, g.start)
						r.facts = append(r.facts, g)
					}
				}
			}
		}
	}
	expansionPhrases(r.facts)
	r.facts = append(r.facts, valuePhrases(text, r.facts)...)
	r.facts = append(r.facts, spokenNumbers(text, toks)...)
	r.quants = readQuantities(text, toks, r.facts)
	return r
}

// expansionPhrases reads the terms one word expands to ("HTN": high blood pressure) as the
// concept they make together: where two of them name a known concept ("blood pressure"),
// their own categories and attribute values do not apply.
func expansionPhrases(facts []fact) {
	for k := 1; k < len(facts); k++ {
		a, b := &facts[k-1], &facts[k]
		if !a.expansion || !b.expansion || a.pos != b.pos || a.phrase || b.phrase {
			continue
		}
		if clinicaltext.CategoryOf(a.term+" "+b.term) != 0 {
			a.cat, b.cat = 0, 0
			a.group, a.value, b.group, b.value = "", "", "", ""
		}
	}
}

// spokenNumbers reads numbers said digit group by digit group, as readings of blood pressure
// and prices are: "one sixty nine" is 169 (analysed as 1 and 69), "one twenty" 120. Each
// gives an extra number fact over the words, beside the plain reading.
func spokenNumbers(text string, toks []clinicaltext.Token) []fact {
	var out []fact
	// Digits said one by one: "nine nine nine" is 999.
	for i := 0; i < len(toks); {
		j := i
		digits := ""
		for j < len(toks) && toks[j].Flags&clinicaltext.Number != 0 && len(toks[j].Term) == 1 && !isDigitText(text[toks[j].Start:toks[j].End]) &&
			(j == i || toks[j].Pos == toks[j-1].Pos+1 && strings.TrimSpace(text[toks[j-1].End:toks[j].Start]) == "") {
			digits += toks[j].Term
			j++
		}
		if j-i >= 3 {
			out = append(out, fact{term: digits, start: toks[i].Start, end: toks[j-1].End, cue: toks[i].Start, pos: toks[j-1].Pos, expansion: true})
		}
		i = max(j, i+1)
	}
	for i := 0; i+1 < len(toks); i++ {
		a, b := toks[i], toks[i+1]
		if a.Flags&clinicaltext.Number == 0 || b.Flags&clinicaltext.Number == 0 || b.Pos != a.Pos+1 {
			continue
		}
		if strings.TrimSpace(text[a.End:b.Start]) != "" || isDigitText(text[a.Start:a.End]) {
			continue // "3-5", "6, 7" and digits are ranges or lists, not spoken groups
		}
		x, err1 := strconv.Atoi(a.Term)
		y, err2 := strconv.Atoi(b.Term)
		if err1 != nil || err2 != nil || x < 1 || x > 9 || y < 10 || y > 99 {
			continue
		}
		v := strconv.Itoa(100*x + y)
		out = append(out, fact{term: v, start: a.Start, end: b.End, cue: a.Start, pos: b.Pos, expansion: true})
	}
	return out
}

func isDigitText(s string) bool {
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

// phraseValues are attribute values said in phrases of function words, which analysis drops:
// "all the time" is constant, "comes and goes" intermittent.
var phraseValues = []struct{ phrase, group, value string }{
	{"all the time", "timing", "constant"}, {"the whole time", "timing", "constant"},
	{"comes and goes", "timing", "intermitt"}, {"come and go", "timing", "intermitt"},
	{"on and off", "timing", "intermitt"}, {"off and on", "timing", "intermitt"},
	{"now and then", "timing", "intermitt"}, {"now and again", "timing", "intermitt"},
	{"once in a while", "timing", "intermitt"}, {"every so often", "timing", "intermitt"},
	{"a little bit of", "severity", "mild"}, {"a little", "severity", "mild"},
}

// valuePhrases finds the phraseValues in text, said the way the fact under them is.
func valuePhrases(text string, facts []fact) []fact {
	var out []fact
	if !strings.Contains(text, " and ") && !strings.Contains(text, "time") && !strings.Contains(text, "while") &&
		!strings.Contains(text, "often") && !strings.Contains(text, "ittle") {
		return nil // none of the phrases can be here
	}
	lower := strings.ToLower(text)
	for _, p := range phraseValues {
		from := 0
		for {
			k := strings.Index(lower[from:], p.phrase)
			if k < 0 {
				break
			}
			start := from + k
			end := start + len(p.phrase)
			from = end
			if start > 0 && isLetter(lower[start-1]) || end < len(lower) && isLetter(lower[end]) {
				continue
			}
			f := fact{term: p.value, start: start, end: end, cue: start, pos: -1, group: p.group, value: p.value, phrase: true}
			for _, g := range facts {
				if g.start <= start && start < g.end || g.start >= start && g.start < end {
					f.neg, f.other, f.asked = g.neg, g.other, g.asked
				}
			}
			out = append(out, f)
		}
	}
	return out
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// prevContent returns the index of the closest earlier content token (not a stop word, a
// negation or an expansion) within one stop word of toks[i].
func prevContent(toks []clinicaltext.Token, i int) int {
	stops := 0
	for k := i - 1; k >= 0; k-- {
		switch {
		case toks[k].Pos == toks[i].Pos || toks[k].Flags&clinicaltext.Expansion != 0:
			continue
		case toks[k].Flags&clinicaltext.Negation != 0:
			return -1
		case toks[k].Flags&clinicaltext.Stop != 0:
			if stops++; stops > 1 {
				return -1
			}
			continue
		}
		return k
	}
	return -1
}

// absencePredicates say that their subject is absent or not done when negated.
var absencePredicates = map[string]bool{"need": true, "requir": true, "indic": true, "necessari": true,
	"given": true, "prescrib": true, "recommend": true, "start": true, "taken": true, "tri": true,
	"present": true, "seen": true, "found": true, "detect": true, "felt": true, "palpabl": true,
	"note": true, "observ": true, "elicit": true, "identifi": true, "warrant": true}

// absencePredicate reports whether the negation cue at toks[i] follows a form of "be" and
// precedes an absence predicate: "X is not needed", "X were not seen".
func absencePredicate(toks []clinicaltext.Token, i int) bool {
	if i == 0 || i+1 >= len(toks) {
		return false
	}
	switch toks[i-1].Term {
	case "is", "are", "was", "were", "be", "been", "being":
	default:
		return false
	}
	return absencePredicates[toks[i+1].Term]
}

// postNegates reports whether the negation cue at toks[i] closes its clause ("smoking: nil",
// "rash - denied", "sputum negative"): no content word follows it before the clause ends.
func postNegates(toks []clinicaltext.Token, i int, text string) bool {
	switch toks[i].Term {
	case "nil", "negative", "denied", "absent", "none":
	default:
		return false
	}
	if i == 0 {
		return false
	}
	for k := i + 1; k < len(toks); k++ {
		if toks[k].Flags&clinicaltext.ClauseStart != 0 || breaksClause(text[toks[k-1].End:toks[k].Start]) {
			return true
		}
		if toks[k].Flags&clinicaltext.Stop == 0 {
			return false
		}
	}
	return true
}

// lateralContext reports whether "left" or "right" at toks[i] names a side: a body part,
// "side", a vertical position or another side word follows within two words, or a body part
// comes just before ("knee, right").
func lateralContext(text string, toks []clinicaltext.Token, i int) bool {
	// "on the left", "to the right", "the left one".
	if i >= 2 && toks[i-1].Term == "the" {
		switch toks[i-2].Term {
		case "on", "to", "at", "from", "toward", "towards", "of", "in":
			return true
		}
	}
	// "Right, OK": a filler, not a side.
	if rest := strings.TrimLeft(text[toks[i].End:], " "); rest != "" && strings.ContainsAny(rest[:1], ",.!?") {
		// "... elbow swelling right.": a side after the body part it qualifies.
		for k := i - 1; k >= 0 && k >= i-3; k-- {
			if clinicaltext.CategoryOf(toks[k].Term)&clinicaltext.Body != 0 {
				return true
			}
		}
		return false
	}
	seen := 0
	for k := i + 1; k < len(toks) && seen < 3; k++ {
		if toks[k].Pos == toks[i].Pos {
			continue
		}
		w := toks[k].Term
		if w == "side" || w == "sid" || w == "hand" || clinicaltext.CategoryOf(w)&clinicaltext.Body != 0 ||
			clinicaltext.GroupOf(w) == "vertical" {
			return true
		}
		if (w == "and" || w == "or") && k+1 < len(toks) && clinicaltext.GroupOf(toks[k+1].Term) == "side" {
			return true // "left and right"
		}
		if toks[k].Flags&clinicaltext.Stop == 0 {
			seen++
		}
		if toks[k].Flags&clinicaltext.Stop != 0 && w != "the" && w != "my" && w != "your" && w != "his" && w != "her" {
			seen++
		}
	}
	return false
}

// possessedByPatient reports whether the relative word at toks[i] is the patient's own kind of
// statement that does not move the claims to someone else: "lives with wife" does, "wife"
// as the subject does; this only excludes "I am a mother"-like uses ("a", "an" before it).
func possessedByPatient(toks []clinicaltext.Token, i int) bool {
	if i > 0 && (toks[i-1].Term == "a" || toks[i-1].Term == "an") {
		return true
	}
	return false
}

// Units of quantities: the canonical unit and class of the analysed term that follows a
// number. Durations are in days.
var durationDays = map[string]float64{"minut": 1.0 / 1440, "min": 1.0 / 1440, "hour": 1.0 / 24, "hr": 1.0 / 24,
	"day": 1, "week": 7, "wk": 7, "month": 30, "year": 365, "yr": 365, "d": 1, "night": 1, "morn": 1}

// doseUnits maps the analysed unit words of doses to one canonical unit.
var doseUnits = map[string]string{"milligram": "mg", "mg": "mg", "microgram": "mcg", "mcg": "mcg", "gram": "g",
	"g": "g", "millilitr": "ml", "ml": "ml", "unit": "unit", "puff": "puff", "tablet": "tablet", "tab": "tablet",
	"drop": "drop", "spray": "spray", "capsul": "tablet", "pill": "tablet"}

// lengthCM converts units of size to centimetres ("0.5 cm", "half a centimetre", "5 mm").
var lengthCM = map[string]float64{"cm": 1, "centimet": 1, "centimetr": 1, "mm": 0.1, "millimet": 0.1, "millimetr": 0.1, "inch": 2.54}

// vitals are measurements whose number follows their name ("temperature 38", "BP 140/90").
var vitals = map[string]bool{"temperatur": true, "temp": true, "pressur": true, "bp": true, "pulse": true,
	"rate": true, "sat": true, "satur": true, "oxygen": true, "weigh": true, "weight": true, "height": true,
	"bmi": true, "score": true, "age": true, "sugar": true, "glucos": true, "cholesterol": true, "a1c": true}

// numberWord are words that stand for a number before a unit ("a week", "a couple of days").
var numberWord = map[string][2]float64{"a": {1, 1}, "an": {1, 1}, "one": {1, 1}, "coupl": {2, 2},
	"few": {2, 4}, "sever": {3, 7}, "half": {0.5, 0.5}}

// readQuantities finds the quantities of a text: numbers (or "a", "a couple of", "few")
// followed by a unit of time, dose or frequency, ranges ("3-5 days", "six or seven times"),
// frequencies ("x6/day", "twice a day", "BD", "every 4 hours") and measurements after a
// vital sign's name or before "out of 10".
func readQuantities(text string, toks []clinicaltext.Token, facts []fact) []quantity {
	var out []quantity
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		lo, hi, ok := numberAt(toks, i)
		if !ok {
			continue
		}
		start, end := t.Start, t.End
		j := i + 1
		// A range: "3-5", "six or seven", "3 to 4".
		if j < len(toks) && toks[j].Pos == t.Pos+1 && isNum(toks[j].Term) && toks[j].Flags&clinicaltext.Expansion == 0 &&
			(strings.Contains(text[t.End:toks[j].Start], "-") || strings.TrimSpace(text[t.End:toks[j].Start]) == "") {
			v, _ := strconv.ParseFloat(toks[j].Term, 64)
			if v > hi {
				hi, end, j = v, toks[j].End, j+1
			}
		} else if j+1 < len(toks) && (toks[j].Term == "or" || toks[j].Term == "to") && isNum(toks[j+1].Term) {
			v, _ := strconv.ParseFloat(toks[j+1].Term, 64)
			if v > hi {
				hi, end, j = v, toks[j+1].End, j+2
			}
		}
		// Skip "of", "a", "per", "in" and similar between the number and its unit.
		k := j
		for k < len(toks) && k < j+3 && toks[k].Flags&clinicaltext.Stop != 0 && toks[k].Term != "time" {
			k++
		}
		neg := false
		for _, f := range facts {
			if f.start <= t.Start && t.Start < f.end && f.neg {
				neg = true
			}
		}
		q := quantity{lo: lo, hi: hi, start: start, end: end, neg: neg}
		switch {
		case k < len(toks) && toks[k].Term == "time":
			// "6 times a day", "x6/day" (analysed "time 6 day"), "twice daily".
			per := 1.0
			for m := k + 1; m < len(toks) && m <= k+3; m++ {
				if d, ok := durationDays[toks[m].Term]; ok {
					per = d
					q.end = max(q.end, toks[m].End)
					break
				}
				if toks[m].Term == "daili" {
					q.end = max(q.end, toks[m].End)
					break
				}
			}
			q.class, q.unit = qFrequency, "per day"
			q.lo, q.hi = lo/per, hi/per
		case i > 0 && toks[i-1].Term == "time" && toks[i-1].Pos == t.Pos:
			// "x6/day": the "time" came first.
			per := 1.0
			if k < len(toks) {
				if d, ok := durationDays[toks[k].Term]; ok {
					per = d
					q.end = max(q.end, toks[k].End)
				}
			}
			q.class, q.unit, q.start = qFrequency, "per day", toks[i-1].Start
			q.lo, q.hi = lo/per, hi/per
		case i > 0 && toks[i-1].Term == "everi" || i > 0 && toks[i-1].Term == "every":
			// "every 4 hours": 6 a day.
			if k < len(toks) {
				if d, ok := durationDays[toks[k].Term]; ok && lo > 0 {
					q.class, q.unit = qFrequency, "per day"
					q.lo, q.hi = 1/(hi*d), 1/(lo*d)
					q.end = max(q.end, toks[k].End)
				}
			}
		case k < len(toks) && k > j && durationDays[toks[k].Term] > 0 && perWord(toks[j:k]):
			// "10 a day", "2 per week": a rate.
			d := durationDays[toks[k].Term]
			q.class, q.unit = qFrequency, "per day"
			q.lo, q.hi = lo/d, hi/d
			q.end = max(q.end, toks[k].End)
		case k < len(toks) && toks[k].Term == "year" && k+1 < len(toks) && toks[k+1].Term == "old":
			// "a 65-year-old", "41 years old": an age.
			q.class, q.unit = qMeasure, "age"
			q.end = max(q.end, toks[k+1].End)
		case k < len(toks) && durationDays[toks[k].Term] > 0 && toks[k].Term != "d" || k < len(toks) && toks[k].Term == "d" && toks[k].Pos == t.Pos:
			d := durationDays[toks[k].Term]
			if half(toks, k+1) || half(toks, i-2) {
				lo, hi = lo+0.5, hi+0.5 // "a year and a half", "one and a half weeks"
			}
			q.class, q.unit = qDuration, "day"
			q.lo, q.hi = lo*d, hi*d
			q.end = max(q.end, toks[k].End)
		case k < len(toks) && doseUnits[toks[k].Term] != "":
			q.class, q.unit = qDose, doseUnits[toks[k].Term]
			q.end = max(q.end, toks[k].End)
		case k < len(toks) && lengthCM[toks[k].Term] > 0:
			// A size, in centimetres.
			f := lengthCM[toks[k].Term]
			q.class, q.unit, q.lo, q.hi = qMeasure, "cm", lo*f, hi*f
			q.end = max(q.end, toks[k].End)
		default:
			// A measurement: a vital sign's name just before, or "out of 10" after.
			if v := vitalBefore(toks, i); v != "" {
				q.class, q.unit = qMeasure, v
			} else if s := scaleAfter(text, toks, i, j, k); s >= 0 {
				// A score out of 10, a murmur's grade out of 6, power out of 5.
				q.class, q.unit, q.end = qMeasure, "of "+toks[s].Term, toks[s].End
				if q.unit == "of 10" {
					q.unit = "score"
				}
			} else if strings.HasPrefix(text[t.End:], "+") || k < len(toks) && toks[k].Term == "plus" && k == i+1 {
				// A grade: "2+ reflexes", "one plus pitting edema".
				q.class, q.unit = qMeasure, "plus"
			} else if k < len(toks) && (toks[k].Term == "year" || toks[k].Term == "yo") {
				q.class, q.unit = qMeasure, "age"
			}
		}
		if q.class != 0 {
			out = append(out, q)
			i = max(i, j-1)
		}
	}
	return out
}

// scales are the denominators of scores and grades ("3/10", "grade 2 out of 6").
var scales = map[string]bool{"4": true, "5": true, "6": true, "10": true}

// scaleAfter finds the scale of the number at toks[i]: "/6" at toks[j] (the next token), or "out
// of 6" (of 10, "out" may be left out) at toks[k] (the next content token). It returns its index
// or -1.
func scaleAfter(text string, toks []clinicaltext.Token, i, j, k int) int {
	switch {
	case j < len(toks) && scales[toks[j].Term] && strings.Contains(text[toks[i].End:toks[j].Start], "/"):
		return j
	case k+1 < len(toks) && scales[toks[k].Term] && (toks[k].Term == "10" || strings.Contains(text[toks[i].End:toks[k].Start], "out")):
		return k
	}
	return -1
}

// half reports whether "and a half" starts at toks[k].
func half(toks []clinicaltext.Token, k int) bool {
	return k >= 0 && k+2 < len(toks) && toks[k].Term == "and" && toks[k+1].Term == "a" && toks[k+2].Term == "half"
}

// perWord reports whether the words between a number and a unit of time make a rate ("a",
// "per", "each", "every").
func perWord(between []clinicaltext.Token) bool {
	for _, t := range between {
		switch t.Term {
		case "a", "an", "per", "each", "everi", "every":
			return true
		}
	}
	return false
}

// numberAt reads a number at toks[i]: digits, or "a"/"a couple of"/"few" before a unit of time.
func numberAt(toks []clinicaltext.Token, i int) (lo, hi float64, ok bool) {
	t := toks[i]
	if isNum(t.Term) {
		v, err := strconv.ParseFloat(t.Term, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, 0, false
		}
		return v, v, true
	}
	if nw, ok := numberWord[t.Term]; ok {
		// Only before a unit: "a week", "a couple of days", "few days", "half a centimetre".
		for k := i + 1; k < len(toks) && k <= i+3; k++ {
			if durationDays[toks[k].Term] > 0 && toks[k].Term != "d" || t.Term == "half" && (doseUnits[toks[k].Term] != "" || lengthCM[toks[k].Term] > 0) {
				return nw[0], nw[1], true
			}
			if toks[k].Flags&clinicaltext.Stop == 0 && toks[k].Term != "coupl" {
				break
			}
		}
	}
	return 0, 0, false
}

func vitalBefore(toks []clinicaltext.Token, i int) string {
	for k := i - 1; k >= 0 && k >= i-3; k-- {
		if vitals[toks[k].Term] {
			return toks[k].Term
		}
	}
	return ""
}

func isNum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// answerPolarity classifies a reply to a yes/no question by its first words: -1 for no, +1 for
// yes, 0 when it does not open with either. A "no" counts only as a word of its own ("No.",
// "Uh, no, ...", "no no"), not as the start of "no one else" or "no idea".
func answerPolarity(text string, toks []clinicaltext.Token) int {
	for k, t := range toks {
		if k >= 4 {
			break
		}
		switch t.Term {
		case "no", "nope", "nah", "never", "not", "none", "nothing", "neither", "nobody":
			rest := strings.TrimLeft(text[t.End:], " ")
			if t.Term == "no" && rest != "" && !strings.ContainsAny(rest[:1], ",.!?;-") &&
				!(k+1 < len(toks) && (toks[k+1].Term == "no" || toks[k+1].Term == "not" || toks[k+1].Term == "nothing" || toks[k+1].Term == "never")) {
				return 0
			}
			return -1
		case "yes", "yeah", "yep", "yup", "mhm", "correct", "definit", "definitely", "sometim", "sometimes", "occasion", "occasionally", "i":
			if t.Term == "i" {
				continue
			}
			return 1
		case "um", "uh", "erm", "er", "oh", "well", "so", "mm", "hmm", "ah":
			continue
		}
		if t.Flags&clinicaltext.Stop == 0 {
			return 0
		}
	}
	return 0
}
