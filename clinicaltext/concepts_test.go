package clinicaltext

import (
	"slices"
	"testing"
)

func TestConcepts(t *testing.T) {
	for _, tc := range []struct {
		word string
		want Category
	}{
		{"amoxicillin", Drug}, {"paracetamol", Drug}, {"nurofen", Drug}, {"salbutamol", Drug},
		{"asthma", Condition}, {"gastroenteritis", Condition}, {"vomiting", Symptom},
		{"knee", Body}, {"abdomen", Body}, {"grandmother", Relative}, {"mum", Relative},
		{"colonoscopy", Procedure}, {"plan", 0}, {"patient", 0},
	} {
		if got := CategoryOf(Stem(tc.word)); got&tc.want != tc.want || (tc.want == 0 && got != 0) {
			t.Errorf("CategoryOf(%q) = %b, want %b", tc.word, got, tc.want)
		}
	}
	if got := CategoryOf(stemPhrase("heart attack")); got&Condition == 0 {
		t.Errorf("heart attack: %b, want a condition", got)
	}
	if cl := DrugClasses(Stem("amoxicillin")); !slices.Contains(cl, Stem("antibiotic")) {
		t.Errorf("amoxicillin classes %v lack antibiotic", cl)
	}
	if cl := DrugClasses(Stem("calpol")); !slices.Contains(cl, Stem("paracetamol")) {
		t.Errorf("calpol names %v lack paracetamol", cl)
	}
	if g1, g2 := GroupOf(Stem("dry")), GroupOf(Stem("productive")); g1 == "" || g1 != g2 {
		t.Errorf("dry and productive in groups %q and %q", g1, g2)
	}
	if ValueOf(Stem("crampy")) != ValueOf(Stem("colicky")) || ValueOf(Stem("crampy")) == ValueOf(Stem("sharp")) {
		t.Error("crampy and colicky should be one value of pain quality, sharp another")
	}
	if GroupOf(Stem("left")) != GroupOf(Stem("right")) || GroupOf(Stem("left")) == GroupOf(Stem("dry")) {
		t.Error("left and right should share a group apart from dry")
	}
}

func TestWordRank(t *testing.T) {
	if r := WordRank("the"); r != 1 {
		t.Errorf("WordRank(the) = %d, want 1", r)
	}
	if r := WordRank(Stem("knee")); r < 1 || r > 10 {
		t.Errorf("WordRank(knee) = %d, want a common word", r)
	}
	if r := WordRank(Stem("tapentadol")); r != 0 {
		t.Errorf("WordRank(tapentadol) = %d, want 0 (rare)", r)
	}
	for w, want := range map[string]bool{"tapentadol": true, "dapagliflozin": true, "control": false, "alcohol": false, "knee": false} {
		if got := LooksLikeDrug(Stem(w)); got != want {
			t.Errorf("LooksLikeDrug(%q) = %v, want %v", w, got, want)
		}
	}
}

func TestLooksLikeProcedure(t *testing.T) {
	for w, want := range map[string]bool{"bronchoscopy": true, "cardiologist": true, "angiogram": true,
		"ureteroscopy": true, "telegram": false, "happy": false, "dermatology": false /* in concepts.tsv already */} {
		if got := LooksLikeProcedure(Stem(w)); got != want {
			t.Errorf("LooksLikeProcedure(%q) = %v, want %v", w, got, want)
		}
	}
}
