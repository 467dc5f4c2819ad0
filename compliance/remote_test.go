package compliance

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/ledger"
)

// logSource serves a ledger.Log as a LogSource, with optional tampering.
type logSource struct {
	l           *ledger.Appender
	entries     func(i int64, data []byte) (int64, []byte) // rewrite an entry
	drop        map[int64]bool
	swap        [2]int64
	truncate    int64
	checkpoints func(size int64, signed []byte) []byte
}

func (s *logSource) Checkpoints(ctx context.Context, fn func(int64, []byte) error) error {
	return s.l.Checkpoints(func(size int64, signed []byte) error {
		if s.checkpoints != nil {
			signed = s.checkpoints(size, signed)
		}
		return fn(size, signed)
	})
}

func (s *logSource) Entries(ctx context.Context, size int64, fn func(int64, []byte, []byte) error) error {
	if s.truncate > 0 {
		size = s.truncate
	}
	for i := int64(0); i < size; i++ {
		j := i
		if s.swap != [2]int64{} {
			if i == s.swap[0] {
				j = s.swap[1]
			} else if i == s.swap[1] {
				j = s.swap[0]
			}
		}
		if s.drop[j] {
			continue
		}
		e, err := s.l.Entry(j)
		if err != nil {
			return err
		}
		idx, data := i, bytes.Clone(e.Data)
		if s.entries != nil {
			idx, data = s.entries(i, data)
		}
		var claimed []byte
		if bytes.Equal(data, e.Data) {
			claimed = e.Hash[:]
		}
		if err := fn(idx, data, claimed); err != nil {
			return err
		}
	}
	return nil
}

func TestVerifyLog(t *testing.T) {
	f := newFixture(t)
	f.visit(t) // a second encounter, interleaved chains
	l := f.log
	cp := l.Checkpoint()
	mid, err := l.RootAt(cp.Size / 2)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := ledger.LoadOrCreateKey(t.TempDir(), origin)
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint validly signed with the log's own key for a stored
	// size, but with another root: a compromised signer, or a split view.
	skey, err := os.ReadFile(filepath.Join(f.keyDir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	var target int64
	l.Checkpoints(func(size int64, _ []byte) error {
		if target == 0 && size > cp.Size/2 {
			target = size
		}
		return nil
	})
	forged, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: origin, Size: uint64(target), Hash: bytes.Repeat([]byte{9}, 32)}.Marshal())}, signer)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		src     *logSource
		trusted *[2]any
		check   string
	}{
		{"intact", &logSource{}, nil, ""},
		{"intact with trusted state", &logSource{}, &[2]any{cp.Size / 2, mid[:]}, ""},
		{"flipped leaf byte", &logSource{entries: func(i int64, d []byte) (int64, []byte) {
			if i == 5 {
				d[len(d)-1] ^= 1
			}
			return i, d
		}}, nil, "checkpoint"},
		{"deleted entry", &logSource{drop: map[int64]bool{4: true}}, nil, "leaf"},
		{"reordered entries", &logSource{swap: [2]int64{3, 4}}, nil, "chain"},
		{"truncated", &logSource{truncate: cp.Size - 2}, nil, "leaf"},
		{"flipped checkpoint signature", &logSource{checkpoints: func(size int64, signed []byte) []byte {
			if size == target {
				signed[len(signed)-5] ^= 1
			}
			return signed
		}}, nil, "checkpoint"},
		{"forged checkpoint", &logSource{checkpoints: func(size int64, signed []byte) []byte {
			if size == target {
				return forged
			}
			return signed
		}}, nil, "checkpoint"},
		{"other trusted root", &logSource{}, &[2]any{cp.Size / 2, bytes.Repeat([]byte{7}, 32)}, "checkpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.src.l = l
			opts := LogCheckOptions{Verifier: f.key.Verifier(), Latest: cp.Note}
			if tc.trusted != nil {
				opts.TrustedSize, opts.TrustedRoot = tc.trusted[0].(int64), tc.trusted[1].([]byte)
			}
			var progress int64
			opts.Progress = func(done, total int64) { progress = done }
			rep, err := VerifyLog(ctx, tc.src, opts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.check == "" {
				if len(rep.Problems) != 0 || rep.Leaves != cp.Size || progress != cp.Size || rep.Encounters != 2 || rep.Checkpoints == 0 || len(rep.Notes) == 0 {
					t.Fatalf("intact log: %+v", rep)
				}
				return
			}
			for _, p := range rep.Problems {
				if p.Check == tc.check {
					return
				}
			}
			t.Fatalf("no %q problem; got %v", tc.check, rep.Problems)
		})
	}
	// A latest checkpoint signed by another key is refused outright.
	rep, err := VerifyLog(ctx, &logSource{l: l}, LogCheckOptions{Verifier: forger.Verifier(), Latest: cp.Note})
	if err != nil || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Detail, "does not verify") {
		t.Fatalf("another key: %v, %v", rep.Problems, err)
	}
}
