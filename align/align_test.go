package align

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// visit is a small synthetic primary-care consultation used by the tests. Times are in ms.
func visit() []Segment {
	turns := []struct{ sp, text string }{
		{"clinician", "Good morning, how can I help you today?"},
		{"patient", "I've had diarrhoea for the last three days, I need to stay close to the toilet."},
		{"clinician", "How many times a day are you going?"},
		{"patient", "Probably six or seven times a day."},
		{"clinician", "Any blood in your stool?"},
		{"patient", "No."},
		{"clinician", "And have you had any chest pain?"},
		{"patient", "Nope, nothing like that."},
		{"clinician", "Do you get short of breath when you walk up the stairs?"},
		{"patient", "Yes, I get really breathless after one flight."},
		{"clinician", "Any medical problems in the past?"},
		{"patient", "I have asthma, I use a blue inhaler."},
		{"clinician", "Do you smoke or drink alcohol?"},
		{"patient", "I don't smoke, I drink a glass of wine at the weekend."},
		{"clinician", "My kitchen radio was playing the football yesterday."},
		{"clinician", "Okay, I think this is gastroenteritis, keep drinking fluids and rest."},
	}
	segs := make([]Segment, len(turns))
	for i, t := range turns {
		segs[i] = Segment{ID: fmt.Sprintf("s%02d", i), Speaker: t.sp, StartMS: int64(i) * 5000, EndMS: int64(i)*5000 + 4000, Text: t.text}
	}
	return segs
}

func mustIndex(t *testing.T, segs []Segment) *Index {
	t.Helper()
	x, err := NewIndex(segs)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func ids(spans []Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.SegmentID)
	}
	return out
}

func contains(spans []Span, id string) bool {
	for _, s := range spans {
		if s.SegmentID == id {
			return true
		}
	}
	return false
}

func TestQuestionAndShortAnswerAreBothEvidence(t *testing.T) {
	x := mustIndex(t, visit())
	got := x.Align(Sentence{ID: "n1", Text: "No blood in stool."})
	if !contains(got, "s04") || !contains(got, "s05") {
		t.Fatalf("spans %v: want both the question s04 and the answer s05", ids(got))
	}
	got = x.Align(Sentence{ID: "n2", Text: "Denies chest pain."})
	if len(got) == 0 || !contains(got, "s06") || !contains(got, "s07") {
		t.Fatalf("spans %v: want question s06 and answer s07", ids(got))
	}
}

func TestAbbreviationAndDuration(t *testing.T) {
	x := mustIndex(t, visit())
	for _, tc := range []struct{ sentence, want string }{
		{"3/7 hx of diarrhoea.", "s01"},
		{"SOB on exertion, one flight of stairs.", "s09"},
		{"Opening bowels x6/day.", "s03"},
		{"PMH: asthma.", "s11"},
	} {
		got := x.Align(Sentence{ID: "n", Text: tc.sentence})
		if len(got) == 0 || !contains(got[:min(2, len(got))], tc.want) {
			t.Errorf("%q: spans %v, want %s among the first two", tc.sentence, ids(got), tc.want)
		}
	}
}

func TestNegatedSentencePrefersNegatedEvidence(t *testing.T) {
	segs := []Segment{
		{ID: "a", Speaker: "p", StartMS: 0, EndMS: 1000, Text: "My brother gets chest pain when he runs."},
		{ID: "b", Speaker: "d", StartMS: 60000, EndMS: 61000, Text: "Do you ever get chest pain?"},
		{ID: "c", Speaker: "p", StartMS: 61500, EndMS: 62000, Text: "No, never any chest pain."},
		{ID: "d", Speaker: "d", StartMS: 120000, EndMS: 121000, Text: "Let's talk about your sleep and your work."},
	}
	got := mustIndex(t, segs).Align(Sentence{ID: "n", Text: "No chest pain."})
	if len(got) == 0 || got[0].SegmentID == "a" {
		t.Fatalf("spans %v: the affirmed mention 'a' must not come first", ids(got))
	}
}

func TestEvidenceSpreadOverTurns(t *testing.T) {
	x := mustIndex(t, visit())
	got := x.Align(Sentence{ID: "n", Text: "3/7 hx of diarrhoea, opening bowels six or seven times a day."})
	if !contains(got, "s01") || !contains(got, "s03") {
		t.Fatalf("spans %v: want s01 (duration) and s03 (frequency)", ids(got))
	}
}

func TestUnsupportedSentenceGetsEmptyList(t *testing.T) {
	x := mustIndex(t, visit())
	for _, text := range []string{"Fractured left femur after a skiing accident.", "", "the and of"} {
		got := x.Align(Sentence{ID: "n", Text: text})
		if got == nil || len(got) != 0 {
			t.Errorf("%q: spans %v, want an empty non-nil list", text, ids(got))
		}
	}
}

func TestSpanOffsetsAndScores(t *testing.T) {
	segs := visit()
	x := mustIndex(t, segs)
	for _, text := range []string{"3/7 hx of diarrhoea.", "No blood in stool.", "Drinks wine at weekends, non-smoker."} {
		for _, sp := range x.Align(Sentence{ID: "n", Text: text}) {
			var seg Segment
			for _, s := range segs {
				if s.ID == sp.SegmentID {
					seg = s
				}
			}
			if sp.CharStart < 0 || sp.CharStart >= sp.CharEnd || sp.CharEnd > len(seg.Text) {
				t.Errorf("%q: span %+v has bad offsets for a text of %d bytes", text, sp, len(seg.Text))
			}
			if sp.Score < 0 || sp.Score > 1 {
				t.Errorf("%q: score %v outside [0,1]", text, sp.Score)
			}
			if sp.StartMS != seg.StartMS || sp.EndMS != seg.EndMS {
				t.Errorf("%q: span times %d..%d, want the segment's %d..%d (no word timings)", text, sp.StartMS, sp.EndMS, seg.StartMS, seg.EndMS)
			}
		}
	}
}

func TestWordTimingsNarrowSpan(t *testing.T) {
	text := "Well, um, I've had diarrhoea for three days now."
	var words []Word
	for i, w := range strings.Fields(text) {
		words = append(words, Word{Text: w, StartMS: 10000 + int64(i)*500, EndMS: 10000 + int64(i)*500 + 400})
	}
	segs := []Segment{
		{ID: "a", Speaker: "p", StartMS: 10000, EndMS: 15000, Text: text, Words: words},
		{ID: "b", Speaker: "d", StartMS: 16000, EndMS: 17000, Text: "Okay, and any vomiting?"},
	}
	got := mustIndex(t, segs).Align(Sentence{ID: "n", Text: "Diarrhoea for 3 days."})
	if len(got) == 0 || got[0].SegmentID != "a" {
		t.Fatalf("spans %v, want a first", ids(got))
	}
	sp := got[0]
	// Matched words: "diarrhoea" (word 4) through "days" (word 7).
	if want := text[strings.Index(text, "diarrhoea") : strings.Index(text, "days")+len("days")]; text[sp.CharStart:sp.CharEnd] != want {
		t.Errorf("char range %q, want %q", text[sp.CharStart:sp.CharEnd], want)
	}
	if sp.StartMS != 12000 || sp.EndMS != 13900 {
		t.Errorf("times %d..%d, want 12000..13900 (words 4 to 7)", sp.StartMS, sp.EndMS)
	}
}

func TestDeterministicAndConcurrent(t *testing.T) {
	x := mustIndex(t, visit())
	sents := []Sentence{
		{ID: "1", Text: "3/7 hx of diarrhoea."}, {ID: "2", Text: "No blood in stool."},
		{ID: "3", Text: "PMH asthma, uses inhaler."}, {ID: "4", Text: "Imp: gastroenteritis. Push fluids."},
	}
	want := make([][]Span, len(sents))
	for i, s := range sents {
		want[i] = x.Align(s)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 20; r++ {
				for i, s := range sents {
					if got := x.Align(s); !reflect.DeepEqual(got, want[i]) {
						t.Errorf("sentence %s: concurrent result differs", s.ID)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	r1, err := Align(visit(), sents)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := Align(visit(), sents)
	if !reflect.DeepEqual(r1, r2) {
		t.Error("Align is not deterministic")
	}
	for _, r := range r1 {
		if r.MethodVersion != MethodVersion {
			t.Errorf("result %s has method %q", r.SentenceID, r.MethodVersion)
		}
	}
}

func TestValidation(t *testing.T) {
	ok := visit()
	mod := func(f func([]Segment) []Segment) []Segment {
		s := append([]Segment(nil), ok...)
		return f(s)
	}
	secret := "PATIENT-SECRET-TEXT"
	for _, tc := range []struct {
		name  string
		segs  []Segment
		sents []Sentence
		want  error
		says  string
	}{
		{"no segments", nil, []Sentence{{ID: "a", Text: "x"}}, ErrInvalidInput, "no segments"},
		{"no sentences", ok, nil, ErrInvalidInput, "no sentences"},
		{"empty segment id", mod(func(s []Segment) []Segment { s[3].ID = ""; return s }), []Sentence{{ID: "a"}}, ErrInvalidInput, "segment 3: empty id"},
		{"duplicate segment id", mod(func(s []Segment) []Segment { s[4].ID = "s01"; s[4].Text = secret; return s }), []Sentence{{ID: "a"}}, ErrInvalidInput, "duplicate id"},
		{"end before start", mod(func(s []Segment) []Segment { s[2].EndMS = s[2].StartMS - 1; return s }), []Sentence{{ID: "a"}}, ErrInvalidInput, "before start_ms"},
		{"negative start", mod(func(s []Segment) []Segment { s[2].StartMS = -5; return s }), []Sentence{{ID: "a"}}, ErrInvalidInput, "negative start_ms"},
		{"segment too large", mod(func(s []Segment) []Segment { s[1].Text = strings.Repeat("a ", MaxSegmentBytes); return s }), []Sentence{{ID: "a"}}, ErrTooLarge, "more than"},
		{"empty sentence id", ok, []Sentence{{ID: "", Text: secret}}, ErrInvalidInput, "sentence 0: empty id"},
		{"duplicate sentence id", ok, []Sentence{{ID: "a"}, {ID: "a", Text: secret}}, ErrInvalidInput, "duplicate id"},
		{"sentence too large", ok, []Sentence{{ID: "a", Text: strings.Repeat("x", MaxSentenceBytes+1)}}, ErrTooLarge, "more than"},
		{"segment not UTF-8", mod(func(s []Segment) []Segment { s[2].Text = "ab\xffcd"; return s }), []Sentence{{ID: "a"}}, ErrInvalidInput, "text is not valid UTF-8"},
		{"sentence not UTF-8", ok, []Sentence{{ID: "a", Text: "ab\xfecd"}}, ErrInvalidInput, "text is not valid UTF-8"},
		{"bad word timing", mod(func(s []Segment) []Segment { s[1].Words = []Word{{Text: "I've", StartMS: 9, EndMS: 3}}; return s }), []Sentence{{ID: "a"}}, ErrInvalidInput, "word 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Align(tc.segs, tc.sents)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err %T is not *InputError", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q quotes input text", err)
			}
		})
	}
}
