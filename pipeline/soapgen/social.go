package soapgen

import "strings"

var familyQuestion = newCues("family", "relatives", "runs in", "mum or dad", "mother or father", "parents",
	"brothers or sisters", "siblings", "anyone in your family")

// familyHistory pairs relatives with conditions said in one sentence:
// "my mum has migraines" is "Family history of migraine (mother)."
func familyHistory(d *dialogue, planStart int) []line {
	var pairs []relPair
	at := -1
	for i, u := range d.utts[:planStart] {
		if !patientStatement(u) {
			continue
		}
		rels := ownRelations(u.toks)
		if len(rels) == 0 {
			continue
		}
		for _, m := range findMentions(conditionLex, u.toks, uncertaintyCues) {
			if m.status != asserted {
				continue
			}
			rel := nearestRelation(rels, m.start)
			p := relPair{m.canon, rel}
			if rel != "" && !containsPair(pairs, p.cond, p.rel) {
				pairs = append(pairs, p)
				if at < 0 {
					at = i
				}
			}
		}
	}
	if len(pairs) > 0 {
		return []line{{"Family history of " + familyItems(pairs) + ".", at}}
	}
	for _, e := range exchangesAbout(d, familyQuestion, planStart) {
		ans := d.answerToks(e)
		if answerPolarity(ans) == polNo && !conditionLex.has(ans) && isFamilyHealthQuestion(d.questionToks(e)) {
			return []line{{"No relevant family history.", e.a[0]}}
		}
	}
	return nil
}

func isFamilyHealthQuestion(q []string) bool {
	return conditionLex.has(q) || hasAny(q, "run in", "runs in", "medical", "health", "illness", "conditions", "problems", "history")
}

type relPair struct{ cond, rel string }

// familyItems groups conditions by relative, in order of first mention:
// "migraine and hypothyroidism (mother) and heart attack (father)".
func familyItems(pairs []relPair) string {
	var rels []string
	for _, p := range pairs {
		if !contains(rels, p.rel) {
			rels = append(rels, p.rel)
		}
	}
	items := make([]string, 0, len(rels))
	for _, r := range rels {
		var conds []string
		for _, p := range pairs {
			if p.rel == r && !contains(conds, p.cond) {
				conds = append(conds, p.cond)
			}
		}
		items = append(items, joinList(conds, "and")+" ("+r+")")
	}
	if len(items) > 1 {
		return strings.Join(items, ", ")
	}
	return items[0]
}

// ownRelations finds the patient's relatives, skipping other people's
// ("my friend's mum").
func ownRelations(toks []string) []span {
	var out []span
	for _, r := range relationLex.find(toks) {
		if r.start > 0 && strings.HasSuffix(toks[r.start-1], "'s") {
			continue
		}
		out = append(out, r)
	}
	return out
}

func containsPair(ps []relPair, cond, rel string) bool {
	for _, p := range ps {
		if p.cond == cond && p.rel == rel {
			return true
		}
	}
	return false
}

// nearestRelation is the relative mentioned before the condition, closest
// to it ("my dad has high blood pressure and my mum has asthma").
func nearestRelation(rels []span, at int) string {
	best := ""
	for _, r := range rels {
		if r.start < at {
			best = relationLex.terms[r.term].canon
		}
	}
	return best
}

var smokeQuestion = newCues("smoke", "smoking", "smoker", "cigarettes", "cigarette", "tobacco")

var alcoholQuestion = newCues("alcohol", "do you drink", "how much do you drink", "drink much", "units",
	"drinking much", "how much would you drink", "you drink", "pints", "booze")

var notAlcohol = newCues("fluids", "water", "eating and drinking", "drinking enough", "drinking okay", "drink plenty", "drinking plenty", "eat and drink")

// socialHistory covers smoking, alcohol, home and work.
func socialHistory(d *dialogue, planStart int) []line {
	var out []line
	for _, f := range []func(*dialogue, int) (line, bool){smoking, alcohol, livingSituation, occupation, unwellContacts} {
		if l, ok := f(d, planStart); ok {
			out = append(out, l)
		}
	}
	return out
}

// clausesAbout returns the parts of an answer about one topic: for a
// combined "Do you smoke or drink?", "I don't smoke but I drink socially"
// splits at "but".
func clausesAbout(ans []string, topic cueSet) [][]string {
	var out [][]string
	start := 0
	for i := 0; i <= len(ans); i++ {
		if i == len(ans) || ans[i] == "but" || ans[i] == "." || ans[i] == ";" {
			if c := ans[start:i]; len(c) > 0 && topic.in(c) {
				out = append(out, c)
			}
			start = i + 1
		}
	}
	return out
}

var exSmoker = newCues("used to", "gave up", "given up", "quit", "stopped", "ex smoker", "former smoker", "packed it in",
	"not any more", "not anymore", "no longer", "don't anymore", "don't any more")
var nonSmoker = newCues("don't smoke", "never smoked", "non smoker", "not a smoker", "i do not smoke", "never have", "don't really smoke")
var occasional = newCues("now and again", "now and then", "occasionally", "socially", "sometimes", "social", "weekends", "odd one", "every so often", "special occasions", "once in a while")

func smoking(d *dialogue, planStart int) (line, bool) {
	for _, e := range exchangesAbout(d, smokeQuestion, planStart) {
		ans := d.answerToks(e)
		parts := clausesAbout(ans, smokeQuestion)
		part := ans
		if len(parts) > 0 {
			part = parts[0]
		} else if alcoholQuestion.in(ans) {
			continue // the answer is about drinking
		}
		if t := smokingStatus(part, ans); t != "" {
			if t == "Ex-smoker." {
				// "How many a day?" / "About a pack a day." usually follows.
				if n, ok := amountOf(followUpAnswer(d, e), smokeUnits); ok {
					t = "Ex-smoker, previously " + n + "."
				}
			}
			return line{t, e.a[0]}, true
		}
	}
	return line{}, false
}

func smokingStatus(part, ans []string) string {
	switch {
	case exSmoker.in(part):
		if dur, ok := findDuration(part, false); ok && strings.HasPrefix(dur, "started") {
			return "Ex-smoker, stopped " + strings.TrimPrefix(dur, "started ") + "."
		}
		return "Ex-smoker."
	case nonSmoker.in(part) || answerPolarity(part) == polNo:
		return "Non-smoker."
	}
	if n, ok := amountOf(part, smokeUnits); ok {
		return "Smokes " + n + "."
	}
	if occasional.in(part) {
		return "Smokes occasionally."
	}
	if answerPolarity(ans) == polYes {
		return "Smoker."
	}
	return ""
}

var smokeUnits = []string{"cigarettes", "cigarette", "packs", "pack", "roll ups", "cigars"}

var drinkUnits = []string{"units", "unit", "pints", "pint", "glasses", "glass", "bottles", "bottle", "drinks", "cans", "beers", "beer", "wine", "spirits"}

func alcohol(d *dialogue, planStart int) (line, bool) {
	for _, e := range exchangesAbout(d, alcoholQuestion, planStart) {
		q := d.questionToks(e)
		if notAlcohol.in(q) {
			continue
		}
		ans := d.answerToks(e)
		part := ans
		if parts := clausesAbout(ans, newCuesAlcoholAnswer); len(parts) > 0 {
			part = parts[0]
		} else if smokeQuestion.in(ans) && !alcoholQuestion.in(q[len(q)/2:]) {
			continue
		}
		if t := drinkingStatus(part, ans, d, e); t != "" {
			return line{t, e.a[0]}, true
		}
	}
	return line{}, false
}

var newCuesAlcoholAnswer = newCues("drink", "drinks", "drinking", "alcohol", "pints", "wine", "beer", "units")

var nonDrinker = newCues("don't drink", "never drink", "teetotal", "tee total", "not a drinker", "i do not drink", "no alcohol", "don't really drink")

func drinkingStatus(part, ans []string, d *dialogue, e exchange) string {
	// The polarity of the drinking clause, not of the whole answer: "No
	// drugs. I do drink socially."
	if nonDrinker.in(part) || answerPolarity(part) == polNo {
		return "Does not drink alcohol."
	}
	// A follow-up "How much?" often carries the amount; an amount with a
	// period ("9 pints a week") beats one without ("a few pints").
	n, ok := amountOf(ans, drinkUnits)
	if !ok || !hasPeriod(n) {
		if n2, ok2 := amountOf(followUpAnswer(d, e), drinkUnits); ok2 && (!ok || hasPeriod(n2)) {
			n, ok = n2, true
		}
	}
	if ok {
		return "Drinks alcohol, " + n + "."
	}
	if occasional.in(part) {
		if hasAny(part, "social", "socially") {
			return "Drinks alcohol socially."
		}
		return "Drinks alcohol occasionally."
	}
	if answerPolarity(ans) == polYes || hasAny(part, "i drink", "i do drink", "i like a", "i'll have") {
		return "Drinks alcohol."
	}
	return ""
}

// followUpAnswer returns the answers of the next two exchanges, for "How
// much would you drink a week?" after "Do you drink?".
func followUpAnswer(d *dialogue, e exchange) []string {
	var out []string
	for k, x := range d.exchanges {
		if x.q[0] <= e.q[0] {
			continue
		}
		out = append(out, d.answerToks(x)...)
		if k > 0 && len(out) > 0 && x.q[0] > e.q[0]+12 {
			break
		}
	}
	if len(out) > 80 {
		out = out[:80]
	}
	return out
}

func hasPeriod(amount string) bool {
	for _, p := range drinkPeriods {
		if strings.HasSuffix(amount, strings.TrimPrefix(p, "in ")) {
			return true
		}
	}
	return false
}

var drinkPeriods = []string{"a week", "per week", "each week", "in a week", "a night", "a day", "per day", "a month", "at the weekend", "at weekends", "on weekends", "on the weekend", "on a weekend"}

// amountOf finds "9 pints a week" or "10 cigarettes a day": a quantity
// followed by one of the units, preferring one that also has a period.
func amountOf(toks []string, unitWords []string) (string, bool) {
	first := ""
	for i := 0; i < len(toks); i++ {
		q, k, _ := qty(toks, i)
		if k == 0 || midNumber(toks, i) {
			continue
		}
		j := i + k
		if j < len(toks) && (toks[j] == "of" || toks[j] == "or") {
			j++
		}
		unit := ""
		for _, u := range unitWords {
			if startsSeq(toks, j, u) {
				unit = u
				break
			}
		}
		if unit == "" {
			continue
		}
		s := q + " " + unit
		end := j + len(strings.Fields(unit))
		for _, p := range drinkPeriods {
			for off := 0; off <= 2; off++ {
				if startsSeq(toks, end+off, p) {
					return s + " " + strings.TrimPrefix(p, "in "), true
				}
			}
		}
		if first == "" {
			first = s
		}
	}
	return first, first != ""
}

var livingQuestion = newCues("live with", "living with", "at home with", "anyone else at home", "who's at home",
	"live alone", "live on your own", "living situation", "who do you live", "lives with", "do you live")

var householdWords = map[string]string{
	"wife": "wife", "missus": "wife", "husband": "husband", "hubby": "husband", "partner": "partner",
	"boyfriend": "boyfriend", "girlfriend": "girlfriend", "fiance": "fiance", "fiancee": "fiancee",
	"children": "children", "kids": "children", "child": "child", "son": "son", "sons": "sons",
	"daughter": "daughter", "daughters": "daughters", "parents": "parents", "mum": "mother", "mother": "mother",
	"dad": "father", "father": "father", "flatmates": "flatmates", "flatmate": "flatmate",
	"housemates": "housemates", "housemate": "housemate", "roommates": "roommates", "roommate": "roommate",
	"friends": "friends", "family": "family", "mates": "housemates", "sister": "sister", "brother": "brother", "grandchildren": "grandchildren",
}

var aloneCues = newCues("live alone", "living alone", "on my own", "by myself", "live by myself", "just me", "i'm alone", "lives alone")

// livingSituation reads "I live with my wife and two kids" as "Lives with
// wife and 2 children."
func livingSituation(d *dialogue, planStart int) (line, bool) {
	for i, u := range d.utts[:planStart] {
		if !patientStatement(u) {
			continue
		}
		livingTalk := hasAny(u.toks, "live", "living", "lives", "stay with") || answersAbout(d, i, livingQuestion)
		if !livingTalk {
			continue
		}
		if aloneCues.in(u.toks) && !hasAny(u.toks, "with my", "me and") {
			return line{"Lives alone.", i}, true
		}
		if who := household(u.toks, hasAny(u.toks, "flown the nest", "moved out", "left home")); who != "" {
			return line{"Lives with " + who + ".", i}, true
		}
	}
	return line{}, false
}

// household lists the people in a "live with" phrase, with their number.
// childrenLeft drops children who "have flown the nest".
func household(toks []string, childrenLeft bool) string {
	var who []string
	for i, t := range toks {
		w, ok := householdWords[t]
		if childrenLeft && w == "children" {
			continue
		}
		if !ok || contains(who, w) || contextStatus(toks, i, nil, uncertaintyCues) == negated {
			continue
		}
		if i > 0 {
			if num, k := parseNumber(toks, i-1); k == 1 && num != "1" {
				w = num + " " + w
			}
		}
		who = append(who, w)
	}
	return joinList(who, "and")
}

var workQuestion = newCues("are you working", "do you work", "what do you do", "your job", "what work",
	"for work", "for a living", "occupation", "employed", "what's your job", "working at the moment", "in work",
	"at work", "line of work")

var notJob = map[string]bool{"bit": true, "little": true, "wee": true, "lot": true, "big": true, "fan": true, "good": true, "very": true}

// occupation reads "I work as an accountant" or, in answer to a question
// about work, "I'm a teacher".
func occupation(d *dialogue, planStart int) (line, bool) {
	for i, u := range d.utts[:planStart] {
		if !patientStatement(u) {
			continue
		}
		onTopic := answersAbout(d, i, workQuestion)
		if t := jobPhrase(u.toks, onTopic); t != "" {
			return line{t, i}, true
		}
	}
	return line{}, false
}

var workAs = newCues("work as", "working as", "work part time as", "work full time as", "employed as", "job as")

var workIn = []string{"i work in", "i work at", "i work for", "i work with"}

func jobPhrase(toks []string, onTopic bool) string {
	if k, ok := workAs.atEnd(toks); ok {
		if job := phraseUntilBreak(toks[k:], 4); job != "" {
			return worksAs(job)
		}
	}
	for _, p := range workIn {
		if k, ok := containsSeq(toks, p); ok {
			if place := placePhrase(toks[k+3:]); place != "" {
				return "Works " + strings.Fields(p)[2] + " " + place + "."
			}
		}
	}
	if !onTopic {
		return ""
	}
	if hasAny(toks, "retired") {
		return "Retired."
	}
	if hasAny(toks, "unemployed", "not working", "between jobs") {
		return "Not currently working."
	}
	for _, p := range []string{"i'm a", "i'm an", "i am a", "i am an", "i'm actually a", "i'm actually an", "i'm currently a", "i'm currently an"} {
		if k, ok := containsSeq(toks, p); ok && k+len(strings.Fields(p)) < len(toks) && !notJob[toks[k+len(strings.Fields(p))]] {
			if job := phraseUntilBreak(toks[k+len(strings.Fields(p)):], 4); job != "" {
				return worksAs(job)
			}
		}
	}
	if k, ok := containsSeq(toks, "work in"); ok {
		if place := placePhrase(toks[k+2:]); place != "" {
			return "Works in " + place + "."
		}
	}
	if hasAny(toks, "student", "at university", "at uni", "studying") {
		return "Student."
	}
	return ""
}

// placePhrase is the workplace after "I work in": up to five words,
// keeping the article ("a pharmaceutical company").
func placePhrase(toks []string) string {
	var words []string
	for _, t := range toks {
		if len(words) == 0 && t == "," {
			continue
		}
		if isPunct(t) || (breakWords[t] && t != "a") || len(words) == 5 {
			break
		}
		words = append(words, t)
	}
	p := strings.Join(words, " ")
	if hasAny(words, "past", "last", "week", "weeks", "days", "morning", "moment", "pain") {
		return "" // "work in the past few days" is not a workplace
	}
	if p == "it" {
		return "IT" // tokens are lowercase; "I work in IT"
	}
	return p
}

func worksAs(job string) string {
	if strings.HasPrefix(job, "student") || strings.HasSuffix(job, "student") {
		return capitalize(job) + "."
	}
	return "Works as " + article(job) + "."
}

func article(noun string) string {
	if noun == "" {
		return noun
	}
	if strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

var contactsQuestion = newCues("anyone else unwell", "anyone else ill", "anyone else sick", "anybody else",
	"anyone else", "anyone around you", "unwell contacts", "similar symptoms", "same symptoms", "been around anyone")

func unwellContacts(d *dialogue, planStart int) (line, bool) {
	for _, e := range exchangesAbout(d, contactsQuestion, planStart) {
		q := d.questionToks(e)
		if !hasAny(q, "unwell", "ill", "sick", "symptoms", "poorly") {
			continue
		}
		if answerPolarity(d.answerToks(e)) == polNo {
			return line{"No known unwell contacts.", e.a[0]}, true
		}
	}
	return line{}, false
}

// facts are yes/no history questions whose answer is worth a sentence.
var facts = []struct {
	cues    cueSet
	yes, no string
}{
	{newCues("sexually active"), "Currently sexually active.", "Not currently sexually active."},
	{newCues("anything like this before", "had this before", "similar before", "happened before", "had anything like this",
		"experienced this before", "had it before", "anything similar", "similar episodes", "similar symptoms before",
		"this kind of pain before", "this pain before", "had this kind of"), "Similar episodes previously.", "No previous similar episodes."},
	{newCues("travel", "travelled", "traveled", "been abroad", "out of the country", "been away"), "Recent travel.", "No recent travel."},
	{newCues("chance you could be pregnant", "could you be pregnant", "chance of pregnancy", "possibility of pregnancy",
		"might be pregnant", "chance you might be pregnant", "could be pregnant", "are you pregnant"), "Possibility of pregnancy reported.", "Pregnancy thought unlikely by patient."},
}

// otherHistory covers the remaining yes/no history facts and the last
// menstrual period.
func otherHistory(d *dialogue, before int) []line {
	var out []line
	for _, f := range facts {
		for _, e := range exchangesAbout(d, f.cues, before) {
			if q := d.utts[e.q[len(e.q)-1]].toks; isWhQuestion(q) {
				continue
			}
			pol := answerPolarity(d.answerToks(e))
			if pol == polYes {
				out = append(out, line{f.yes, e.a[0]})
			} else if pol == polNo {
				out = append(out, line{f.no, e.a[0]})
			}
			if pol != polUnknown {
				break // the first clear answer
			}
		}
	}
	if l, ok := lastPeriod(d, before); ok {
		out = append(out, l)
	}
	return out
}

var periodQuestion = newCues("last period", "last menstrual period", "your period", "periods regular", "lmp")

// lastPeriod reads "When was your last period?" / "About three weeks ago.
// I mean, two weeks ago." as "Last menstrual period about 2 weeks ago." The
// last time said wins, since patients correct themselves.
func lastPeriod(d *dialogue, before int) (line, bool) {
	for _, e := range exchangesAbout(d, periodQuestion, before) {
		ans := d.answerToks(e)
		when := ""
		for i := range ans {
			if dur, ok := durationAt(ans, i, false); ok && strings.HasPrefix(dur, "started ") && !midNumber(ans, i) {
				when = strings.TrimPrefix(dur, "started ")
			}
		}
		if when != "" {
			return line{"Last menstrual period " + when + ".", e.a[0]}, true
		}
	}
	return line{}, false
}
