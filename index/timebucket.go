package index

import (
	"time"

	"github.com/blevesearch/bleve/v2/analysis"
)

// Recorded times are indexed as buckets rather than as a bleve numeric
// field, which would add sixteen prefix-coded terms to every document:
// each document holds the seven buckets its time (truncated to the
// second, UTC) falls in, one per unit from a decade down to a second, and a
// time range becomes the disjunction of the few buckets that tile it
// exactly. Ranges are therefore exact at one-second resolution.
//
// Bucket terms: "X" decade (2020 for 2020-2029), "Y" year, "M" year and
// month, "D" date, "H" date and hour, "N" date, hour and minute, "S" the
// whole time, all as digits: "S20250301090512".

const timeLayout = "20060102150405"

// timeUnits are the bucket units from the largest down.
var timeUnits = []struct {
	prefix byte
	digits int // digits of timeLayout the bucket keeps
}{{'X', 3}, {'Y', 4}, {'M', 6}, {'D', 8}, {'H', 10}, {'N', 12}, {'S', 14}}

// minBucketTime and maxBucketTime bound the times the buckets cover.
var (
	minBucketTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxBucketTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// timeTerms returns the bucket terms of t.
func timeTerms(t time.Time) []string {
	s := t.UTC().Format(timeLayout)
	out := make([]string, len(timeUnits))
	for i, u := range timeUnits {
		out[i] = string(u.prefix) + s[:u.digits]
	}
	return out
}

// start and next return the start of the bucket of unit u holding t, and
// the start of the following one.
func bucketStart(t time.Time, u int) time.Time {
	y, mo, d := t.Date()
	switch timeUnits[u].prefix {
	case 'X':
		return time.Date(y-y%10, 1, 1, 0, 0, 0, 0, time.UTC)
	case 'Y':
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	case 'M':
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
	case 'D':
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	case 'H':
		return t.Truncate(time.Hour)
	case 'N':
		return t.Truncate(time.Minute)
	}
	return t.Truncate(time.Second)
}

func bucketNext(t time.Time, u int) time.Time {
	switch timeUnits[u].prefix {
	case 'X':
		return t.AddDate(10, 0, 0)
	case 'Y':
		return t.AddDate(1, 0, 0)
	case 'M':
		return t.AddDate(0, 1, 0)
	case 'D':
		return t.AddDate(0, 0, 1)
	case 'H':
		return t.Add(time.Hour)
	case 'N':
		return t.Add(time.Minute)
	}
	return t.Add(time.Second)
}

// rangeTerms returns the bucket terms that tile [from, to), both truncated
// to the second and clamped to the bucket range: a document's time, so
// truncated, is in the range exactly when one of its terms is returned.
// Each step takes the largest bucket that starts where the last ended and
// ends by to, so at most a few dozen terms come back.
func rangeTerms(from, to time.Time) []string {
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)
	if from.Before(minBucketTime) {
		from = minBucketTime
	}
	if to.After(maxBucketTime) {
		to = maxBucketTime
	}
	var out []string
	for from.Before(to) {
		for u := range timeUnits {
			if !bucketStart(from, u).Equal(from) {
				continue
			}
			next := bucketNext(from, u)
			if next.After(to) {
				continue
			}
			out = append(out, timeTerms(from)[u])
			from = next
			break
		}
	}
	return out
}

// timeTokenizer turns a time in timeLayout into its bucket terms.
type timeTokenizer struct{}

func (timeTokenizer) Tokenize(v []byte) analysis.TokenStream {
	if len(v) != len(timeLayout) {
		return nil
	}
	backing := make([]analysis.Token, len(timeUnits))
	out := make(analysis.TokenStream, len(timeUnits))
	buf := make([]byte, 0, len(timeUnits)*(1+len(timeLayout)))
	for i, u := range timeUnits {
		start := len(buf)
		buf = append(append(buf, u.prefix), v[:u.digits]...)
		backing[i] = analysis.Token{Term: buf[start:len(buf):len(buf)], Start: 0, End: len(v), Position: i + 1, Type: analysis.AlphaNumeric}
		out[i] = &backing[i]
	}
	return out
}
