package align

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/clinicaltext"
)

func TestZZDebug(t *testing.T) {
	if os.Getenv("VDEBUG") == "" {
		t.Skip()
	}
	segs, _ := devSegments(t, "testdata/clinical/segments.jsonl")
	x, err := NewIndex(segs[os.Getenv("VENC")])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strings.Split(os.Getenv("VDEBUG"), "|") {
		r := read(s, clinicaltext.Analyze(s))
		fmt.Printf("%q\n", s)
		for _, f := range r.facts {
			c := x.checkFact(&f, x.evidenceOf(x.Align(Sentence{Text: s})))
			fmt.Printf("  %-14s cat=%06b grp=%-8s neg=%v oth=%v ask=%v exp=%v ph=%v w=%.1f st=%d\n", f.term, f.cat, f.group, f.neg, f.other, f.asked, f.expansion, f.phrase, claimWeight(&f), c.st)
		}
		for _, q := range r.quants {
			fmt.Printf("  Q %v\n", q)
		}
	}
}
