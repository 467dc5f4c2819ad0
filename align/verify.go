package align

import (
	"math"
	"slices"
	"strings"

	"github.com/evidenceledger/evidence/clinicaltext"
)

// The claim checker. For each sentence it reads the claims (reading.go) and looks for each one
// in what was said: first in the segments retrieval found as the sentence's evidence and their
// conversational neighbours, then anywhere in the conversation. A claim the conversation states
// the other way (negated, of a relative, another number, side, quality, drug) is a conflict; a
// salient claim found nowhere is unsupported. See docs/align.md, "Claim verification".

// transcript is the checker's view of an encounter, built once by NewIndex.
type transcript struct {
	readings []reading
	mentions map[string][]mref // term -> where it is said
	answerOf [][2]int32        // (question segment, its answer)
	values   map[string][]mref // "group/value" -> where an attribute value is said
}

// mref locates one fact of one segment.
type mref struct{ seg, fact int32 }

// buildTranscript reads every segment (toks[i] is segment i's analysis) and settles what
// questions mean from their answers: a question answered "no" negates what it asked about,
// one answered "yes" affirms it, and one with no bare answer leaves it unknown.
//
// Questions here are wider than retrieval's (Index.info): speech transcribed without "?"
// ("how about like fever or chills") asks through its words, and its asking part is the
// clause from the last question cue on.
func (x *Index) buildTranscript(toks [][]clinicaltext.Token) {
	tr := &x.tr
	tr.readings = make([]reading, len(x.segs))
	tr.mentions = make(map[string][]mref)
	asks := make([]int, len(x.segs)) // byte where an unpunctuated question starts, or -1
	for i := range x.segs {
		tr.readings[i] = readSpeech(x.segs[i].Text, toks[i])
		asks[i] = questionStart(x.segs[i].Text, toks[i], x.info[i].question)
	}
	// asking reports whether fact f of segment q is in a question: a clause ending in "?",
	// or what follows the question cue of an unpunctuated one.
	asking := func(q int, f *fact) bool {
		for _, t := range toks[q] {
			if t.Start <= f.start && f.start < t.End {
				if t.Flags&clinicaltext.Question != 0 {
					return true
				}
				break
			}
		}
		return asks[q] >= 0 && f.start >= asks[q] && !hasQuestionMark(toks[q])
	}
	speaker := func(i int) int32 { return x.info[i].speaker }
	for q := range x.segs {
		if asks[q] < 0 {
			continue
		}
		// The answer: the next turn by another speaker with words, within four turns
		// and replyWindowMS, that does not start while the question is still being
		// asked (a backchannel).
		pol, answered := 0, false
		for a := q + 1; a < len(x.segs) && a <= q+4; a++ {
			if speaker(a) == speaker(q) || !x.info[a].spoken || x.segs[a].StartMS < x.segs[q].EndMS-overlapMS {
				continue
			}
			if x.segs[a].StartMS-x.segs[q].EndMS > replyWindowMS {
				break
			}
			pol, answered = answerPolarity(x.segs[a].Text, toks[a]), true
			tr.answerOf = append(tr.answerOf, [2]int32{int32(q), int32(a)})
			break
		}
		head := -1 // the first concept asked about; what follows a preposition after it is its place
		for k := range tr.readings[q].facts {
			f := &tr.readings[q].facts[k]
			if !asking(q, f) {
				continue
			}
			if head < 0 && !f.expansion && f.cat&(clinicaltext.Symptom|clinicaltext.Condition|clinicaltext.Drug) != 0 {
				head = k // a concept: "any problems with your vision?" denies the vision problems
			}
			if pol == -1 && head >= 0 && k != head && !f.expansion && placeOf(x.segs[q].Text, tr.readings[q].facts[head], *f) {
				f.asked = false // "any blood in your stool?" "no": no blood; the stool is still there
				continue
			}
			switch {
			case f.aside:
				f.asked = false // "apart from the inhaler, any other medicines?" presupposes it
			case !answered || pol == 0 || f.others:
				f.asked = true
			case pol == -1:
				f.neg, f.asked, f.deniedQA = true, false, !f.neg
				f.never = f.never || historyQuestion(toks[q])
			default:
				f.asked = false
			}
		}
	}
	tr.values = make(map[string][]mref)
	for i := range tr.readings {
		for k, f := range tr.readings[i].facts {
			tr.mentions[f.term] = append(tr.mentions[f.term], mref{int32(i), int32(k)})
			if f.group != "" {
				tr.values[f.group+"/"+f.value] = append(tr.values[f.group+"/"+f.value], mref{int32(i), int32(k)})
			}
		}
	}
}

// overlapMS is how long before a question's end its answer may start.
const overlapMS = 1000

// historyQuestion reports whether a question asks about the past as a whole ("have you ever
// been diagnosed with ...?", "any problems before?"), so that a "no" to it is a "never".
func historyQuestion(toks []clinicaltext.Token) bool {
	for _, t := range toks {
		switch t.Term {
		case "ever", "diagnos", "befor", "previous", "previously", "histori", "past":
			return true
		}
	}
	return false
}

// placeOf reports whether fact f, later in a question than its head, follows a preposition
// after the head ("blood *in* your stool"), so that a "no" denies the head, not f.
func placeOf(text string, head, f fact) bool {
	if f.start <= head.end {
		return false
	}
	for _, w := range strings.FieldsFunc(strings.ToLower(text[head.end:f.start]), func(r rune) bool {
		return !(r >= 'a' && r <= 'z')
	}) {
		if scopePrepositions[w] && !(w == "of" && negHeads[head.term]) {
			return true
		}
	}
	return false
}

// answerTo returns the segment answering question segment q, or -1.
func (x *Index) answerTo(q int32) int32 {
	for _, p := range x.tr.answerOf {
		if p[0] == q {
			return p[1]
		}
	}
	return -1
}

// questionCues open a question in speech transcribed without "?".
var questionCues = [][2]string{{"have", "you"}, {"do", "you"}, {"did", "you"}, {"are", "you"},
	{"were", "you"}, {"is", "it"}, {"is", "there"}, {"was", "there"}, {"does", "it"}, {"did", "it"},
	{"has", "it"}, {"can", "you"}, {"could", "you"}, {"how", "about"}, {"what", "about"}, {"any", ""},
	{"anything", ""}, {"ever", ""}}

// negatedBefore reports whether one of the three tokens before toks[k] is a negation cue.
func negatedBefore(toks []clinicaltext.Token, k int) bool {
	for j := max(0, k-3); j < k; j++ {
		if toks[j].Flags&clinicaltext.Negation != 0 {
			return true
		}
	}
	return false
}

func hasQuestionMark(toks []clinicaltext.Token) bool {
	for _, t := range toks {
		if t.Flags&clinicaltext.Question != 0 {
			return true
		}
	}
	return false
}

// questionStart returns the byte offset where a segment asks something, or -1 when it asks
// nothing: the first clause marked with "?" by the tokenizer, else, for a turn retrieval
// counts as a question or one without sentence punctuation, the first question cue.
func questionStart(text string, toks []clinicaltext.Token, isQuestion bool) int {
	for _, t := range toks {
		if t.Flags&clinicaltext.Question != 0 {
			return t.Start
		}
	}
	if !isQuestion && strings.ContainsAny(text, ".!") {
		return -1
	}
	for k := range toks {
		if negatedBefore(toks, k) {
			continue // "I don't see any fracture" states; it does not ask
		}
		for _, c := range questionCues {
			if toks[k].Term == c[0] && (c[1] == "" || k+1 < len(toks) && toks[k+1].Term == c[1]) {
				return toks[k].Start
			}
		}
	}
	return -1
}

// status of one claim.
type status uint8

const (
	stAbsent  status = iota // said nowhere
	stFound                 // said the same way
	stAsked                 // raised, but what was answered is unknown
	stNegated               // said the other way: negated where the sentence affirms, or the reverse
	stOther                 // said of someone else (or of the patient where the sentence says a relative)
)

// evidence is the region of the conversation a sentence's spans point to: each segment with
// the best rank (0 = the top span) at which it or a partner was found.
type evidence map[int32]int

func (x *Index) evidenceOf(spans []Span) evidence {
	ev := evidence{}
	add := func(i int, r int) {
		if i < 0 || i >= len(x.segs) {
			return
		}
		if old, ok := ev[int32(i)]; !ok || r < old {
			ev[int32(i)] = r
		}
	}
	for r, sp := range spans {
		i, ok := x.segIndex[sp.SegmentID]
		if !ok {
			continue
		}
		add(i, r)
		add(i-1, r+1)
		add(i+1, r+1)
		for _, p := range x.tr.answerOf {
			switch int(p[0]) {
			case i:
				add(int(p[1]), r)
			}
			if int(p[1]) == i {
				add(int(p[0]), r)
			}
		}
	}
	return ev
}

// claimCheck is the outcome for one fact of the sentence.
type claimCheck struct {
	f      *fact
	st     status
	where  mref // the mention that decided a conflict or support
	weight float64
	// firm, for a conflict, says the conversation never states the claim the sentence's
	// way, anywhere.
	firm bool
}

// verdictOf checks one sentence against the conversation, given its retrieved evidence.
func (x *Index) verdictOf(s Sentence, toks []clinicaltext.Token, spans []Span) (Verdict, Severity, []Conflict, []Range) {
	a := x.analyse(s, toks, spans)
	return verdictFrom(&a, defaultVerdictModel)
}

// A sentence retrieval finds no evidence for, with at least mostlyUnsaid of its claim weight
// and unsaidWeight in all found nowhere, is unmentioned whatever the model says: the
// conversation does not contain it ("Patient owns a purple bicycle").
// So is one whose main claim is a weighty one found nowhere (a drug, condition, procedure or
// number said of nothing in the conversation: "Past medical history: diabetes."), and one
// that names a drug, condition or procedure of weight namedAbsentWeight said nowhere under any
// name or class ("MRI of the knee ordered" after a visit where no scan was discussed).
const (
	mostlyUnsaid      = 0.9
	unsaidWeight      = 0.5
	unsaidClaim       = 0.8
	unsaidClaimShare  = 0.5
	namedAbsentWeight = 0.8
)

func (a *analysis) unsaid() bool {
	f := &a.feat
	return a.namedAbsent ||
		f[vNoSpans] == 1 && f[vUnsupShare] >= mostlyUnsaid && f[vSumAbsent] >= unsaidWeight ||
		f[vMaxAbsent] >= unsaidClaim && f[vUnsupShare] >= unsaidClaimShare
}

// inferredShare is the least share of a sentence's claim weight left unsaid for an
// assessment that is not flagged to count as inferred rather than supported.
const inferredShare = 0.25

// analysis is what the checker found about one sentence, before the verdict.
type analysis struct {
	text        string
	inference   bool // an assessment or impression: the clinician's reading of what was said
	r           reading
	conflicts   []Conflict
	unsupported []claimCheck
	unsuppQ     []quantity
	feat        [numVerdictFeatures]float64
	// namedAbsent: a drug, condition or procedure the sentence names with at least
	// namedAbsentWeight is said nowhere in the conversation, under no name or class.
	namedAbsent bool
}

// analyse reads a sentence, checks each claim and computes the features of the verdict.
func (x *Index) analyse(s Sentence, toks []clinicaltext.Token, spans []Span) analysis {
	r := read(s.Text, toks)
	if strings.HasPrefix(strings.ToUpper(s.Section), "FH") || strings.Contains(strings.ToLower(s.Section), "family") ||
		strings.HasPrefix(strings.TrimSpace(s.Text), "FH") {
		for k := range r.facts {
			if r.facts[k].cat&clinicaltext.Relative == 0 {
				r.facts[k].other = true
			}
		}
	}
	// A leading heading ("PMH:", "DH:") names where the sentence belongs, not a claim.
	if h := headingEnd(s.Text); h > 0 {
		r.facts = slices.DeleteFunc(r.facts, func(f fact) bool { return f.end <= h })
	}
	ev := x.evidenceOf(spans)
	var conflicts []Conflict
	addConflict := func(kind ConflictKind, claim Range, m mref, cueFrom int) {
		for _, c := range conflicts {
			if c.Claim == claim {
				return
			}
		}
		conflicts = append(conflicts, x.conflictAt(kind, claim, m, cueFrom))
	}

	// Claims about concepts: present or absent, the patient's or someone else's. A word is
	// checked with its alternatives: the terms its abbreviation or synonym expands to and a
	// two-word concept it ends ("heart attack"); it is supported when it or one of them is.
	var unsupported []claimCheck
	var found []foundFact
	firmNegations := 0
	supportedWeight, totalWeight := 0.0, 0.0
	// Numbers are claims of their own unless a quantity the conversation states holds them.
	saidQuantity := make([]bool, len(r.quants))
	for i, q := range r.quants {
		_, st := x.checkQuantity(q, r, ev)
		saidQuantity[i] = st == stFound
	}
	inSaidQuantity := func(f *fact) bool {
		for i, q := range r.quants {
			if f.start >= q.start && f.end <= q.end && (saidQuantity[i] || q.unit == "score" && f.term == "10") {
				return true // a stated quantity, or the scale of a score ("/10")
			}
		}
		return false
	}
	for k := range r.facts {
		f := &r.facts[k]
		if f.expansion || f.phrase || len(f.term) == 1 && !isNum(f.term) {
			continue
		}
		if isNum(f.term) && (inSaidQuantity(f) || partOfName(s.Text, f)) {
			continue
		}
		alts := alternatives(r.facts, k)
		w := claimWeight(f)
		for _, a := range alts {
			if r.facts[a].expansion {
				w = math.Max(w, claimWeight(&r.facts[a]))
			}
		}
		if w == 0 || f.asked && f.cat == 0 {
			continue
		}
		c := x.checkFact(f, ev)
		// A concept the word ends ("chest pain" for "pain") is the more specific claim: where
		// the evidence states it, it decides.
		for _, a := range alts {
			if g := &r.facts[a]; g.phrase && g.cat != 0 {
				if cg := x.checkFact(g, ev); cg.st != stAbsent {
					if _, inEv := ev[cg.where.seg]; inEv || c.st == stAbsent {
						c = cg
					}
				}
				break
			}
		}
		if c.st == stAbsent {
			for _, a := range alts {
				if ca := x.checkFact(&r.facts[a], ev); ca.st != stAbsent {
					c = ca
					if ca.st == stFound || ca.st == stAsked {
						break
					}
				}
			}
		}
		totalWeight += w
		switch c.st {
		case stFound, stAsked:
			supportedWeight += w
			found = append(found, foundFact{c.f, w})
		case stNegated:
			switch {
			case f.asked:
			case x.tr.readings[c.where.seg].facts[c.where.fact].never && !aboutHistory(s):
				// "I've never had a migraine" denies a past, not today's diagnosis.
			case f.neg && isExam(s):
				// "No rash seen": the clinician's examination now, not the history.
			case c.f.expansion && !abbreviation(s.Text[f.start:f.end]):
				// A synonym ("cellulitis" for infection) is too loose to contradict.
			case conflictCategory(c.f.cat) || !f.neg && c.firm && !c.f.expansion && x.tr.readings[c.where.seg].facts[c.where.fact].deniedQA &&
				specific(c.f.term) && c.f.cat&clinicaltext.Body == 0:
				// A concept said the other way, or any specific word the patient was asked
				// about and said "no" to ("difficulty swallowing?" "No."), but not a body part:
				// "bowel problems?" "No." denies the problems, not the bowel.
				addConflict(ConflictNegation, Range{min(f.cue, c.f.cue), f.end}, c.where, -1)
				if c.firm && !c.f.expansion {
					firmNegations++
				}
			}
			supportedWeight += w / 2
		case stOther:
			if c.f.cat&(clinicaltext.Condition|clinicaltext.Symptom) != 0 && !f.asked {
				addConflict(ConflictAttribution, Range{f.start, f.end}, c.where, -1)
			}
			supportedWeight += w / 2
		case stAbsent:
			if x.bridged(f) {
				supportedWeight += w
				continue
			}
			c.weight = w
			for _, a := range alts {
				if r.facts[a].cat != 0 && f.cat == 0 && r.facts[a].expansion {
					c.f = &r.facts[a] // judge the word by the concept it stands for
				}
			}
			unsupported = append(unsupported, c)
		}
	}

	// Swaps: an absent drug, condition or site where the evidence names another of its kind.
	for _, c := range unsupported {
		f := c.f
		switch {
		case f.cat&clinicaltext.Drug != 0:
			if m, ok := x.drugConflict(f, ev); ok {
				addConflict(ConflictMedication, Range{f.start, f.end}, m, -1)
			}
		case f.cat&clinicaltext.Condition != 0 && specific(f.term):
			if m, ok := x.kindInEvidence(f, ev, clinicaltext.Condition); ok {
				addConflict(ConflictCondition, Range{f.start, f.end}, m, -1)
			}
		case f.cat&clinicaltext.Body != 0:
			if m, ok := x.kindInEvidence(f, ev, clinicaltext.Body); ok {
				addConflict(ConflictSite, Range{f.start, f.end}, m, -1)
			}
		}
	}

	// Attribute values: a side, a quality, a severity the conversation gives otherwise.
	for k := range r.facts {
		f := &r.facts[k]
		if f.group == "" || f.asked || f.neg || f.expansion && f.group != "side" && f.group != "vertical" {
			continue // "no pain on the lateral side" says nothing of the medial one
		}
		if twoValues(r, f) {
			continue // "dull ache with sharp pain": the sentence gives both
		}
		if m, ok := x.groupConflict(f, r, ev); ok {
			kind := ConflictQuality
			switch f.group {
			case "side", "vertical", "front", "inside":
				kind = ConflictSite
			}
			addConflict(kind, Range{f.start, f.end}, m, -1)
		}
	}

	// Quantities: durations, doses, frequencies and measurements.
	var unsupportedQ []quantity
	for _, q := range r.quants {
		m, st := x.checkQuantity(q, r, ev)
		switch st {
		case stFound:
		case stNegated:
			kind := ConflictNumber
			switch q.class {
			case qDuration:
				kind = ConflictDuration
			case qDose, qFrequency:
				kind = ConflictDose
			}
			addConflict(kind, Range{q.start, q.end}, m, -1)
		default:
			unsupportedQ = append(unsupportedQ, q)
		}
	}

	slices.SortFunc(conflicts, func(a, b Conflict) int { return a.Claim.Start - b.Claim.Start })
	a := analysis{text: s.Text, r: r, conflicts: conflicts, unsupported: unsupported, unsuppQ: unsupportedQ,
		inference: isInference(s)}
	f := &a.feat
	f[vBias] = 1
	for _, c := range unsupported {
		if c.f.cat&(clinicaltext.Drug|clinicaltext.Condition|clinicaltext.Procedure) != 0 && c.weight >= namedAbsentWeight {
			a.namedAbsent = true
		}
		f[vMaxAbsent] = math.Max(f[vMaxAbsent], c.weight)
		f[vSumAbsent] += c.weight
		switch {
		case c.f.cat&clinicaltext.Drug != 0:
			f[vAbsentDrug] = 1
		case c.f.cat&(clinicaltext.Condition|clinicaltext.Procedure) != 0:
			f[vAbsentConcept] = 1
		case isNum(c.f.term):
			f[vAbsentNumber] = 1
		}
		if specific(c.f.term) {
			f[vAbsentSpecific]++
		}
	}
	for _, q := range unsupportedQ {
		f[vAbsentQuantity] = math.Max(f[vAbsentQuantity], quantityWeight(q))
	}
	if totalWeight > 0 {
		f[vUnsupShare] = 1 - supportedWeight/totalWeight
	}
	for _, c := range conflicts {
		switch c.Kind {
		case ConflictNegation:
			f[vConflictNeg]++
		case ConflictAttribution:
			f[vConflictOther]++
		case ConflictSite, ConflictQuality:
			f[vConflictValue]++
		case ConflictNumber, ConflictDuration, ConflictDose:
			f[vConflictQuantity]++
		case ConflictMedication:
			f[vConflictDrug]++
		case ConflictCondition:
			f[vConflictCondition]++
		}
	}
	if len(spans) > 0 {
		f[vTopScore] = spans[0].Score
	} else {
		f[vNoSpans] = 1
	}
	f[vFacts] = math.Log1p(totalWeight)
	f[vOutOfWindow] = x.outOfWindow(found)
	f[vFirmNegation] = float64(firmNegations)
	return a
}

// foundFact is a claim of the sentence the conversation says, with its weight.
type foundFact struct {
	f *fact
	w float64
}

// windowSegments is the half-width of the stretch of conversation one sentence's claims are
// expected to come from.
const windowSegments = 4

// outOfWindow returns the heaviest claim that is said only outside the stretch of the
// conversation (2*windowSegments+1 segments) that holds most of the sentence's claim weight:
// a word of the sentence that belongs to another moment of the visit. A note sentence usually
// reports one moment; a wrong one often borrows a word said elsewhere.
func (x *Index) outOfWindow(found []foundFact) float64 {
	if len(found) < 2 {
		return 0
	}
	segsOf := make([][]int32, len(found))
	for i, ff := range found {
		for _, m := range x.tr.mentions[ff.f.term] {
			segsOf[i] = append(segsOf[i], m.seg)
		}
	}
	bestCover, bestCenter := -1.0, int32(0)
	for _, cands := range segsOf {
		for _, c := range cands {
			cover := 0.0
			for i, ss := range segsOf {
				for _, s := range ss {
					if s >= c-windowSegments && s <= c+windowSegments {
						cover += found[i].w
						break
					}
				}
			}
			if cover > bestCover {
				bestCover, bestCenter = cover, c
			}
		}
	}
	out := 0.0
	for i, ss := range segsOf {
		in := false
		for _, s := range ss {
			if s >= bestCenter-windowSegments && s <= bestCenter+windowSegments {
				in = true
				break
			}
		}
		if !in {
			out = math.Max(out, found[i].w)
		}
	}
	return out
}

// verdictFrom turns an analysis into a verdict: a sentence with conflicts is contradicted;
// otherwise the model's probability that the sentence is wrong decides whether it is flagged
// unmentioned.
func verdictFrom(a *analysis, m *verdictModel) (Verdict, Severity, []Conflict, []Range) {
	if len(a.conflicts) > 0 {
		// The conversation says otherwise: always shown, whatever the model's estimate.
		return Contradicted, conflictSeverity(a.conflicts, a.r), a.conflicts, nil
	}
	if m.prob(&a.feat) < m.Threshold && !a.unsaid() {
		if a.inference && a.feat[vUnsupShare] >= inferredShare {
			return Inferred, "", nil, nil
		}
		return Supported, "", nil, nil
	}
	var ranges []Range
	for _, c := range a.unsupported {
		ranges = append(ranges, Range{c.f.start, c.f.end})
	}
	for _, q := range a.unsuppQ {
		ranges = append(ranges, Range{q.start, q.end})
	}
	if len(ranges) == 0 {
		ranges = []Range{{0, len(a.text)}}
	}
	return Unmentioned, unmentionedSeverity(a.unsupported, a.unsuppQ), nil, mergeRanges(a.text, ranges)
}

// inferenceCues mark a sentence as the clinician's reading of the consultation: its section
// (impression, assessment, diagnosis) or its words ("likely", "consistent with").
var inferenceCues = []string{"imp", "assessment", "diagnos", "impression", "reasoning", "likely", "consistent with",
	"suggestive", "suspect", "probable", "possible", "?", "ddx", "differential"}

func isInference(s Sentence) bool {
	t := strings.ToLower(s.Section + " " + s.Text)
	for _, c := range inferenceCues {
		if strings.Contains(t, c) {
			return true
		}
	}
	return false
}

// isExam reports whether a sentence reports an examination ("Ex:", "O/E", "on examination",
// "seen", "palpation"), whose findings are the clinician's, at the time.
func isExam(s Sentence) bool {
	t := strings.ToLower(s.Section + " " + s.Text)
	if strings.HasPrefix(t, "ex") || strings.HasPrefix(strings.ToLower(strings.TrimSpace(s.Text)), "ex:") {
		return true
	}
	for _, w := range []string{"o/e", "examination", "exam:", "on exam", " seen", "palpation", "inspection", "auscultation", "observed", "noted on"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}

// aboutHistory reports whether a sentence speaks of the past as a whole (past medical or
// family history, previous episodes), where "never" in the conversation contradicts it.
func aboutHistory(s Sentence) bool {
	t := strings.ToLower(s.Section + " " + s.Text)
	for _, w := range []string{"pmh", "history", "hx", "previous", "before", "prior", "fh", "past"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}

// abbreviation reports whether a written word is an abbreviation: no lower-case letter
// ("SOB", "N&V").
func abbreviation(w string) bool {
	return strings.ToUpper(w) == w
}

// partOfName reports whether a number is part of a name ("COVID-19", "B12", "T2"): written
// against letters, or after a hyphen that follows letters.
func partOfName(text string, f *fact) bool {
	if f.start > 0 && isLetter(text[f.start-1]) || f.end < len(text) && isLetter(text[f.end]) {
		return true
	}
	return f.start > 1 && text[f.start-1] == '-' && isLetter(text[f.start-2])
}

// headingEnd returns the end of a leading "Heading:" of a few words, or 0.
func headingEnd(text string) int {
	i := strings.IndexByte(text, ':')
	if i <= 0 || i > 30 {
		return 0
	}
	for _, r := range text[:i] {
		if !(r == ' ' || r == '/' || r == '&' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return 0
		}
	}
	return i
}

// claimWeight says how much a fact of the sentence matters to its truth when the conversation
// does not say it: its kind (concepts that could change care most, plain words least) times how
// often notes' uses of the word are said in the consultation (claimterms.tsv), so that note
// vocabulary ("reports", "discussed") weighs little and concrete words much.
func claimWeight(f *fact) float64 {
	var base float64
	switch {
	case isNum(f.term):
		return weightNumber // a number no quantity explains: checked as a word
	case len(f.term) <= 2:
		return 0
	case f.cat&(clinicaltext.Drug|clinicaltext.Condition|clinicaltext.Procedure) != 0:
		base = weightConcept
	case f.cat&(clinicaltext.Symptom|clinicaltext.Habit) != 0:
		base = weightSymptom
	case f.cat&clinicaltext.Body != 0:
		base = weightBody
	case f.cat&clinicaltext.Relative != 0, f.group != "":
		base = weightValue
	case rareTerm(f.term):
		base = weightRare
	default:
		base = weightWord
	}
	return base * sayRate(f.term)
}

// Weights of the kinds of claim.
const (
	weightConcept = 1.0
	weightSymptom = 0.9
	weightBody    = 0.7
	weightValue   = 0.6
	weightWord    = 0.5
	weightNumber  = 1.0
	weightRare    = 0.7
)

// rareTerm reports whether an analysed term is a specific word no table knows: rarer than
// general English's 60,000 most frequent words ("percocet", "sarcoidosis", "fundoscopy"), at
// least six letters, and not two common words run together ("roomshare", "hayfever").
func rareTerm(t string) bool {
	if len(t) < 6 || clinicaltext.WordRank(t) != 0 || !isASCIILower(t) {
		return false
	}
	for i := 3; i <= len(t)-3; i++ {
		if a, b := clinicaltext.WordRank(t[:i]), clinicaltext.WordRank(clinicaltext.Stem(t[i:])); a > 0 && a <= 30 && b > 0 && b <= 30 {
			return false
		}
	}
	return true
}

func isASCIILower(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

func quantityWeight(q quantity) float64 {
	if q.class == qDose {
		return 1
	}
	return 0.6
}

func conflictCategory(c clinicaltext.Category) bool {
	return c&(clinicaltext.Drug|clinicaltext.Condition|clinicaltext.Symptom|clinicaltext.Procedure|clinicaltext.Habit) != 0
}

// alternatives returns the indexes of the facts that stand for the same word as facts[k]:
// the expansions of its abbreviation or synonym, and a two-word concept it ends.
func alternatives(facts []fact, k int) []int {
	var out []int
	for j := k + 1; j < len(facts) && facts[j].pos == facts[k].pos; j++ {
		if facts[j].expansion || facts[j].phrase {
			out = append(out, j)
		}
	}
	return out
}

// checkFact finds how the conversation states f: in the evidence region first, then anywhere.
func (x *Index) checkFact(f *fact, ev evidence) claimCheck {
	ms := x.tr.mentions[f.term]
	if isNum(f.term) {
		// A number is said of something: only near the sentence's evidence does it count.
		var near []mref
		for _, m := range ms {
			if x.near(m.seg, ev) {
				near = append(near, m)
			}
		}
		ms = near
	}
	if len(ms) == 0 {
		// Another name of the same drug ("nurofen" for "ibuprofen").
		if f.cat&clinicaltext.Drug != 0 {
			for _, alt := range clinicaltext.DrugClasses(f.term) {
				if ms2 := x.tr.mentions[alt]; len(ms2) > 0 && sameDrug(f.term, alt) {
					ms = ms2
					break
				}
			}
		}
		if len(ms) == 0 && f.group != "" {
			ms = x.tr.values[f.group+"/"+f.value] // "cramp" for "crampy", "smoke" for "smoker"
		}
		if len(ms) == 0 {
			if m, ok := x.classSaid(f); ok {
				return claimCheck{f: f, st: stFound, where: m} // "salbutamol" for "the blue inhaler"
			}
			return claimCheck{f: f, st: stAbsent}
		}
	}
	// Words said as such decide before terms a synonym or abbreviation stands for ("sick"
	// may be said of a headache; "vomiting" is what it is).
	surface := false
	for _, m := range ms {
		if !x.tr.readings[m.seg].facts[m.fact].expansion {
			surface = true
			break
		}
	}
	best := func(inEv bool) (claimCheck, bool) {
		var neg, other, asked *mref
		if inEv {
			// In the evidence, the best-ranked definite mention of the same person decides
			// (later in the visit wins a tie: "no... actually I did vomit at the start").
			var pick *mref
			for i := range ms {
				m := ms[i]
				if _, ok := ev[m.seg]; !ok {
					continue
				}
				g := &x.tr.readings[m.seg].facts[m.fact]
				if g.asked || g.other != f.other || surface && g.expansion {
					continue
				}
				if pick == nil || ev[m.seg] < ev[pick.seg] || ev[m.seg] == ev[pick.seg] && m.seg > pick.seg {
					pick = &ms[i]
				}
			}
			if pick != nil {
				if x.tr.readings[pick.seg].facts[pick.fact].neg != f.neg {
					return claimCheck{f: f, st: stNegated, where: *pick}, true
				}
				return claimCheck{f: f, st: stFound, where: *pick}, true
			}
		}
		for i := range ms {
			m := ms[i]
			if _, ok := ev[m.seg]; ok != inEv && inEv {
				continue
			}
			g := &x.tr.readings[m.seg].facts[m.fact]
			if surface && g.expansion {
				continue
			}
			switch {
			case g.asked:
				if asked == nil {
					asked = &ms[i]
				}
			case g.other != f.other:
				if other == nil {
					other = &ms[i]
				}
			case g.neg != f.neg:
				if neg == nil || x.closer(ms[i], *neg, ev) {
					neg = &ms[i]
				}
			default:
				return claimCheck{f: f, st: stFound, where: m}, true
			}
		}
		switch {
		case neg != nil:
			return claimCheck{f: f, st: stNegated, where: *neg}, true
		case other != nil:
			return claimCheck{f: f, st: stOther, where: *other}, true
		case asked != nil:
			return claimCheck{f: f, st: stAsked, where: *asked}, true
		}
		return claimCheck{}, false
	}
	if c, ok := best(true); ok {
		if c.st == stNegated || c.st == stOther {
			// A conflict in the evidence stands unless the same claim is said elsewhere in
			// the same way: nearby for a negation, anywhere for whose it is.
			g, ok := best(false)
			if ok && g.st == stFound && (c.st == stOther || x.near(g.where.seg, ev)) {
				return g
			}
			c.firm = !ok || g.st != stFound
		}
		return c
	}
	c, _ := best(false)
	c.firm = c.st == stNegated || c.st == stOther
	return c
}

// genericDrugWords are classes too broad to back or contradict a named drug.
var genericDrugWords = map[string]bool{"drug": true, "medic": true, "medicin": true, "medica": true,
	"medicinal drug": true, "medicament": true, "pill": true, "tablet": true, "agent": true}

// classSaid finds an affirmed mention of a specific class of drug f ("inhaler" for
// salbutamol, "antibiotics" for amoxicillin): a note may name the drug of a class discussed.
//
// A class said together with another drug of that class ("painkillers, paracetamol would be
// advisable") names that drug, not f: then classSaid does not back f and drugNamedWithClass
// finds the other drug.
func (x *Index) classSaid(f *fact) (mref, bool) {
	for _, cl := range clinicaltext.DrugClasses(f.term) {
		if genericDrugWords[cl] {
			continue
		}
		for _, m := range x.tr.mentions[cl] {
			if g := x.tr.readings[m.seg].facts[m.fact]; !g.asked && g.neg == f.neg && g.other == f.other {
				if _, named := x.drugNamedWithClass(f, cl, m.seg); named {
					continue
				}
				return m, true
			}
		}
	}
	return mref{}, false
}

// drugNamedWithClass finds, in segment s or its neighbours, a drug other than f that belongs
// to class cl.
func (x *Index) drugNamedWithClass(f *fact, cl string, s int32) (mref, bool) {
	for t := max(0, s-1); t <= min(s+1, int32(len(x.segs)-1)); t++ {
		for k, g := range x.tr.readings[t].facts {
			if g.term == f.term || g.term == cl || g.cat&clinicaltext.Drug == 0 || genericDrugWords[g.term] || g.neg || g.asked {
				continue
			}
			for _, c := range clinicaltext.DrugClasses(g.term) {
				if c == cl {
					return mref{t, int32(k)}, true
				}
			}
		}
	}
	return mref{}, false
}

// sameDrug reports whether alt is another name of drug term (not merely its class).
func sameDrug(term, alt string) bool {
	for _, back := range clinicaltext.DrugClasses(alt) {
		if back == term {
			return true
		}
	}
	return false
}

// closer reports whether mention a lies at a better evidence rank than b.
func (x *Index) closer(a, b mref, ev evidence) bool {
	ra, oka := ev[a.seg]
	rb, okb := ev[b.seg]
	if oka != okb {
		return oka
	}
	return ra < rb
}

// near reports whether segment i lies within nearSegments of the evidence region.
func (x *Index) near(i int32, ev evidence) bool {
	for s := range ev {
		if d := i - s; d >= -nearSegments && d <= nearSegments {
			return true
		}
	}
	return false
}

const nearSegments = 6

// bridged reports whether an absent word is backed by a close spelling in the conversation
// ("diarolyte" for "Dioralyte", "athsma" for "asthma"): one edit (a transposition counts as
// one) for words of 6 to 8 letters, two for longer ones, and never between two different
// concepts.
func (x *Index) bridged(f *fact) bool {
	n := len(f.term)
	if n < 6 || f.expansion {
		return false
	}
	limit := 1
	if n >= 8 {
		limit = 2
	}
	for t := range x.tr.mentions {
		if len(t) < 6 || len(t)-n > limit || n-len(t) > limit || t[0] != f.term[0] {
			continue
		}
		if c := clinicaltext.CategoryOf(t); c != 0 && f.cat != 0 {
			continue
		}
		if editDistance(t, f.term, limit) <= limit {
			return true
		}
	}
	return false
}

// editDistance is the optimal string alignment distance of a and b (Levenshtein with
// adjacent transpositions), or limit+1 when it exceeds limit.
func editDistance(a, b string, limit int) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		rowMin := d[i][0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
			rowMin = min(rowMin, d[i][j])
		}
		if rowMin > limit {
			return limit + 1
		}
	}
	return d[len(a)][len(b)]
}

// drugConflict finds, for a drug the conversation never names, what it says instead: its class
// negated ("I don't think you need antibiotics"), or another drug named in the evidence.
func (x *Index) drugConflict(f *fact, ev evidence) (mref, bool) {
	for _, cl := range clinicaltext.DrugClasses(f.term) {
		if genericDrugWords[cl] {
			continue
		}
		var denied *mref
		affirmed := false
		for i, m := range x.tr.mentions[cl] {
			g := x.tr.readings[m.seg].facts[m.fact]
			switch {
			case g.asked:
			case g.neg != f.neg:
				if denied == nil {
					denied = &x.tr.mentions[cl][i]
				}
			default:
				affirmed = true
			}
		}
		if denied != nil && !affirmed {
			return *denied, true
		}
		for _, m := range x.tr.mentions[cl] {
			if g := x.tr.readings[m.seg].facts[m.fact]; !g.asked && g.neg == f.neg {
				if other, ok := x.drugNamedWithClass(f, cl, m.seg); ok {
					return other, true
				}
			}
		}
	}
	return x.kindInEvidence(f, ev, clinicaltext.Drug)
}

// kindInEvidence finds, in the evidence region, a mention of another term of the same kind,
// said the same way (not negated, not asked).
func (x *Index) kindInEvidence(f *fact, ev evidence, kind clinicaltext.Category) (mref, bool) {
	var best mref
	bestRank := math.MaxInt
	for s, rank := range ev {
		for k, g := range x.tr.readings[s].facts {
			if g.cat&kind == 0 || g.term == f.term || g.asked || g.neg || g.expansion || g.other != f.other || !verySpecific(g.term) {
				continue
			}
			if kind == clinicaltext.Body && g.cat&clinicaltext.Relative != 0 {
				continue
			}
			if rank < bestRank || rank == bestRank && s < best.seg {
				best, bestRank = mref{s, int32(k)}, rank
			}
		}
	}
	return best, bestRank < math.MaxInt
}

// specific reports whether a term names something particular enough to be swapped for another
// of its kind: not among general English's 5,000 most frequent words ("unwell", "hurt", "cold"
// are; "asthma", "migraine", "amoxicillin" are not).
func specific(term string) bool {
	r := clinicaltext.WordRank(term)
	return r == 0 || r > 5
}

// verySpecific reports whether a term is rarer than general English's 15,000 most frequent
// words: specific enough to be taken as the thing a note's word was swapped for.
func verySpecific(term string) bool {
	r := clinicaltext.WordRank(term)
	return r == 0 || r > 15
}

// groupConflict finds, for an attribute value of the sentence ("right", "dry"), the evidence
// giving the same attribute another value and never this one.
func (x *Index) groupConflict(f *fact, r reading, ev evidence) (mref, bool) {
	// Look in the evidence, then in the segments next to it (the answer to "is it there all
	// the time, or does it come and go?" may lie just outside).
	scan := func(segs func(yield func(int32, int) bool)) (same bool, other mref, found bool) {
		rank := math.MaxInt
		for s, rk := range segs {
			for k, g := range x.tr.readings[s].facts {
				if g.group != f.group || g.asked {
					continue
				}
				if g.value == f.value {
					if g.neg == f.neg {
						same = true
					}
					continue
				}
				if g.neg && f.group != "side" && f.group != "vertical" {
					continue // "not sharp" is no other quality; "can't move my left arm" is a side
				}
				if rk < rank || rk == rank && s < other.seg {
					other, rank, found = mref{s, int32(k)}, rk, true
				}
			}
		}
		return same, other, found
	}
	inEvidence := func(yield func(int32, int) bool) {
		for s, rk := range ev {
			if !yield(s, rk) {
				return
			}
		}
	}
	nextTo := func(yield func(int32, int) bool) {
		for s := range x.tr.readings {
			if _, in := ev[int32(s)]; !in && x.near(int32(s), ev) && !yield(int32(s), nearSegments) {
				return
			}
		}
	}
	same, other, found := scan(inEvidence)
	if !same && !found {
		same, other, found = scan(nextTo)
	}
	if same || !found {
		return mref{}, false
	}
	// The same value said near the evidence settles it.
	if _, ok := x.valueSaid(f, ev); ok {
		return mref{}, false
	}
	return other, true
}

// valueSaid finds where the conversation states f's value of its attribute ("cramp" for
// "crampy") the way the sentence does, not asked; with ev, only near that evidence.
func (x *Index) valueSaid(f *fact, ev evidence) (mref, bool) {
	for _, m := range x.tr.values[f.group+"/"+f.value] {
		g := x.tr.readings[m.seg].facts[m.fact]
		if !g.asked && g.neg == f.neg && (ev == nil || x.near(m.seg, ev)) {
			return m, true
		}
	}
	return mref{}, false
}

// twoValues reports whether the sentence gives two values of f's group.
func twoValues(r reading, f *fact) bool {
	for _, g := range r.facts {
		if g.group == f.group && g.value != f.value && !g.neg {
			return true
		}
	}
	return false
}

// checkQuantity compares a quantity of the sentence with those of the same class and unit
// the conversation states. The evidence region decides first: a match there supports it; only
// other values there are a conflict, unless the same value is said near it. Without such a
// quantity in the evidence, segments that share a concept with the sentence decide the same
// way; failing those, the same value said anywhere supports it. It returns stFound, stNegated
// (a conflict, with the mention) or stAbsent.
func (x *Index) checkQuantity(q quantity, r reading, ev evidence) (mref, status) {
	ownOther := func(p quantity) bool { // the value of another quantity of the sentence
		for _, o := range r.quants {
			if o != q && o.class == p.class && o.unit == p.unit && overlaps(o, p) {
				return true
			}
		}
		return false
	}
	scan := func(s int32) (match bool, other mref, hasOther bool) {
		for k, p := range x.tr.readings[s].quants {
			if p.class != q.class || p.unit != q.unit || p.neg {
				continue
			}
			if overlaps(p, q) {
				return true, mref{}, false
			}
			if ownOther(p) {
				continue
			}
			if !hasOther {
				other, hasOther = mref{s, int32(-1 - k)}, true
			}
		}
		return false, other, hasOther
	}
	ordered := make([]int32, 0, len(ev))
	for s := range ev {
		ordered = append(ordered, s)
	}
	slices.SortFunc(ordered, func(a, b int32) int {
		if ev[a] != ev[b] {
			return ev[a] - ev[b]
		}
		return int(a - b)
	})
	var conflict mref
	hasConflict := false
	for _, s := range ordered {
		match, other, has := scan(s)
		if match {
			return mref{}, stFound
		}
		if has && !hasConflict {
			conflict, hasConflict = other, true
		}
	}
	if hasConflict {
		for s := range x.tr.readings {
			if x.near(int32(s), ev) {
				if match, _, _ := scan(int32(s)); match {
					return mref{}, stFound
				}
			}
		}
		return conflict, stNegated
	}
	for s := range x.tr.readings {
		if !sharesConcept(x.tr.readings[s], r) {
			continue
		}
		match, other, has := scan(int32(s))
		if match {
			return mref{}, stFound
		}
		if has && !hasConflict {
			conflict, hasConflict = other, true
		}
	}
	if hasConflict {
		return conflict, stNegated
	}
	for s := range x.tr.readings {
		if match, _, _ := scan(int32(s)); match {
			return mref{}, stFound
		}
	}
	return mref{}, stAbsent
}

// overlaps reports whether two quantities agree: their ranges overlap, allowing 10% either way.
func overlaps(a, b quantity) bool {
	return a.lo <= b.hi*1.1+1e-9 && b.lo <= a.hi*1.1+1e-9
}

// sharesConcept reports whether the segment reading names a concept (not a plain word) the
// sentence also names.
func sharesConcept(seg, sent reading) bool {
	for _, f := range sent.facts {
		if f.cat&(clinicaltext.Symptom|clinicaltext.Condition|clinicaltext.Drug|clinicaltext.Procedure) == 0 {
			continue
		}
		for _, g := range seg.facts {
			if g.term == f.term {
				return true
			}
		}
	}
	return false
}

// conflictAt builds the Conflict for a mention: the transcript words from the governing cue
// (the "no" of "no blood") to the mentioned word, or the quantity.
func (x *Index) conflictAt(kind ConflictKind, claim Range, m mref, _ int) Conflict {
	seg := &x.segs[m.seg]
	rd := &x.tr.readings[m.seg]
	var start, end int
	if m.fact < 0 {
		q := rd.quants[-1-m.fact]
		start, end = q.start, q.end
	} else {
		f := rd.facts[m.fact]
		start, end = f.start, f.end
		if f.cue < start && start-f.cue <= 60 {
			start = f.cue
		}
	}
	// A question whose answer settled it: point at the answer.
	if a := x.answerTo(m.seg); a >= 0 && m.fact >= 0 && kind == ConflictNegation && rd.facts[m.fact].start >= 0 {
		seg = &x.segs[a]
		start, end = 0, len(seg.Text)
		m.seg = a
	}
	c := Conflict{Kind: kind, Claim: claim, SegmentID: seg.ID, CharStart: start, CharEnd: end,
		StartMS: seg.StartMS, EndMS: seg.EndMS}
	if ws := x.info[m.seg].words; ws != nil {
		first, last := -1, -1
		for k, w := range ws {
			if w[1] > start && w[0] < end {
				if first < 0 {
					first = k
				}
				last = k
			}
		}
		if first >= 0 {
			c.StartMS, c.EndMS = seg.Words[first].StartMS, seg.Words[last].EndMS
		}
	}
	c.Words = seg.Text[start:end]
	return c
}

// conflictSeverity grades a contradicted sentence by its worst conflict.
func conflictSeverity(cs []Conflict, r reading) Severity {
	sev := Minimal
	for _, c := range cs {
		s := Minor
		switch c.Kind {
		case ConflictNegation, ConflictMedication, ConflictDose, ConflictCondition, ConflictSite, ConflictDuration, ConflictAttribution:
			s = Major
		case ConflictNumber:
			s = Minor
		case ConflictQuality:
			s = Minor
		}
		if s == Major {
			return Major
		}
		if s == Minor {
			sev = Minor
		}
	}
	return sev
}

// unmentionedSeverity grades an unmentioned sentence by what nothing supports.
func unmentionedSeverity(cs []claimCheck, qs []quantity) Severity {
	sev := Minimal
	for _, c := range cs {
		if c.f.cat&(clinicaltext.Drug|clinicaltext.Condition|clinicaltext.Procedure) != 0 {
			return Major
		}
		if c.f.cat&(clinicaltext.Symptom|clinicaltext.Body) != 0 {
			sev = Minor
		}
	}
	for _, q := range qs {
		if q.class == qDose {
			return Major
		}
		sev = Minor
	}
	if len(cs) == 0 && len(qs) == 0 {
		return Minor
	}
	return sev
}

// mergeRanges sorts ranges of text and joins those that overlap, touch or lie one space apart.
func mergeRanges(text string, rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return a.Start - b.Start })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (r.Start <= out[n-1].End || r.Start == out[n-1].End+1 && text[out[n-1].End] == ' ') {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// CheckNote aligns every sentence of one note (as AlignNote does) and checks it against the
// conversation: each Result has the sentence's evidence spans and its verdict, with conflicts
// for a contradicted sentence and unsupported ranges for an unmentioned one. It validates
// nothing; use the package-level Align for validated input.
func (x *Index) CheckNote(sentences []Sentence) []Result {
	spans := x.AlignNote(sentences)
	out := make([]Result, len(sentences))
	for i, s := range sentences {
		text := s.Text
		if len(text) > MaxSentenceBytes {
			text = text[:MaxSentenceBytes]
		}
		s.Text = text
		r := Result{SentenceID: s.ID, Spans: spans[i], MethodVersion: MethodVersion}
		r.Verdict, r.Severity, r.Conflicts, r.Unsupported = x.verdictOf(s, clinicaltext.Analyze(text), spans[i])
		out[i] = r
	}
	return out
}
