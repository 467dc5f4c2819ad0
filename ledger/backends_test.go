package ledger

import (
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// diskBackends opens the persistent storage backends by name.
var diskBackends = map[string]func(dir string) (storage.Store, error){
	"pebble": func(dir string) (storage.Store, error) { return pebblestore.Open(dir, pebblestore.Options{}) },
	"badger": func(dir string) (storage.Store, error) { return badgerstore.Open(dir, badgerstore.Options{}) },
}

func openBackend(t testing.TB, name, dir string) storage.Store {
	t.Helper()
	s, err := diskBackends[name](dir)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return s
}

// eachStore runs f once per storage backend: in memory, pebble and badger.
// reopen returns the same store's data after the previous one is closed
// (for memstore, the same store).
func eachStore(t *testing.T, f func(t *testing.T, s storage.Store, reopen func() storage.Store)) {
	t.Run("memory", func(t *testing.T) {
		s := memstore.New()
		f(t, s, func() storage.Store { return s })
	})
	for _, name := range []string{"pebble", "badger"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			var cur storage.Store = openBackend(t, name, dir)
			t.Cleanup(func() { cur.Close() })
			f(t, cur, func() storage.Store {
				cur.Close()
				cur = openBackend(t, name, dir)
				return cur
			})
		})
	}
}
