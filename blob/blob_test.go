package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// scopedSealer XORs chunks with a byte derived from the scope and checks
// that every chunk is opened with the scope and key it was sealed with.
type scopedSealer struct {
	t *testing.T
}

func mask(sc Scope) byte { return byte(len(sc.Tenant)*31+len(sc.Encounter)) | 1 }

func (s scopedSealer) SealChunk(sc Scope, aad, p []byte) ([]byte, error) {
	out := append(append([]byte{}, aad...), 0)
	for _, b := range p {
		out = append(out, b^mask(sc))
	}
	return out, nil
}

func (s scopedSealer) OpenChunk(sc Scope, aad, sealed []byte) ([]byte, error) {
	if !bytes.HasPrefix(sealed, append(append([]byte{}, aad...), 0)) {
		return nil, errors.New("chunk opened under another key")
	}
	sealed = sealed[len(aad)+1:]
	out := make([]byte, len(sealed))
	for i, b := range sealed {
		out[i] = b ^ mask(sc)
	}
	return out, nil
}

func TestScopes(t *testing.T) {
	kv := memstore.New()
	s := New(kv, scopedSealer{t})
	ctx := context.Background()
	data := make([]byte, 3*ChunkSize+100)
	rand.Read(data)
	a := Scope{Tenant: "acme", Encounter: "enc-1"}
	b := Scope{Tenant: "acme", Encounter: "enc-22"}
	ha, n, err := s.Put(ctx, a, bytes.NewReader(data), 1<<30)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put = %v, %d, %v", ha, n, err)
	}
	// The same content in another scope is stored again, under its own key.
	hb, _, err := s.Put(ctx, b, bytes.NewReader(data), 1<<30)
	if err != nil || hb != ha {
		t.Fatalf("Put in scope b = %v, %v", hb, err)
	}
	// Again in a: deduplicated.
	if _, _, err := s.Put(ctx, a, bytes.NewReader(data), 1<<30); err != nil {
		t.Fatal(err)
	}
	chunks := func() int {
		n := 0
		kv.Scan([]byte{prefixChunk}, []byte{prefixChunk + 1}, func(_, _ []byte) error { n++; return nil })
		return n
	}
	if got := chunks(); got != 8 {
		t.Fatalf("%d chunks stored, want 8 (4 per scope, none for the duplicate)", got)
	}
	for _, sc := range []Scope{a, b} {
		bl, err := s.Open(sc, ha)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(bl, 0, bl.Size()))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("scope %v: read %d bytes, %v", sc, len(got), err)
		}
		if err := bl.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Open(Scope{Tenant: "other", Encounter: "enc-1"}, ha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another tenant opens the blob: %v", err)
	}

	n2, err := s.DeleteScope(a)
	if err != nil || n2 != 1 {
		t.Fatalf("DeleteScope = %d, %v", n2, err)
	}
	if _, err := s.Open(a, ha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted blob opens: %v", err)
	}
	if got := chunks(); got != 4 {
		t.Fatalf("%d chunks after deleting scope a, want scope b's 4", got)
	}
	bl, err := s.Open(b, hb)
	if err != nil {
		t.Fatal(err)
	}
	if err := bl.Verify(); err != nil {
		t.Fatalf("scope b after deleting a: %v", err)
	}
	if n, err := s.DeleteScope(a); err != nil || n != 0 {
		t.Fatalf("second DeleteScope = %d, %v", n, err)
	}
}

func TestInvalidScope(t *testing.T) {
	s := New(memstore.New(), nil)
	for _, sc := range []Scope{{}, {Tenant: "a"}, {Encounter: "e"}, {Tenant: "a\x00b", Encounter: "e"}} {
		if _, _, err := s.Put(context.Background(), sc, bytes.NewReader([]byte("x")), 10); err == nil {
			t.Fatalf("Put in scope %q succeeded", sc)
		}
	}
}

// TestCheck reads back every stored blob: intact ones pass, one with a
// changed chunk and one with a missing chunk are reported, each by its
// scope and hash.
func TestCheck(t *testing.T) {
	kv := memstore.New()
	s := New(kv, scopedSealer{t})
	ctx := context.Background()
	scopes := []Scope{{Tenant: "acme", Encounter: "enc-1"}, {Tenant: "acme", Encounter: "enc-2"}, {Tenant: "beta", Encounter: "enc-1"}}
	var hashes []Hash
	for _, sc := range scopes {
		data := make([]byte, 2*ChunkSize+7)
		rand.Read(data)
		h, _, err := s.Put(ctx, sc, bytes.NewReader(data), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	n, problems, err := s.Check()
	if err != nil || n != 3 || len(problems) != 0 {
		t.Fatalf("Check of intact blobs = %d, %v, %v", n, problems, err)
	}
	chunkOf := func(i int, chunk uint32) []byte {
		b, err := s.Open(scopes[i], hashes[i])
		if err != nil {
			t.Fatal(err)
		}
		return chunkKey(b.m.upload, chunk)
	}
	// A flipped bit in the second blob's last chunk, the third blob's
	// first chunk gone.
	k := chunkOf(1, 2)
	v, err := kv.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	v[len(v)-1] ^= 0x04
	var b storage.Batch
	b.Set(k, v)
	b.Delete(chunkOf(2, 0))
	if err := kv.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	n, problems, err = s.Check()
	if err != nil || n != 3 || len(problems) != 2 {
		t.Fatalf("Check after damage = %d, %v, %v; want 3 checked, 2 problems", n, problems, err)
	}
	for i, p := range problems {
		if p.Scope != scopes[i+1] || p.Hash != hashes[i+1] || p.Err == nil {
			t.Errorf("problem %d: %+v, want blob %d of scope %v", i, p, i+1, scopes[i+1])
		}
	}
}
