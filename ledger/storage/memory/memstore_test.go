package memstore_test

import (
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/ledger/storage/storagetest"
)

func open(testing.TB, string) storage.Store { return memstore.New() }

func TestConformance(t *testing.T) {
	storagetest.Run(t, open, storagetest.Options{Volatile: true})
}

// TestScanReusesBuffers pins down the property that makes memstore catch
// callers who keep Scan's slices: the next pair overwrites them.
func TestScanReusesBuffers(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	var b storage.Batch
	b.Set([]byte("k1"), []byte("v1"))
	b.Set([]byte("k2"), []byte("v2"))
	if err := s.Write(&b, false); err != nil {
		t.Fatal(err)
	}
	var firstKey, firstValue []byte
	err := s.Scan(nil, nil, func(k, v []byte) error {
		if firstKey == nil {
			firstKey, firstValue = k, v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(firstKey) != "k2" || string(firstValue) != "v2" {
		t.Errorf("kept slices read %q=%q after the scan, want them overwritten with k2=v2", firstKey, firstValue)
	}
}

func BenchmarkWriteSync(b *testing.B) {
	storagetest.BenchWriteSync(b, open)
}
