package align

import (
	"testing"

	"github.com/evidenceledger/evidence/align/internal/devsplit"
)

// TestCandidateOracle reports how much of the gold the candidate generator can reach.
func TestCandidateOracle(t *testing.T) {
	if !*flagTrain {
		t.Skip("diagnostic; run with -train")
	}
	d := loadAlignDev(t)
	var any, frac, n float64
	for _, s := range d.sents {
		if devsplit.HeldOut(s.EncounterID) {
			continue
		}
		x := d.idx[s.EncounterID]
		in := map[string]bool{}
		for _, c := range x.rawCandidates(s.Text, s.Section, &noteContext{}) {
			in[x.segs[c.seg].ID] = true
		}
		k := 0
		for _, g := range d.gold[s.SentenceID] {
			if in[g.SegmentID] {
				k++
			}
		}
		if k > 0 {
			any++
		}
		frac += float64(k) / float64(len(d.gold[s.SentenceID]))
		n++
	}
	t.Logf("sentences with a gold candidate: %.3f; gold recall of candidates: %.3f", any/n, frac/n)
}
