package ledger

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// kindSealer marks each sealed payload with its kind's byte and a key
// label, and can forget an encounter's key, the way the envelope sealer does.
type kindSealer struct {
	mu        sync.Mutex
	destroyed map[string]bool
	kinds     []Kind
}

func (s *kindSealer) Seal(tenant, encounter string, c Hash, p []byte) ([]byte, error) {
	panic("Seal called on a KindSealer")
}

func (s *kindSealer) SealKind(k Kind, tenant, encounter string, c Hash, p []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kinds = append(s.kinds, k)
	label := byte('e') // the encounter's key
	if k == KindAccess || k == KindRedaction {
		label = 'a' // the tenant's audit key
	} else if s.destroyed[tenant+"/"+encounter] {
		return nil, ErrRedacted
	}
	return append([]byte{label}, p...), nil
}

func (s *kindSealer) Open(tenant, encounter string, c Hash, sealed []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(sealed) == 0 {
		return nil, errors.New("empty")
	}
	if sealed[0] == 'e' && s.destroyed[tenant+"/"+encounter] {
		return nil, ErrRedacted
	}
	return sealed[1:], nil
}

func TestRedactPayloads(t *testing.T) {
	eachStore(t, func(t *testing.T, s storage.Store, reopen func() storage.Store) {
		k := testKey(t)
		seal := &kindSealer{destroyed: map[string]bool{}}
		l, err := Open(s, Options{Origin: testOrigin, Key: k, Sealer: seal})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		entry := func(kind Kind, enc, payload string) Entry {
			return Entry{Kind: kind, Tenant: "tenant-a", Encounter: enc, Actor: "someone", Payload: []byte(payload)}
		}
		mustAppend(t, l,
			entry(KindEncounter, "e1", "opened"),
			entry(KindSegment, "e1", "chest pain since tuesday"),
			entry(KindSegment, "e2", "another visit"),
			entry(KindAccess, "e1", "read by dr.a"),
			entry(KindModelOutput, "e1", "note text"),
		)
		if want := []Kind{KindEncounter, KindSegment, KindSegment, KindAccess, KindModelOutput}; !equalKinds(seal.kinds, want) {
			t.Fatalf("SealKind saw kinds %v, want %v", seal.kinds, want)
		}
		op, err := l.Opening(1)
		if err != nil {
			t.Fatal(err)
		}
		if string(op.Payload) != "chest pain since tuesday" || Commit(op.Salt, op.Payload) != op.Entry.Leaf.Commitment {
			t.Fatalf("opening of entry 1 does not match its commitment")
		}

		phi := func(k Kind) bool { return k != KindAccess && k != KindRedaction }
		seal.mu.Lock()
		seal.destroyed["tenant-a/e1"] = true
		seal.mu.Unlock()
		n, err := redactPayloads(t, l, "tenant-a", "e1", phi)
		if err != nil || n != 3 {
			t.Fatalf("RedactPayloads = %d, %v; want 3 records", n, err)
		}
		// Sealing under the destroyed key now fails; audit entries still work.
		if _, err := l.Append(context.Background(), []Entry{entry(KindSegment, "e1", "late")}); !errors.Is(err, ErrRedacted) {
			t.Fatalf("append after shredding: %v, want ErrRedacted", err)
		}
		a := mustAppend(t, l, entry(KindRedaction, "e1", "reason: request"))
		for _, x := range []int64{0, 1, 4} {
			if _, _, err := l.Payload(x); !errors.Is(err, ErrRedacted) {
				t.Fatalf("payload %d after redaction: %v, want ErrRedacted", x, err)
			}
			if _, err := l.Opening(x); !errors.Is(err, ErrRedacted) {
				t.Fatalf("opening %d after redaction: %v, want ErrRedacted", x, err)
			}
		}
		for x, want := range map[int64]string{2: "another visit", 3: "read by dr.a", a.First: "reason: request"} {
			if p, _, err := l.Payload(x); err != nil || string(p) != want {
				t.Fatalf("payload %d = %q, %v; want %q", x, p, err, want)
			}
		}
		// Every proof still verifies against the signed root.
		cp := l.Checkpoint()
		for x := int64(0); x < cp.Size; x++ {
			e, err := l.Entry(x)
			if err != nil {
				t.Fatal(err)
			}
			p, err := l.InclusionProof(x, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(x), uint64(cp.Size), e.Hash[:], toBytes(p), cp.Root[:]); err != nil {
				t.Fatalf("inclusion of %d after redaction: %v", x, err)
			}
		}
		// Again: nothing left to destroy.
		if n, err := redactPayloads(t, l, "tenant-a", "e1", phi); err != nil || n != 0 {
			t.Fatalf("second RedactPayloads = %d, %v; want 0", n, err)
		}
		if _, err := redactPayloads(t, l, "tenant-a", "nope", phi); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown encounter: %v", err)
		}
		l.Close()
		rep, err := Verify(context.Background(), reopen(), VerifyOptions{Origin: testOrigin, Verifier: k.Verifier(), Sealer: seal})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 0 || rep.Redacted != 3 || rep.Payloads != 3 {
			t.Fatalf("verify after redaction: %d payloads, %d redacted, problems %v; want 3, 3, none", rep.Payloads, rep.Redacted, rep.Problems)
		}
	})
}

func TestOpeningDetectsTamperedSalt(t *testing.T) {
	eachStore(t, func(t *testing.T, s storage.Store, _ func() storage.Store) {
		l := openTestLog(t, s, testKey(t))
		a := mustAppend(t, l, segment("e1", "hello"))
		e, err := l.Entry(a.First)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := s.Get(payloadKey(e.Leaf.Commitment))
		if err != nil {
			t.Fatal(err)
		}
		rec = bytes.Clone(rec)
		rec[1] ^= 1
		var b storage.Batch
		b.Set(payloadKey(e.Leaf.Commitment), rec)
		if err := s.Write(&b, true); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Opening(a.First); !IsCorruption(err) {
			t.Fatalf("opening with a flipped salt bit: %v, want a corruption error", err)
		}
	})
}

func equalKinds(a, b []Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// redactPayloads writes an encounter's tombstones through the Appender, as
// the encounter service does when it shreds.
func redactPayloads(t *testing.T, l *Appender, tenant, encounter string, destroy func(Kind) bool) (int, error) {
	t.Helper()
	b, n, err := l.Tombstones(tenant, encounter, destroy)
	if err != nil || n == 0 {
		return n, err
	}
	return n, l.Write(context.Background(), b)
}
