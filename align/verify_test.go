package align

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// demoConsultation is PriMock57 day1_consultation01, the demo visit, from the committed
// clinical corpus.
func demoConsultation(t testing.TB) []Segment {
	segs, _ := devSegments(t, "testdata/clinical/segments.jsonl")
	s := segs["day1_consultation01"]
	if len(s) == 0 {
		t.Fatal("day1_consultation01 missing from testdata/clinical/segments.jsonl")
	}
	return s
}

// TestCheckerCatchesTheIssueExamples runs the altered sentences that issue 13 reports were all
// shown as supported on the demo consultation, with the true sentences they were made from.
// The transcript facts are the patient's words: no blood, asthma, the left lower abdomen,
// three days, no antibiotics.
func TestCheckerCatchesTheIssueExamples(t *testing.T) {
	x := mustIndex(t, demoConsultation(t))
	note := []Sentence{
		{ID: "true-blood", Section: "History", Text: "No blood in stool."},
		{ID: "blood", Section: "History", Text: "Blood in stool."},
		{ID: "true-pmh", Section: "PMH", Text: "PMH: Asthma"},
		{ID: "pmh", Section: "PMH", Text: "Past medical history: diabetes."},
		{ID: "true-site", Section: "History", Text: "Associated LLQ pain - crampy, intermittent, nil radiation."},
		{ID: "site", Section: "History", Text: "Right upper quadrant pain."},
		{ID: "true-duration", Section: "History", Text: "3/7 hx of diarrhea, mainly watery."},
		{ID: "duration", Section: "History", Text: "Diarrhea for the last 3 weeks."},
		{ID: "plan", Section: "Plan", Text: "Plan: amoxicillin 500mg three times a day."},
		{ID: "true-plan", Section: "Plan", Text: "Antibiotics are not needed at this stage."},
	}
	want := map[string]struct {
		verdict Verdict
		kinds   []ConflictKind // at least one of these among the conflicts, when contradicted
	}{
		"true-blood":    {Supported, nil},
		"blood":         {Contradicted, []ConflictKind{ConflictNegation}},
		"true-pmh":      {Supported, nil},
		"pmh":           {"flagged", nil},
		"true-site":     {Supported, nil},
		"site":          {Contradicted, []ConflictKind{ConflictSite}},
		"true-duration": {Supported, nil},
		"duration":      {Contradicted, []ConflictKind{ConflictDuration}},
		"plan":          {"flagged", nil},
		"true-plan":     {Supported, nil},
	}
	for i, r := range x.CheckNote(note) {
		s := note[i]
		w := want[s.ID]
		switch {
		case w.verdict == "flagged" && !r.Verdict.Flagged():
			t.Errorf("%s %q: verdict %s, want contradicted or unmentioned", s.ID, s.Text, r.Verdict)
		case w.verdict == Supported && r.Verdict.Flagged():
			t.Errorf("%s %q: verdict %s, want not flagged", s.ID, s.Text, r.Verdict)
		case w.verdict == Contradicted && r.Verdict != Contradicted:
			t.Errorf("%s %q: verdict %s, want contradicted", s.ID, s.Text, r.Verdict)
		}
		if r.Verdict.Flagged() && r.Severity != Major {
			t.Errorf("%s %q: severity %q, want major", s.ID, s.Text, r.Severity)
		}
		if len(w.kinds) > 0 {
			found := false
			for _, c := range r.Conflicts {
				for _, k := range w.kinds {
					found = found || c.Kind == k
				}
			}
			if !found {
				t.Errorf("%s %q: conflicts %+v, want one of kind %v", s.ID, s.Text, r.Conflicts, w.kinds)
			}
		}
		checkResultShape(t, s, x, r)
	}
}

// TestCheckerConflictPointsAtTheWords checks what a clinician hears for "Blood in stool.":
// the patient's "No, no blood", with its segment, times and words.
func TestCheckerConflictPointsAtTheWords(t *testing.T) {
	segs := demoConsultation(t)
	x := mustIndex(t, segs)
	r := x.CheckNote([]Sentence{{ID: "a", Text: "Blood in stool."}})[0]
	if r.Verdict != Contradicted || len(r.Conflicts) == 0 {
		t.Fatalf("verdict %s, conflicts %v", r.Verdict, r.Conflicts)
	}
	c := r.Conflicts[0]
	if got := "Blood in stool."[c.Claim.Start:c.Claim.End]; got != "Blood" {
		t.Errorf("claim %q, want %q", got, "Blood")
	}
	if c.SegmentID != "day1_consultation01-p10" {
		t.Errorf("conflict in %s, want the patient's answer day1_consultation01-p10", c.SegmentID)
	}
	if !strings.Contains(strings.ToLower(c.Words), "no blood") && !strings.HasPrefix(c.Words, "No") {
		t.Errorf("conflict words %q do not say no blood", c.Words)
	}
	if c.StartMS != 56260 || c.EndMS != 59575 {
		t.Errorf("conflict times %d..%d, want the segment's 56260..59575", c.StartMS, c.EndMS)
	}
}

// TestCheckerUnmentioned checks a sentence about things never discussed: flagged unmentioned
// with the words nothing supports among its ranges.
func TestCheckerUnmentioned(t *testing.T) {
	x := mustIndex(t, demoConsultation(t))
	s := Sentence{ID: "u", Section: "Plan", Text: "Referred to cardiology for an echocardiogram."}
	r := x.CheckNote([]Sentence{s})[0]
	if !r.Verdict.Flagged() {
		t.Fatalf("verdict %s, want flagged", r.Verdict)
	}
	if r.Verdict == Unmentioned {
		covered := false
		for _, u := range r.Unsupported {
			if strings.Contains(s.Text[u.Start:u.End], "echocardiogram") || strings.Contains(s.Text[u.Start:u.End], "cardiology") {
				covered = true
			}
		}
		if !covered {
			t.Errorf("unsupported ranges %v miss cardiology and echocardiogram", r.Unsupported)
		}
	}
	checkResultShape(t, s, x, r)
}

// TestCheckerQuestionsAndAnswers uses the synthetic visit: a "No." to "Any blood in your
// stool?" denies blood; "Yes, I get really breathless" affirms breathlessness; a relative's
// condition is not the patient's.
func TestCheckerQuestionsAndAnswers(t *testing.T) {
	segs := append(visit(),
		Segment{ID: "s16", Speaker: "patient", StartMS: 80000, EndMS: 84000, Text: "My mother has diabetes."},
		Segment{ID: "s17", Speaker: "clinician", StartMS: 85000, EndMS: 88000, Text: "Any difficulty swallowing?"},
		Segment{ID: "s18", Speaker: "patient", StartMS: 88500, EndMS: 89000, Text: "No."})
	x := mustIndex(t, segs)
	for _, tc := range []struct {
		text    string
		flagged bool
	}{
		{"No blood in stool.", false},
		{"Blood in stool.", true},
		{"Denies chest pain.", false},
		{"Reports chest pain.", true},
		{"Breathless on climbing stairs.", false},
		{"Mother has diabetes.", false},
		{"PMH: diabetes.", true},
		{"PMH: asthma.", false},
		{"Non-smoker.", false},
		{"Smokes 20 a day.", true},
		{"No difficulty swallowing.", false},
		{"Difficulty swallowing.", true},
		{"Patient owns a purple bicycle.", true},
		{"Xylophone quartzite glockenspiel.", true},
	} {
		r := x.CheckNote([]Sentence{{ID: "x", Text: tc.text}})[0]
		if r.Verdict.Flagged() != tc.flagged {
			t.Errorf("%q: verdict %s (conflicts %+v), want flagged=%v", tc.text, r.Verdict, r.Conflicts, tc.flagged)
		}
	}
}

// checkResultShape checks the invariants of a Result: the method version, severity only when
// flagged, conflicts only when contradicted and unsupported ranges only when unmentioned, all
// ranges inside their texts and on UTF-8 boundaries, conflict words equal to the segment text
// they point at.
func checkResultShape(t *testing.T, s Sentence, x *Index, r Result) {
	t.Helper()
	if r.MethodVersion != MethodVersion {
		t.Errorf("%s: method %q", s.ID, r.MethodVersion)
	}
	if r.Verdict.Flagged() != (r.Severity != "") {
		t.Errorf("%s: verdict %s with severity %q", s.ID, r.Verdict, r.Severity)
	}
	if (len(r.Conflicts) > 0) != (r.Verdict == Contradicted) {
		t.Errorf("%s: verdict %s with %d conflicts", s.ID, r.Verdict, len(r.Conflicts))
	}
	if (len(r.Unsupported) > 0) != (r.Verdict == Unmentioned) {
		t.Errorf("%s: verdict %s with %d unsupported ranges", s.ID, r.Verdict, len(r.Unsupported))
	}
	inText := func(text string, a, b int) bool {
		return 0 <= a && a < b && b <= len(text) && utf8.ValidString(text[a:b])
	}
	for _, u := range r.Unsupported {
		if !inText(s.Text, u.Start, u.End) {
			t.Errorf("%s: unsupported range %v outside %q", s.ID, u, s.Text)
		}
	}
	for _, c := range r.Conflicts {
		if !inText(s.Text, c.Claim.Start, c.Claim.End) {
			t.Errorf("%s: claim range %v outside %q", s.ID, c.Claim, s.Text)
		}
		i, ok := x.segIndex[c.SegmentID]
		if !ok {
			t.Errorf("%s: conflict in unknown segment %q", s.ID, c.SegmentID)
			continue
		}
		seg := x.segs[i]
		if !inText(seg.Text, c.CharStart, c.CharEnd) || seg.Text[c.CharStart:c.CharEnd] != c.Words {
			t.Errorf("%s: conflict words %q at %d..%d of %q", s.ID, c.Words, c.CharStart, c.CharEnd, seg.Text)
		}
		if c.StartMS < seg.StartMS || c.EndMS > seg.EndMS || c.EndMS < c.StartMS {
			t.Errorf("%s: conflict times %d..%d outside the segment's %d..%d", s.ID, c.StartMS, c.EndMS, seg.StartMS, seg.EndMS)
		}
	}
}

// FuzzCheck checks that the checker never panics on arbitrary sentences against a small
// consultation with an arbitrary extra segment, and keeps its invariants on the input that
// validation accepts (valid UTF-8).
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"No blood in stool.", "Right upper quadrant pain x3/7", "Mother - asthma; nil smoking",
		"Ibuprofen 400mg TDS for 2/52", "?appendicitis", "FH: dad died of MI early 60s", "no", "3-5d", "½ a week", "\xff\xfe"} {
		f.Add(s, "Uh, no. On the left side, about three days, twice a day.")
	}
	f.Fuzz(func(t *testing.T, sentence, extra string) {
		if len(sentence) > MaxSentenceBytes || len(extra) > MaxSegmentBytes {
			return
		}
		segs := append(visit(), Segment{ID: "extra", Speaker: "patient", StartMS: 90000, EndMS: 91000, Text: extra})
		x, err := NewIndex(segs)
		if errors.Is(err, ErrInvalidInput) && !utf8.ValidString(extra) {
			return // refused, as it should be
		}
		if err != nil {
			t.Fatal(err)
		}
		s := Sentence{ID: "f", Section: "History", Text: sentence}
		r := x.CheckNote([]Sentence{s})[0] // never panics
		if utf8.ValidString(sentence) {    // what validation lets through keeps the invariants
			checkResultShape(t, s, x, r)
		}
	})
}

// TestCheckerDeterministic checks that the same note against the same transcript gives the
// same results every time, whatever the order maps are walked in.
func TestCheckerDeterministic(t *testing.T) {
	segs := demoConsultation(t)
	note := []Sentence{
		{ID: "a", Section: "History", Text: "Blood in stool."},
		{ID: "b", Section: "History", Text: "Right upper quadrant pain, constant, for 3 weeks."},
		{ID: "c", Section: "PMH", Text: "PMH: diabetes, mother has asthma."},
		{ID: "d", Section: "Plan", Text: "Plan: amoxicillin 500mg three times a day; refer to gastroenterology."},
		{ID: "e", Section: "History", Text: "Fever on first day, nil since."},
	}
	first := mustIndex(t, segs).CheckNote(note)
	for i := 0; i < 5; i++ {
		if got := mustIndex(t, segs).CheckNote(note); !reflect.DeepEqual(got, first) {
			t.Fatalf("run %d differs:\n%+v\nwant\n%+v", i, got, first)
		}
	}
}

// Transcripts tokenized the way ACI-BENCH writes them split contractions ("do n't"); the
// negation still counts, and "no obvious signs of" keeps it over what follows "of".
func TestCheckerTokenizedContractions(t *testing.T) {
	x := mustIndex(t, []Segment{
		{ID: "t1", Speaker: "clinician", StartMS: 0, EndMS: 9000, Text: "okay so i looked at the x-ray of your right wrist and i do n't see any fracture there"},
		{ID: "t2", Speaker: "patient", StartMS: 9500, EndMS: 12000, Text: "okay good"},
		{ID: "t3", Speaker: "clinician", StartMS: 12500, EndMS: 20000, Text: "and you said you do n't smoke right"},
		{ID: "t4", Speaker: "patient", StartMS: 20500, EndMS: 22000, Text: "no i quit years ago"},
	})
	expectVerdicts(t, x, []verdictCase{
		{"X-ray of the right wrist shows no obvious signs of acute fracture.", Supported},
		{"X-ray of the right wrist shows a fracture.", Contradicted},
	})
}

// Grades said in words ("two plus", "grade two out of six") are compared with the note's "2+"
// and "2/6".
func TestCheckerGrades(t *testing.T) {
	x := mustIndex(t, []Segment{
		{ID: "t1", Speaker: "clinician", StartMS: 0, EndMS: 9000, Text: "on your heart exam i hear a grade two out of six systolic ejection murmur"},
		{ID: "t2", Speaker: "patient", StartMS: 9500, EndMS: 11000, Text: "okay"},
		{ID: "t3", Speaker: "clinician", StartMS: 11500, EndMS: 20000, Text: "your reflexes are two plus and symmetric and there is one plus pitting edema in both legs"},
	})
	expectVerdicts(t, x, []verdictCase{
		{"Grade 2/6 systolic ejection murmur.", Supported},
		{"Grade 4/6 systolic ejection murmur.", Contradicted},
		{"Reflexes are 2+ and symmetric.", Supported},
		{"Reflexes are 3+ and symmetric.", Contradicted},
		{"1+ pitting edema in the bilateral lower extremities.", Supported},
		{"3+ pitting edema in the bilateral lower extremities.", Contradicted},
	})
}

type verdictCase struct {
	text    string
	verdict Verdict
}

// expectVerdicts checks each sentence, alone, against x.
func expectVerdicts(t *testing.T, x *Index, cases []verdictCase) {
	t.Helper()
	for _, tc := range cases {
		r := x.CheckNote([]Sentence{{ID: "x", Text: tc.text}})[0]
		if r.Verdict != tc.verdict {
			t.Errorf("%q: verdict %s (conflicts %+v), want %s", tc.text, r.Verdict, r.Conflicts, tc.verdict)
		}
	}
}

// A "no" to a question about a body part's problems denies the problems, not the body part.
func TestCheckerDeniedProblemsOfABodyPart(t *testing.T) {
	x := mustIndex(t, []Segment{
		{ID: "p1", Speaker: "patient", StartMS: 0, EndMS: 5000, Text: "I've had watery diarrhoea, going six times a day."},
		{ID: "d1", Speaker: "clinician", StartMS: 5500, EndMS: 9000, Text: "And you don't have any other tummy problems, bowel problems I should be aware of?"},
		{ID: "p2", Speaker: "patient", StartMS: 9500, EndMS: 10000, Text: "No."},
		{ID: "d2", Speaker: "clinician", StartMS: 10500, EndMS: 14000, Text: "Any difficulty swallowing?"},
		{ID: "p3", Speaker: "patient", StartMS: 14500, EndMS: 15000, Text: "No."},
	})
	expectVerdicts(t, x, []verdictCase{
		{"Watery diarrhoea, opening bowels 6 times a day.", Supported},
		{"Difficulty swallowing.", Contradicted},
	})
}
