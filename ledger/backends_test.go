package ledger

import (
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	// badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// diskBackends opens the persistent storage backends by name.
var diskBackends = map[string]func(dir string) (storage.Store, error){
	"pebble": func(dir string) (storage.Store, error) { return pebblestore.Open(dir, pebblestore.Options{}) },
	// "badger": func(dir string) (storage.Store, error) { return badgerstore.Open(dir, badgerstore.Options{}) },
}

func openBackend(t testing.TB, name, dir string) storage.Store {
	t.Helper()
	s, err := diskBackends[name](dir)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return s
}
