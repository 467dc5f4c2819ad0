package envelope

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// TestVerifyTamperEncrypted extends the ledger's tamper suite to what
// encryption adds: sealed payloads and wrapped keys. Each scenario tampers
// with the store of an encrypted log and checks that ledger.Verify, opening
// payloads with the keyring, reports it at the right leaf, while a proper
// shred is reported as redacted, not as a problem.
func TestVerifyTamperEncrypted(t *testing.T) {
	const origin = "envelope.test/log"
	payloadKey := func(c ledger.Hash) []byte { return append([]byte{'p'}, c[:]...) }
	type env struct {
		kv     storage.Store
		sealer *Sealer
		leaves []*ledger.StoredEntry // 0-2 in enc-1, 3-4 in enc-2, 5 an access entry of enc-1
	}
	set := func(t *testing.T, kv storage.Store, k, v []byte) {
		var b storage.Batch
		if v == nil {
			b.Delete(k)
		} else {
			b.Set(k, v)
		}
		if err := kv.Write(&b, true); err != nil {
			t.Fatal(err)
		}
	}
	get := func(t *testing.T, kv storage.Store, k []byte) []byte {
		v, err := kv.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name     string
		tamper   func(t *testing.T, e *env)
		check    string
		index    int64 // -1: anywhere
		redacted int64
	}{
		{"intact", func(*testing.T, *env) {}, "", -1, 0},
		{"flipped ciphertext byte", func(t *testing.T, e *env) {
			k := payloadKey(e.leaves[1].Leaf.Commitment)
			v := bytes.Clone(get(t, e.kv, k))
			v[len(v)-3] ^= 1
			set(t, e.kv, k, v)
		}, "payload", 1, 0},
		{"flipped header byte", func(t *testing.T, e *env) {
			k := payloadKey(e.leaves[2].Leaf.Commitment)
			v := bytes.Clone(get(t, e.kv, k))
			v[1+ledger.SaltSize+1] = classAudit // claims the audit key
			set(t, e.kv, k, v)
		}, "payload", 2, 0},
		{"swapped payloads within an encounter", func(t *testing.T, e *env) {
			a, b := payloadKey(e.leaves[1].Leaf.Commitment), payloadKey(e.leaves[2].Leaf.Commitment)
			va, vb := get(t, e.kv, a), get(t, e.kv, b)
			set(t, e.kv, a, vb)
			set(t, e.kv, b, va)
		}, "payload", 1, 0},
		{"payload moved to another encounter", func(t *testing.T, e *env) {
			set(t, e.kv, payloadKey(e.leaves[3].Leaf.Commitment), get(t, e.kv, payloadKey(e.leaves[1].Leaf.Commitment)))
		}, "payload", 3, 0},
		{"wrapped key deleted without shredding", func(t *testing.T, e *env) {
			set(t, e.kv, keyName("acme", "enc-2", kindDataKey), nil)
		}, "payload", 3, 0},
		{"wrapped key of another encounter", func(t *testing.T, e *env) {
			set(t, e.kv, keyName("acme", "enc-2", kindDataKey), get(t, e.kv, keyName("acme", "enc-1", kindDataKey)))
		}, "payload", 4, 0},
		{"wrapped key byte flipped", func(t *testing.T, e *env) {
			k := keyName("acme", "enc-1", kindDataKey)
			v := bytes.Clone(get(t, e.kv, k))
			v[len(v)-1] ^= 1
			set(t, e.kv, k, v)
		}, "payload", 0, 0},
		// The keys destroyed behind the ledger's back: enc-1's three PHI
		// payloads count as redacted (its access entry still opens), and
		// since its chain records no redaction the first is a problem. A
		// recorded shred verifies clean: compliance/shred_test.go.
		{"shredded without a redaction entry", func(t *testing.T, e *env) {
			if _, err := keysOf(e.sealer).Shred(context.Background(), "acme", "enc-1"); err != nil {
				t.Fatal(err)
			}
		}, "payload", 0, 3},
	}
	backends := map[string]func(t *testing.T) storage.Store{
		"memory": func(*testing.T) storage.Store { return memstore.New() },
		"pebble": func(t *testing.T) storage.Store {
			s, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"badger": func(t *testing.T) storage.Store {
			s, err := badgerstore.Open(t.TempDir(), badgerstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for bname, open := range backends {
		for _, tc := range cases {
			t.Run(bname+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				key, err := ledger.LoadOrCreateKey(dir, origin)
				if err != nil {
					t.Fatal(err)
				}
				e := &env{kv: open(t)}
				keyring := filepath.Join(dir, KeyringFile)
				if e.sealer, _, err = OpenLocal(e.kv, keyring, true); err != nil {
					t.Fatal(err)
				}
				l, err := ledger.Open(e.kv, ledger.Options{Origin: origin, Key: key, Sealer: e.sealer})
				if err != nil {
					t.Fatal(err)
				}
				makeKeys(t, e.sealer, "acme/enc-1", "acme/enc-2", "acme/")
				entry := func(k ledger.Kind, enc, p string) ledger.Entry {
					return ledger.Entry{Kind: k, Tenant: "acme", Encounter: enc, Actor: "x", Payload: []byte(p)}
				}
				if _, err := l.Append(context.Background(), []ledger.Entry{
					entry(ledger.KindEncounter, "enc-1", `{"v":1}`), entry(ledger.KindSegment, "enc-1", "one"), entry(ledger.KindSegment, "enc-1", "two"),
					entry(ledger.KindEncounter, "enc-2", `{"v":1}`), entry(ledger.KindSegment, "enc-2", "three"), entry(ledger.KindAccess, "enc-1", "read"),
				}); err != nil {
					t.Fatal(err)
				}
				for i := int64(0); i < 6; i++ {
					se, err := l.Entry(i)
					if err != nil {
						t.Fatal(err)
					}
					e.leaves = append(e.leaves, se)
				}
				l.Close()
				tc.tamper(t, e)
				// A fresh, read-only sealer, as evidencectl verify opens it.
				offline, _, err := OpenLocal(e.kv, keyring, false)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := ledger.Verify(context.Background(), e.kv, ledger.VerifyOptions{Origin: origin, Verifier: key.Verifier(), Sealer: offline})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Redacted != tc.redacted {
					t.Errorf("%d payloads redacted, want %d", rep.Redacted, tc.redacted)
				}
				if tc.check == "" {
					if len(rep.Problems) != 0 {
						t.Fatalf("problems: %v", rep.Problems)
					}
					return
				}
				for _, p := range rep.Problems {
					if p.Check == tc.check && (tc.index < 0 || p.Index == tc.index) {
						if strings.Contains(p.Detail, "PRIVATE") {
							t.Fatal("a problem quotes key material")
						}
						return
					}
				}
				t.Fatalf("no %s problem at leaf %d: %v", tc.check, tc.index, rep.Problems)
			})
		}
	}
}
