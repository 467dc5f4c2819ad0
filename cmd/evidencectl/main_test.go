package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAlignBatch(t *testing.T) {
	dir := t.TempDir()
	segs := write(t, dir, "segments.jsonl", `{"encounter_id":"e1","segments":[`+
		`{"segment_id":"a","speaker":"clinician","start_ms":0,"end_ms":1500,"text":"Any blood in your stool?"},`+
		`{"segment_id":"b","speaker":"patient","start_ms":1600,"end_ms":2000,"text":"No."},`+
		`{"segment_id":"c","speaker":"patient","start_ms":2100,"end_ms":6000,"text":"I have had diarrhoea for three days."}]}`+"\n")
	sents := write(t, dir, "sentences.jsonl", `{"encounter_id":"e1","sentence_id":"s1","section":"S","text":"Diarrhoea for 3 days."}`+"\n"+
		`{"encounter_id":"e1","sentence_id":"s2","section":"S","text":"Broken wrist after a skiing accident."}`+"\n")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"align", "batch", "--segments", segs, "--sentences", sents}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d prediction lines, want 2:\n%s", len(lines), out.String())
	}
	var p struct {
		SentenceID string `json:"sentence_id"`
		Spans      []struct {
			SegmentID string  `json:"segment_id"`
			StartMS   int64   `json:"start_ms"`
			EndMS     int64   `json:"end_ms"`
			Score     float64 `json:"score"`
		} `json:"spans"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &p); err != nil || p.SentenceID != "s1" || len(p.Spans) == 0 || p.Spans[0].SegmentID != "c" {
		t.Fatalf("first prediction %s (%v)", lines[0], err)
	}
	if !strings.Contains(lines[1], `"spans":[]`) {
		t.Fatalf("unsupported sentence: %s", lines[1])
	}

	bad := write(t, dir, "bad.jsonl", `{"encounter_id":"e1","sentence_id":"s1","text":"ok"}`+"\n"+`{"encounter_id":"e1","text":"no id"}`+"\n")
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"align", "batch", "--segments", segs, "--sentences", bad}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "bad.jsonl:2") {
		t.Fatalf("malformed line: exit %d, %q", code, errb.String())
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"log", "entry", "--index", "x"}, &out, &errb); code != exitUsage {
		t.Fatalf("bad flag: exit %d", code)
	}
}

// TestNoSecretInHelpOrErrors: the bearer token from the environment is
// not printed by --help (as a flag default) nor by the error of a call
// that fails, whatever the token holds.
func TestNoSecretInHelpOrErrors(t *testing.T) {
	const secret = "evtok-SECRET-4f1d2c9a8b7e6d5c"
	t.Setenv("EVIDENCE_TOKEN", secret)
	for _, args := range [][]string{{"--help"}, {"log", "--help"}, {"log", "info", "--help"}, {"verify", "--help"}} {
		var out, errb bytes.Buffer
		run(context.Background(), args, &out, &errb)
		if strings.Contains(out.String()+errb.String(), secret) {
			t.Fatalf("evidencectl %v prints the token:\n%s%s", args, out.String(), errb.String())
		}
		if !strings.Contains(out.String()+errb.String(), "EVIDENCE_TOKEN") && args[0] == "--help" {
			t.Fatalf("--help no longer names EVIDENCE_TOKEN:\n%s", out.String())
		}
	}
	// Calls that fail: nothing listens, and a token that is not a valid
	// header value.
	for _, tok := range []string{secret, secret + "\nwith a newline"} {
		t.Setenv("EVIDENCE_TOKEN", tok)
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"--server", "127.0.0.1:1", "--state", filepath.Join(t.TempDir(), "s.json"), "log", "info"}, &out, &errb)
		if code == 0 {
			t.Fatal("log info against nothing succeeded")
		}
		if strings.Contains(out.String()+errb.String(), "SECRET") {
			t.Fatalf("the error shows the token:\n%s%s", out.String(), errb.String())
		}
		var out2, errb2 bytes.Buffer
		run(context.Background(), []string{"--server", "127.0.0.1:1", "--token", tok, "log", "info"}, &out2, &errb2)
		if strings.Contains(out2.String()+errb2.String(), "SECRET") {
			t.Fatalf("the error shows the --token value:\n%s%s", out2.String(), errb2.String())
		}
	}
}
