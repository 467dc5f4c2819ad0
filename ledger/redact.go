package ledger

import (
	"errors"
	"fmt"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// KindSealer is an optional extension of Sealer. When the Log's Sealer
// implements it, the log seals every payload with SealKind, which is also
// told the entry's kind, so that the sealer can choose a key by kind: the
// envelope sealer seals access and redaction payloads, which hold no PHI and
// must outlive a shredded encounter, under a tenant key rather than the
// encounter's. Open is not told the kind, so a payload sealed this way must
// name its key itself.
type KindSealer interface {
	Sealer
	SealKind(kind Kind, tenant, encounter string, commitment Hash, plaintext []byte) ([]byte, error)
}

// sealPayload seals one payload with s, through SealKind when s has it.
func sealPayload(s Sealer, kind Kind, tenant, encounter string, commitment Hash, plaintext []byte) ([]byte, error) {
	if ks, ok := s.(KindSealer); ok {
		return ks.SealKind(kind, tenant, encounter, commitment, plaintext)
	}
	return s.Seal(tenant, encounter, commitment, plaintext)
}

// Tombstones returns the writes that destroy stored payloads of an
// encounter: for every published entry of the encounter whose kind destroy
// reports true, the one-byte tombstone of docs/formats.md in place of its
// payload record (salt and sealed payload), and how many records they
// destroy. Records already destroyed are left out. Applying the batch (an
// Appender's or a replicated log's Write) touches no leaf, tree hash or
// checkpoint, so every proof stays valid. Reading a destroyed payload then
// returns an error wrapping ErrRedacted, and Verify counts it as redacted.
//
// A storage engine may keep the old records in its files until it compacts
// them. That is why payloads are sealed with an encounter key that is
// destroyed too (see Sealer): what remains is ciphertext nobody can open.
// Entries appended to the encounter after Tombstones read the chain are
// not covered; a caller stops writes first, for instance by destroying the
// encounter's key so that sealing fails.
func (l *Log) Tombstones(tenant, encounter string, destroy func(Kind) bool) (*storage.Batch, int, error) {
	if err := l.failure(); err != nil {
		return nil, 0, err
	}
	idx, err := l.EncounterIndexes(tenant, encounter)
	if err != nil {
		return nil, 0, err
	}
	if len(idx) == 0 {
		return nil, 0, fmt.Errorf("%w: encounter", ErrNotFound)
	}
	var b storage.Batch
	for _, x := range idx {
		e, err := l.readEntry(x)
		if err != nil {
			return nil, 0, err
		}
		if !destroy(e.Leaf.Kind) {
			continue
		}
		key := payloadKey(e.Leaf.Commitment)
		rec, err := l.store.Get(key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, 0, &CorruptionError{What: "payload", Index: x, Detail: "payload record is missing"}
		case err != nil:
			return nil, 0, fmt.Errorf("ledger: read payload: %w", err)
		case len(rec) == 1 && rec[0] == payloadRedacted:
			continue
		}
		b.Set(key, []byte{payloadRedacted})
	}
	return &b, b.Len(), nil
}

// Opening is an entry with its payload and the salt of its commitment: what
// a third party needs to check SHA-256(salt || payload) against the leaf,
// and so to check any claim about the payload without trusting the server.
type Opening struct {
	Entry   *StoredEntry
	Salt    []byte
	Payload []byte
}

// Opening returns entry index with its opened payload and salt, checked
// against the tree and the commitment. A destroyed payload returns an error
// wrapping ErrRedacted.
func (l *Log) Opening(index int64) (*Opening, error) {
	plain, e, err := l.Payload(index)
	if err != nil {
		return nil, err
	}
	rec, err := l.store.Get(payloadKey(e.Leaf.Commitment))
	if err != nil {
		return nil, fmt.Errorf("ledger: read payload: %w", err)
	}
	if len(rec) < 1+SaltSize || rec[0] != payloadPresent {
		// Destroyed between the two reads.
		return nil, fmt.Errorf("%w: entry %d", ErrRedacted, index)
	}
	salt := rec[1 : 1+SaltSize]
	if !checkCommitment(e.Leaf.Commitment, salt, plain) {
		return nil, &CorruptionError{What: "payload", Index: index, Detail: "payload does not match its commitment", Expected: e.Leaf.Commitment, Found: Commit(salt, plain)}
	}
	return &Opening{Entry: e, Salt: salt, Payload: plain}, nil
}
