package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// EncounterHead returns the head of the published chain of an encounter,
// or an error wrapping ErrNotFound for an encounter with no entries. The
// heads of recently written encounters are answered from memory.
func (l *Log) EncounterHead(tenant, encounter string) (Head, error) {
	if err := checkEncounterID(tenant, encounter); err != nil {
		return Head{}, err
	}
	l.mu.RLock()
	h, ok := l.mu.heads[tenant+"\x00"+encounter]
	l.mu.RUnlock()
	if ok {
		return h, nil
	}
	data, err := l.store.Get(headKey(tenant, encounter))
	if errors.Is(err, storage.ErrNotFound) {
		return Head{}, fmt.Errorf("%w: encounter", ErrNotFound)
	}
	if err != nil {
		return Head{}, fmt.Errorf("ledger: read chain head: %w", err)
	}
	h, err = decodeHead(data)
	if err != nil {
		return Head{}, err
	}
	if h.Index >= l.Size() {
		// Written by a batch that is durable but not yet published.
		return l.publishedHead(tenant, encounter)
	}
	return h, nil
}

// publishedHead finds the last published entry of an encounter from the
// encounter index; it is used only in the short window between a batch's
// commit and its publication.
func (l *Log) publishedHead(tenant, encounter string) (Head, error) {
	idx, err := l.EncounterIndexes(tenant, encounter)
	if err != nil {
		return Head{}, err
	}
	if len(idx) == 0 {
		return Head{}, fmt.Errorf("%w: encounter", ErrNotFound)
	}
	last := idx[len(idx)-1]
	e, err := l.readEntry(last)
	if err != nil {
		return Head{}, err
	}
	return Head{Index: last, Hash: e.Hash, Count: uint64(len(idx))}, nil
}

func checkEncounterID(tenant, encounter string) error {
	if err := CheckID("tenant", tenant, MaxTenantLen); err != nil {
		return err
	}
	return CheckID("encounter", encounter, MaxEncounterLen)
}

// EncounterIndexes returns the leaf indexes of an encounter's entries in
// order, limited to the published tree.
func (l *Log) EncounterIndexes(tenant, encounter string) ([]int64, error) {
	return l.EncounterIndexesFrom(tenant, encounter, 0)
}

// EncounterIndexesFrom is EncounterIndexes limited to indexes >= from.
func (l *Log) EncounterIndexesFrom(tenant, encounter string, from int64) ([]int64, error) {
	if err := checkEncounterID(tenant, encounter); err != nil {
		return nil, err
	}
	size := l.Size()
	prefix := append(encounterName(prefixEncounter, tenant, encounter), 0)
	var out []int64
	err := l.store.Scan(encounterIndexKey(tenant, encounter, max(from, 0)), storage.PrefixEnd(prefix), func(k, _ []byte) error {
		if len(k) != len(prefix)+8 {
			return &CorruptionError{What: "chain", Index: -1, Detail: "malformed encounter index key"}
		}
		idx := int64(binary.BigEndian.Uint64(k[len(prefix):]))
		if idx < size {
			out = append(out, idx)
		}
		return nil
	})
	return out, err
}

// Encounters calls fn for each encounter of a tenant that has entries and
// an id greater than after, in order of encounter id, with the head of its
// chain.
func (l *Log) Encounters(tenant, after string, fn func(encounter string, h Head) error) error {
	if err := CheckID("tenant", tenant, MaxTenantLen); err != nil {
		return err
	}
	prefix := encounterName(prefixHead, tenant, "")
	start := prefix
	if after != "" {
		// The smallest key after the one for encounter "after".
		start = append(encounterName(prefixHead, tenant, after), 0)
	}
	size := l.Size()
	return l.store.Scan(start, storage.PrefixEnd(prefix), func(k, v []byte) error {
		h, err := decodeHead(v)
		if err != nil {
			return err
		}
		enc := string(k[len(prefix):])
		if h.Index >= size {
			if h, err = l.publishedHead(tenant, enc); errors.Is(err, ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
		}
		return fn(enc, h)
	})
}

// WalkEncounter reads an encounter's entries in chain order, checking each
// leaf against the tree and each link: the tenant and encounter match, Seq
// counts up from 0 and Prev is the previous entry's leaf hash. It calls fn
// for each entry and returns a *CorruptionError at the first broken link.
func (l *Log) WalkEncounter(tenant, encounter string, fn func(*StoredEntry) error) error {
	idx, err := l.EncounterIndexes(tenant, encounter)
	if err != nil {
		return err
	}
	if len(idx) == 0 {
		return fmt.Errorf("%w: encounter", ErrNotFound)
	}
	var prev Hash
	for i, x := range idx {
		e, err := l.readEntry(x)
		if err != nil {
			return err
		}
		broken := func(detail string) error {
			return &CorruptionError{What: "chain", Index: x, Detail: detail}
		}
		switch {
		case e.Leaf.Tenant != tenant || e.Leaf.Encounter != encounter:
			return broken("entry belongs to another encounter")
		case e.Leaf.Seq != uint64(i):
			return broken(fmt.Sprintf("entry has chain position %d, want %d", e.Leaf.Seq, i))
		case e.Leaf.Prev != prev:
			return &CorruptionError{What: "chain", Index: x, Detail: "previous-leaf hash does not match the previous entry", Expected: prev, Found: e.Leaf.Prev}
		}
		if err := fn(e); err != nil {
			return err
		}
		prev = e.Hash
	}
	return nil
}
