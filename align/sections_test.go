package align

import (
	"reflect"
	"testing"
)

func TestSectionKind(t *testing.T) {
	for h, want := range map[string]int{
		"Plan": kindPlan, "ASSESSMENT AND PLAN": kindPlan, "Imp": kindAssessment, "PMH": kindPMH,
		"HISTORY OF PRESENT ILLNESS": kindHistory, "DH": kindMeds, "SH": kindSocial, "FHx": kindFamily,
		"Examination": kindExam, "RESULTS": kindResults, "S": kindHistory, "Medical Treatment": kindPlan,
		"Summarize the whole meeting.":                          kindOther,
		"What did the group say about the plan for the remote?": kindOther,
		"Cheese": kindOther,
	} {
		if got := sectionKind(h); got != want {
			t.Errorf("sectionKind(%q) = %s, want %s", h, kindNames[got], kindNames[want])
		}
	}
}

func TestHeadingOf(t *testing.T) {
	for text, want := range map[string]string{
		"Plan: rest and fluids.": "Plan",
		"PMH - asthma":           "PMH",
		"Imp: viral URTI":        "Imp",
		"Note: seen at 10:30":    "",
		"10:30 reviewed":         "",
		"No blood in stool.":     "",
		"BP: 120/80":             "",
	} {
		h, _, ok := headingOf(text)
		if h != want || ok != (want != "") {
			t.Errorf("headingOf(%q) = %q, %v; want %q", text, h, ok, want)
		}
	}
}

func TestSplitNoteFindsSections(t *testing.T) {
	note := "3/7 hx of diarrhoea. No blood in stool.\n" +
		"PMH: asthma, uses inhaler.\n" +
		"Plan:\n" +
		"- Fluids and rest\n" +
		"- Review in 1/52 if no better. Stool sample then.\n" +
		"\n" +
		"ASSESSMENT AND PLAN\n" +
		"Gastroenteritis, likely viral.\n"
	got := SplitNote(note)
	want := []Sentence{
		{ID: "s1", Section: "", Text: "3/7 hx of diarrhoea."},
		{ID: "s2", Section: "", Text: "No blood in stool."},
		{ID: "s3", Section: "PMH", Text: "asthma, uses inhaler."},
		{ID: "s4", Section: "Plan", Text: "Fluids and rest"},
		{ID: "s5", Section: "Plan", Text: "Review in 1/52 if no better."},
		{ID: "s6", Section: "Plan", Text: "Stool sample then."},
		{ID: "s7", Section: "ASSESSMENT AND PLAN", Text: "Gastroenteritis, likely viral."},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SplitNote:\n got %+v\nwant %+v", got, want)
	}
}

func TestNoteSectionsCarryInlineHeadings(t *testing.T) {
	names, kinds := noteSections([]Sentence{
		{Text: "Cough for a week."},
		{Text: "Plan: fluids."},
		{Text: "Review if worse."},
		{Section: "History", Text: "Smoker."},
	})
	if !reflect.DeepEqual(names, []string{"", "Plan", "Plan", "History"}) {
		t.Fatalf("names %q", names)
	}
	if !reflect.DeepEqual(kinds, []int{kindOther, kindPlan, kindPlan, kindHistory}) {
		t.Fatalf("kinds %v", kinds)
	}
}
