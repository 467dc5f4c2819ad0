package envelope

import (
	"path/filepath"
	"testing"

	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

func benchSealer(b *testing.B) *Sealer {
	b.Helper()
	s, _, err := OpenLocal(memstore.New(), filepath.Join(b.TempDir(), KeyringFile), true)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkSeal seals 1 KiB payloads of one encounter (its data key cached).
func BenchmarkSeal(b *testing.B) {
	s := benchSealer(b)
	makeKeys(b, s, "acme/enc-1")
	p := make([]byte, 1024)
	c := commitment("a")
	b.SetBytes(int64(len(p)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.SealKind(ledger.KindSegment, "acme", "enc-1", c, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpen opens 1 KiB payloads of one encounter (its data key cached).
func BenchmarkOpen(b *testing.B) {
	s := benchSealer(b)
	makeKeys(b, s, "acme/enc-1")
	p := make([]byte, 1024)
	c := commitment("a")
	sealed, err := s.Seal("acme", "enc-1", c, p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Open("acme", "enc-1", c, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFirstUse is the cost of a new encounter's key: a data key
// made, wrapped by the keyring and written synced (memory store), before
// its first seal.
func BenchmarkFirstUse(b *testing.B) {
	s := benchSealer(b)
	c := commitment("a")
	for i := 0; b.Loop(); i++ {
		if err := keysOf(s).EnsureKey(b.Context(), "acme", "enc-"+itoa(i)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Seal("acme", "enc-"+itoa(i), c, []byte("x")); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}
