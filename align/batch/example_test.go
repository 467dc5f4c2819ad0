package batch_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/evidenceledger/evidence/align/batch"
)

func ExampleRun() {
	segments := `{"encounter_id":"e1","segments":[` +
		`{"segment_id":"d1","speaker":"clinician","start_ms":0,"end_ms":1800,"text":"Any blood in your stool?"},` +
		`{"segment_id":"p1","speaker":"patient","start_ms":1900,"end_ms":2300,"text":"No."}]}`
	sentences := `{"encounter_id":"e1","sentence_id":"s1","section":"HPC","text":"No blood in stool."}
{"encounter_id":"e1","sentence_id":"s2","section":"HPC","text":"Fractured femur."}`
	var out bytes.Buffer
	err := batch.Run(context.Background(), strings.NewReader(segments), strings.NewReader(sentences), &out, batch.Options{})
	if err != nil {
		panic(err)
	}
	// Each line is one predictions.jsonl object; scores depend on the trained reranker, so
	// this example prints the rest.
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var p batch.PredictionJSON
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			panic(err)
		}
		fmt.Print(p.SentenceID, ":")
		for _, s := range p.Spans {
			fmt.Printf(" %s %d-%d", s.SegmentID, s.StartMS, s.EndMS)
		}
		if len(p.Spans) == 0 {
			fmt.Print(` [] (unsupported)`)
		}
		fmt.Println()
	}
	// Output:
	// s1: d1 0-1800 p1 1900-2300
	// s2: [] (unsupported)
}
