package soapgen

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/align"
)

// The corpus tests run over the shared development data when it is
// checked out next to the repository (../shared/data); CI has only the
// repository, so they skip there. To read notes for some consultations:
//
//	go test ./pipeline/soapgen -run TestPrimock57 -v -soapgen.print=day1_consultation01,day1_consultation07
var (
	primockDir = flag.String("soapgen.primock57", "../../../shared/data/primock57", "PriMock57 data directory")
	aciFile    = flag.String("soapgen.aci", "../../../shared/data/aci-bench/encounters.jsonl", "ACI-BENCH encounters file")
	printIDs   = flag.String("soapgen.print", "", "comma-separated encounter ids whose notes to print, or \"all\"")
)

type corpusEncounter struct {
	ID       string
	Segments []align.Segment
}

func loadPrimock(t testing.TB) []corpusEncounter {
	t.Helper()
	path := filepath.Join(*primockDir, "segments.jsonl")
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		t.Skipf("PriMock57 data not present at %s (it lives in the shared data folder, not in the repository)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusEncounter
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var rec struct {
			EncounterID string `json:"encounter_id"`
			Segments    []struct {
				SegmentID string `json:"segment_id"`
				Speaker   string `json:"speaker"`
				StartMS   int64  `json:"start_ms"`
				EndMS     int64  `json:"end_ms"`
				Text      string `json:"text"`
			} `json:"segments"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		e := corpusEncounter{ID: rec.EncounterID}
		for _, s := range rec.Segments {
			e.Segments = append(e.Segments, align.Segment{ID: s.SegmentID, Speaker: s.Speaker, StartMS: s.StartMS, EndMS: s.EndMS, Text: s.Text})
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func loadACI(t testing.TB) []corpusEncounter {
	t.Helper()
	f, err := os.Open(*aciFile)
	if os.IsNotExist(err) {
		t.Skipf("ACI-BENCH data not present at %s (it lives in the shared data folder, not in the repository)", *aciFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusEncounter
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var rec struct {
			EncounterID string `json:"encounter_id"`
			Dialogue    []struct {
				Speaker string `json:"speaker"`
				Text    string `json:"text"`
			} `json:"dialogue"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		e := corpusEncounter{ID: rec.EncounterID}
		for i, turn := range rec.Dialogue {
			e.Segments = append(e.Segments, align.Segment{ID: fmt.Sprintf("%s-t%d", rec.EncounterID, i+1), Speaker: turn.Speaker, Text: turn.Text})
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPrimock57(t *testing.T) {
	checkCorpus(t, loadPrimock(t))
}

func TestACIBench(t *testing.T) {
	checkCorpus(t, loadACI(t))
}

// checkCorpus asserts the note contract on every encounter and prints the
// notes asked for with -soapgen.print.
func checkCorpus(t *testing.T, encs []corpusEncounter) {
	if len(encs) == 0 {
		t.Fatal("no encounters read")
	}
	want := map[string]bool{}
	for _, id := range strings.Split(*printIDs, ",") {
		want[strings.TrimSpace(id)] = true
	}
	for _, e := range encs {
		n, err := Generate(e.Segments, Options{})
		if err != nil {
			t.Errorf("%s: %v", e.ID, err)
			continue
		}
		checkNoteShape(t, e.ID, n)
		checkNumbersGrounded(t, e.ID, e.Segments, n)
		if want["all"] || want[e.ID] {
			fmt.Printf("===== %s\n%s\n", e.ID, formatNote(n))
		}
	}
}

// checkNoteShape asserts the contract every note meets: the four sections
// in order, none empty, ids section-prefixed ordinals, unique.
func checkNoteShape(t *testing.T, label string, n Note) {
	t.Helper()
	names := []string{SectionSubjective, SectionObjective, SectionAssessment, SectionPlan}
	if len(n.Sections) != len(names) {
		t.Fatalf("%s: %d sections, want 4", label, len(n.Sections))
	}
	seen := map[string]bool{}
	for i, s := range n.Sections {
		if s.Name != names[i] {
			t.Errorf("%s: section %d is %q, want %q", label, i, s.Name, names[i])
		}
		if len(s.Sentences) == 0 {
			t.Errorf("%s: section %s is empty", label, s.Name)
		}
		for k, sen := range s.Sentences {
			want := fmt.Sprintf("%c%d", names[i][0], k+1)
			if sen.ID != want {
				t.Errorf("%s: sentence %d of %s has id %q, want %q", label, k, s.Name, sen.ID, want)
			}
			if seen[sen.ID] {
				t.Errorf("%s: duplicate id %q", label, sen.ID)
			}
			seen[sen.ID] = true
			if strings.TrimSpace(sen.Text) == "" {
				t.Errorf("%s: sentence %s is empty", label, sen.ID)
			}
		}
	}
}

var numberRE = regexp.MustCompile(`\d+(?:\.\d+)?`)

// checkNumbersGrounded asserts that every number in the note (doses,
// durations, vitals), other than 1 which "a week" also gives, was said in
// the transcript, as digits or words. Numbers are where an invented
// sentence would do the most harm.
func checkNumbersGrounded(t *testing.T, label string, segs []align.Segment, n Note) {
	t.Helper()
	said := map[string]bool{}
	for _, s := range segs {
		for _, u := range splitSentences(cleanText(s.Text)) {
			for _, tok := range numbersAsDigits(tokenize(u)) {
				for _, num := range numberRE.FindAllString(tok, -1) {
					said[num] = true
				}
			}
		}
	}
	for _, s := range n.Sections {
		for _, sen := range s.Sentences {
			for _, num := range numberRE.FindAllString(sen.Text, -1) {
				if num != "1" && !said[num] {
					t.Errorf("%s %s: number %s in %q was never said", label, sen.ID, num, sen.Text)
				}
			}
		}
	}
}

// formatNote renders a note as text, one sentence a line with its id.
func formatNote(n Note) string {
	var b strings.Builder
	for _, s := range n.Sections {
		fmt.Fprintf(&b, "%s:\n", s.Name)
		for _, sen := range s.Sentences {
			fmt.Fprintf(&b, "  %s  %s\n", sen.ID, sen.Text)
		}
	}
	return b.String()
}
