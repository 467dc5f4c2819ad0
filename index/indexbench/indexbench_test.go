package indexbench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeCorpus writes a tiny corpus in the shared data layout.
func writeCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"align-dev/segments.jsonl":   `{"encounter_id":"ES2002a","segments":[{"segment_id":"a.1","speaker":"B","start_ms":0,"end_ms":900,"text":"the remote control needs a button ."},{"segment_id":"a.2","speaker":"A","start_ms":900,"end_ms":1500,"text":"Okay"}]}` + "\n",
		"primock57/segments.jsonl":   `{"encounter_id":"day1_consultation01","segments":[{"segment_id":"d1","speaker":"clinician","start_ms":0,"end_ms":2000,"text":"Any chest pain?"},{"segment_id":"p1","speaker":"patient","start_ms":2000,"end_ms":5000,"text":"Yes, chest pain and I get short of breath."}]}` + "\n",
		"primock57/notes.jsonl":      `{"encounter_id":"day1_consultation01","presenting_complaint":"chest pain","note":"3/7 hx of chest pain. SOB on exertion.\n\nPlan: review","highlights":[]}` + "\n",
		"aci-bench/encounters.jsonl": `{"encounter_id":"D2N001","split":"train","dataset":"virtassist","dialogue":[{"speaker":"doctor","text":"any past medical history ?"},{"speaker":"patient","text":"hypertension , and i take warfarin ."},{"speaker":"patient_guest","text":"she has a cough ."}],"note":"CHIEF COMPLAINT\n\nAnnual exam.\n\nHISTORY OF PRESENT ILLNESS\n\nHistory of hypertension. Takes warfarin."}` + "\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadCorpus(t *testing.T) {
	visits, err := LoadCorpus(writeCorpus(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(visits) != 3 {
		t.Fatalf("%d visits", len(visits))
	}
	aci := visits[2]
	if len(aci.Segments) != 3 || aci.Segments[0].Role != "clinician" || aci.Segments[2].Role != "other" || aci.Segments[1].StartMS <= aci.Segments[0].EndMS {
		t.Errorf("ACI-BENCH segments %+v", aci.Segments)
	}
	if aci.Note == nil || len(aci.Note.Sections) != 2 || aci.Note.Sections[1].Name != "HISTORY OF PRESENT ILLNESS" || len(aci.Note.Sections[1].Sentences) != 2 {
		t.Errorf("ACI-BENCH note %+v", aci.Note)
	}
	if visits[0].Segments[0].Role != "other" || visits[0].Note != nil {
		t.Errorf("AMI visit %+v", visits[0])
	}
	if visits[1].Note == nil {
		t.Error("PriMock57 note missing")
	}
}

// TestRun runs the whole benchmark on the tiny corpus: the code path of
// "evidencectl bench search", without the shared data.
func TestRun(t *testing.T) {
	var lines []string
	r, err := Run(context.Background(), Config{DataDir: writeCorpus(t), Dir: t.TempDir(), Segments: 40, Runs: 2, Appenders: 3, Rebuild: true,
		Progress: func(s string) { lines = append(lines, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Segments < 40 || r.Segments%7 != 0 || r.Visits != 3*int(r.Segments/7) {
		t.Errorf("corpus: %d segments in %d visits", r.Segments, r.Visits)
	}
	if want := uint64(r.Segments + r.Sentences); r.Documents != want || r.Sentences != int64(r.Visits/3*8) {
		t.Errorf("%d documents and %d sentence versions, want %d and %d", r.Documents, r.Sentences, want, r.Visits/3*8)
	}
	if len(r.Queries) < 20 || r.QueryP99MS <= 0 || r.IndexBytes == 0 || r.PeakRSSBytes == 0 || r.RebuildSeconds <= 0 {
		t.Errorf("result %+v", r)
	}
	hits := map[string]uint64{}
	for _, q := range r.Queries {
		hits[q.Name] = q.Hits
	}
	if hits["encounter, filters only"] == 0 || hits["phrase with stop word"] == 0 || hits["abbreviation"] == 0 {
		t.Errorf("queries found nothing: %v", hits)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "segments/s") {
		t.Errorf("progress %q", lines)
	}
}
