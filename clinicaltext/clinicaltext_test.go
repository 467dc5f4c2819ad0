package clinicaltext

import (
	"slices"
	"strings"
	"testing"
)

// terms returns the non-stop terms of text as one space-joined string.
func terms(text string) string { return strings.Join(Terms(text), " ") }

func TestTermsExpected(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Diarrhoea for three days", "diarrhea 3 day"},
		{"3/7 hx", "3 day hx histori"},
		{"2/52", "2 week"},
		{"3/12", "3 month"},
		{"120/80", "120 80"},
		{"twenty five", "25"},
		{"one hundred and twenty", "120"},
		{"six or seven times a day", "6 7 time day"},
		{"point five centimeters", "0.5 centimet"},
		{"two point five milligrams", "2.5 milligram"},
		{"the point is", "point"},
		{"x6/day", "time 6 day"},
		{"5mg BD", "5 milligram bd 2 time day"},
		{"twice", "2 time"},
		{"<UNSURE>Oh hey</UNSURE> <UNIN/> pain", "hey pain"},
		{"<INAUDIBLE_SPEECH/>", ""},
		{"L_C_D_ and T_V_", "lcd tv"},
		{"favourite colour", "favorit color"},
		{"SOB", "sob short breath breathless"},
		{"sob", "sob"},
		{"N&V", "n&v nausea vomit"},
		{"tummy ache", "tummi abdomen ach pain"},
	} {
		if got := terms(tc.in); got != tc.want {
			t.Errorf("Terms(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNumberWordsDoNotCrossGaps(t *testing.T) {
	got := terms("twenty <UNIN/> five")
	if got != "20 5" {
		t.Errorf("got %q, want two numbers", got)
	}
	if got := terms("two. Three"); got != "2 3" {
		t.Errorf("got %q, want two numbers", got)
	}
}

func TestNegationCues(t *testing.T) {
	for _, in := range []string{"No", "not", "denies", "nil", "never", "without", "negative", "don't",
		"do n't", "ca n't"} { // tokenized transcripts (ACI-BENCH) split contractions
		toks := Analyze(in)
		found := false
		for _, tk := range toks {
			if tk.Flags&Negation != 0 {
				if tk.Flags&Stop == 0 {
					t.Errorf("%q: negation cue %q not marked Stop", in, tk.Term)
				}
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no negation cue in %+v", in, toks)
		}
	}
	for _, in := range []string{"now", "know", "note"} {
		for _, tk := range Analyze(in) {
			if tk.Flags&Negation != 0 {
				t.Errorf("%q marked as negation", in)
			}
		}
	}
}

func TestTokenizeOffsetsAndMarkup(t *testing.T) {
	in := "<UNSURE>Hello how</UNSURE> um. Good morning?"
	toks := Tokenize(in)
	var got []string
	for _, tk := range toks {
		got = append(got, tk.Term)
		if in[tk.Start:tk.End] != tk.Term {
			t.Errorf("offsets of %q point at %q", tk.Term, in[tk.Start:tk.End])
		}
	}
	if want := []string{"Hello", "how", "um", "Good", "morning"}; !slices.Equal(got, want) {
		t.Fatalf("Tokenize = %q, want %q", got, want)
	}
	if toks[0].Flags&ClauseStart == 0 || toks[3].Flags&ClauseStart == 0 || toks[1].Flags&ClauseStart != 0 {
		t.Errorf("clause starts wrong: %+v", toks)
	}
	if toks[3].Flags&Question == 0 || toks[4].Flags&Question == 0 || toks[0].Flags&Question != 0 {
		t.Errorf("question flags wrong: %+v", toks)
	}
}

func TestAbbreviationCaseRule(t *testing.T) {
	if _, ok := Expand("SOB"); !ok {
		t.Error("SOB not expanded")
	}
	if _, ok := Expand("sob"); ok {
		t.Error("lower-case sob expanded; upper-case keys must match only their spelling")
	}
	if _, ok := Expand("HX"); !ok {
		t.Error("HX not expanded; lower-case keys match any case")
	}
	if n := AbbreviationCount(); n < 300 {
		t.Errorf("lexicon has %d abbreviations, want at least 300", n)
	}
}

func TestLexiconParseErrors(t *testing.T) {
	for _, src := range []string{
		"abbr\tSOB",                  // too few fields
		"abbr\tSOB\tx\nabbr\tSOB\ty", // duplicate
		"what\tx\ty",                 // unknown kind
		"abbr\tP R\trectal",          // space in key
	} {
		if _, err := parseLexicon(src); err == nil {
			t.Errorf("parseLexicon(%q) succeeded, want error", src)
		}
	}
}

func TestStem(t *testing.T) {
	for in, want := range map[string]string{"diarrhoea": "diarrhea", "colour": "color", "hours": "hour", "vomiting": "vomit", "behaviours": "behavior"} {
		if got := Stem(in); got != want {
			t.Errorf("Stem(%q) = %q, want %q", in, got, want)
		}
	}
}

func checkInvariants(t *testing.T, s string) {
	t.Helper()
	prevEnd := 0
	for _, tk := range Tokenize(s) {
		if tk.Start < prevEnd || tk.Start >= tk.End || tk.End > len(s) || s[tk.Start:tk.End] != tk.Term {
			t.Fatalf("Tokenize(%q): bad token %+v (previous end %d)", s, tk, prevEnd)
		}
		prevEnd = tk.End
	}
	prevStart := 0
	for _, tk := range Analyze(s) {
		if tk.Term == "" || tk.Start < prevStart || tk.Start >= tk.End || tk.End > len(s) {
			t.Fatalf("Analyze(%q): bad token %+v (previous start %d)", s, tk, prevStart)
		}
		prevStart = tk.Start
	}
}

func FuzzTokens(f *testing.F) {
	for _, s := range []string{
		"", "3/7 hx of diarrhoea. No blood in stool. x6/day",
		"<UNSURE>Oh</UNSURE> <UNIN/> can't won't I've L_C_D_ N&V c/o 37.5C 10-14d",
		"twenty five one hundred and twenty thousand", "<", "</>", "a/b&c_d'e.f", "\xff\xfe'",
		"don\u2019t", "5mg/kg", "1.2.3", "x", "_a_", "'''", "n't", "o'clock",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkInvariants(t, s)
	})
}
