package soapgen

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/align"
)

// script builds segments from "C: ..." / "P: ..." lines (clinician and
// patient), four seconds apart, with ids s1, s2, ...
func script(lines ...string) []align.Segment {
	var segs []align.Segment
	for _, l := range lines {
		who, text, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		speaker := map[string]string{"C": "clinician", "D": "doctor", "P": "patient", "O": "interpreter"}[strings.TrimSpace(who)]
		n := int64(len(segs))
		segs = append(segs, align.Segment{
			ID:      fmt.Sprintf("s%d", n+1),
			Speaker: speaker,
			StartMS: n * 4000,
			EndMS:   n*4000 + 3500,
			Text:    strings.TrimSpace(text),
		})
	}
	return segs
}

// loadScript reads a testdata script: script lines, with '#' comments.
func loadScript(t testing.TB, path string) []align.Segment {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return script(lines...)
}

func mustGenerate(t testing.TB, segs []align.Segment) Note {
	t.Helper()
	n, err := Generate(segs, Options{})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return n
}

// sentences returns the texts of one section.
func sentences(n Note, section string) []string {
	for _, s := range n.Sections {
		if s.Name == section {
			out := make([]string, len(s.Sentences))
			for i, sen := range s.Sentences {
				out[i] = sen.Text
			}
			return out
		}
	}
	return nil
}

// wantSentence fails unless section holds exactly the sentence want.
func wantSentence(t *testing.T, n Note, section, want string) {
	t.Helper()
	got := sentences(n, section)
	for _, s := range got {
		if s == want {
			return
		}
	}
	t.Errorf("%s: missing %q; have:\n  %s", section, want, strings.Join(got, "\n  "))
}

// noSentenceContaining fails if any sentence of section contains bad.
func noSentenceContaining(t *testing.T, n Note, section, bad string) {
	t.Helper()
	for _, s := range sentences(n, section) {
		if strings.Contains(strings.ToLower(s), strings.ToLower(bad)) {
			t.Errorf("%s: unexpected %q in %q", section, bad, s)
		}
	}
}
