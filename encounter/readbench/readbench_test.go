package readbench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/index/indexbench"
)

// writeCorpus writes a tiny corpus in the shared data layout: a long
// meeting, a consultation with its note, a dialogue with its note.
func writeCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	meeting := `{"encounter_id":"ES2002a","segments":[`
	for i := range 40 {
		if i > 0 {
			meeting += ","
		}
		meeting += `{"segment_id":"a.` + string(rune('A'+i%26)) + string(rune('a'+i/26)) + `","speaker":"B","start_ms":` + itoa(i*1000) + `,"end_ms":` + itoa(i*1000+900) + `,"text":"the remote control needs a button ."}`
	}
	meeting += "]}\n"
	files := map[string]string{
		"align-dev/segments.jsonl":   meeting,
		"primock57/segments.jsonl":   `{"encounter_id":"day1_consultation01","segments":[{"segment_id":"d1","speaker":"clinician","start_ms":0,"end_ms":2000,"text":"Any chest pain?"},{"segment_id":"p1","speaker":"patient","start_ms":2000,"end_ms":5000,"text":"Yes, chest pain and I get short of breath."}]}` + "\n",
		"primock57/notes.jsonl":      `{"encounter_id":"day1_consultation01","presenting_complaint":"chest pain","note":"3/7 hx of chest pain. SOB on exertion. Owns a purple bicycle.\n\nPlan: review","highlights":[]}` + "\n",
		"aci-bench/encounters.jsonl": `{"encounter_id":"D2N001","split":"train","dataset":"virtassist","dialogue":[{"speaker":"doctor","text":"any past medical history ?"},{"speaker":"patient","text":"hypertension , and i take warfarin ."}],"note":"CHIEF COMPLAINT\n\nAnnual exam.\n\nHISTORY OF PRESENT ILLNESS\n\nHistory of hypertension. Takes warfarin. Allergic to penicillin."}` + "\n",
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

func itoa(i int) string { return string(appendInt(nil, i)) }

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

// TestPlan: transcripts are cut to the largest length that keeps the fill
// within the entries asked for.
func TestPlan(t *testing.T) {
	corpus, err := indexbench.LoadCorpus(writeCorpus(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newPlan(corpus, 30, 500)
	if p.total > 500 {
		t.Fatalf("planned %d entries, asked for 500", p.total)
	}
	more := &plan{corpus: corpus, cap: p.cap + 1}
	if more.sum(30) <= 500 {
		t.Fatalf("cap %d plans %d entries; cap %d would still fit (%d)", p.cap, p.total, more.cap, more.sum(30))
	}
	// Every window is a run of the transcript, of at most cap segments.
	for k := range 30 {
		v, segs := p.visit(k)
		if len(segs) > p.cap || len(segs) == 0 || len(segs) > len(v.Segments) {
			t.Fatalf("visit %d: %d segments of %d, cap %d", k, len(segs), len(v.Segments), p.cap)
		}
	}
}

// TestRun fills and measures a tiny directory: the code path of
// "evidencectl bench reads", without the shared data. A second run
// measures the same directory again without writing it.
func TestRun(t *testing.T) {
	data, dir := writeCorpus(t), t.TempDir()
	cfg := Config{DataDir: data, Dir: dir, Encounters: 30, Entries: 500, Runs: 3, Restarts: 2, Readers: []int{2}, ReadFor: 200 * time.Millisecond, Rebuild: true}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Encounters != 30 || r.Entries < 400 || !r.Resumed || r.Notes != 20 || r.Signed != 10 || r.FillSeconds <= 0 || r.RebuildPerSec <= 0 {
		t.Fatalf("result %+v", r)
	}
	byName := map[string]int{}
	for _, l := range r.Listings {
		byName[l.Name] = l.Matches
		if l.Latency.N == 0 {
			t.Errorf("listing %q was not timed", l.Name)
		}
	}
	// Half of the noted visits are signed; the others keep the flags of
	// their unsupported sentences (a purple bicycle, at least).
	if byName["signed"] != 10 || byName["unresolved flags"] != 10 || byName["one patient"] != 0 {
		t.Errorf("listings %v", byName)
	}
	// Opening the same visit again finds it in memory, but for the first.
	if len(r.Openings) != 3 || r.Openings[2].HitRate < 0.6 || len(r.Trails) != 1 || r.Trails[0].ReadsPerSync <= 0 || r.Trails[0].Syncs == 0 {
		t.Errorf("openings %+v, trails %+v", r.Openings, r.Trails)
	}
	size := r.Entries
	cfg.Rebuild = false
	again, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.FillSeconds != 0 || again.Encounters != 30 || again.Entries < size {
		t.Fatalf("measuring again: %+v", again)
	}
}
