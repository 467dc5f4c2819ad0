package align

import "testing"

func decodeIndex(t *testing.T) *Index {
	x := mustIndex(t, visit())
	m := *x.model
	m.MinTop = 0.01
	m.Decode = &decodeParams{K: 3, Back: 1, Jump: 4}
	x.model = &m
	return x
}

func cands(pairs ...float64) []candidate {
	var out []candidate
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, candidate{seg: int(pairs[i]), prob: pairs[i+1]})
	}
	return out
}

func TestDecodePrefersOrderedCompactEvidence(t *testing.T) {
	x := decodeIndex(t)
	ctxs := []noteContext{{section: "History"}, {section: "History"}, {section: "History"}}
	// The middle sentence's best candidate is far ahead (segment 15); its second, nearly as
	// good, lies between its neighbours' evidence (segments 2 and 4).
	ranked := [][]candidate{cands(2, 0.9), cands(15, 0.5, 3, 0.45), cands(4, 0.9)}
	x.decodeSections(ctxs, ranked)
	if ranked[1][0].seg != 3 || ranked[1][0].prob != 0.5 || ranked[1][1].seg != 15 || ranked[1][1].prob != 0.45 {
		t.Fatalf("middle sentence: %+v, want segment 3 first with the best probability", ranked[1])
	}
	if ranked[0][0].seg != 2 || ranked[2][0].seg != 4 {
		t.Fatalf("neighbours changed: %+v %+v", ranked[0], ranked[2])
	}
}

func TestDecodeKeepsAClearJumpBack(t *testing.T) {
	x := decodeIndex(t)
	ctxs := []noteContext{{section: "Plan"}, {section: "Plan"}}
	// A plan sentence that refers back to an early symptom: its evidence (segment 1) is far
	// better than anything near the previous sentence's.
	ranked := [][]candidate{cands(15, 0.9), cands(1, 0.95, 14, 0.02)}
	x.decodeSections(ctxs, ranked)
	if ranked[1][0].seg != 1 {
		t.Fatalf("jump back lost: %+v", ranked[1])
	}
}

func TestDecodeKeepsSectionsApart(t *testing.T) {
	x := decodeIndex(t)
	ctxs := []noteContext{{section: "History"}, {section: "Plan"}}
	ranked := [][]candidate{cands(15, 0.9), cands(1, 0.5, 14, 0.45)}
	x.decodeSections(ctxs, ranked)
	if ranked[1][0].seg != 1 {
		t.Fatalf("decoding crossed sections: %+v", ranked[1])
	}
	x.model.Decode = nil
	ctxs[1].section = "History"
	x.decodeSections(ctxs, ranked)
	if ranked[1][0].seg != 1 {
		t.Fatalf("decoding ran with Decode nil: %+v", ranked[1])
	}
}
