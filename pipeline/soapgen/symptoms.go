package soapgen

import "strings"

// finding is what the transcript says about one symptom.
type finding struct {
	canon string
	// firstPos and firstNeg are the utterances of the first positive and
	// the first negative evidence, or -1. Positive evidence wins: a
	// patient who says "no" to "any vomiting?" and then "I vomited at the
	// start" has vomited.
	firstPos, firstNeg int
	// lastPos is the latest positive evidence, to tell whether an open
	// question ("How long has that been going on?") can be about it.
	lastPos int
	// negGroup is the utterance that anchors the denial: denials from one
	// question ("Any nausea? Vomiting?" / "No.") share it and are written
	// as one sentence.
	negGroup  int
	duration  string
	frequency string
	severity  string
	side      string
	qualities []string
}

func (f *finding) present() bool { return f.firstPos >= 0 }

func (f *finding) isPain() bool {
	return strings.HasSuffix(f.canon, "pain") || f.canon == "headache" || f.canon == "sore throat"
}

// symptomSet collects findings in order of first evidence.
type symptomSet struct {
	order []*finding
	by    map[string]*finding
}

func (s *symptomSet) get(canon string) *finding {
	if f, ok := s.by[canon]; ok {
		return f
	}
	f := &finding{canon: canon, firstPos: -1, firstNeg: -1}
	s.by[canon] = f
	s.order = append(s.order, f)
	return f
}

// hasSpecific reports a present finding that names f more precisely:
// "knee swelling" makes "swelling" redundant.
func (s *symptomSet) hasSpecific(f *finding) bool {
	for _, g := range s.order {
		if g != f && g.present() && strings.HasSuffix(g.canon, " "+f.canon) {
			return true
		}
	}
	return false
}

func (s *symptomSet) positive(canon string, utt int, side string) *finding {
	f := s.get(canon)
	if f.firstPos < 0 || utt < f.firstPos {
		f.firstPos = utt
	}
	f.lastPos = max(f.lastPos, utt)
	if f.side == "" {
		f.side = side
	}
	return f
}

func (s *symptomSet) negative(canon string, utt, group int) {
	f := s.get(canon)
	if f.firstNeg < 0 {
		f.firstNeg, f.negGroup = utt, group
	}
}

// patientStatement reports whether a patient utterance can be evidence: a
// patient's own question ("Could it be my asthma?") asserts nothing.
func patientStatement(u utterance) bool {
	return u.role == rolePatient && !(u.toks[len(u.toks)-1] == "?" && isQuestionWord(u.toks))
}

func isQuestionWord(toks []string) bool {
	i := firstContent(toks)
	return i < len(toks) && questionStarts[toks[i]] && toks[i] != "any"
}

// collectSymptoms gathers symptom evidence from the patient's own words and
// from yes/no answers to the clinician's questions.
func collectSymptoms(d *dialogue, end int) *symptomSet {
	s := &symptomSet{by: map[string]*finding{}}
	for i, u := range d.utts[:end] {
		// A reaction described with an allergy ("I get a rash") is not a
		// current symptom.
		if patientStatement(u) && !pastEpisode(d, i) && !answersAbout(d, i, allergyQuestion) && !hasAny(u.toks, "allergic", "allergy") {
			s.fromStatement(d, i)
		}
	}
	for _, e := range d.exchanges {
		if e.q[0] < end {
			s.fromExchange(d, e)
		}
	}
	for i, u := range d.utts {
		if patientStatement(u) {
			s.painDetails(d, i)
		}
	}
	return s
}

// pastMarkers date a statement to an earlier illness ("About five years
// ago. I had some chest pain and they took me into hospital.").
var pastMarkers = newCues("years ago", "year ago", "last time", "back in the day", "back then", "when i was first",
	"when i was younger", "when i was a child", "as a child", "in the past", "used to", "took me into hospital",
	"was in hospital", "when i was diagnosed", "first diagnosed", "previous episode", "last year")

// pastEpisode reports whether utterance i, or the sentence before it in
// the same segment, is about an earlier illness.
func pastEpisode(d *dialogue, i int) bool {
	if pastMarkers.in(d.utts[i].toks) {
		return true
	}
	return i > 0 && d.utts[i-1].seg == d.utts[i].seg && pastMarkers.in(d.utts[i-1].toks)
}

// similarEpisode marks talk about a previous, similar episode, whose
// timing is not the current complaint's.
var similarEpisode = newCues("similar", "before", "previous", "previously", "last time", "once before", "had this")

// fromStatement records the symptoms a patient asserts or denies in one
// utterance, with the duration and frequency said in the same sentence.
func (s *symptomSet) fromStatement(d *dialogue, i int) {
	toks := d.utts[i].toks
	ms := symptomMentions(toks)
	if i > 0 && d.utts[i-1].role == rolePatient {
		// "My ankles have got bigger. It's sort of swollen up a bit."
		refineSites(ms, d.utts[i-1].toks)
	}
	var found []*finding
	for _, m := range ms {
		switch m.status {
		case asserted:
			found = append(found, s.positive(m.canon, i, m.side))
		case negated:
			s.negative(m.canon, i, i)
		}
	}
	if len(found) == 0 {
		return
	}
	dur, okDur := findDuration(toks, false)
	okDur = okDur && !similarEpisode.in(toks)
	freq, okFreq := findFrequency(toks)
	for _, f := range found {
		if okDur && f.duration == "" {
			f.duration = dur
		}
		if okFreq && f.frequency == "" {
			f.frequency = freq
		}
	}
}

// measuringCues mark questions about measuring rather than having a
// symptom: "no" to "have you measured your temperature?" is not "no fever".
var measuringCues = newCues("measure", "measured", "thermometer", "checked", "check your", "taken your temperature", "take your temperature")

var unsureAnswer = newCues("measured", "measure", "thermometer", "not sure", "can't say", "don't know", "not certain", "i think so", "maybe")

var howLongCues = newCues("how long", "when did", "when was", "since when", "how many days", "how many weeks", "when {it|this|they|the symptoms|symptoms|that} {started|start|began}", "start", "started", "began")

var howOftenCues = newCues("how many times", "how often", "how frequently")

// fromExchange applies a yes/no answer to the symptoms asked about, and an
// open answer's duration or frequency to the symptom asked about.
func (s *symptomSet) fromExchange(d *dialogue, e exchange) {
	ans := d.answerToks(e)
	if len(ans) == 0 {
		return
	}
	said := map[string]bool{}
	for _, m := range symptomMentions(ans) {
		said[m.canon] = true
	}
	for _, qi := range e.q {
		q := d.utts[qi].toks
		if isWhQuestion(q) {
			s.openAnswer(d, e, q, ans)
			continue
		}
		if measuringCues.in(q) {
			continue
		}
		s.yesNoAnswer(d, e, qi, said)
	}
}

// yesNoAnswer turns "Any fever?" / "No." into a denial. A "yes" counts only
// when the question named one symptom; "Any cough or cold?" / "Yes." does
// not say which. Symptoms the patient names in the answer are left to the
// patient's own words.
func (s *symptomSet) yesNoAnswer(d *dialogue, e exchange, qi int, said map[string]bool) {
	ms := symptomMentions(d.utts[qi].toks)
	if len(ms) == 0 {
		return
	}
	first := d.utts[e.a[0]].toks
	if unsureAnswer.in(first) {
		return // "I haven't, I felt hot, but I haven't measured it."
	}
	pol := answerPolarity(first)
	if pol == polUnknown && len(ms) == 1 {
		pol = echoPolarity(d.utts[qi].toks[ms[0].start:ms[0].end], first)
	}
	if pol == polUnknown {
		return
	}
	distinct := map[string]bool{}
	for _, m := range ms {
		distinct[m.canon] = true
	}
	if offersAlternatives(d.questionToks(e)) {
		distinct["(alternative)"] = true // "Any cough or cold?": a yes does not say which
	}
	for _, m := range ms {
		if said[m.canon] || m.status == hedged {
			continue
		}
		switch {
		case m.status == negated || pol == polNo:
			// "No blood in your vomit, is that right?" / "Yeah." is a denial too.
			s.negative(m.canon, e.a[0], e.q[0])
		case pol == polYes && len(distinct) == 1:
			s.positive(m.canon, e.a[0], m.side)
		}
	}
}

// offersAlternatives reports "X or Y" in a question, where Y may be a word
// the lexicon does not know; "or anything else" offers nothing.
func offersAlternatives(toks []string) bool {
	for i, t := range toks {
		if t == "or" && i+1 < len(toks) && !hasAny(toks[i+1:min(i+2, len(toks))], "anything", "something", "not", "no", "is", "are", "do", "did", "have", "has", "was", "were", "would", "just", "other") && !isPunct(toks[i+1]) {
			return true
		}
	}
	return false
}

var echoStop = map[string]bool{"to": true, "the": true, "my": true, "your": true, "any": true, "of": true,
	"in": true, "a": true, "on": true, "when": true, "you": true, "i": true, "is": true, "are": true, "feel": true,
	"feeling": true, "felt": true, "bright": true}

// echoPolarity reads an answer that repeats the question's word instead of
// saying yes or no: "Sensitive to bright lights?" / "I'm a little bit
// sensitive." is yes, "Nausea, not really." is no.
func echoPolarity(span, ans []string) polarity {
	for _, w := range span {
		if echoStop[w] {
			continue
		}
		for k, t := range ans {
			if t != w {
				continue
			}
			switch contextStatus(ans, k, nil, hedgeCues) {
			case asserted:
				if k+2 < len(ans) && (ans[k+1] == "," || ans[k+1] == ".") && noCues.in(ans[k+2:min(k+4, len(ans))]) {
					return polNo
				}
				return polYes
			case negated:
				return polNo
			}
		}
	}
	return polUnknown
}

// openAnswer reads "How long have you had the cough?" / "About five days."
// and "How many times a day?" / "Six or seven.", attaching the answer to
// the symptom asked about or, failing that, to the symptom the answer or
// the last statements name.
func (s *symptomSet) openAnswer(d *dialogue, e exchange, q, ans []string) {
	var dur, freq string
	if howLongCues.in(q) {
		dur, _ = findDuration(ans, true)
	}
	if howOftenCues.in(q) {
		freq, _ = findFrequency(append(append([]string{}, ans...), q...))
	}
	if dur == "" && freq == "" {
		return
	}
	if f := s.topic(d, e, q, ans, false); f != nil && dur != "" && f.duration == "" {
		f.duration = dur
	}
	if f := s.topic(d, e, q, ans, true); f != nil && freq != "" && f.frequency == "" {
		f.frequency = freq
	}
}

// episodic symptoms are the ones a "how many times a day" can count.
var episodic = map[string]bool{"diarrhoea": true, "vomiting": true, "urinary frequency": true, "headache": true,
	"fainting": true, "palpitations": true, "blood in stool": true, "coughing up blood": true, "polyuria": true,
	"painful urination": true, "blood in urine": true, "nausea": true, "dizziness": true}

// topic finds the present symptom an open question is about: one it
// names, else the one the patient was just talking about. counting limits
// the choice to episodic symptoms, for "how many times a day".
func (s *symptomSet) topic(d *dialogue, e exchange, q, ans []string, counting bool) *finding {
	ok := func(f *finding) bool { return f != nil && f.present() && (!counting || episodic[f.canon]) }
	var best0 *finding
	for _, toks := range [][]string{q, ans} {
		for _, m := range symptomMentions(toks) {
			if f := s.by[m.canon]; ok(f) {
				return f
			}
		}
	}
	if genericSymptoms.in(q) {
		for _, f := range s.order {
			if ok(f) && f.firstPos < e.q[0] && (best0 == nil || f.firstPos < best0.firstPos) {
				best0 = f
			}
		}
		if best0 != nil {
			return best0
		}
	}
	window := 6
	if counting {
		window = 12
	}
	var best *finding
	for _, f := range s.order {
		if ok(f) && f.firstPos < e.q[0] && f.lastPos >= e.q[0]-window && (best == nil || f.lastPos > best.lastPos) {
			best = f
		}
	}
	return best
}

// genericSymptoms are questions about the complaint as a whole ("When did
// your symptoms all start?"), which date the presenting complaint.
var genericSymptoms = newCues("symptoms", "it all", "this all", "all this", "all start", "these start", "this start", "the problem", "this problem")

var painQuestionCues = newCues("describe", "feel like", "what kind", "what sort", "what type", "come and go",
	"comes and goes", "constant", "all the time", "sharp", "dull", "character", "what's it like", "what is it like",
	"out of ten", "out of 10", "scale", "severe", "where is", "whereabouts", "which side", "what side", "move anywhere",
	"moving anywhere", "go anywhere", "going anywhere", "radiate", "spread", "suddenly", "gradual", "come on")

// painDetails reads the pain's character, severity and side from a
// patient utterance that names a pain or answers a question about one.
func (s *symptomSet) painDetails(d *dialogue, i int) {
	toks := d.utts[i].toks
	f := s.painIn(toks)
	if f == nil {
		if ex, ok := d.answerTo[i]; ok {
			q := d.questionToks(d.exchanges[ex])
			if f = s.painIn(q); f == nil && (painQuestionCues.in(q) || hasPainWord(q)) {
				f = s.lastPainBefore(i)
			}
		}
	}
	if f == nil {
		return
	}
	for _, m := range findMentions(qualityLex, toks, uncertaintyCues) {
		if m.status == asserted && !contains(f.qualities, m.canon) {
			f.qualities = append(f.qualities, m.canon)
		}
	}
	if sev, ok := findSeverity(toks); ok && f.severity == "" {
		f.severity = sev
	}
	if f.side == "" {
		f.side = sideWord(toks)
	}
}

func hasPainWord(toks []string) bool {
	for _, t := range toks {
		if painWords[t] {
			return true
		}
	}
	return false
}

func (s *symptomSet) painIn(toks []string) *finding {
	for _, m := range symptomMentions(toks) {
		if f, ok := s.by[m.canon]; ok && f.present() && f.isPain() && m.status == asserted {
			return f
		}
	}
	return nil
}

func (s *symptomSet) lastPainBefore(i int) *finding {
	var best *finding
	for _, f := range s.order {
		if f.present() && f.isPain() && f.firstPos <= i && (best == nil || f.firstPos > best.firstPos) {
			best = f
		}
	}
	return best
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

var openingCues = newCues("tell me a bit more", "tell me more", "tell me about", "how can i help", "how can we help", "what can i do for you", "what can we do for you",
	"what brings you", "what's brought you", "what has brought you", "what seems to be", "what's the problem",
	"what is the problem", "what's been going on", "what's going on", "what's been happening", "tell me what",
	"what's happening", "reason for", "what made you", "how can i be of", "what's wrong", "what's up",
	"what are you here", "what can i help", "how are you doing", "how have you been", "what's the matter",
	"what's troubling you", "what's bothering you", "come in today", "coming in today", "calling today")

// presenting finds the presenting complaint: the symptoms the patient
// asserts in answer to the opening question, or else the first symptoms the
// patient asserts at all. The opening answer often gives the time course in
// a sentence of its own ("I woke up this morning. I've got this horrible
// pain..."), so a duration anywhere in it dates the complaint.
func presenting(d *dialogue, s *symptomSet) []*finding {
	pc, utts := presentingIn(d, s)
	if len(pc) > 0 && pc[0].duration == "" {
		for _, i := range utts {
			if dur, ok := findDuration(d.utts[i].toks, false); ok && patientStatement(d.utts[i]) {
				pc[0].duration = dur
				break
			}
		}
	}
	return pc
}

func presentingIn(d *dialogue, s *symptomSet) ([]*finding, []int) {
	limit := max(len(d.utts)/3, 12)
	for _, e := range d.exchanges {
		if e.q[0] > limit {
			break
		}
		if !openingCues.in(d.questionToks(e)) {
			continue
		}
		if pc := assertedIn(d, s, e.a); len(pc) > 0 {
			return pc, e.a
		}
	}
	for i, u := range d.utts {
		if patientStatement(u) {
			if pc := assertedIn(d, s, []int{i}); len(pc) > 0 {
				return pc, []int{i}
			}
		}
	}
	return nil, nil
}

// assertedIn lists the present findings asserted in the given utterances,
// at most three: a presenting complaint is short.
func assertedIn(d *dialogue, s *symptomSet, utts []int) []*finding {
	var out []*finding
	for _, i := range utts {
		for _, m := range symptomMentions(d.utts[i].toks) {
			f := s.by[m.canon]
			if m.status == asserted && f != nil && f.present() && !containsFinding(out, f) && len(out) < 3 {
				out = append(out, f)
			}
		}
	}
	return out
}

func containsFinding(fs []*finding, f *finding) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}
