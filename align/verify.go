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
}

// mref locates one fact of one segment.
type mref struct{ seg, fact int32 }

// buildTranscript reads every segment (toks[i] is segment i's analysis) and settles what
// questions mean from their answers: a question answered "no" negates what it asked about,
// one answered "yes" affirms it, and one with no bare answer leaves it unknown.
func (x *Index) buildTranscript(toks [][]clinicaltext.Token) {
	tr := &x.tr
	tr.readings = make([]reading, len(x.segs))
	tr.mentions = make(map[string][]mref)
	for i := range x.segs {
		tr.readings[i] = read(x.segs[i].Text, toks[i])
	}
	for a := range x.info {
		q := x.info[a].replyTo
		if q < 0 {
			continue
		}
		pol := answerPolarity(x.segs[a].Text, toks[a])
		rq := &tr.readings[q]
		for k := range rq.facts {
			f := &rq.facts[k]
			if !questionFact(toks[q], f) {
				continue
			}
			switch pol {
			case -1:
				if !f.neg {
					f.neg = true
				}
				f.asked = false
			case 1:
				f.asked = false
			default:
				f.asked = true
			}
		}
	}
	for i := range x.info {
		if !x.info[i].question {
			continue
		}
		answered := false
		for a := i + 1; a < len(x.info) && a <= i+3; a++ {
			if x.info[a].replyTo == int32(i) {
				answered = true
			}
		}
		if !answered {
			for k := range tr.readings[i].facts {
				if questionFact(toks[i], &tr.readings[i].facts[k]) {
					tr.readings[i].facts[k].asked = true
				}
			}
		}
	}
	for i := range tr.readings {
		for k, f := range tr.readings[i].facts {
			tr.mentions[f.term] = append(tr.mentions[f.term], mref{int32(i), int32(k)})
		}
	}
}

// questionFact reports whether fact f lies in a question clause of the segment.
func questionFact(toks []clinicaltext.Token, f *fact) bool {
	for _, t := range toks {
		if t.Start == f.start || (t.Start <= f.start && f.start < t.End) {
			return t.Flags&clinicaltext.Question != 0
		}
	}
	return false
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
		if q := x.info[i].replyTo; q >= 0 {
			add(int(q), r)
		}
		for a := i + 1; a < len(x.info) && a <= i+3; a++ {
			if x.info[a].replyTo == int32(i) {
				add(a, r)
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
}

// verdictOf checks one sentence against the conversation, given its retrieved evidence.
func (x *Index) verdictOf(s Sentence, toks []clinicaltext.Token, spans []Span) (Verdict, Severity, []Conflict, []Range) {
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
	supportedWeight, totalWeight := 0.0, 0.0
	for k := range r.facts {
		f := &r.facts[k]
		if f.expansion || f.phrase {
			continue
		}
		alts := alternatives(r.facts, k)
		w := claimWeight(f)
		for _, a := range alts {
			w = math.Max(w, claimWeight(&r.facts[a]))
		}
		if w == 0 || f.asked && f.cat == 0 {
			continue
		}
		c := x.checkFact(f, ev)
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
		case stNegated:
			switch {
			case f.asked:
			case conflictCategory(c.f.cat):
				addConflict(ConflictNegation, Range{f.cue, f.end}, c.where, -1)
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
				if r.facts[a].cat != 0 && f.cat == 0 {
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
		case f.cat&clinicaltext.Body != 0 && f.cat&(clinicaltext.Condition|clinicaltext.Symptom) == 0:
			if m, ok := x.kindInEvidence(f, ev, clinicaltext.Body); ok {
				addConflict(ConflictSite, Range{f.start, f.end}, m, -1)
			}
		case f.cat&clinicaltext.Condition != 0:
			if m, ok := x.kindInEvidence(f, ev, clinicaltext.Condition); ok {
				addConflict(ConflictCondition, Range{f.start, f.end}, m, -1)
			}
		}
	}

	// Attribute values: a side, a quality, a severity the conversation gives otherwise.
	for k := range r.facts {
		f := &r.facts[k]
		if f.group == "" || f.asked {
			continue
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

	if len(conflicts) > 0 {
		slices.SortFunc(conflicts, func(a, b Conflict) int { return a.Claim.Start - b.Claim.Start })
		return Contradicted, conflictSeverity(conflicts, r), conflicts, nil
	}

	// Unmentioned: salient claims found nowhere.
	strong := 0.0
	var ranges []Range
	for _, c := range unsupported {
		strong = math.Max(strong, c.weight)
		ranges = append(ranges, Range{c.f.start, c.f.end})
	}
	for _, q := range unsupportedQ {
		strong = math.Max(strong, quantityWeight(q))
		ranges = append(ranges, Range{q.start, q.end})
	}
	share := 0.0
	if totalWeight > 0 {
		share = supportedWeight / totalWeight
	}
	if len(spans) == 0 || strong >= strongAbsent || (share < minSupportShare && totalWeight-supportedWeight >= minAbsentWeight) {
		if len(ranges) == 0 {
			ranges = []Range{{0, len(s.Text)}}
		}
		return Unmentioned, unmentionedSeverity(unsupported, unsupportedQ), nil, mergeRanges(ranges)
	}
	return Supported, "", nil, nil
}

// Thresholds of the unmentioned decision.
const (
	strongAbsent    = 1.0  // a claim this salient found nowhere flags the sentence
	minSupportShare = 0.55 // below this share of claim weight supported, the sentence is flagged,
	minAbsentWeight = 0.6  // if at least this much weight is unsupported
)

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

// claimWeight says how much a fact of the sentence matters to its truth: concepts that could
// change care most, plain content words least, and words of no content not at all.
func claimWeight(f *fact) float64 {
	switch {
	case f.cat&(clinicaltext.Drug|clinicaltext.Condition|clinicaltext.Procedure) != 0:
		return 1
	case f.cat&(clinicaltext.Symptom|clinicaltext.Habit) != 0:
		return 0.8
	case f.cat&clinicaltext.Body != 0:
		return 0.6
	case f.cat&clinicaltext.Relative != 0:
		return 0.5
	case f.group != "":
		return 0.4
	case isNum(f.term):
		return 0 // numbers are checked as quantities
	case len(f.term) <= 2:
		return 0
	}
	return 0.3
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
		if len(ms) == 0 {
			return claimCheck{f: f, st: stAbsent}
		}
	}
	best := func(inEv bool) (claimCheck, bool) {
		var neg, other, asked *mref
		for i := range ms {
			m := ms[i]
			if _, ok := ev[m.seg]; ok != inEv && inEv {
				continue
			}
			g := &x.tr.readings[m.seg].facts[m.fact]
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
			// A conflict in the evidence stands unless the same claim is said elsewhere
			// nearby in the same way.
			if g, ok := best(false); ok && g.st == stFound && x.near(g.where.seg, ev) {
				return g
			}
		}
		return c
	}
	c, _ := best(false)
	return c
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
	if n >= 9 {
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
		switch cl {
		case "drug", "medic", "medicin", "medica":
			continue
		}
		for _, m := range x.tr.mentions[cl] {
			if g := x.tr.readings[m.seg].facts[m.fact]; g.neg != f.neg && !g.asked {
				return m, true
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
			if g.cat&kind == 0 || g.term == f.term || g.asked || g.neg || g.expansion || g.other != f.other {
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

// groupConflict finds, for an attribute value of the sentence ("right", "dry"), the evidence
// giving the same attribute another value and never this one.
func (x *Index) groupConflict(f *fact, r reading, ev evidence) (mref, bool) {
	same, other := false, mref{}
	found := false
	rank := math.MaxInt
	for s, rk := range ev {
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
			if g.neg {
				continue
			}
			if rk < rank || rk == rank && s < other.seg {
				other, rank, found = mref{s, int32(k)}, rk, true
			}
		}
	}
	if same || !found {
		return mref{}, false
	}
	// The same value said elsewhere near the evidence settles it.
	for s := range x.tr.readings {
		if !x.near(int32(s), ev) {
			continue
		}
		for _, g := range x.tr.readings[s].facts {
			if g.group == f.group && g.value == f.value && !g.asked && g.neg == f.neg {
				return mref{}, false
			}
		}
	}
	return other, true
}

// checkQuantity compares a quantity of the sentence with those of the same class the
// conversation states: in the evidence region, else in segments that share a claim with the
// sentence. It returns stFound on a match, stNegated (a conflict) when only other values
// are found, stAbsent when there is none.
func (x *Index) checkQuantity(q quantity, r reading, ev evidence) (mref, status) {
	var conflict mref
	hasConflict := false
	look := func(s int32) bool {
		for k, p := range x.tr.readings[s].quants {
			if p.class != q.class || p.unit != q.unit {
				continue
			}
			if overlaps(p, q) {
				return true
			}
			if !hasConflict {
				conflict = mref{s, int32(-1 - k)}
				hasConflict = true
			}
		}
		return false
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
	for _, s := range ordered {
		if look(s) {
			return mref{}, stFound
		}
	}
	// Elsewhere: the same value anywhere backs it; another value counts only in a segment
	// that shares a concept with the sentence.
	for s := range x.tr.readings {
		for _, p := range x.tr.readings[s].quants {
			if p.class == q.class && p.unit == q.unit && overlaps(p, q) {
				return mref{}, stFound
			}
		}
	}
	if hasConflict {
		return conflict, stNegated
	}
	for s := range x.tr.readings {
		if !sharesConcept(x.tr.readings[s], r) {
			continue
		}
		for k, p := range x.tr.readings[s].quants {
			if p.class == q.class && p.unit == q.unit {
				return mref{int32(s), int32(-1 - k)}, stNegated
			}
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
	if m.fact >= 0 && x.info[m.seg].question {
		for a := int(m.seg) + 1; a < len(x.info) && a <= int(m.seg)+3; a++ {
			if x.info[a].replyTo == m.seg && kind == ConflictNegation {
				seg = &x.segs[a]
				start, end = 0, len(seg.Text)
				m.seg = int32(a)
				break
			}
		}
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

// mergeRanges sorts ranges and joins overlapping or touching ones.
func mergeRanges(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return a.Start - b.Start })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.Start <= out[n-1].End+1 {
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
