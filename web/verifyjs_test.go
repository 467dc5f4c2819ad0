package web_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/chromedp/chromedp"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/web"
)

// The page's verifiers (merkle.js, checkpoint.js, leaf.js) are checked
// against the Go reference implementations: transparency-dev/merkle's
// reference tree, golang.org/x/mod/sumdb/note and the ledger's golden leaf
// vectors. Every valid vector must verify and every mutated one must fail.

type noAudio struct{}

func (noAudio) AudioBlob(context.Context, encounter.Caller, string, int64) (*blob.Blob, encounter.Audio, error) {
	return nil, encounter.Audio{}, fmt.Errorf("no audio")
}

// jsTab opens a same-origin blank page from which the page's modules can
// be imported.
func jsTab(t *testing.T) *tab {
	t.Helper()
	mux := http.NewServeMux()
	web.New(web.Options{Audio: noAudio{}}).Register(mux)
	mux.HandleFunc("GET /blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>modules</title>")
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	tb := newTab(t, 800, 600)
	tb.do(chromedp.Navigate(hs.URL + "/blank"))
	return tb
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func b64s(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b64(b)
	}
	return out
}

func flip(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[len(c)/2] ^= 0x10
	return c
}

type proofVector struct {
	Name  string   `json:"name"`
	A     int      `json:"a"` // inclusion: index; consistency: size1
	B     int      `json:"b"` // size, size2
	Leaf  string   `json:"leaf,omitempty"`
	Root1 string   `json:"root1,omitempty"`
	Root  string   `json:"root"`
	Path  []string `json:"path"`
	Valid bool     `json:"valid"`
}

const runProofVectors = `(async (vs) => {
	const m = await import('/assets/merkle.js');
	const d = (s) => m.fromBase64(s);
	const wrong = [];
	for (const v of vs) {
		let ok = true;
		try {
			if (v.leaf) await m.verifyInclusion(v.a, v.b, d(v.leaf), v.path.map(d), d(v.root));
			else await m.verifyConsistency(v.a, v.b, d(v.root1), d(v.root), v.path.map(d));
		} catch (e) {
			if (e.name !== 'ProofError') return ['unexpected ' + e];
			ok = false;
		}
		if (ok !== v.valid) wrong.push(v.name);
	}
	return wrong;
})`

func TestJSMerkleProofs(t *testing.T) {
	tb := jsTab(t)
	tree := testonly.New(rfc6962.DefaultHasher)
	const maxSize = 40
	for i := range maxSize {
		tree.AppendData([]byte(fmt.Sprintf("leaf %d", i)))
	}
	var vs []proofVector
	add := func(v proofVector) { vs = append(vs, v) }
	for n := 1; n <= maxSize; n++ {
		root := tree.HashAt(uint64(n))
		for i := range n {
			p, err := tree.InclusionProof(uint64(i), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			leaf := tree.LeafHash(uint64(i))
			name := fmt.Sprintf("inclusion %d/%d", i, n)
			add(proofVector{name, i, n, b64(leaf), "", b64(root), b64s(p), true})
			add(proofVector{name + " wrong leaf", i, n, b64(flip(leaf)), "", b64(root), b64s(p), false})
			add(proofVector{name + " wrong root", i, n, b64(leaf), "", b64(flip(root)), b64s(p), false})
			add(proofVector{name + " extended", i, n, b64(leaf), "", b64(root), b64s(append(append([][]byte{}, p...), root)), false})
			add(proofVector{name + " index beyond size", n, n, b64(leaf), "", b64(root), b64s(p), false})
			if i+1 < n {
				add(proofVector{name + " wrong index", i + 1, n, b64(leaf), "", b64(root), b64s(p), false})
			}
			for k := range p {
				q := append([][]byte{}, p...)
				q[k] = flip(q[k])
				add(proofVector{fmt.Sprintf("%s hash %d flipped", name, k), i, n, b64(leaf), "", b64(root), b64s(q), false})
			}
			if len(p) > 0 {
				add(proofVector{name + " truncated", i, n, b64(leaf), "", b64(root), b64s(p[:len(p)-1]), false})
			}
		}
		for m := 1; m <= n; m++ {
			p, err := tree.ConsistencyProof(uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			r1 := tree.HashAt(uint64(m))
			name := fmt.Sprintf("consistency %d..%d", m, n)
			add(proofVector{name, m, n, "", b64(r1), b64(root), b64s(p), true})
			add(proofVector{name + " wrong first root", m, n, "", b64(flip(r1)), b64(root), b64s(p), false})
			add(proofVector{name + " wrong second root", m, n, "", b64(r1), b64(flip(root)), b64s(p), false})
			for k := range p {
				q := append([][]byte{}, p...)
				q[k] = flip(q[k])
				add(proofVector{fmt.Sprintf("%s hash %d flipped", name, k), m, n, "", b64(r1), b64(root), b64s(q), false})
			}
			if len(p) > 0 {
				add(proofVector{name + " truncated", m, n, "", b64(r1), b64(root), b64s(p[:len(p)-1]), false})
				add(proofVector{name + " extended", m, n, "", b64(r1), b64(root), b64s(append(append([][]byte{}, p...), root)), false})
			}
			if m < n {
				add(proofVector{name + " reversed sizes", n, m, "", b64(root), b64(r1), b64s(p), false})
			}
		}
	}
	wrong := eval[[]string](tb, runProofVectors+"("+mustJSON(vs)+")")
	if len(wrong) > 0 {
		t.Errorf("%d of %d vectors judged wrongly, e.g. %v", len(wrong), len(vs), wrong[:min(10, len(wrong))])
	}
	valid := 0
	for _, v := range vs {
		if v.Valid {
			valid++
		}
	}
	t.Logf("%d proof vectors (%d valid, %d mutated)", len(vs), valid, len(vs)-valid)
}

type noteVector struct {
	Name  string `json:"name"`
	Key   string `json:"key"`
	Note  string `json:"note"` // base64
	Valid bool   `json:"valid"`
	Size  int    `json:"size"`
	Root  string `json:"root"`
}

func TestJSSignedCheckpoints(t *testing.T) {
	tb := jsTab(t)
	const origin = "evidence.localhost/log"
	var vs []noteVector
	plus := false
	for k := 0; k < 40 || !plus; k++ {
		skey, vkey, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			t.Fatal(err)
		}
		// The key's base64 sometimes holds "+", which a naive split breaks.
		plus = plus || strings.Count(vkey, "+") > 2
		signer, _ := note.NewSigner(skey)
		root := sha256.Sum256([]byte(fmt.Sprint(k)))
		size := 1000 + k
		body := fmt.Sprintf("%s\n%d\n%s\n", origin, size, b64(root[:]))
		msg, err := note.Sign(&note.Note{Text: body}, signer)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("key %d", k)
		vs = append(vs, noteVector{name, vkey, b64(msg), true, size, b64(root[:])})
		_, otherV, _ := note.GenerateKey(rand.Reader, origin)
		vs = append(vs, noteVector{name + " other key", otherV, b64(msg), false, 0, ""})
		tampered := []byte(strings.Replace(string(msg), fmt.Sprintf("\n%d\n", size), fmt.Sprintf("\n%d\n", size+1), 1))
		vs = append(vs, noteVector{name + " body changed", vkey, b64(tampered), false, 0, ""})
		i := strings.LastIndex(string(msg), " ")
		sig, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(msg[i+1:])))
		sig[10] ^= 1
		vs = append(vs, noteVector{name + " signature flipped", vkey, b64(append(msg[:i+1:i+1], b64(sig)+"\n"...)), false, 0, ""})
		vs = append(vs, noteVector{name + " unsigned", vkey, b64([]byte(body)), false, 0, ""})
		otherOrigin := fmt.Sprintf("other.example/log\n%d\n%s\n", size, b64(root[:]))
		otherMsg, _ := note.Sign(&note.Note{Text: otherOrigin}, signer)
		vs = append(vs, noteVector{name + " other origin", vkey, b64(otherMsg), false, 0, ""})
	}
	js := `(async (vs) => {
		const c = await import('/assets/checkpoint.js');
		const m = await import('/assets/merkle.js');
		const wrong = [];
		for (const v of vs) {
			let got = null;
			try {
				const key = await c.parseVerifierKey(v.key);
				got = await c.openCheckpoint(m.fromBase64(v.note), key);
			} catch (e) {
				if (e.name !== 'CheckpointError') return ['unexpected ' + e];
			}
			if (v.valid && !(got && got.signature === 'verified' && got.size === v.size && m.toBase64(got.root) === v.root)) wrong.push(v.name);
			if (!v.valid && got) wrong.push(v.name);
		}
		return wrong;
	})`
	if wrong := eval[[]string](tb, js+"("+mustJSON(vs)+")"); len(wrong) > 0 {
		t.Errorf("%d of %d signed-note vectors judged wrongly: %v", len(wrong), len(vs), wrong[:min(10, len(wrong))])
	}
}

// goldenLeaf reads the fields and bytes of a ledger/testdata/leaf vector.
func goldenLeaf(t *testing.T, path string) (map[string]string, []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fields := map[string]string{}
	var hexBytes strings.Builder
	inBytes := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case line == "--":
			inBytes = true
		case inBytes:
			hexBytes.WriteString(strings.ReplaceAll(line, " ", ""))
		default:
			k, v, _ := strings.Cut(line, " ")
			fields[k] = v
		}
	}
	data, err := hex.DecodeString(hexBytes.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fields, data
}

func TestJSLeafDecoding(t *testing.T) {
	tb := jsTab(t)
	paths, _ := filepath.Glob("../ledger/testdata/leaf/*.txt")
	if len(paths) == 0 {
		t.Fatal("no golden leaf vectors in ../ledger/testdata/leaf")
	}
	kinds := []string{"", "encounter", "audio", "segment", "model_output", "alignment", "edit", "signoff", "access", "redaction", "resolution"}
	for _, p := range paths {
		fields, data := goldenLeaf(t, p)
		var kind int
		fmt.Sscan(fields["kind"], &kind)
		got := eval[map[string]string](tb, `(async () => {
			const l = await import('/assets/leaf.js');
			const m = await import('/assets/merkle.js');
			const data = m.fromBase64(`+mustJSON(b64(data))+`);
			const x = l.decodeLeaf(data);
			return {kind: x.kind, time: String(x.timeNs), tenant: x.tenant, encounter: x.encounter, actor: x.actor, seq: String(x.seq),
				prev: m.toHex(x.prev), commitment: m.toHex(x.commitment), leaf_hash: m.toHex(await m.leafHash(data))};
		})()`)
		want := map[string]string{"kind": kinds[kind], "time": fields["time"], "tenant": fields["tenant"], "encounter": fields["encounter"], "actor": fields["actor"],
			"seq": fields["seq"], "prev": fields["prev"], "commitment": fields["commitment"], "leaf_hash": fields["leaf_hash"]}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s = %q, want %q", filepath.Base(p), k, got[k], w)
			}
		}
		// Strict decoding: every malformed variant is rejected.
		bad := map[string][]byte{
			"trailing byte":  append(append([]byte{}, data...), 0),
			"truncated":      data[:len(data)-1],
			"version 2":      append([]byte{2}, data[1:]...),
			"kind 11":        append([]byte{data[0], 11}, data[2:]...),
			"kind 0":         append([]byte{data[0], 0}, data[2:]...),
			"zero time":      append(append([]byte{data[0], data[1]}, make([]byte, 8)...), data[10:]...),
			"space in actor": []byte(strings.Replace(string(data), fields["actor"], " "+fields["actor"][1:], 1)),
		}
		if fields["seq"] == "0" {
			b := append([]byte{}, data...)
			b[len(b)-64] = 1 // prev non-zero at seq 0
			bad["link at seq 0"] = b
		} else {
			b := append([]byte{}, data...)
			copy(b[len(b)-64:len(b)-32], make([]byte, 32)) // zero prev at seq > 0
			bad["no link at seq > 0"] = b
		}
		for name, b := range bad {
			msg := eval[string](tb, `(async () => {
				const l = await import('/assets/leaf.js');
				const m = await import('/assets/merkle.js');
				try { l.decodeLeaf(m.fromBase64(`+mustJSON(b64(b))+`)); return 'accepted'; } catch (e) { return e.name; }
			})()`)
			if msg != "LeafError" {
				t.Errorf("%s, %s: %s, want LeafError", filepath.Base(p), name, msg)
			}
		}
	}
	// Record times in protojson become the leaf's nanoseconds exactly.
	for ts, want := range map[string]string{
		"2024-03-01T12:00:00.123456789Z": "1709294400123456789",
		"2024-03-01T12:00:00Z":           "1709294400000000000",
		"2024-03-01T12:00:00.5Z":         "1709294400500000000",
	} {
		if got := eval[string](tb, `import('/assets/leaf.js').then((l) => String(l.timestampNs(`+mustJSON(ts)+`)))`); got != want {
			t.Errorf("timestampNs(%s) = %s, want %s", ts, got, want)
		}
	}
}
