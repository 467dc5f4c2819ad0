package align

import (
	"flag"
	"fmt"
	"testing"
)

var flagDiag = flag.Bool("diag", false, "print the clinical TRAIN sentences whose top span misses the gold")

// TestClinicalTrainMisses prints, for the clinical train part only, each sentence whose best
// span is not gold, with that span's and the gold's speakers and texts. Run:
//
//	go test ./align -run TestClinicalTrainMisses -diag -v
func TestClinicalTrainMisses(t *testing.T) {
	if !*flagDiag {
		t.Skip("diagnostic; run with -diag")
	}
	cl := loadClinical(t)
	for _, rn := range cl.rankAll(defaultModel, false) {
		ranked := rn.ranked
		rn.x.decodeSections(rn.ctxs, ranked)
		for k, si := range rn.sents {
			s := cl.sents[si]
			gold := cl.goldSet(s.SentenceID)
			if len(gold) == 0 || len(ranked[k]) == 0 {
				continue
			}
			top := rn.x.segs[ranked[k][0].seg]
			if gold[top.ID] {
				continue
			}
			fmt.Printf("\n## %s [%s] %q\n  top %.2f %s %s: %.150q\n", s.SentenceID, s.Section, s.Text, ranked[k][0].prob, top.ID, top.Speaker, top.Text)
			for _, g := range cl.gold[s.SentenceID] {
				i := rn.x.segIndex[g.SegmentID]
				r := -1
				for j, c := range ranked[k] {
					if c.seg == i {
						r = j
					}
				}
				fmt.Printf("  gold (rank %d) %s %s: %.150q\n", r, g.SegmentID, rn.x.segs[i].Speaker, rn.x.segs[i].Text)
			}
		}
	}
}
