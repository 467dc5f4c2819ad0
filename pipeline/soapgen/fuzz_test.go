package soapgen

import (
	"os"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/align"
)

// FuzzGenerate feeds arbitrary text, cut into segments at newlines and
// given alternating or labelled speakers, and checks that Generate never
// panics and that every note it returns meets the id contract.
func FuzzGenerate(f *testing.F) {
	if b, err := os.ReadFile("testdata/consultation.txt"); err == nil {
		f.Add(string(b))
	}
	f.Add("C: How can I help?\nP: I've had a cough for three days.\nC: Any fever?\nP: No.")
	f.Add("P: <UNSURE>no</UNSURE> <UNIN/>\nC: ?\nP: ,,, ... -- <>")
	f.Add("C: Your blood pressure is 999 over 9 and temperature one hundred and one point.")
	f.Add("P: for the last a a a couple of of days ago since since")
	f.Add("C: If if if you you\nP: no, no, no, yes\n\n\nC: take 2 tablets up to up to four times")
	f.Add("C: \xff\xfe broken utf8 \u2019s \u2026")
	f.Fuzz(func(t *testing.T, text string) {
		var segs []align.Segment
		for i, line := range strings.Split(text, "\n") {
			speaker := []string{"clinician", "patient"}[i%2]
			if who, rest, ok := strings.Cut(line, ":"); ok && len(who) <= 2 {
				speaker = map[string]string{"C": "clinician", "P": "patient", "D": "doctor"}[strings.TrimSpace(who)]
				line = rest
			}
			segs = append(segs, align.Segment{ID: "f", Speaker: speaker, StartMS: int64(i) * 1000, EndMS: int64(i)*1000 + 500, Text: line})
		}
		n, err := Generate(segs, Options{})
		if err != nil {
			return // rejections are fine; panics are not
		}
		checkNoteShape(t, "fuzz", n)
	})
}
