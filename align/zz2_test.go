package align

import (
	"fmt"
	"os"
	"testing"

	"github.com/evidenceledger/evidence/clinicaltext"
)

func TestZZRead(t *testing.T) {
	s := os.Getenv("VREAD")
	if s == "" {
		t.Skip()
	}
	r := readSpeech(s, clinicaltext.Analyze(s))
	for _, f := range r.facts {
		fmt.Printf("%-12s neg=%v oth=%v ask=%v others=%v aside=%v\n", f.term, f.neg, f.other, f.asked, f.others, f.aside)
	}
}
