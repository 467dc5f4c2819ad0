package envelope

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
	"github.com/evidenceledger/evidence/ledger/storage/storagetest"
)

func newSealer(t *testing.T, kv storage.Store) (*Sealer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), KeyringFile)
	s, _, err := OpenLocal(kv, path, true)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func commitment(s string) ledger.Hash { return sha256.Sum256([]byte(s)) }

// keysOf returns the Keys of a test sealer, writing to its own store.
func keysOf(s *Sealer) *Keys { return NewKeys(s, s.kv) }

// makeKeys makes data keys for "tenant/scope" names, as the encounter
// service does before it seals anything ("tenant/" is the audit key).
func makeKeys(t testing.TB, s *Sealer, names ...string) {
	t.Helper()
	for _, n := range names {
		tenant, scope, _ := strings.Cut(n, "/")
		if err := keysOf(s).EnsureKey(context.Background(), tenant, scope); err != nil {
			t.Fatalf("EnsureKey %s: %v", n, err)
		}
	}
}

const secret = "Patient reports crushing substernal chest pain since Tuesday."

func TestSealOpen(t *testing.T) {
	s, _ := newSealer(t, memstore.New())
	c := commitment("a")
	if _, err := s.Seal("acme", "enc-1", c, []byte(secret)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("sealing before the key is made: %v, want ErrNoKey", err)
	}
	makeKeys(t, s, "acme/enc-1")
	sealed, err := s.Seal("acme", "enc-1", c, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(secret)+Overhead {
		t.Fatalf("sealed %d bytes, want %d", len(sealed), len(secret)+Overhead)
	}
	if bytes.Contains(sealed, []byte("chest")) {
		t.Fatal("ciphertext holds plaintext")
	}
	got, err := s.Open("acme", "enc-1", c, sealed)
	if err != nil || string(got) != secret {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := s.Seal("acme", "enc-1", c, []byte(secret))
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one payload are equal: nonces repeat")
	}
}

// TestBinding checks that a ciphertext opens only for its own tenant,
// encounter and commitment, and that any flipped bit is caught.
func TestBinding(t *testing.T) {
	s, _ := newSealer(t, memstore.New())
	c := commitment("a")
	makeKeys(t, s, "acme/enc-1", "acme/enc-2", "other/enc-1")
	sealed, err := s.Seal("acme", "enc-1", c, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal("acme", "enc-2", c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal("other", "enc-1", c, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() ([]byte, error){
		"other commitment": func() ([]byte, error) { return s.Open("acme", "enc-1", commitment("b"), sealed) },
		"other encounter":  func() ([]byte, error) { return s.Open("acme", "enc-2", c, sealed) },
		"other tenant":     func() ([]byte, error) { return s.Open("other", "enc-1", c, sealed) },
		"as a chunk": func() ([]byte, error) {
			return s.OpenChunk(blob.Scope{Tenant: "acme", Encounter: "enc-1"}, c[:], sealed)
		},
	} {
		if _, err := open(); err == nil || errors.Is(err, ledger.ErrRedacted) {
			t.Errorf("%s: Open = %v, want an authentication failure", name, err)
		}
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x04
		if _, err := s.Open("acme", "enc-1", c, bad); err == nil {
			t.Fatalf("byte %d flipped: Open succeeded", i)
		}
	}
	if _, err := s.Open("acme", "enc-1", c, sealed[:Overhead-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestShredKeepsAuditPayloads(t *testing.T) {
	s, _ := newSealer(t, memstore.New())
	c := commitment("a")
	makeKeys(t, s, "acme/enc-1", "acme/", "acme/enc-2")
	phi, _ := s.SealKind(ledger.KindSegment, "acme", "enc-1", c, []byte(secret))
	access, _ := s.SealKind(ledger.KindAccess, "acme", "enc-1", c, []byte("read by dr.a"))
	redaction, _ := s.SealKind(ledger.KindRedaction, "acme", "enc-1", c, []byte("reason"))
	scope := blob.Scope{Tenant: "acme", Encounter: "enc-1"}
	chunk, err := s.SealChunk(scope, []byte("B-chunk-0"), []byte("RIFF audio"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := s.SealKind(ledger.KindSegment, "acme", "enc-2", c, []byte("another visit"))

	res, err := keysOf(s).Shred(context.Background(), "acme", "enc-1")
	if err != nil || res.Already || res.Purged {
		t.Fatalf("Shred = %+v, %v (memstore cannot purge)", res, err)
	}
	if _, err := s.Open("acme", "enc-1", c, phi); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("PHI payload after shred: %v, want ErrRedacted", err)
	}
	if _, err := s.OpenChunk(scope, []byte("B-chunk-0"), chunk); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("chunk after shred: %v, want ErrRedacted", err)
	}
	if _, err := s.SealKind(ledger.KindSegment, "acme", "enc-1", c, []byte("late")); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("sealing after shred: %v, want ErrRedacted", err)
	}
	for name, v := range map[string][]byte{"access": access, "redaction": redaction} {
		if p, err := s.Open("acme", "enc-1", c, v); err != nil || len(p) == 0 {
			t.Fatalf("%s payload after shred: %q, %v", name, p, err)
		}
	}
	if _, err := s.SealKind(ledger.KindAccess, "acme", "enc-1", c, []byte("read again")); err != nil {
		t.Fatalf("audit payload after shred: %v", err)
	}
	if p, err := s.Open("acme", "enc-2", c, other); err != nil || string(p) != "another visit" {
		t.Fatalf("another encounter after shred: %q, %v", p, err)
	}
	if ok, at, err := s.Shredded("acme", "enc-1"); !ok || at.IsZero() || err != nil {
		t.Fatalf("Shredded = %v, %v, %v", ok, at, err)
	}
	if err := keysOf(s).EnsureKey(context.Background(), "acme", "enc-1"); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("making a shredded encounter's key: %v, want ErrRedacted", err)
	}
	if res, err := keysOf(s).Shred(context.Background(), "acme", "enc-1"); err != nil || !res.Already {
		t.Fatalf("second Shred = %+v, %v", res, err)
	}
	// A fresh Sealer (a restart) agrees.
	s2 := New(s.kv, s.kms, Options{})
	if _, err := s2.Open("acme", "enc-1", c, phi); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("after restart: %v, want ErrRedacted", err)
	}
}

// TestShredOnDisk shreds on the real engines and looks for the wrapped key
// in every file of the store, and for the key record by reading it back.
func TestShredOnDisk(t *testing.T) {
	for name, open := range map[string]func(string) (storage.Store, error){
		"pebble": func(d string) (storage.Store, error) { return pebblestore.Open(d, pebblestore.Options{}) },
		"badger": func(d string) (storage.Store, error) { return badgerstore.Open(d, badgerstore.Options{}) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			kv, err := open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer kv.Close()
			s, _ := newSealer(t, kv)
			c := commitment("a")
			makeKeys(t, s, "acme/enc-1", "acme/enc-2")
			sealed, err := s.Seal("acme", "enc-1", c, []byte(secret))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Seal("acme", "enc-2", c, []byte(secret)); err != nil {
				t.Fatal(err)
			}
			rec, err := s.WrappedKey("acme", "enc-1")
			if err != nil {
				t.Fatal(err)
			}
			if len(rec) >= 256 {
				t.Fatalf("key record of %d bytes would be separated into a pebble blob file", len(rec))
			}
			keep, _ := s.WrappedKey("acme", "enc-2")
			if storagetest.FindInFiles(t, dir, rec) == "" {
				t.Fatal("the wrapped key is in no file before shredding: the scan cannot see it")
			}
			res, err := keysOf(s).Shred(context.Background(), "acme", "enc-1")
			if err != nil || !res.Purged {
				t.Fatalf("Shred = %+v, %v", res, err)
			}
			if f := storagetest.FindInFiles(t, dir, rec); f != "" {
				t.Fatalf("the shredded wrapped key is still in %s", f)
			}
			if storagetest.FindInFiles(t, dir, keep) == "" {
				t.Fatal("another encounter's key is gone")
			}
			if _, err := s.WrappedKey("acme", "enc-1"); !errors.Is(err, ErrNoKey) {
				t.Fatalf("key record after shred: %v", err)
			}
			if _, err := s.Open("acme", "enc-1", c, sealed); !errors.Is(err, ledger.ErrRedacted) {
				t.Fatalf("Open after shred: %v", err)
			}
		})
	}
}

func TestKeysPersist(t *testing.T) {
	kv := memstore.New()
	s, path := newSealer(t, kv)
	c := commitment("a")
	makeKeys(t, s, "acme/enc-1")
	sealed, _ := s.Seal("acme", "enc-1", c, []byte(secret))
	// A restart: a new keyring from the file, read-only, and a new Sealer.
	s2, _, err := OpenLocal(kv, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s2.Open("acme", "enc-1", c, sealed); err != nil || string(p) != secret {
		t.Fatalf("after restart: %q, %v", p, err)
	}
	if err := keysOf(s2).EnsureKey(context.Background(), "acme", "enc-new"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("read-only sealer made a key: %v", err)
	}
	if _, err := s2.Seal("new-tenant", "enc-1", c, []byte("x")); err == nil {
		t.Fatal("read-only sealer sealed for an unknown tenant")
	}
}

func TestKeyRecordBoundToItsEncounter(t *testing.T) {
	kv := memstore.New()
	s, _ := newSealer(t, kv)
	c := commitment("a")
	makeKeys(t, s, "acme/enc-1")
	if _, err := s.Seal("acme", "enc-1", c, []byte(secret)); err != nil {
		t.Fatal(err)
	}
	rec, _ := kv.Get(keyName("acme", "enc-1", kindDataKey))
	var b storage.Batch
	b.Set(keyName("acme", "enc-2", kindDataKey), rec)
	kv.Write(&b, true)
	if _, err := s.Seal("acme", "enc-2", c, []byte("x")); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("a key record copied to another encounter: %v, want ErrUnwrap", err)
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	kv := memstore.New()
	s, _ := newSealer(t, kv)
	c := commitment("a")
	var wg sync.WaitGroup
	sealed := make([][]byte, 32)
	errs := make([]error, 32)
	for i := range sealed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = keysOf(s).EnsureKey(context.Background(), "acme", fmt.Sprintf("enc-%d", i%4)); errs[i] == nil {
				sealed[i], errs[i] = s.Seal("acme", fmt.Sprintf("enc-%d", i%4), c, []byte(secret))
			}
		}()
	}
	wg.Wait()
	// A fresh Sealer opens everything with the one stored key per encounter.
	s2 := New(kv, s.kms, Options{})
	for i := range sealed {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if _, err := s2.Open("acme", fmt.Sprintf("enc-%d", i%4), c, sealed[i]); err != nil {
			t.Fatalf("seal %d: %v (two keys were made for one encounter)", i, err)
		}
	}
}

func TestShredRacesWithSealing(t *testing.T) {
	s, _ := newSealer(t, memstore.New())
	c := commitment("a")
	for round := 0; round < 20; round++ {
		enc := fmt.Sprintf("enc-%d", round)
		makeKeys(t, s, "acme/"+enc)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					s.Seal("acme", enc, c, []byte("x"))
				}
			}()
		}
		if _, err := keysOf(s).Shred(context.Background(), "acme", enc); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Seal("acme", enc, c, []byte("x")); !errors.Is(err, ledger.ErrRedacted) {
			t.Fatalf("round %d: Seal after Shred returned: %v", round, err)
		}
		close(stop)
		wg.Wait()
	}
}

func TestRotate(t *testing.T) {
	kv := memstore.New()
	path := filepath.Join(t.TempDir(), KeyringFile)
	kr, err := OpenKeyring(path, KeyringOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s := New(kv, kr, Options{})
	c := commitment("a")
	makeKeys(t, s, "acme/enc-1")
	old, _ := s.Seal("acme", "enc-1", c, []byte(secret))
	id, err := kr.Rotate("acme")
	if err != nil {
		t.Fatal(err)
	}
	makeKeys(t, s, "acme/enc-2")
	fresh, _ := s.Seal("acme", "enc-2", c, []byte(secret))
	rec, _ := kv.Get(keyName("acme", "enc-2", kindDataKey))
	if keyID, _, _ := decodeKeyRecord(rec); keyID != id {
		t.Fatalf("new encounter wrapped by %s, want the rotated key %s", keyID, id)
	}
	kr2, err := OpenKeyring(path, KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2 := New(kv, kr2, Options{ReadOnly: true})
	for name, v := range map[string][]byte{"before rotation": old, "after rotation": fresh} {
		enc := "enc-1"
		if name == "after rotation" {
			enc = "enc-2"
		}
		if _, err := s2.Open("acme", enc, c, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := len(kr2.Keys()); n != 2 {
		t.Fatalf("%d keys after one rotation, want 2", n)
	}
}

func TestKeyringFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyringFile)
	if _, err := OpenKeyring(path, KeyringOptions{}); err == nil {
		t.Fatal("a missing keyring opened without Create")
	}
	kr, err := OpenKeyring(path, KeyringOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := kr.Wrap(t.Context(), "acme", make([]byte, 32), nil); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode %#o, want 0600", st.Mode().Perm())
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		os.Chmod(path, mode)
		if _, err := OpenKeyring(path, KeyringOptions{}); err == nil || !strings.Contains(err.Error(), "0600") {
			t.Fatalf("mode %#o: %v, want a refusal", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	good, _ := os.ReadFile(path)
	var f keyringJSON
	json.Unmarshal(good, &f)
	key := f.Tenants["acme"].Keys[0].Key
	for name, content := range map[string]string{
		"not json":      "{",
		"unknown field": strings.Replace(string(good), `"format"`, `"extra": 1, "format"`, 1),
		"wrong format":  strings.Replace(string(good), keyringFormat, "evidence-keyring-v0", 1),
		"short key":     strings.Replace(string(good), key, base64.StdEncoding.EncodeToString(make([]byte, 16)), 1),
		"bad primary":   strings.Replace(string(good), `"primary": "kek-`, `"primary": "nope-`, 1),
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenKeyring(path, KeyringOptions{})
		if err == nil {
			t.Fatalf("%s: the keyring opened", name)
		}
		if strings.Contains(err.Error(), key) {
			t.Fatalf("%s: the error quotes key material: %v", name, err)
		}
	}
}

// TestFormatIndependently decrypts a stored payload with nothing but the
// standard library, the keyring file and the layout docs/formats.md gives:
// what an auditor (or a recovery tool) would do without this package.
func TestFormatIndependently(t *testing.T) {
	kv := memstore.New()
	s, path := newSealer(t, kv)
	c := commitment("a")
	makeKeys(t, s, "acme/enc-1")
	sealed, err := s.Seal("acme", "enc-1", c, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	// The keyring file: tenants.acme.keys[].key, standard base64.
	var f struct {
		Tenants map[string]struct {
			Keys []struct{ ID, Key string }
		}
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	keks := map[string][]byte{}
	for _, k := range f.Tenants["acme"].Keys {
		keks[k.ID], _ = base64.StdEncoding.DecodeString(k.Key)
	}
	gcm := func(key []byte) cipher.AEAD {
		b, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := cipher.NewGCM(b)
		return g
	}
	// The key record: 'k' tenant 0 encounter 0 'd' -> 0x01, len, KEK id,
	// nonce(12) || AES-GCM(KEK, DEK) with AAD "evidence/dek/v1" 0 tenant 0 encounter.
	rec, err := kv.Get([]byte("kacme\x00enc-1\x00d"))
	if err != nil {
		t.Fatal(err)
	}
	if rec[0] != 0x01 {
		t.Fatalf("record version %d", rec[0])
	}
	id := string(rec[2 : 2+rec[1]])
	wrapped := rec[2+rec[1]:]
	dek, err := gcm(keks[id]).Open(nil, wrapped[:12], wrapped[12:], []byte("evidence/dek/v1\x00acme\x00enc-1"))
	if err != nil {
		t.Fatalf("unwrap by hand: %v", err)
	}
	// The payload: 0x01, class 0x01, nonce(12), AES-GCM(DEK) with AAD
	// "evidence/payload/v1" 0 tenant 0 encounter 0 commitment || header.
	aad := append([]byte("evidence/payload/v1\x00acme\x00enc-1\x00"), c[:]...)
	aad = append(aad, sealed[:2]...)
	plain, err := gcm(dek).Open(nil, sealed[2:14], sealed[14:], aad)
	if err != nil || string(plain) != secret {
		t.Fatalf("decrypt by hand: %q, %v", plain, err)
	}
}

func FuzzOpen(f *testing.F) {
	kv := memstore.New()
	kr, err := OpenKeyring(filepath.Join(f.TempDir(), KeyringFile), KeyringOptions{Create: true})
	if err != nil {
		f.Fatal(err)
	}
	s := New(kv, kr, Options{})
	c := commitment("a")
	makeKeys(f, s, "acme/enc-1", "acme/")
	good, _ := s.Seal("acme", "enc-1", c, []byte(secret))
	audit, _ := s.SealKind(ledger.KindAccess, "acme", "enc-1", c, []byte("read"))
	f.Add(good)
	f.Add(audit)
	f.Add([]byte{})
	f.Add([]byte{1, 3, 0})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		p, err := s.Open("acme", "enc-1", c, sealed)
		if err == nil && !bytes.Equal(sealed, good) && !bytes.Equal(sealed, audit) {
			t.Fatalf("a forged ciphertext opened to %q", p)
		}
	})
}

// TestShredSeenByAnotherSealer: two sealers over one store, as two cluster
// members over their replicated stores. When one shreds an encounter, the
// other, which holds the data key in its cache, stops opening and sealing
// for it too once it observes the write (a cluster node applying it).
func TestShredSeenByAnotherSealer(t *testing.T) {
	kv := memstore.New()
	a, path := newSealer(t, kv)
	c := commitment("a")
	makeKeys(t, a, "acme/enc-1")
	sealed, err := a.Seal("acme", "enc-1", c, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	// The other member reads the keyring file that holds the tenant's key.
	b, _, err := OpenLocal(kv, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open("acme", "enc-1", c, sealed); err != nil { // b caches the key
		t.Fatal(err)
	}
	if _, err := keysOf(a).Shred(context.Background(), "acme", "enc-1"); err != nil {
		t.Fatal(err)
	}
	// The writes a replicated store applies on b's node.
	b.Observe(keyName("acme", "enc-1", kindShredded), false)
	b.Observe(keyName("acme", "other", kindDataKey), false) // not a destruction
	if _, err := b.Open("acme", "enc-1", c, sealed); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("Open on the other sealer after a shred: %v, want ErrRedacted", err)
	}
	if _, err := b.Seal("acme", "enc-1", c, []byte("more")); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("Seal on the other sealer after a shred: %v, want ErrRedacted", err)
	}
}
