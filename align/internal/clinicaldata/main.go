// Command clinicaldata makes the clinical development corpus under align/testdata/clinical from
// the shared PriMock57 and ACI-BENCH data: the consultations' transcripts in the batch segments
// format, the clinicians' notes split into sentences with their sections, and the train/test
// split by consultation that every clinical dev set (claim verification, evidence gold) shares.
//
//	go run ./align/internal/clinicaldata -data /work/shared/data -out align/testdata/clinical
//
// PriMock57 segments are copied as they are (utterances with real times). ACI-BENCH has no
// times: each dialogue turn becomes one segment, speaking at 150 words a minute (400 ms a word,
// at least 600 ms a turn) with 300 ms between turns; ids are <encounter>-t<N>, N the turn number
// from 1. Speakers are mapped to clinician / patient / other (a patient's guest).
//
// Notes are split into sentences by one rule for both sources (splitNote). A consultation is in
// the test part when the 32-bit FNV-1a hash of its id is 0 or 1 modulo 5 (about 40%), else
// train.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

type segment struct {
	SegmentID string `json:"segment_id"`
	Speaker   string `json:"speaker"`
	StartMS   int64  `json:"start_ms"`
	EndMS     int64  `json:"end_ms"`
	Text      string `json:"text"`
}

type encounterSegments struct {
	EncounterID string    `json:"encounter_id"`
	Source      string    `json:"source"`
	Segments    []segment `json:"segments"`
}

type sentence struct {
	EncounterID string `json:"encounter_id"`
	SentenceID  string `json:"sentence_id"`
	Section     string `json:"section"`
	Text        string `json:"text"`
}

func main() {
	data := flag.String("data", "/work/shared/data", "the shared data folder")
	out := flag.String("out", "align/testdata/clinical", "output folder")
	flag.Parse()
	if err := run(*data, *out); err != nil {
		fmt.Fprintln(os.Stderr, "clinicaldata:", err)
		os.Exit(1)
	}
}

func run(data, out string) error {
	var encs []encounterSegments
	var sents []sentence

	// PriMock57.
	var pm []encounterSegments
	if err := readJSONL(filepath.Join(data, "primock57", "segments.jsonl"), func(b []byte) error {
		var e encounterSegments
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
		e.Source = "primock57"
		pm = append(pm, e)
		return nil
	}); err != nil {
		return err
	}
	encs = append(encs, pm...)
	if err := readJSONL(filepath.Join(data, "primock57", "notes.jsonl"), func(b []byte) error {
		var n struct {
			EncounterID string `json:"encounter_id"`
			Note        string `json:"note"`
		}
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		sents = append(sents, splitNote(n.EncounterID, n.Note, "History")...)
		return nil
	}); err != nil {
		return err
	}

	// ACI-BENCH.
	if err := readJSONL(filepath.Join(data, "aci-bench", "encounters.jsonl"), func(b []byte) error {
		var e struct {
			EncounterID string `json:"encounter_id"`
			Dialogue    []struct {
				Speaker string `json:"speaker"`
				Text    string `json:"text"`
			} `json:"dialogue"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
		es := encounterSegments{EncounterID: e.EncounterID, Source: "aci-bench"}
		var t int64
		for i, d := range e.Dialogue {
			words := int64(len(strings.Fields(d.Text)))
			dur := max(600, 400*words)
			sp := "other"
			switch d.Speaker {
			case "doctor":
				sp = "clinician"
			case "patient":
				sp = "patient"
			}
			es.Segments = append(es.Segments, segment{SegmentID: fmt.Sprintf("%s-t%d", e.EncounterID, i+1), Speaker: sp,
				StartMS: t, EndMS: t + dur, Text: strings.TrimSpace(d.Text)})
			t += dur + 300
		}
		encs = append(encs, es)
		sents = append(sents, splitNote(e.EncounterID, e.Note, "")...)
		return nil
	}); err != nil {
		return err
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeJSONL(filepath.Join(out, "segments.jsonl"), encs); err != nil {
		return err
	}
	if err := writeJSONL(filepath.Join(out, "sentences.jsonl"), sents); err != nil {
		return err
	}
	var split []string
	for _, e := range encs {
		split = append(split, e.EncounterID+"\t"+e.Source+"\t"+Split(e.EncounterID))
	}
	sort.Strings(split)
	return os.WriteFile(filepath.Join(out, "split.tsv"), []byte("# encounter_id\tsource\tsplit\n"+strings.Join(split, "\n")+"\n"), 0o644)
}

// Split returns "test" or "train" for a consultation.
func Split(encounterID string) string {
	h := fnv.New32a()
	h.Write([]byte(encounterID))
	if h.Sum32()%5 < 2 {
		return "test"
	}
	return "train"
}

var (
	listMarker   = regexp.MustCompile(`^\s*(\d+[.)]|[-*•])\s*`)
	sentenceStop = regexp.MustCompile(`([A-Za-z0-9)\]][.!?])\s+([A-Z0-9])`)
	// Words whose full stop does not end a sentence.
	titleAbbrev = regexp.MustCompile(`\b(Mr|Mrs|Ms|Dr|Prof|St|vs|approx|y\.o)\.$`)
	// A lone word on its line, a sub-heading such as "Medical" or "Surgical".
	subHeading = regexp.MustCompile(`^[A-Z][a-z]+$`)
	// A heading alone on its line: "Plan:", "PMH:", "ASSESSMENT AND PLAN".
	headingLine = regexp.MustCompile(`^([A-Za-z][A-Za-z /&,-]{0,40}):$|^([A-Z][A-Z /&,-]{2,40})$`)
	// A heading that opens a line of text: "PMH: Asthma", "Imp: gastroenteritis".
	headingPrefix = regexp.MustCompile(`^([A-Za-z][A-Za-z /&]{0,24}):\s+\S`)
)

// splitNote splits a note into sentences: one or more per line, list markers removed, lines
// split again after ".", "!" or "?" that ends a word and is followed by a capital or digit.
// A line that is only a heading starts a section and is not a sentence; a line that opens
// with a short "Heading:" is a sentence of that section, kept whole. Sentence ids are
// <encounter>-s<NN>, numbered from 1 in note order.
func splitNote(enc, note, first string) []sentence {
	var out []sentence
	section := first
	for _, line := range strings.Split(note, "\n") {
		line = strings.TrimSpace(listMarker.ReplaceAllString(strings.TrimSpace(line), ""))
		if line == "" {
			continue
		}
		if m := headingLine.FindStringSubmatch(line); m != nil {
			section = strings.TrimSpace(m[1] + m[2])
			continue
		}
		if subHeading.MatchString(line) {
			continue
		}
		sec := section
		if m := headingPrefix.FindStringSubmatch(line); m != nil {
			sec = strings.TrimSpace(m[1])
			if first != "" {
				section = sec
			}
		}
		for _, s := range splitSentences(line) {
			out = append(out, sentence{EncounterID: enc, SentenceID: fmt.Sprintf("%s-s%02d", enc, len(out)+1), Section: sec, Text: s})
		}
	}
	return out
}

// splitSentences splits one line after ".", "!" or "?" followed by a space and a capital or
// digit, except after a title or a common abbreviation ("Mrs. Brown").
func splitSentences(line string) []string {
	var out []string
	start := 0
	for _, m := range sentenceStop.FindAllStringSubmatchIndex(line, -1) {
		end := m[3] // after the stop
		if titleAbbrev.MatchString(line[start:end]) {
			continue
		}
		if s := strings.TrimSpace(line[start:end]); s != "" {
			out = append(out, s)
		}
		start = m[4]
	}
	if s := strings.TrimSpace(line[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

func readJSONL(path string, each func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := each(sc.Bytes()); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

func writeJSONL[T any](path string, items []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
