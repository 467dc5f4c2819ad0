package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const segmentsJSONL = `{"encounter_id":"e1","segments":[{"segment_id":"e1-d1","speaker":"clinician","start_ms":0,"end_ms":2000,"text":"Any blood in your stool?"},{"segment_id":"e1-p1","speaker":"patient","start_ms":2100,"end_ms":2600,"text":"No."},{"segment_id":"e1-p2","speaker":"patient","start_ms":3000,"end_ms":8000,"text":"I've had diarrhoea for three days."}]}

{"encounter_id":"e2","segments":[{"segment_id":"e2-d1","speaker":"clinician","start_ms":0,"end_ms":1000,"text":"How is the rash?"}]}
`

func run(t *testing.T, segs, sents string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), strings.NewReader(segs), strings.NewReader(sents), &out, Options{})
	return out.String(), err
}

func TestRunWritesOnePredictionPerSentence(t *testing.T) {
	sents := `{"encounter_id":"e1","sentence_id":"a","section":"HPC","text":"3/7 hx of diarrhoea."}
{"encounter_id":"e2","sentence_id":"b","section":"HPC","text":"Fractured femur."}
{"encounter_id":"e1","sentence_id":"c","section":"HPC","text":"No blood in stool."}
`
	out, err := run(t, segmentsJSONL, sents)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out)
	}
	var preds []PredictionJSON
	for _, l := range lines {
		var p PredictionJSON
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		preds = append(preds, p)
	}
	if preds[0].SentenceID != "a" || preds[1].SentenceID != "b" || preds[2].SentenceID != "c" {
		t.Errorf("order %v, want input order", []string{preds[0].SentenceID, preds[1].SentenceID, preds[2].SentenceID})
	}
	if len(preds[0].Spans) == 0 || preds[0].Spans[0].SegmentID != "e1-p2" || preds[0].Spans[0].StartMS != 3000 || preds[0].Spans[0].EndMS != 8000 {
		t.Errorf("sentence a: %+v, want e1-p2 first with its times", preds[0].Spans)
	}
	if !strings.Contains(lines[1], `"spans":[]`) {
		t.Errorf("unsupported sentence line %q, want \"spans\":[]", lines[1])
	}
	if len(preds[2].Spans) < 2 {
		t.Errorf("sentence c: %+v, want question and answer", preds[2].Spans)
	}
}

func TestRunRejectsMalformedLines(t *testing.T) {
	good := `{"encounter_id":"e1","sentence_id":"a","section":"","text":"x"}` + "\n"
	for _, tc := range []struct {
		name, segs, sents, want string
	}{
		{"missing sentence_id", segmentsJSONL, good + `{"encounter_id":"e1","text":"secret words"}`, "sentences.jsonl:2: missing sentence_id"},
		{"not an object", segmentsJSONL, good + `["a"]`, "sentences.jsonl:2: line is not a JSON object"},
		{"invalid JSON", segmentsJSONL, `{"encounter_id":`, "sentences.jsonl:1: invalid JSON"},
		{"duplicate sentence", segmentsJSONL, good + good, `sentences.jsonl:2: duplicate sentence_id "a" (first on line 1)`},
		{"unknown encounter", segmentsJSONL, `{"encounter_id":"zz","sentence_id":"a","text":"x"}`, `sentences.jsonl:1: encounter_id "zz" not in segments.jsonl`},
		{"missing text", segmentsJSONL, `{"encounter_id":"e1","sentence_id":"a"}`, "sentences.jsonl:1: missing text"},
		{"segment without id", `{"encounter_id":"e1","segments":[{"start_ms":0,"end_ms":1,"text":"secret words"}]}`, good, "segments.jsonl:1: segments[0]: missing segment_id"},
		{"segment wrong type", `{"encounter_id":"e1","segments":[{"segment_id":"x","start_ms":"0","end_ms":1,"text":""}]}`, good, "segments.jsonl:1: field"},
		{"segment end before start", `{"encounter_id":"e1","segments":[{"segment_id":"x","start_ms":5,"end_ms":1,"text":"secret words"}]}`, good, "segments.jsonl:1: align: segment 0 (id \"x\"): end_ms 1 before start_ms 5"},
		{"duplicate encounter", segmentsJSONL + segmentsJSONL, good, "segments.jsonl:4: duplicate encounter_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, tc.segs, tc.sents)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q quotes input text", err)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Errorf("err %T is not a *LineError", err)
			}
		})
	}
}

func TestRunHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Run(ctx, strings.NewReader(segmentsJSONL), strings.NewReader(`{"encounter_id":"e1","sentence_id":"a","text":"x"}`), &bytes.Buffer{}, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
