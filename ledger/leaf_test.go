package ledger

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// goldenLeaf is a vector from testdata/leaf: the fields, the annotated bytes
// written by hand from docs/formats.md, and the leaf hash computed outside Go.
type goldenLeaf struct {
	leaf     Leaf
	data     []byte
	leafHash Hash
}

func readGoldenLeaf(t *testing.T, path string) goldenLeaf {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(raw), "--\n")
	if !ok {
		t.Fatalf("%s: no -- separator", path)
	}
	var g goldenLeaf
	for _, line := range strings.Split(head, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		mustHash := func() Hash {
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != HashSize {
				t.Fatalf("%s: bad hash %q", path, v)
			}
			return Hash(b)
		}
		mustInt := func() int64 {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: bad number %q", path, v)
			}
			return n
		}
		switch k {
		case "kind":
			g.leaf.Kind = Kind(mustInt())
		case "time":
			g.leaf.Time = time.Unix(0, mustInt()).UTC()
		case "tenant":
			g.leaf.Tenant = v
		case "encounter":
			g.leaf.Encounter = v
		case "actor":
			g.leaf.Actor = v
		case "seq":
			g.leaf.Seq = uint64(mustInt())
		case "prev":
			g.leaf.Prev = mustHash()
		case "commitment":
			g.leaf.Commitment = mustHash()
		case "leaf_hash":
			g.leafHash = mustHash()
		default:
			t.Fatalf("%s: unknown field %q", path, k)
		}
	}
	var hexdata strings.Builder
	for _, line := range strings.Split(body, "\n") {
		code, _, _ := strings.Cut(line, "#")
		hexdata.WriteString(strings.TrimSpace(code))
	}
	g.data, err = hex.DecodeString(hexdata.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return g
}

func TestLeafGoldenVectors(t *testing.T) {
	paths, _ := filepath.Glob("testdata/leaf/*.txt")
	if len(paths) < 2 {
		t.Fatalf("found %d golden vectors, want at least 2", len(paths))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			g := readGoldenLeaf(t, path)
			got, err := g.leaf.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(got, g.data) {
				t.Fatalf("Encode =\n%x\nwant\n%x", got, g.data)
			}
			dec, err := DecodeLeaf(g.data)
			if err != nil {
				t.Fatalf("DecodeLeaf: %v", err)
			}
			if *dec != g.leaf {
				t.Fatalf("DecodeLeaf = %+v, want %+v", *dec, g.leaf)
			}
			if h := tlog.RecordHash(g.data); h != g.leafHash {
				t.Fatalf("leaf hash = %x, want %x", h, g.leafHash)
			}
		})
	}
}

func TestDecodeLeafRejects(t *testing.T) {
	g := readGoldenLeaf(t, "testdata/leaf/chained-edit.txt")
	first := readGoldenLeaf(t, "testdata/leaf/first-segment.txt")
	mutate := func(src []byte, f func(b []byte) []byte) []byte {
		return f(bytes.Clone(src))
	}
	// Offsets in chained-edit.txt: version 0, kind 1, time 2..9, tenant
	// length 10, tenant 11..25, ...; seq and prev end 64 bytes before the end.
	seqOff := len(g.data) - 2*HashSize - 8
	cases := map[string][]byte{
		"empty":            {},
		"trailing-byte":    append(bytes.Clone(g.data), 0),
		"truncated":        g.data[:len(g.data)-1],
		"version-0":        mutate(g.data, func(b []byte) []byte { b[0] = 0; return b }),
		"version-2":        mutate(g.data, func(b []byte) []byte { b[0] = 2; return b }),
		"kind-0":           mutate(g.data, func(b []byte) []byte { b[1] = 0; return b }),
		"kind-11":          mutate(g.data, func(b []byte) []byte { b[1] = 11; return b }),
		"time-zero":        mutate(g.data, func(b []byte) []byte { clear(b[2:10]); return b }),
		"time-negative":    mutate(g.data, func(b []byte) []byte { b[2] = 0x80; return b }),
		"tenant-empty":     mutate(g.data, func(b []byte) []byte { return append(append(b[:10:10], 0), b[26:]...) }),
		"tenant-space":     mutate(g.data, func(b []byte) []byte { b[12] = ' '; return b }),
		"tenant-nul":       mutate(g.data, func(b []byte) []byte { b[12] = 0; return b }),
		"tenant-len-long":  mutate(g.data, func(b []byte) []byte { b[10] = 200; return b }),
		"seq0-with-prev":   mutate(g.data, func(b []byte) []byte { clear(b[seqOff : seqOff+8]); return b }),
		"seq1-zero-prev":   mutate(first.data, func(b []byte) []byte { b[len(b)-2*HashSize-1] = 1; return b }),
		"oversize":         make([]byte, MaxLeafLen+1),
		"non-ascii-actor":  mutate(g.data, func(b []byte) []byte { b[seqOff-1] = 0xc3; return b }),
		"length-past-data": mutate(first.data, func(b []byte) []byte { b[10] = 0xff; return b[:40] }),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if l, err := DecodeLeaf(data); err == nil {
				t.Fatalf("DecodeLeaf accepted %x as %+v", data, l)
			}
		})
	}
}

func TestLeafEncodeValidates(t *testing.T) {
	ok := Leaf{Kind: KindSegment, Time: time.Unix(1, 0), Tenant: "t", Encounter: "e", Actor: "a"}
	if _, err := ok.Encode(); err != nil {
		t.Fatalf("valid leaf: %v", err)
	}
	bad := map[string]func(l *Leaf){
		"kind":      func(l *Leaf) { l.Kind = 0 },
		"time":      func(l *Leaf) { l.Time = time.Time{} },
		"tenant":    func(l *Leaf) { l.Tenant = "" },
		"encounter": func(l *Leaf) { l.Encounter = strings.Repeat("e", MaxEncounterLen+1) },
		"actor":     func(l *Leaf) { l.Actor = "a b" },
		"prev":      func(l *Leaf) { l.Seq = 3 },
	}
	for field, f := range bad {
		l := ok
		f(&l)
		_, err := l.Encode()
		ie, isInvalid := err.(*InvalidError)
		if !isInvalid || ie.Field != field {
			t.Errorf("%s: Encode error = %v, want *InvalidError for field %q", field, err, field)
		}
	}
}

func FuzzDecodeLeaf(f *testing.F) {
	paths, _ := filepath.Glob("testdata/leaf/*.txt")
	for _, p := range paths {
		raw, _ := os.ReadFile(p)
		_, body, _ := strings.Cut(string(raw), "--\n")
		var h strings.Builder
		for _, line := range strings.Split(body, "\n") {
			code, _, _ := strings.Cut(line, "#")
			h.WriteString(strings.TrimSpace(code))
		}
		b, _ := hex.DecodeString(h.String())
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := DecodeLeaf(data)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to exactly the same bytes:
		// there is one encoding per leaf.
		enc, err := l.Encode()
		if err != nil {
			t.Fatalf("decoded leaf does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("non-canonical encoding accepted:\n in %x\nout %x", data, enc)
		}
	})
}
