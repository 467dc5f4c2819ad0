package align

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// Helpers that read the shared development data (outside the repository). Tests and
// benchmarks that use them skip when the data directory is absent, as it is in CI.

var flagData = flag.String("data", "/work/shared/data", "directory of the shared evaluation data")

type devSentence struct {
	EncounterID string `json:"encounter_id"`
	SentenceID  string `json:"sentence_id"`
	Section     string `json:"section"`
	Text        string `json:"text"`
}

type devGoldSpan struct {
	SegmentID string `json:"segment_id"`
	StartMS   int64  `json:"start_ms"`
	EndMS     int64  `json:"end_ms"`
}

type devGold struct {
	SentenceID string        `json:"sentence_id"`
	Gold       []devGoldSpan `json:"gold"`
}

type devEncounter struct {
	EncounterID string `json:"encounter_id"`
	Segments    []struct {
		SegmentID string `json:"segment_id"`
		Speaker   string `json:"speaker"`
		StartMS   int64  `json:"start_ms"`
		EndMS     int64  `json:"end_ms"`
		Text      string `json:"text"`
	} `json:"segments"`
}

func devPath(tb testing.TB, parts ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{*flagData}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("development data not available (%s); skipping", p)
	}
	return p
}

func readJSONL[T any](tb testing.TB, path string) []T {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// devSegments reads a segments.jsonl file into align segments by encounter, keeping the
// encounter order of the file.
func devSegments(tb testing.TB, path string) (map[string][]Segment, []string) {
	encs := readJSONL[devEncounter](tb, path)
	out := map[string][]Segment{}
	var order []string
	for _, e := range encs {
		segs := make([]Segment, len(e.Segments))
		for i, s := range e.Segments {
			segs[i] = Segment{ID: s.SegmentID, Speaker: s.Speaker, StartMS: s.StartMS, EndMS: s.EndMS, Text: s.Text}
		}
		out[e.EncounterID] = segs
		order = append(order, e.EncounterID)
	}
	return out, order
}
