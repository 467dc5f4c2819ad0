package soapgen

import (
	"sort"
	"strings"

	"github.com/evidenceledger/evidence/align"
)

// role is the speaker role of an utterance.
type role uint8

const (
	roleOther role = iota
	roleClinician
	rolePatient
)

// roleOf maps a segment's speaker label to a role. Patient-side labels such
// as ACI-BENCH's "patient_guest" (a relative speaking for the patient) count
// as the patient: their answers are history the clinician would record.
func roleOf(speaker string) role {
	s := strings.ToLower(strings.TrimSpace(speaker))
	switch {
	case s == "clinician" || s == "doctor" || s == "physician" || s == "nurse" || s == "dr" || s == "gp" || s == "provider":
		return roleClinician
	case strings.HasPrefix(s, "patient"):
		return rolePatient
	}
	return roleOther
}

// utterance is one sentence of one segment, cleaned and tokenised.
type utterance struct {
	seg      int // segment position in processing order
	role     role
	text     string   // display text, markup and hesitations removed
	toks     []string // lowercase tokens, see tokenize
	question bool
}

// exchange pairs a clinician's trailing questions with the patient's reply.
type exchange struct {
	q []int // utterance indices of the clinician's question group
	a []int // utterance indices of the patient's answer
}

// dialogue is the cleaned transcript in speaking order.
type dialogue struct {
	utts      []utterance
	exchanges []exchange
	// answerTo maps a patient utterance index to its exchange index.
	answerTo map[int]int
}

func newDialogue(segments []align.Segment) *dialogue {
	order := make([]int, len(segments))
	for i := range order {
		order[i] = i
	}
	// Speaking order; the stable sort keeps input order for equal times,
	// so untimed transcripts keep their turn order.
	sort.SliceStable(order, func(a, b int) bool { return segments[order[a]].StartMS < segments[order[b]].StartMS })
	d := &dialogue{answerTo: map[int]int{}}
	for pos, i := range order {
		r := roleOf(segments[i].Speaker)
		for _, s := range splitSentences(cleanText(segments[i].Text)) {
			toks := tokenize(s)
			if len(toks) == 0 {
				continue
			}
			d.utts = append(d.utts, utterance{seg: pos, role: r, text: s, toks: toks, question: isQuestion(toks)})
		}
	}
	d.pairExchanges()
	return d
}

var discourse = map[string]bool{
	"and": true, "so": true, "okay": true, "ok": true, "right": true, "alright": true, "now": true,
	"well": true, "just": true, "also": true, "then": true, "but": true, "fine": true, "great": true,
	"sorry": true, "sure": true, "good": true, "all": true, ",": true, "oh": true, "yeah": true,
}

var questionStarts = map[string]bool{
	"do": true, "does": true, "did": true, "have": true, "has": true, "had": true, "are": true, "is": true,
	"was": true, "were": true, "any": true, "anything": true, "can": true, "could": true, "would": true,
	"will": true, "how": true, "what": true, "when": true, "where": true, "which": true, "who": true,
	"why": true, "whereabouts": true, "whats": true, "what's": true, "how's": true, "where's": true,
}

var whWords = map[string]bool{
	"how": true, "what": true, "when": true, "where": true, "which": true, "who": true, "why": true,
	"whereabouts": true, "what's": true, "whats": true, "how's": true, "where's": true,
}

// firstContent returns the index of the first token that is not a discourse
// marker ("and", "so", "okay", ...), or len(toks).
func firstContent(toks []string) int {
	i := 0
	for i < len(toks) && discourse[toks[i]] {
		i++
	}
	return i
}

// isQuestion recognises questions by their mark or, since transcripts do
// not always mark them, by their shape: an auxiliary followed by its
// subject ("Do you...", "Is it..."), "Any...", or a question word followed
// by an auxiliary or "you" ("How long have you..."). "What I'd recommend
// is..." and a patient's "Have like a swelling on my elbow" are not
// questions.
func isQuestion(toks []string) bool {
	if toks[len(toks)-1] == "?" {
		return true
	}
	i := firstContent(toks)
	if i+1 >= len(toks) {
		return false
	}
	first, next := toks[i], toks[i+1]
	switch {
	case first == "any" || first == "anything":
		return true
	case whWords[first]:
		return !firstPerson[next] && (questionSubjects[next] || auxWords[next] || (i+2 < len(toks) && (questionSubjects[toks[i+2]] || auxWords[toks[i+2]])))
	case auxWords[first]:
		return questionSubjects[next]
	}
	return false
}

var auxWords = map[string]bool{"do": true, "does": true, "did": true, "have": true, "has": true, "had": true,
	"are": true, "is": true, "was": true, "were": true, "can": true, "could": true, "would": true, "will": true}

var questionSubjects = map[string]bool{"you": true, "your": true, "it": true, "there": true, "that": true,
	"this": true, "anyone": true, "anybody": true, "the": true, "he": true, "she": true, "they": true, "any": true,
	"we": false, "u": true}

var firstPerson = map[string]bool{"i": true, "i'm": true, "i'd": true, "i'll": true, "i've": true, "we": true,
	"we're": true, "we'll": true, "we'd": true, "we've": true}

// isWhQuestion tells open questions ("how long", "where is the pain") from
// yes/no questions, whose answers carry a polarity.
func isWhQuestion(toks []string) bool {
	i := firstContent(toks)
	if i+1 < len(toks) && toks[i+1] == "about" {
		return false // "What about difficulty speaking?" asks yes or no
	}
	return i < len(toks) && whWords[toks[i]]
}

// backchannel reports utterances that only acknowledge ("Mm-hmm.", "OK."),
// which must not split a patient's answer from the question it answers.
func backchannel(toks []string) bool {
	for _, t := range toks {
		if !discourse[t] && !backchannelWords[t] && !isPunct(t) {
			return false
		}
	}
	return true
}

var backchannelWords = map[string]bool{
	"mm": true, "hmm": true, "mhm": true, "mm-hmm": true, "hmm-mm": true, "uh-huh": true, "yes": true,
	"yep": true, "i": true, "see": true, "sounds": true, "perfect": true, "lovely": true, "excellent": true,
	"brilliant": true, "cool": true, "understand": true, "thank": true, "thanks": true, "you": true, "hm": true,
}

// pairExchanges links each run of patient speech to the questions that
// closed the clinician's preceding turn. A question group is the run of
// question sentences at the end of the turn (at most four), because "Any
// nausea? Any vomiting?" followed by "No." denies both.
func (d *dialogue) pairExchanges() {
	turnStart, open := 0, -1
	lastRole := roleOther
	for i, u := range d.utts {
		switch u.role {
		case roleClinician:
			if open >= 0 && backchannel(u.toks) {
				continue
			}
			if lastRole != roleClinician {
				turnStart = i
			}
			open = -1
			lastRole = roleClinician
		case rolePatient:
			if open == -1 && lastRole == roleClinician {
				open = -2
				if q := d.questionGroup(turnStart, i); len(q) > 0 {
					d.exchanges = append(d.exchanges, exchange{q: q})
					open = len(d.exchanges) - 1
				}
			}
			if open >= 0 {
				d.exchanges[open].a = append(d.exchanges[open].a, i)
				d.answerTo[i] = open
			}
			lastRole = rolePatient
		}
	}
}

// questionGroup returns the clinician's trailing questions in [from, to).
func (d *dialogue) questionGroup(from, to int) []int {
	var q []int
	for k := to - 1; k >= from && len(q) < 4; k-- {
		u := d.utts[k]
		if u.role != roleClinician {
			continue
		}
		if !u.question {
			if backchannel(u.toks) || wordCount(u.toks) <= 2 {
				continue // "OK." or a trailing "Or, uh" does not close the question
			}
			break
		}
		q = append([]int{k}, q...)
	}
	return q
}

func wordCount(toks []string) int {
	n := 0
	for _, t := range toks {
		if !isPunct(t) {
			n++
		}
	}
	return n
}

// polarity of a reply to a yes/no question.
type polarity int8

const (
	polUnknown polarity = iota
	polYes
	polNo
)

var yesCues = newCues("yes", "yeah", "yep", "yup", "aye", "ya", "yea", "mm hmm", "uh huh", "mhm", "correct",
	"definitely", "absolutely", "i do", "i have", "i did", "i am", "i've had", "i've got", "i've been",
	"a bit", "a little", "a little bit", "slightly", "sometimes", "occasionally", "i think so", "that's right")

var noCues = newCues("no", "nope", "nah", "never", "none", "not really", "not at all", "not that i", "nothing",
	"i don't", "i haven't", "i've not", "i didn't", "i'm not", "i wouldn't", "not", "neither", "no i", "i do not", "i have not")

// answerPolarity reads the start of a reply: "Uh, no." is no, "Yeah, a
// bit." is yes. When both cue lists match at the start, the longer cue
// wins ("I do not" over "I do"); a yes immediately followed by a no
// ("Yeah, no") is unknown.
func answerPolarity(toks []string) polarity {
	i := 0
	for i < len(toks) && (isPunct(toks[i]) || toks[i] == "so" || toks[i] == "well" || toks[i] == "oh" || toks[i] == "okay" || toks[i] == "ok" || toks[i] == "um" || toks[i] == "and" || toks[i] == "ohh") {
		i++
	}
	rest := toks[i:]
	yes, no := cueLen(yesCues, rest), cueLen(noCues, rest)
	switch {
	case yes > no:
		if next := rest[yes:min(yes+3, len(rest))]; cueLen(noCues, skipPunct(next)) > 0 {
			return polUnknown
		}
		return polYes
	case no > yes:
		return polNo
	}
	return polUnknown
}

func skipPunct(toks []string) []string {
	for len(toks) > 0 && isPunct(toks[0]) {
		toks = toks[1:]
	}
	return toks
}

// cueLen is the length of the longest cue of c at the start of toks, or 0.
func cueLen(c cueSet, toks []string) int {
	if len(toks) == 0 {
		return 0
	}
	sp, ok := c.lex.matchAt(toks, 0)
	if !ok {
		return 0
	}
	return sp.end
}

// answerToks returns the tokens of all utterances of an exchange's answer,
// with sentence boundaries kept as "." tokens.
func (d *dialogue) answerToks(e exchange) []string {
	var out []string
	for _, i := range e.a {
		out = append(out, d.utts[i].toks...)
		if !isPunct(out[len(out)-1]) {
			out = append(out, ".")
		}
	}
	return out
}

// questionToks returns the tokens of an exchange's question group.
func (d *dialogue) questionToks(e exchange) []string {
	var out []string
	for _, i := range e.q {
		out = append(out, d.utts[i].toks...)
	}
	return out
}
