package badgerstore

import (
	"errors"
	"fmt"

	"github.com/evidenceledger/evidence/ledger/storage"
)

var _ storage.Purger = (*Store)(nil)

// Purge implements storage.Purger with Badger's DropPrefix, which blocks
// writes, flushes the memtables without the prefix's keys (their WAL files
// are deleted once flushed), and compacts every table holding the prefix
// without it. DropPrefix does nothing when no live key has the prefix, so
// Purge first writes one, which makes it also erase versions left by earlier
// deletes. Values of 1 MiB or more live in the value log, which Purge does
// not rewrite: purge only small values (such as wrapped keys).
//
// Writes wait while Purge runs; a WriteAsync batch queued before it is
// written first.
func (s *Store) Purge(prefix []byte) error {
	if len(prefix) == 0 {
		return errors.New("badgerstore: purge: empty prefix")
	}
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()

	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := txn.Set(prefix, []byte{0}); err != nil {
		return fmt.Errorf("badgerstore: purge: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("badgerstore: purge: %w", err)
	}
	if err := s.db.DropPrefix(prefix); err != nil {
		return fmt.Errorf("badgerstore: purge: %w", err)
	}
	return nil
}
