package cluster

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

var update = flag.Bool("update", false, "rewrite the golden raft command vectors in testdata/commands")

// zeros is a deterministic "random" source: salts of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// goldenReplica prepares proposals deterministically: a fixed clock, zero
// salts, payloads stored as they are.
func goldenReplica(t *testing.T) *ledger.Replica {
	t.Helper()
	// A key made for these vectors only; proposals carry no signature, but
	// a Replica needs a key to open.
	k, err := ledger.NewKey("PRIVATE+KEY+golden.test/log+221141b8+Ae/1PT1bCL/LpE+cG/49UScJl30u9i9MqGDBZCVnKLe2",
		"golden.test/log+221141b8+AXMcxkNgFT7IcabXYSIPySLEsrzvTo8SfOJ0eU14cYPK")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	r, err := ledger.OpenReplica(memstore.New(), ledger.Options{Origin: "golden.test/log", Key: k, Now: func() time.Time { return at }, Rand: zeros{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// goldenCommands are the commands the golden vectors hold, by file name.
func goldenCommands(t *testing.T) map[string][]byte {
	r := goldenReplica(t)
	prepare := func(ctx context.Context, entries ...ledger.Entry) []byte {
		p, err := r.Prepare(ctx, entries)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := p.AppendBinary(nil)
		return b
	}
	seg := ledger.Entry{Kind: ledger.KindSegment, Tenant: "clinic-a", Encounter: "enc-1", Actor: "svc:asr", Payload: []byte(`{"v":1,"segment_id":"s1"}`)}
	edit := ledger.Entry{Kind: ledger.KindEdit, Tenant: "clinic-a", Encounter: "enc-1", Actor: "dr.alice", Payload: []byte(`{"v":1}`)}
	return map[string][]byte{
		"append-one":            encodeAppend([][]byte{prepare(context.Background(), seg)}),
		"append-request-id":     encodeAppend([][]byte{prepare(ledger.WithRequestID(context.Background(), "r1"), seg, edit), prepare(context.Background(), edit)}),
		"write-set-create-only": encodeWrite([]ledger.WriteOp{{Key: []byte("kclinic-a\x00enc-1\x00d"), Value: []byte{1, 2, 3}, CreateOnly: true}, {Key: []byte("zz"), Value: []byte("v")}}),
		"write-delete":          encodeWrite([]ledger.WriteOp{{Key: []byte("kclinic-a\x00enc-1\x00d"), Delete: true}}),
		"write-empty":           encodeWrite(nil),
		"purge":                 encodePurge([]byte("kclinic-a\x00enc-1\x00d")),
	}
}

func decodeCommand(cmd []byte) error {
	if len(cmd) == 0 {
		return errMalformedAppend
	}
	var err error
	switch cmd[0] {
	case cmdAppend:
		_, err = decodeAppend(cmd[1:])
	case cmdWrite:
		_, err = decodeWrite(cmd[1:])
	case cmdPurge:
		_, err = decodePurge(cmd[1:])
	default:
		err = errMalformedWrite
	}
	return err
}

func readHex(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var clean []byte
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean = append(clean, strings.Join(strings.Fields(line), "")...)
	}
	out, err := hex.DecodeString(string(clean))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func writeHex(t *testing.T, path, comment string, b []byte) {
	t.Helper()
	var s strings.Builder
	s.WriteString("# " + comment + "\n")
	for len(b) > 0 {
		n := min(len(b), 32)
		s.WriteString(hex.EncodeToString(b[:n]) + "\n")
		b = b[n:]
	}
	if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCommandGolden: the raft commands of docs/formats.md, byte for byte.
// Each vector decodes and re-encodes to itself; the malformed ones (*.bad)
// are refused. -update rewrites the good vectors from the encoders.
func TestCommandGolden(t *testing.T) {
	dir := filepath.Join("testdata", "commands")
	for name, cmd := range goldenCommands(t) {
		path := filepath.Join(dir, name+".hex")
		if *update {
			writeHex(t, path, "raft command "+name+" (docs/formats.md, \"Raft commands\")", cmd)
		}
		want := readHex(t, path)
		if !bytes.Equal(cmd, want) {
			t.Errorf("%s: the encoder no longer produces the golden bytes", name)
		}
		if err := decodeCommand(want); err != nil {
			t.Errorf("%s: the golden command does not decode: %v", name, err)
		}
		// Decoded proposals and ops encode back to the same bytes.
		var again []byte
		switch want[0] {
		case cmdAppend:
			ps, _ := decodeAppend(want[1:])
			var encs [][]byte
			for _, p := range ps {
				b, _ := p.AppendBinary(nil)
				encs = append(encs, b)
			}
			again = encodeAppend(encs)
		case cmdWrite:
			ops, _ := decodeWrite(want[1:])
			again = encodeWrite(ops)
		case cmdPurge:
			p, _ := decodePurge(want[1:])
			again = encodePurge(p)
		}
		if !bytes.Equal(again, want) {
			t.Errorf("%s: decoding and encoding again changes the bytes", name)
		}
	}
	bad, _ := filepath.Glob(filepath.Join(dir, "*.bad.hex"))
	if len(bad) == 0 {
		t.Fatal("no malformed vectors")
	}
	for _, path := range bad {
		if err := decodeCommand(readHex(t, path)); err == nil {
			t.Errorf("%s: a malformed command decoded", filepath.Base(path))
		}
	}
}

// FuzzDecodeCommand: whatever decodes, encodes back to its input.
func FuzzDecodeCommand(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "commands", "*.hex"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		if len(cmd) == 0 {
			return
		}
		switch cmd[0] {
		case cmdWrite:
			ops, err := decodeWrite(cmd[1:])
			if err == nil && !bytes.Equal(encodeWrite(ops), cmd) {
				t.Fatal("a decoded write command does not encode back to its input")
			}
		case cmdAppend:
			ps, err := decodeAppend(cmd[1:])
			if err != nil {
				return
			}
			var encs [][]byte
			for _, p := range ps {
				b, _ := p.AppendBinary(nil)
				encs = append(encs, b)
			}
			if !bytes.Equal(encodeAppend(encs), cmd) {
				t.Fatal("a decoded append command does not encode back to its input")
			}
		}
	})
}
