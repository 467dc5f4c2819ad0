package align

import "testing"

func TestSentenceRole(t *testing.T) {
	for text, want := range map[string]int{
		"Patient reports diarrhoea for three days.":               rolePatient,
		"She denies any blood in the stool.":                      rolePatient,
		"Advised the patient to drink plenty of fluids.":          roleClinician,
		"We discussed the risks of surgery.":                      roleClinician,
		"The Project Manager opened the meeting.":                 roleProjectManager,
		"Marketing presented the trend watching results.":         roleMarketing,
		"The Industrial Designer and the Marketing expert agreed": roleNone,
		"3/7 hx of diarrhoea.":                                    roleNone,
	} {
		if got := sentenceRole(text); got != want {
			t.Errorf("sentenceRole(%q) = %d, want %d", text, got, want)
		}
	}
}

func TestRoleOfLabel(t *testing.T) {
	for label, want := range map[string]int{"clinician": roleClinician, "Doctor": roleClinician,
		"patient": rolePatient, "B": roleNone, "other": roleNone} {
		if got := roleOfLabel(label); got != want {
			t.Errorf("roleOfLabel(%q) = %d, want %d", label, got, want)
		}
	}
}

func TestRoleVotesFollowTheNote(t *testing.T) {
	// Two sentences name the project manager; their best segments are by speakers 2, 2, 0
	// and 2, 1. Speaker 2 gets (1 + 1) of 1 + 1/2 + 1/3 + 1 + 1/2 votes.
	r := roleVotes(3, []int{roleProjectManager, roleNone, roleProjectManager}, [][]int32{{2, 2, 0}, {1}, {2, 1}})
	s := r.share[roleProjectManager]
	total := 1 + 0.5 + 1.0/3 + 1 + 0.5
	want := []float64{(1.0 / 3) / total, 0.5 / total, (1 + 0.5 + 1) / total}
	for sp := range want {
		if d := s[sp] - want[sp]; d > 1e-9 || d < -1e-9 {
			t.Fatalf("shares %v, want %v", s, want)
		}
	}
	if r.share[roleMarketing] != nil {
		t.Fatal("a role the note does not name got speakers")
	}
}

func TestLabelledSpeakersGetRoles(t *testing.T) {
	x := mustIndex(t, visit())
	if !x.hasLabels || x.patient == nil {
		t.Fatal("clinician/patient labels not read")
	}
	for i, s := range x.segs {
		if x.patient[x.info[i].speaker] != (s.Speaker == "patient") {
			t.Fatalf("segment %s: patient flag wrong", s.ID)
		}
	}
}
