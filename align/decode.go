package align

import "math"

// Joint decoding of a section's evidence. Within a note section, the evidence of consecutive
// sentences mostly moves forward in time and stays close (88% of consecutive pairs move
// forward on align-dev). decodeSections picks, for every sentence of a section, one of its
// best decodeParams.K candidates so as to maximize the sum of the candidates' log
// probabilities minus, for each pair of consecutive sentences, Jump times the share of the
// conversation between their evidence and Back when the second lies before the first
// (Viterbi). Penalties are finite, so a sentence whose evidence is clearly earlier (a plan
// that refers back to a symptom) keeps it. The chosen candidate becomes the sentence's first,
// taking the best probability of the sentence (the probabilities of the two swap places).
// Parameters are fitted on the train parts (train_test.go) and stored in reranker.json.

type decodeParams struct {
	K    int     `json:"k"`    // candidates per sentence considered (1 turns decoding off)
	Back float64 `json:"back"` // penalty for going back in time
	Jump float64 `json:"jump"` // penalty per share of the conversation jumped
}

func (x *Index) decodeSections(ctxs []noteContext, ranked [][]candidate) {
	d := x.model.Decode
	if d == nil || d.K < 2 || len(x.segs) == 0 {
		return
	}
	span := float64(x.segs[len(x.segs)-1].EndMS - x.segs[0].StartMS)
	if span <= 0 {
		return
	}
	groups := map[string][]int{}
	var order []string
	for i, c := range ctxs {
		if len(ranked[i]) == 0 || ranked[i][0].prob < x.model.MinTop {
			continue // unsupported: no evidence to place
		}
		if _, ok := groups[c.section]; !ok {
			order = append(order, c.section)
		}
		groups[c.section] = append(groups[c.section], i)
	}
	for _, name := range order {
		if g := groups[name]; len(g) >= 2 {
			x.viterbi(g, ranked, d, span)
		}
	}
}

func (x *Index) viterbi(sents []int, ranked [][]candidate, d *decodeParams, span float64) {
	n := len(sents)
	score := make([][]float64, n)
	back := make([][]int, n)
	at := func(i, c int) float64 { return float64(x.segs[ranked[sents[i]][c].seg].StartMS) }
	for i, si := range sents {
		k := min(d.K, len(ranked[si]))
		score[i] = make([]float64, k)
		back[i] = make([]int, k)
		for c := 0; c < k; c++ {
			e := math.Log(math.Max(ranked[si][c].prob, 1e-6))
			if i == 0 {
				score[i][c] = e
				continue
			}
			best, arg := math.Inf(-1), 0
			for p := range score[i-1] {
				dt := (at(i, c) - at(i-1, p)) / span
				v := score[i-1][p] - d.Jump*math.Abs(dt)
				if dt < 0 {
					v -= d.Back
				}
				if v > best {
					best, arg = v, p
				}
			}
			score[i][c], back[i][c] = best+e, arg
		}
	}
	c := 0
	for k := range score[n-1] {
		if score[n-1][k] > score[n-1][c] {
			c = k
		}
	}
	for i := n - 1; i >= 0; i-- {
		if c > 0 {
			promote(ranked[sents[i]], c)
		}
		if i > 0 {
			c = back[i][c]
		}
	}
}

// promote moves candidate c to the front, swapping its probability with the first's, and
// keeps the others in order of probability.
func promote(cands []candidate, c int) {
	cands[0].prob, cands[c].prob = cands[c].prob, cands[0].prob
	chosen := cands[c]
	copy(cands[1:c+1], cands[:c])
	cands[0] = chosen
	sortCandidates(cands[1:])
}
