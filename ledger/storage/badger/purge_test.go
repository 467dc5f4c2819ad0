package badgerstore_test

import (
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage/storagetest"
)

func TestPurge(t *testing.T) {
	storagetest.RunPurge(t, open)
}
