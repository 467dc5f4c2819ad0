package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

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
