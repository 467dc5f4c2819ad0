package soapgen

import "strings"

// Quantities are parsed from tokens and rendered in note style, with
// numbers as digits: "for the last three days" is "for 3 days", "six or
// seven times a day" is "6-7 times a day".

var timeUnits = map[string]string{
	"minute": "minute", "minutes": "minute", "hour": "hour", "hours": "hour", "day": "day", "days": "day",
	"night": "night", "nights": "night", "week": "week", "weeks": "week", "month": "month",
	"months": "month", "year": "year", "years": "year",
}

var approxWords = map[string]bool{
	"about": true, "around": true, "roughly": true, "approximately": true, "nearly": true, "almost": true,
	"maybe": true, "probably": true, "like": true, "over": true, "just": true, "good": true, "least": true, "at": true,
}

// qty reads an amount at toks[i]: a number or a range of numbers ("six or
// seven" is "6-7"), or a vague amount ("a few", "a couple of"). one tells
// whether the amount is singular.
func qty(toks []string, i int) (text string, n int, one bool) {
	at := func(k int) string {
		if i+k < len(toks) {
			return toks[i+k]
		}
		return ""
	}
	switch {
	case at(0) == "a" && at(1) == "couple" && at(2) == "of":
		return "a couple of", 3, false
	case (at(0) == "a" && at(1) == "couple") || (at(0) == "couple" && at(1) == "of"):
		return "a couple of", 2, false
	case at(0) == "a" && at(1) == "few", at(0) == "a" && at(1) == "good":
		return "a few", 2, false
	case at(0) == "few" || at(0) == "several":
		return at(0), 1, false
	case at(0) == "a" || at(0) == "an":
		return "1", 1, true
	}
	num, k := parseNumber(toks, i)
	if k == 0 {
		return "", 0, false
	}
	if c := at(k); c == "or" || c == "to" || c == "and" {
		if num2, k2 := parseNumber(toks, i+k+1); k2 > 0 && num2 != num {
			return num + "-" + num2, k + 1 + k2, false
		}
	}
	return num, k, num == "1"
}

// unitAt reads a time unit, rendered singular or plural to agree with one.
func unitAt(toks []string, i int, one bool) (string, bool) {
	if i >= len(toks) {
		return "", false
	}
	u, ok := timeUnits[toks[i]]
	if !ok {
		return "", false
	}
	if !one {
		u += "s"
	}
	return u, true
}

// amount reads "[about] QTY UNIT" at i and returns "about 3 days".
func amount(toks []string, i int) (text string, n int) {
	approx := ""
	j := i
	for j < len(toks) && approxWords[toks[j]] {
		if toks[j] == "about" || toks[j] == "around" || toks[j] == "roughly" || toks[j] == "approximately" {
			approx = "about "
		}
		j++
	}
	q, k, one := qty(toks, j)
	if k == 0 {
		return "", 0
	}
	u, ok := unitAt(toks, j+k, one)
	if !ok {
		return "", 0
	}
	return approx + q + " " + u, j + k + 1 - i
}

var sinceWords = []string{"yesterday", "last night", "this morning", "mid day", "midday", "lunchtime", "this afternoon",
	"this evening", "the weekend", "last week", "monday", "tuesday",
	"wednesday", "thursday", "friday", "saturday", "sunday", "last month", "christmas", "then"}

var pointWords = []string{"this morning", "last night", "yesterday", "earlier today", "this afternoon", "yesterday evening", "overnight"}

// midNumber reports whether toks[i] continues a number that starts
// earlier ("five" in "seventy five"), where scanning must not start a
// second, smaller number.
func midNumber(toks []string, i int) bool {
	for k := max(0, i-4); k < i; k++ {
		if _, n := parseNumber(toks, k); k+n > i {
			return true
		}
	}
	return false
}

// findDuration finds how long something has lasted or when it started.
// loose also accepts a bare amount ("About five days."), which is only
// safe in the answer to a "how long" question.
func findDuration(toks []string, loose bool) (string, bool) {
	for i := 0; i < len(toks); i++ {
		if d, ok := durationAt(toks, i, loose); ok && !midNumber(toks, i) {
			return d, true
		}
	}
	return "", false
}

func durationAt(toks []string, i int, loose bool) (string, bool) {
	t := toks[i]
	switch t {
	case "for", "over", "past", "last", "in", "been":
		if t == "in" && !(startsSeq(toks, i+1, "the last") || startsSeq(toks, i+1, "the past")) {
			break // "in a week" is a plan, not a history
		}
		j := i + 1
		first := false
		for j < len(toks) && (toks[j] == "the" || toks[j] == "last" || toks[j] == "past" || toks[j] == "first") {
			first = first || toks[j] == "first"
			j++
		}
		if a, n := amount(toks, j); n > 0 && !first {
			return "for " + a, true
		}
	case "since":
		for _, w := range sinceWords {
			if w != "then" && startsSeq(toks, i+1, w) {
				return "since " + w, true
			}
		}
	}
	if a, n := amount(toks, i); n > 0 && (i == 0 || !approxWords[toks[i-1]]) {
		if i+n < len(toks) && toks[i+n] == "ago" {
			return "started " + a + " ago", true
		}
		if loose && (i == 0 || toks[i-1] != "every") && !strings.HasPrefix(a, "1 ") {
			return "for " + a, true
		}
	}
	for _, w := range pointWords {
		if startsSeq(toks, i, w) && (i == 0 || toks[i-1] != "since") {
			return "since " + w, true
		}
	}
	return "", false
}

func startsSeq(toks []string, i int, phrase string) bool {
	for _, w := range strings.Fields(phrase) {
		if i >= len(toks) || toks[i] != w {
			return false
		}
		i++
	}
	return true
}

var periodWords = map[string]string{"day": "day", "daily": "day", "week": "week", "night": "night", "hour": "hour", "month": "month"}

// findFrequency finds "6-7 times a day", "twice a day" or "once a week".
func findFrequency(toks []string) (string, bool) {
	for i := 0; i < len(toks); i++ {
		if f, ok := frequencyAt(toks, i); ok && !midNumber(toks, i) {
			return f, true
		}
	}
	return "", false
}

func frequencyAt(toks []string, i int) (string, bool) {
	var times string
	var n int
	switch toks[i] {
	case "once":
		times, n = "once", 1
	case "twice":
		times, n = "twice", 1
	default:
		q, k, _ := qty(toks, i)
		if k == 0 || i+k >= len(toks) || (toks[i+k] != "times" && toks[i+k] != "time") {
			return "", false
		}
		times, n = q+" times", k+1
		if q == "1" {
			times = "once"
		}
	}
	j := i + n
	if j < len(toks) && (toks[j] == "a" || toks[j] == "per" || toks[j] == "each" || toks[j] == "every") {
		j++
	}
	if j < len(toks) {
		if p, ok := periodWords[toks[j]]; ok {
			return times + " a " + p, true
		}
		if toks[j] == "daily" {
			return times + " daily", true
		}
	}
	return "", false
}

// findSeverity finds a pain score ("eight out of ten", "8/10").
func findSeverity(toks []string) (string, bool) {
	for i := 0; i < len(toks); i++ {
		if strings.HasSuffix(toks[i], "/10") {
			return toks[i], true
		}
		num, k := parseNumber(toks, i)
		if k > 0 && i+k+2 < len(toks) && toks[i+k] == "out" && toks[i+k+1] == "of" && !midNumber(toks, i) {
			if d, k2 := parseNumber(toks, i+k+2); k2 > 0 && d == "10" {
				return num + "/10", true
			}
		}
	}
	return "", false
}
