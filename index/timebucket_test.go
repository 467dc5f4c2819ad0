package index

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestRangeTerms checks the bucket tiling against the definition: a time
// is in [from, to) at one-second resolution exactly when one (and only
// one) of its bucket terms is among the range's terms.
func TestRangeTerms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	randTime := func() time.Time {
		switch rng.IntN(4) {
		case 0: // within a few minutes
			return base.Add(time.Duration(rng.IntN(600)) * time.Second)
		case 1: // within a few days
			return base.Add(time.Duration(rng.IntN(5*86400)) * time.Second)
		case 2: // within decades
			return base.AddDate(-30+rng.IntN(60), 0, 0).Add(time.Duration(rng.Int64N(365 * 86400 * 1e9)))
		}
		return base.Add(time.Duration(rng.Int64N(int64(40 * 24 * time.Hour))))
	}
	maxTerms := 0
	for range 3000 {
		from, to := randTime(), randTime()
		if rng.IntN(10) == 0 {
			from = minBucketTime
		}
		if rng.IntN(10) == 0 {
			to = maxBucketTime
		}
		terms := rangeTerms(from, to)
		maxTerms = max(maxTerms, len(terms))
		set := map[string]bool{}
		for _, b := range terms {
			set[b] = true
		}
		lo, hi := from.Truncate(time.Second), to.Truncate(time.Second)
		for range 40 {
			x := randTime()
			if rng.IntN(4) == 0 { // near the boundaries
				x = []time.Time{lo, hi, lo.Add(-time.Second), hi.Add(-time.Second), lo.Add(999 * time.Millisecond)}[rng.IntN(5)]
			}
			want := !x.Truncate(time.Second).Before(lo) && x.Truncate(time.Second).Before(hi)
			n := 0
			for _, b := range timeTerms(x) {
				if set[b] {
					n++
				}
			}
			if (n > 0) != want || n > 1 {
				t.Fatalf("[%v, %v) with %d terms: %v matches %d terms, want in range %v", from, to, len(terms), x, n, want)
			}
		}
	}
	if maxTerms > 400 {
		t.Errorf("a range needed %d terms", maxTerms)
	}
	t.Logf("at most %d terms per range", maxTerms)
	if got := rangeTerms(base, base); len(got) != 0 {
		t.Errorf("empty range: %v", got)
	}
	if got := rangeTerms(base, base.AddDate(0, 1, 0)); !slices.Equal(got, []string{"M202503"}) {
		t.Errorf("March: %v", got)
	}
}

func TestTimeTokenizer(t *testing.T) {
	tm := time.Date(2025, 3, 1, 9, 5, 12, 999, time.UTC)
	var got []string
	for _, tok := range (timeTokenizer{}).Tokenize([]byte(tm.Format(timeLayout))) {
		got = append(got, string(tok.Term))
	}
	if want := timeTerms(tm); !slices.Equal(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	if want := []string{"X202", "Y2025", "M202503", "D20250301", "H2025030109", "N202503010905", "S20250301090512"}; !slices.Equal(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
}
