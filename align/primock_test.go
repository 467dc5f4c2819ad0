package align

import (
	"flag"
	"fmt"
	"testing"
)

var flagPriMock = flag.Bool("primock", false, "align PriMock57 notes and print coverage and examples")

type priMockNote struct {
	EncounterID string `json:"encounter_id"`
	Note        string `json:"note"`
}

// TestPriMockReport aligns every PriMock57 note and prints coverage and a sample of
// examples. Run: go test ./align -run TestPriMockReport -primock -v
func TestPriMockReport(t *testing.T) {
	if !*flagPriMock {
		t.Skip("run with -primock")
	}
	segs, _ := devSegments(t, devPath(t, "primock57", "segments.jsonl"))
	notes := readJSONL[priMockNote](t, devPath(t, "primock57", "notes.jsonl"))
	total, covered := 0, 0
	k := 0
	for _, n := range notes {
		sents := SplitNote(n.Note)
		for i := range sents {
			sents[i].ID = fmt.Sprintf("%s-%02d", n.EncounterID, i)
		}
		res, err := Align(segs[n.EncounterID], sents)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]Segment{}
		for _, s := range segs[n.EncounterID] {
			byID[s.ID] = s
		}
		for i, r := range res {
			total++
			if len(r.Spans) > 0 {
				covered++
			}
			k++
			if k%23 != 0 {
				continue
			}
			fmt.Printf("\n### %s | %q\n", r.SentenceID, sents[i].Text)
			for j, sp := range r.Spans {
				if j == 3 {
					break
				}
				s := byID[sp.SegmentID]
				fmt.Printf("  %.2f %s %s [%d-%d ms] %q\n", sp.Score, sp.SegmentID, s.Speaker, sp.StartMS, sp.EndMS, s.Text[sp.CharStart:sp.CharEnd])
			}
		}
	}
	fmt.Printf("\nPriMock57: %d notes, %d sentences, %d with evidence (coverage %.3f)\n", len(notes), total, covered, float64(covered)/float64(total))
}
