package indexbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/evidenceledger/evidence/encounter"
)

// Visit is one encounter of the corpus: its transcript and, when the
// dataset has one, the note written for it.
type Visit struct {
	ID       string
	Segments []encounter.Segment
	Note     *encounter.Draft
}

// LoadCorpus reads the transcripts under dataDir (the shared data folder):
// AMI meetings (align-dev/segments.jsonl, speakers "other"), PriMock57
// consultations (primock57/segments.jsonl with the clinicians' notes from
// notes.jsonl) and ACI-BENCH dialogues (aci-bench/encounters.jsonl, with
// synthetic times of 400 ms per word and their notes).
func LoadCorpus(dataDir string) ([]Visit, error) {
	var visits []Visit
	type seg struct {
		ID      string `json:"segment_id"`
		Speaker string `json:"speaker"`
		StartMS int64  `json:"start_ms"`
		EndMS   int64  `json:"end_ms"`
		Text    string `json:"text"`
	}
	type transcript struct {
		ID       string `json:"encounter_id"`
		Segments []seg  `json:"segments"`
	}
	roles := map[string]string{"clinician": encounter.RoleClinician, "doctor": encounter.RoleClinician, "patient": encounter.RolePatient}
	segments := func(in []seg) []encounter.Segment {
		var out []encounter.Segment
		for _, s := range in {
			if strings.TrimSpace(s.Text) == "" {
				continue
			}
			role, ok := roles[s.Speaker]
			if !ok {
				role = encounter.RoleOther
			}
			out = append(out, encounter.Segment{V: encounter.PayloadVersion, ID: s.ID, Role: role, SpeakerLabel: s.Speaker,
				Text: s.Text, StartMS: s.StartMS, EndMS: s.EndMS})
		}
		return out
	}
	notes := map[string]string{}
	if err := readJSONL(filepath.Join(dataDir, "primock57", "notes.jsonl"), func(line []byte) error {
		var n struct {
			ID   string `json:"encounter_id"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(line, &n); err != nil {
			return err
		}
		notes[n.ID] = n.Note
		return nil
	}); err != nil {
		return nil, err
	}
	for _, name := range []string{"align-dev", "primock57"} {
		if err := readJSONL(filepath.Join(dataDir, name, "segments.jsonl"), func(line []byte) error {
			var tr transcript
			if err := json.Unmarshal(line, &tr); err != nil {
				return err
			}
			v := Visit{ID: tr.ID, Segments: segments(tr.Segments)}
			if n, ok := notes[tr.ID]; ok {
				v.Note = splitNote(n)
			}
			visits = append(visits, v)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if err := readJSONL(filepath.Join(dataDir, "aci-bench", "encounters.jsonl"), func(line []byte) error {
		var e struct {
			ID       string `json:"encounter_id"`
			Dialogue []struct {
				Speaker string `json:"speaker"`
				Text    string `json:"text"`
			} `json:"dialogue"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		var in []seg
		var t int64
		for i, turn := range e.Dialogue {
			d := 400*int64(len(strings.Fields(turn.Text))) + 250
			in = append(in, seg{ID: fmt.Sprintf("%s-t%d", e.ID, i), Speaker: turn.Speaker, StartMS: t, EndMS: t + d, Text: turn.Text})
			t += d + 300
		}
		visits = append(visits, Visit{ID: e.ID, Segments: segments(in), Note: splitNote(e.Note)})
		return nil
	}); err != nil {
		return nil, err
	}
	return visits, nil
}

func readJSONL(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

var (
	sentenceEnd = regexp.MustCompile(`([.!?])\s+`)
	heading     = regexp.MustCompile(`^[A-Z][A-Z /&-]{2,}:?$`)
)

// splitNote turns a note's text into sections (lines in capitals, as
// ACI-BENCH writes them) of sentences.
func splitNote(text string) *encounter.Draft {
	d := &encounter.Draft{}
	sec := encounter.DraftSection{Name: "Note"}
	flush := func() {
		if len(sec.Sentences) > 0 {
			d.Sections = append(d.Sections, sec)
		}
	}
	n := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if heading.MatchString(line) {
			flush()
			sec = encounter.DraftSection{Name: strings.TrimSuffix(line, ":")}
			continue
		}
		for _, s := range strings.Split(sentenceEnd.ReplaceAllString(line, "$1\n"), "\n") {
			if s = strings.TrimSpace(s); s != "" {
				n++
				sec.Sentences = append(sec.Sentences, encounter.DraftSentence{ID: fmt.Sprintf("s%d", n), Text: s})
			}
		}
	}
	flush()
	if len(d.Sections) == 0 {
		return nil
	}
	return d
}
