package soapgen

import (
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/evidenceledger/evidence/align"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// All transcripts below are synthetic, written for these tests.

func TestPresentingComplaintWithDuration(t *testing.T) {
	n := mustGenerate(t, script(
		"C: Hello, how can I help you today?",
		"P: I've had pain in my lower tummy for the last three days.",
		"C: Can you describe the pain?",
		"P: It's crampy and it comes and goes.",
	))
	wantSentence(t, n, SectionSubjective, "Presents with lower abdominal pain for 3 days.")
	wantSentence(t, n, SectionSubjective, "Lower abdominal pain described as crampy and intermittent.")
}

func TestDurationFromHowLongQuestion(t *testing.T) {
	n := mustGenerate(t, script(
		"C: What brings you in?",
		"P: I've got a cough.",
		"C: How long have you had the cough?",
		"P: About two weeks.",
	))
	wantSentence(t, n, SectionSubjective, "Presents with cough for about 2 weeks.")
}

func TestNegatedAnswerBecomesDenial(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: I have a headache.",
		"C: Any fever?",
		"P: No.",
		"C: Any nausea? Any vomiting?",
		"P: Uh, no, nothing like that.",
		"C: Have you noticed any neck stiffness?",
		"P: Not really, no.",
	))
	wantSentence(t, n, SectionSubjective, "Denies fever.")
	// Denials from one question group stay one sentence, with one source.
	wantSentence(t, n, SectionSubjective, "Denies nausea or vomiting.")
	wantSentence(t, n, SectionSubjective, "Denies neck stiffness.")
}

func TestYesAnswerAndNegatedQuestion(t *testing.T) {
	n := mustGenerate(t, script(
		"C: What's the problem?",
		"P: I've been vomiting since yesterday.",
		"C: And there's no blood in your vomit, is that right?",
		"P: Yeah, that's right.",
		"C: Do you feel sick between the episodes?",
		"P: Yes.",
		"C: Any cough or cold?",
		"P: Yes.",
	))
	wantSentence(t, n, SectionSubjective, "Presents with vomiting since yesterday.")
	// "No X, is that right?" / "Yeah" confirms the absence.
	wantSentence(t, n, SectionSubjective, "Denies blood in vomit.")
	// A "yes" to a question about one symptom asserts it ...
	wantSentence(t, n, SectionSubjective, "Reports nausea.")
	// ... but a "yes" to "X or Y?" does not say which.
	noSentenceContaining(t, n, SectionSubjective, "cough")
}

func TestPatientsOwnWordsBeatAnEarlierNo(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: I've had diarrhoea for two days.",
		"C: Any vomiting at all?",
		"P: No.",
		"P: Well, actually I vomited once at the start.",
	))
	wantSentence(t, n, SectionSubjective, "Reports vomiting.")
	noSentenceContaining(t, n, SectionSubjective, "Denies vomiting")
}

func TestMedicationWithDoseInPlan(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: It burns when I pee.",
		"C: I think this is likely a urine infection.",
		"C: I'm going to prescribe nitrofurantoin, one hundred milligrams twice a day for three days.",
		"C: You can also take paracetamol, two tablets up to four times a day.",
	))
	wantSentence(t, n, SectionSubjective, "Presents with painful urination.")
	wantSentence(t, n, SectionAssessment, "Likely urinary tract infection.")
	wantSentence(t, n, SectionPlan, "Nitrofurantoin 100 mg twice a day for 3 days.")
	wantSentence(t, n, SectionPlan, "Paracetamol 2 tablets up to 4 times a day.")
}

func TestAssessmentWording(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: I've got a bad headache on one side and bright lights hurt my eyes.",
		"C: Have you had this before?",
		"P: No, never.",
		"C: It sounds like a migraine, although it could be a tension headache.",
		"C: I don't think this is meningitis.",
		"C: We need to rule out a stroke, so I will refer you.",
	))
	wantSentence(t, n, SectionAssessment, "Likely migraine.")
	wantSentence(t, n, SectionAssessment, "Possible tension headache.")
	wantSentence(t, n, SectionAssessment, "Meningitis considered unlikely.")
	wantSentence(t, n, SectionAssessment, "Stroke to be excluded.")
	wantSentence(t, n, SectionSubjective, "No previous similar episodes.")
}

func TestObjectiveMeasurementsAndFindings(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: I've had tummy pain since yesterday.",
		"C: Let me examine you. Your temperature is thirty eight point two and your blood pressure is 130 over 85.",
		"C: Your pulse is ninety two.",
		"C: On examination you're tender in the right lower quadrant.",
	))
	wantSentence(t, n, SectionObjective, "Temperature 38.2 °C.")
	wantSentence(t, n, SectionObjective, "Blood pressure 130/85 mmHg.")
	wantSentence(t, n, SectionObjective, "Heart rate 92 bpm.")
	wantSentence(t, n, SectionObjective, "Tender in the right lower quadrant.")
}

func TestNoExaminationFindings(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: I have a sore throat.",
		"C: If your temperature goes up, call us.",
	))
	if got := sentences(n, SectionObjective); len(got) != 1 || got[0] != "No examination findings recorded." {
		t.Errorf("Objective = %q, want the no-findings placeholder", got)
	}
}

func TestHistory(t *testing.T) {
	n := mustGenerate(t, script(
		"C: What can I do for you?",
		"P: I've had a rash on my arms for a week.",
		"C: Any medical problems?",
		"P: I have eczema and type two diabetes.",
		"C: Do you take any regular medications?",
		"P: Metformin, five hundred milligrams twice a day.",
		"C: Any allergies?",
		"P: No, none that I know of.",
		"C: Do you smoke?",
		"P: No, I don't smoke.",
		"C: Do you drink alcohol?",
		"P: Only socially.",
		"C: Any family history of skin problems or other illnesses?",
		"P: My mum has psoriasis.",
		"C: Who do you live with?",
		"P: I live alone.",
		"C: And what do you do for work?",
		"P: I work as a nurse.",
	))
	for _, want := range []string{
		"Presents with rash for 1 week.",
		"Past medical history: eczema and type 2 diabetes.",
		"Medications: metformin 500 mg twice a day.",
		"No known drug allergies.",
		"Non-smoker.",
		"Drinks alcohol socially.",
		"Family history of psoriasis (mother).",
		"Lives alone.",
		"Works as a nurse.",
	} {
		wantSentence(t, n, SectionSubjective, want)
	}
}

func TestSafetyNettingAndFollowUp(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: I've had a cough for a week.",
		"C: I think it's a viral infection, so rest and drink plenty of fluids.",
		"C: If you get short of breath or it gets worse, please call us or go to A and E.",
		"C: Let's have a follow-up in two weeks.",
	))
	wantSentence(t, n, SectionPlan, "Advised rest.")
	wantSentence(t, n, SectionPlan, "Advised to drink plenty of fluids.")
	wantSentence(t, n, SectionPlan, "Safety-netting advice given: to seek urgent review if symptoms worsen or do not improve; warning symptoms discussed: shortness of breath.")
	wantSentence(t, n, SectionPlan, "Follow-up in 2 weeks.")
	// A conditional "go to A&E" is safety-netting, not a referral.
	noSentenceContaining(t, n, SectionPlan, "attend A&E")
}

func TestSpeakerRoles(t *testing.T) {
	n := mustGenerate(t, script(
		"D: How can I help?",
		"P: I have a sore throat.",
		"O: The interpreter says he also has chest pain.",
	))
	wantSentence(t, n, SectionSubjective, "Presents with sore throat.")
	// Other speakers are not evidence.
	noSentenceContaining(t, n, SectionSubjective, "chest pain")
}

// TestNothingInvented checks the rule that matters most: a transcript with
// no clinical content gives a note of placeholders, not plausible filler.
func TestNothingInvented(t *testing.T) {
	n := mustGenerate(t, script(
		"C: Hello, can you hear me?",
		"P: Yes, I can hear you fine.",
		"C: Lovely weather today.",
		"P: It is, I went for a walk this morning.",
	))
	want := []string{"No history recorded.", "No examination findings recorded.", "No impression stated.", "No plan stated."}
	for i, s := range n.Sections {
		if len(s.Sentences) != 1 || s.Sentences[0].Text != want[i] {
			t.Errorf("%s = %v, want only %q", s.Name, s.Sentences, want[i])
		}
	}
}

func TestMarkupStripped(t *testing.T) {
	segs := script(
		"C: <UNIN/> How can I <UNSURE>help you</UNSURE> today?",
		"P: <INAUDIBLE_SPEECH/> I've had a <UNSURE>headache</UNSURE> for two days. <UNIN/>",
		"C: <UNSURE>Any fever?</UNSURE>",
		"P: <UNIN/> No.",
	)
	n := mustGenerate(t, segs)
	wantSentence(t, n, SectionSubjective, "Presents with headache for 2 days.")
	wantSentence(t, n, SectionSubjective, "Denies fever.")
	for _, s := range n.Sections {
		for _, sen := range s.Sentences {
			if strings.ContainsAny(sen.Text, "<>") {
				t.Errorf("%s %s keeps markup: %q", s.Name, sen.ID, sen.Text)
			}
		}
	}
}

func TestCleanText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<UNSURE>Oh</UNSURE> <UNSURE>hey</UNSURE>, um, I've just had some diarrhea", "Oh hey, I've just had some diarrhea"},
		{"<UNIN/>", ""},
		{"I I work, er. Um, I'm an accountant.", "I work. I'm an accountant."},
		{"it's, it's, it's not good", "it's not good"},
		{"some pain in my, like, lower stomach?", "some pain in my, lower stomach?"},
		{"i do n't know , it 's gon na be fine .", "i don't know, it's gonna be fine."},
		{"temperature of 38.5 < 39", "temperature of 38.5 < 39"},
	} {
		if got := cleanText(c.in); got != c.want {
			t.Errorf("cleanText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	segs := loadScript(t, "testdata/consultation.txt")
	first := formatNote(mustGenerate(t, segs))
	for range 20 {
		if got := formatNote(mustGenerate(t, segs)); got != first {
			t.Fatalf("second run differs:\n%s\nvs\n%s", got, first)
		}
	}
	// Concurrent callers share only read-only tables (run with -race).
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := formatNote(mustGenerate(t, segs)); got != first {
				t.Error("concurrent run differs")
			}
		}()
	}
	wg.Wait()
}

func TestInputOrderIsSpeakingOrder(t *testing.T) {
	segs := loadScript(t, "testdata/consultation.txt")
	reversed := make([]align.Segment, len(segs))
	for i, s := range segs {
		reversed[len(segs)-1-i] = s
	}
	if a, b := formatNote(mustGenerate(t, segs)), formatNote(mustGenerate(t, reversed)); a != b {
		t.Errorf("note depends on slice order, not times:\n%s\nvs\n%s", a, b)
	}
}

var idPattern = regexp.MustCompile(`^[SOAP][1-9][0-9]*$`)

func TestSentenceIDs(t *testing.T) {
	n := mustGenerate(t, loadScript(t, "testdata/consultation.txt"))
	checkNoteShape(t, "consultation", n)
	for _, s := range n.Sections {
		for _, sen := range s.Sentences {
			if !idPattern.MatchString(sen.ID) {
				t.Errorf("id %q does not match %s", sen.ID, idPattern)
			}
		}
	}
	// Stable: the same input gives the same id for the same sentence.
	again := mustGenerate(t, loadScript(t, "testdata/consultation.txt"))
	for i, s := range n.Sections {
		for k, sen := range s.Sentences {
			if again.Sections[i].Sentences[k] != sen {
				t.Errorf("sentence %s changed between runs", sen.ID)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	got := formatNote(mustGenerate(t, loadScript(t, "testdata/consultation.txt")))
	const path = "testdata/consultation.golden"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("note differs from %s (run with -update if the change is intended, and bump Version):\n%s", path, got)
	}
}

const secretText = "Patient Zebedee Quux reports a secret symptom"

func TestErrors(t *testing.T) {
	long := strings.Repeat("a", DefaultMaxSegmentBytes+1)
	many := make([]align.Segment, 11)
	for i := range many {
		many[i] = align.Segment{Speaker: "patient", Text: secretText}
	}
	for _, c := range []struct {
		name  string
		segs  []align.Segment
		opts  Options
		is    error
		field string
	}{
		{name: "nil", segs: nil, is: ErrEmptyInput},
		{name: "blank", segs: []align.Segment{{Speaker: "patient", Text: "  "}}, is: ErrEmptyInput},
		{name: "markup only", segs: []align.Segment{{Speaker: "patient", Text: "<UNIN/> <INAUDIBLE_SPEECH/>"}}, is: ErrEmptyInput},
		{name: "too many segments", segs: many, opts: Options{MaxSegments: 10}, is: ErrInputTooLarge},
		{name: "too much text", segs: many, opts: Options{MaxTextBytes: 100}, is: ErrInputTooLarge},
		{name: "segment too long", segs: []align.Segment{{Speaker: "patient", Text: secretText + long}}, is: ErrInputTooLarge, field: "text"},
		{name: "negative start", segs: []align.Segment{{Speaker: "patient", StartMS: -1, Text: secretText}}, field: "start_ms"},
		{name: "end before start", segs: []align.Segment{{Speaker: "patient", StartMS: 10, EndMS: 5, Text: secretText}}, field: "end_ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Generate(c.segs, c.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			var se *SegmentError
			if c.field != "" && (!errors.As(err, &se) || se.Field != c.field) {
				t.Errorf("error %v is not a SegmentError for field %q", err, c.field)
			}
			// Transcript text is PHI and must never reach an error message.
			if strings.Contains(err.Error(), "Zebedee") || strings.Contains(err.Error(), "aaaa") {
				t.Errorf("error echoes transcript text: %v", err)
			}
		})
	}
}

func TestUntimedTranscriptKeepsInputOrder(t *testing.T) {
	// ACI-BENCH style: turns without times, "doctor" speaker, lower case,
	// tokenised punctuation.
	segs := []align.Segment{
		{ID: "t1", Speaker: "doctor", Text: "what brings you in today ?"},
		{ID: "t2", Speaker: "patient", Text: "i've had a cough for about a week ."},
		{ID: "t3", Speaker: "doctor", Text: "any fever ?"},
		{ID: "t4", Speaker: "patient", Text: "no ."},
	}
	n := mustGenerate(t, segs)
	wantSentence(t, n, SectionSubjective, "Presents with cough for about 1 week.")
	wantSentence(t, n, SectionSubjective, "Denies fever.")
}

func TestModelIdentity(t *testing.T) {
	if ModelID != "soapgen/"+Version || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(Version) {
		t.Errorf("ModelID %q, Version %q", ModelID, Version)
	}
}

func TestSpokenNumbers(t *testing.T) {
	n := mustGenerate(t, script(
		"C: How can I help?",
		"P: I've had chest pain for twenty four hours.",
		"C: Any regular medications?",
		"P: I take aspirin, seventy five milligrams once a day.",
		"C: Your blood pressure is a hundred and forty over ninety.",
	))
	wantSentence(t, n, SectionSubjective, "Presents with chest pain for 24 hours.")
	// "five" inside "seventy five" must not start a second number.
	wantSentence(t, n, SectionSubjective, "Medications: aspirin 75 mg once a day.")
	wantSentence(t, n, SectionObjective, "Blood pressure 140/90 mmHg.")
}
