package ledger

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// verifyLog runs Verify on s with the test key.
func verifyLog(t *testing.T, s storage.Store, k *Key) *VerifyReport {
	t.Helper()
	rep, err := Verify(context.Background(), s, VerifyOptions{Origin: testOrigin, Verifier: k.Verifier()})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func hasProblem(rep *VerifyReport, check string, index int64) bool {
	for _, p := range rep.Problems {
		if p.Check == check && (index < 0 || p.Index == index) {
			return true
		}
	}
	return false
}

// TestVerifyTamper builds a log on each backend, tampers with it through the
// storage interface in one way, and checks that Verify reports it precisely.
func TestVerifyTamper(t *testing.T) {
	type tamper struct {
		name  string
		do    func(t *testing.T, s storage.Store)
		check string
		index int64
	}
	swap := func(t *testing.T, s storage.Store, a, b []byte) {
		va, _ := s.Get(a)
		vb, _ := s.Get(b)
		var batch storage.Batch
		batch.Set(a, vb)
		batch.Set(b, va)
		s.Write(&batch, true)
	}
	del := func(t *testing.T, s storage.Store, keys ...[]byte) {
		var batch storage.Batch
		for _, k := range keys {
			batch.Delete(k)
		}
		if err := s.Write(&batch, true); err != nil {
			t.Fatal(err)
		}
	}
	payloadOf := func(t *testing.T, s storage.Store, idx int64) []byte {
		data, _ := s.Get(leafKey(idx))
		l, err := DecodeLeaf(data)
		if err != nil {
			t.Fatal(err)
		}
		return payloadKey(l.Commitment)
	}
	cases := []tamper{
		{"flipped leaf data", func(t *testing.T, s storage.Store) { flip(t, s, leafKey(123), 20) }, "leaf", 123},
		{"flipped leaf hash in a tile", func(t *testing.T, s storage.Store) {
			// Rewrite the tile consistently so only the tree check catches it.
			id := tileID{L: 0, N: 1}
			data, _ := s.Get(tileKey(id))
			var b storage.Batch
			b.Set(tileKey(id), forgeTile(t, data, 4))
			s.Write(&b, true)
		}, "leaf", 256 + 4},
		{"flipped inner tile hash", func(t *testing.T, s storage.Store) { flip(t, s, tileKey(tileID{L: 0, N: 0}), 2+(256+3)*HashSize) }, "tile", -1},
		{"flipped payload", func(t *testing.T, s storage.Store) { flip(t, s, payloadOf(t, s, 77), -1) }, "payload", 77},
		{"flipped checkpoint signature", func(t *testing.T, s storage.Store) { flip(t, s, checkpointKey(300), -20) }, "checkpoint", 300},
		{"flipped latest checkpoint", func(t *testing.T, s storage.Store) { flip(t, s, []byte(keyState), -20) }, "checkpoint", -1},
		{"deleted entry", func(t *testing.T, s storage.Store) { del(t, s, leafKey(200)) }, "leaf", 200},
		{"reordered entries", func(t *testing.T, s storage.Store) { swap(t, s, leafKey(50), leafKey(51)) }, "leaf", 50},
		{"truncated log", func(t *testing.T, s storage.Store) { del(t, s, leafKey(597), leafKey(598), leafKey(599)) }, "leaf", 597},
		{"payload destroyed without a redaction", func(t *testing.T, s storage.Store) {
			var b storage.Batch
			b.Set(payloadOf(t, s, 33), []byte{payloadRedacted})
			s.Write(&b, true)
		}, "payload", 33},
		{"forged checkpoint", func(t *testing.T, s storage.Store) {
			other, _ := LoadOrCreateKey(t.TempDir(), testOrigin)
			cp, _ := signCheckpoint(other, testOrigin, 400, Hash{1})
			var b storage.Batch
			b.Set(checkpointKey(400), cp.Note)
			s.Write(&b, true)
		}, "checkpoint", 400},
	}
	for _, backend := range []string{"memory", "pebble", "badger"} {
		t.Run(backend, func(t *testing.T) {
			open := func(t *testing.T) storage.Store {
				if backend == "memory" {
					return memstore.New()
				}
				s := openBackend(t, backend, t.TempDir())
				t.Cleanup(func() { s.Close() })
				return s
			}
			l, s, k := fillCorruptLog(t, open(t))
			// Checkpoints at sizes 0, 100, 200, ... 600, one per append.
			l.Close()
			if rep := verifyLog(t, s, k); len(rep.Problems) != 0 || rep.Leaves != 600 || rep.Payloads != 600 || rep.Encounters != 4 || rep.Checkpoints != 7 {
				t.Fatalf("intact log: %+v", rep)
			}
			for _, c := range cases {
				t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
					l, s, k := fillCorruptLog(t, open(t))
					l.Close()
					c.do(t, s)
					rep := verifyLog(t, s, k)
					if !hasProblem(rep, c.check, c.index) {
						t.Fatalf("not detected as %s at %d: %v", c.check, c.index, rep.Problems)
					}
				})
			}
		})
	}
}

// TestVerifyEntriesBeyondCheckpoint stores an extra, well-formed entry beyond the
// signed checkpoint.
func TestVerifyEntriesBeyondCheckpoint(t *testing.T) {
	l, s, k := corruptLog(t)
	l.Close()
	data, _ := s.Get(leafKey(599))
	var b storage.Batch
	b.Set(leafKey(600), data)
	s.Write(&b, true)
	rep := verifyLog(t, s, k)
	if !hasProblem(rep, "leaf", 600) {
		t.Fatalf("extra entry not reported: %v", rep.Problems)
	}
}

func nodeHash(l, r Hash) Hash { return tlog.NodeHash(l, r) }
