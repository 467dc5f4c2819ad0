package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/evidenceledger/evidence/ledger/storage"
)

var _ storage.Purger = (*Store)(nil)

// purgeTimeout bounds how long Purge waits for the files it made obsolete
// to be deleted; an iterator left open can keep a table alive.
const purgeTimeout = 30 * time.Second

// Purge implements storage.Purger. It deletes the prefix's range with a
// synced range deletion, flushes the memtable (so that the write-ahead log
// holding the old values becomes obsolete), compacts the range through every
// level (which drops the deleted values), and waits until Pebble has deleted
// the obsolete WAL and table files.
//
// Two settings in Open make this hold. WAL files are never recycled (a
// recycled WAL is overwritten from its start and keeps old records in its
// tail), and obsolete files are deleted rather than archived. Values of 256
// bytes or more are kept apart in blob files that compactions do not
// rewrite, so Purge guarantees nothing for them: purge only small values
// (such as wrapped keys), or values that are ciphertext anyway.
func (s *Store) Purge(prefix []byte) error {
	if len(prefix) == 0 {
		return errors.New("pebblestore: purge: empty prefix")
	}
	if !s.begin() {
		return storage.ErrClosed
	}
	defer s.calls.Done()

	end := storage.PrefixEnd(prefix)
	if end == nil {
		return errors.New("pebblestore: purge: the prefix has no upper bound")
	}
	if err := s.db.DeleteRange(prefix, end, pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: purge: %w", err)
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("pebblestore: purge: flush: %w", err)
	}
	if err := s.db.Compact(context.Background(), prefix, end, false); err != nil {
		return fmt.Errorf("pebblestore: purge: compact: %w", err)
	}
	deadline := time.Now().Add(purgeTimeout)
	for {
		m := s.db.Metrics()
		if m.WAL.ObsoleteFiles == 0 && m.Table.ObsoleteCount == 0 && m.Table.ZombieCount == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pebblestore: purge: %d obsolete WAL files, %d obsolete and %d zombie tables still on disk after %v",
				m.WAL.ObsoleteFiles, m.Table.ObsoleteCount, m.Table.ZombieCount, purgeTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deletingCleaner deletes obsolete files, as pebble.DeleteCleaner does (its
// Clean is promoted from the shallower embedding), and has
// pebble.ArchiveCleaner's marker method for "needs the file contents":
// Pebble recycles WAL files unless its cleaner has that marker, and a
// recycled WAL keeps old records in its tail, which Purge must not leave
// behind.
type deletingCleaner struct {
	pebble.DeleteCleaner
	archiveMarker
}

type archiveMarker struct {
	pebble.ArchiveCleaner
}
