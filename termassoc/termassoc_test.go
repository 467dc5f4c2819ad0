package termassoc

import (
	"errors"
	"testing"

	"github.com/evidenceledger/evidence/clinicaltext"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := map[string][]Neighbour{
		"abdomen": {{Term: "belli", Score: 0.9, Sources: WordNet}, {Term: "stomach", Score: 0.7, Sources: GloVe | Learned}},
		"blood":   {{Term: "hematuria", Score: 0.5, Sources: WordNet}},
	}
	tb, err := decode(Encode(in))
	if err != nil {
		t.Fatal(err)
	}
	// Every neighbour term is in the table, with or without neighbours of its own.
	if len(tb.terms) != 5 {
		t.Fatalf("terms %v, want 5", tb.terms)
	}
	i := tb.index["abdomen"]
	got := tb.nb[tb.start[i]:tb.start[i+1]]
	if len(got) != 2 || tb.terms[got[0].term] != "belli" || got[0].score != 230 || got[0].sources != WordNet {
		t.Fatalf("abdomen neighbours %+v", got)
	}
	if tb.terms[got[1].term] != "stomach" || got[1].score != 179 || got[1].sources != GloVe|Learned {
		t.Fatalf("second neighbour %+v", got[1])
	}
	if k := tb.index["hematuria"]; tb.start[k] != tb.start[k+1] {
		t.Fatalf("hematuria should have no neighbours of its own")
	}
}

func TestEncodeCapsAndDropsSelf(t *testing.T) {
	var ns []Neighbour
	for i := 0; i < MaxNeighbours+5; i++ {
		ns = append(ns, Neighbour{Term: string(rune('a'+i)) + "x", Score: float64(i+1) / 40, Sources: GloVe})
	}
	ns = append(ns, Neighbour{Term: "self", Score: 1, Sources: GloVe}, Neighbour{Term: "tiny", Score: 0.0001, Sources: GloVe})
	tb, err := decode(Encode(map[string][]Neighbour{"self": ns}))
	if err != nil {
		t.Fatal(err)
	}
	i := tb.index["self"]
	got := tb.nb[tb.start[i]:tb.start[i+1]]
	if len(got) != MaxNeighbours {
		t.Fatalf("%d neighbours, want %d", len(got), MaxNeighbours)
	}
	// Strongest first: the last added (score 21/40) leads.
	if tb.terms[got[0].term] != string(rune('a'+MaxNeighbours+4))+"x" {
		t.Fatalf("first neighbour %q", tb.terms[got[0].term])
	}
	for _, e := range got {
		if tb.terms[e.term] == "self" || tb.terms[e.term] == "tiny" {
			t.Fatalf("kept %q", tb.terms[e.term])
		}
	}
}

func TestDecodeRejectsCorruptTables(t *testing.T) {
	good := Encode(map[string][]Neighbour{"a": {{Term: "b", Score: 0.5, Sources: GloVe}}})
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX1"), good[5:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"zero score": func() []byte {
			// Layout: magic, 2, "a", "b", then a's 1 entry (index, score, sources), then b's 0.
			b := append([]byte(nil), good...)
			b[len(b)-3] = 0
			return b
		}(),
	}
	for name, b := range cases {
		if _, err := decode(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err %v, want errCorrupt", name, err)
		}
	}
}

func term(w string) string { return clinicaltext.Terms(w)[0] }

// The embedded table bridges words that clinical notes and conversations use for one thing.
// The pairs are facts of the sources (WordNet's definition of haematuria names blood and
// urine; GloVe puts synonyms close), not outputs of this package.
func TestEmbeddedTableBridges(t *testing.T) {
	if Len() < 10000 {
		t.Fatalf("table has %d terms", Len())
	}
	for _, p := range [][2]string{
		{"haematuria", "urine"}, {"haematuria", "blood"}, {"nausea", "vomiting"},
		{"cheap", "inexpensive"}, {"fever", "feverish"}, {"sputum", "phlegm"}, {"dizzy", "vertigo"},
	} {
		a, b := term(p[0]), term(p[1])
		if r := Related(a, b); r <= 0 || r > 1 {
			t.Errorf("Related(%q, %q) = %.3f, want in (0, 1]", a, b, r)
		}
		if Related(a, b) != Related(b, a) {
			t.Errorf("Related(%q, %q) is not symmetric", a, b)
		}
	}
	if r := Related(term("haematuria"), term("remote")); r != 0 {
		t.Errorf("unrelated terms related %.3f", r)
	}
	if Related("abdomen", "abdomen") != 1 {
		t.Error("a term is not fully related to itself")
	}
	ns := Neighbours(term("nausea"))
	if len(ns) == 0 || len(ns) > MaxNeighbours {
		t.Fatalf("nausea: %d neighbours", len(ns))
	}
	for i := 1; i < len(ns); i++ {
		if ns[i].Score > ns[i-1].Score {
			t.Fatalf("neighbours not sorted: %+v", ns)
		}
	}
	if Neighbours("zzzqqq") != nil || Known("zzzqqq") {
		t.Error("unknown term has neighbours")
	}
}

func TestAppendNeighboursMatchesNeighbours(t *testing.T) {
	buf := []Neighbour{{Term: "kept"}}
	got := AppendNeighbours(buf, term("fever"))
	want := Neighbours(term("fever"))
	if len(want) == 0 || len(got) != 1+len(want) || got[0].Term != "kept" {
		t.Fatalf("got %d neighbours after the kept one, want %d", len(got)-1, len(want))
	}
	for i, n := range want {
		if got[1+i] != n {
			t.Fatalf("neighbour %d: %+v, want %+v", i, got[1+i], n)
		}
	}
	if out := AppendNeighbours(buf[:0], "zzzqqq"); len(out) != 0 {
		t.Fatal("unknown term appended neighbours")
	}
}
