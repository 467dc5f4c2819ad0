package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/ledger/storage"
	"github.com/evidenceledger/evidence/ledger/tree"
)

// Payload record states: the first byte of a stored payload record.
const (
	payloadRedacted = 0x00 // a tombstone: the payload was destroyed
	payloadPresent  = 0x01 // followed by salt(32) || sealed payload
)

// tileView is a tile as readers see it: the stored form read in place, or
// the unstored partial bottom tile.
type tileView interface {
	Width() int
	Hash(row, pos int) (Hash, bool)
	Bottom(w int) []byte
}

// tile reads a published tile. Its hashes are not checked against each
// other here: every proof is checked against the signed root before it is
// served and every leaf against its row-0 hash, which catches a corrupt
// hash wherever it is used.
func (l *Log) tile(id tileID) (tileView, error) {
	if id.L == 0 {
		l.mu.RLock()
		p, size := l.mu.partial, l.mu.cp.Size
		l.mu.RUnlock()
		if p != nil && id.N == size/TileWidth {
			return p, nil
		}
	}
	if t := l.cache.get(id); t != nil {
		return t, nil
	}
	data, err := l.store.Get(tileKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d is missing", id.L, id.N)}
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read tile: %w", err)
	}
	t, err := parseTile(id, data)
	if err != nil {
		return nil, err
	}
	if t.Width() == TileWidth {
		l.cache.put(id, t)
	}
	return t, nil
}

// hash reads one published node hash.
func (l *Log) hash(level int, n int64) (Hash, error) {
	id, row, pos := tree.Locate(level, n)
	t, err := l.tile(id)
	if err != nil {
		return Hash{}, err
	}
	h, ok := t.Hash(row, pos)
	if !ok {
		return Hash{}, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d lacks node %d of level %d", id.L, id.N, n, level)}
	}
	return h, nil
}

// storedHashes reads published tree hashes for tlog's proofs: it
// implements tlog.HashReader.
type storedHashes struct{ log *Log }

// ReadHashes implements tlog.HashReader.
func (r storedHashes) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	var last tileView
	var lastID tileID
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		id, row, pos := tree.Locate(level, n)
		if last == nil || id != lastID {
			t, err := r.log.tile(id)
			if err != nil {
				return nil, err
			}
			last, lastID = t, id
		}
		h, ok := last.Hash(row, pos)
		if !ok {
			return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d lacks node %d of level %d", id.L, id.N, n, level)}
		}
		out[i] = h
	}
	return out, nil
}

// StoredEntry is one entry as read back from the log.
type StoredEntry struct {
	Index int64
	Data  []byte // the leaf data, exactly as hashed
	Hash  Hash   // RFC 6962 leaf hash of Data
	Leaf  *Leaf
}

// Entry returns entry index, after checking that its stored leaf data still
// hashes to the leaf hash in the tree. An index at or beyond the published
// size returns an error wrapping ErrNotFound.
func (l *Log) Entry(index int64) (*StoredEntry, error) {
	size := l.Size()
	if index < 0 || index >= size {
		return nil, fmt.Errorf("%w: index %d is not in the log of size %d", ErrNotFound, index, size)
	}
	return l.readEntry(index)
}

func (l *Log) readEntry(index int64) (*StoredEntry, error) {
	data, err := l.store.Get(leafKey(index))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &CorruptionError{What: "leaf", Index: index, Detail: "leaf data is missing"}
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read leaf: %w", err)
	}
	return l.checkEntry(index, data)
}

// checkEntry verifies leaf data read from storage against the tree.
func (l *Log) checkEntry(index int64, data []byte) (*StoredEntry, error) {
	want, err := l.hash(0, index)
	if err != nil {
		return nil, err
	}
	got := tlog.RecordHash(data)
	if got != want {
		return nil, &CorruptionError{What: "leaf", Index: index, Detail: "leaf data does not hash to the tree's leaf hash", Expected: want, Found: got}
	}
	leaf, err := DecodeLeaf(data)
	if err != nil {
		return nil, &CorruptionError{What: "leaf", Index: index, Detail: err.Error()}
	}
	return &StoredEntry{Index: index, Data: data, Hash: got, Leaf: leaf}, nil
}

// Payload returns the payload of entry index, opened by the Sealer and
// checked against the leaf's commitment. A destroyed payload returns an error
// wrapping ErrRedacted.
func (l *Log) Payload(index int64) ([]byte, *StoredEntry, error) {
	e, err := l.Entry(index)
	if err != nil {
		return nil, nil, err
	}
	p, err := l.payload(e)
	return p, e, err
}

func (l *Log) payload(e *StoredEntry) ([]byte, error) {
	rec, err := l.store.Get(payloadKey(e.Leaf.Commitment))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &CorruptionError{What: "payload", Index: e.Index, Detail: "payload record is missing"}
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read payload: %w", err)
	}
	if len(rec) == 1 && rec[0] == payloadRedacted {
		return nil, fmt.Errorf("%w: entry %d", ErrRedacted, e.Index)
	}
	if len(rec) < 1+SaltSize || rec[0] != payloadPresent {
		return nil, &CorruptionError{What: "payload", Index: e.Index, Detail: "payload record is malformed"}
	}
	salt, sealed := rec[1:1+SaltSize], rec[1+SaltSize:]
	plain, err := l.opts.Sealer.Open(e.Leaf.Tenant, e.Leaf.Encounter, e.Leaf.Commitment, sealed)
	if errors.Is(err, ErrRedacted) {
		return nil, fmt.Errorf("%w: entry %d", ErrRedacted, e.Index)
	}
	if err != nil {
		return nil, &CorruptionError{What: "payload", Index: e.Index, Detail: "payload does not open: " + err.Error()}
	}
	if !checkCommitment(e.Leaf.Commitment, salt, plain) {
		return nil, &CorruptionError{What: "payload", Index: e.Index, Detail: "payload does not match its commitment", Expected: e.Leaf.Commitment, Found: Commit(salt, plain)}
	}
	return plain, nil
}

// rootAt returns the root hash of the tree of the given size, which must
// not exceed the published size. For the published size it is the signed
// root; for an earlier size it is computed from the tiles and proved
// consistent with the signed root, so corrupt tiles cannot yield a root.
func (l *Log) rootAt(size int64, cp *Checkpoint) (Hash, error) {
	if size == cp.Size {
		return cp.Root, nil
	}
	if size == 0 {
		return emptyRoot, nil
	}
	root, err := tlog.TreeHash(size, storedHashes{l})
	if err != nil {
		return Hash{}, err
	}
	p, err := tlog.ProveTree(cp.Size, size, storedHashes{l})
	if err != nil {
		return Hash{}, err
	}
	if err := tlog.CheckTree(p, cp.Size, cp.Root, size, root); err != nil {
		return Hash{}, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tree of size %d is not consistent with the signed tree of size %d", size, cp.Size)}
	}
	return root, nil
}

func (l *Log) checkSize(size int64) (*Checkpoint, error) {
	cp := l.Checkpoint()
	if size < 0 {
		return nil, &InvalidError{Field: "tree_size", Reason: "must not be negative"}
	}
	if size > cp.Size {
		return nil, fmt.Errorf("%w: tree size %d requested, the log has %d entries", ErrBeyondTree, size, cp.Size)
	}
	return cp, nil
}

// InclusionProof returns the RFC 6962 inclusion proof of entry index in the
// tree of the given size. The proof is checked against the signed root
// before it is returned; a failure is a *CorruptionError.
func (l *Log) InclusionProof(index, size int64) ([]Hash, error) {
	cp, err := l.checkSize(size)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= size {
		return nil, &InvalidError{Field: "index", Reason: fmt.Sprintf("index %d is not in a tree of size %d", index, size)}
	}
	p, err := tlog.ProveRecord(size, index, storedHashes{l})
	if err != nil {
		return nil, err
	}
	root, err := l.rootAt(size, cp)
	if err != nil {
		return nil, err
	}
	leaf, err := l.hash(0, index)
	if err != nil {
		return nil, err
	}
	if err := tlog.CheckRecord(p, size, root, index, leaf); err != nil {
		return nil, &CorruptionError{What: "tile", Index: index, Detail: "inclusion proof does not verify against the signed root"}
	}
	return p, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of sizes older and newer (older <= newer), checked before it is returned.
// It is empty when older is 0 or equals newer.
func (l *Log) ConsistencyProof(older, newer int64) ([]Hash, error) {
	cp, err := l.checkSize(newer)
	if err != nil {
		return nil, err
	}
	if older < 0 || older > newer {
		return nil, &InvalidError{Field: "from_size", Reason: fmt.Sprintf("must be between 0 and %d", newer)}
	}
	if older == 0 || older == newer {
		return []Hash{}, nil
	}
	p, err := tlog.ProveTree(newer, older, storedHashes{l})
	if err != nil {
		return nil, err
	}
	newRoot, err := l.rootAt(newer, cp)
	if err != nil {
		return nil, err
	}
	oldRoot, err := tlog.TreeHash(older, storedHashes{l})
	if err != nil {
		return nil, err
	}
	if err := tlog.CheckTree(p, newer, newRoot, older, oldRoot); err != nil {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("consistency proof %d to %d does not verify", older, newer)}
	}
	return p, nil
}

// RootAt returns the root hash of the tree of the given size.
func (l *Log) RootAt(size int64) (Hash, error) {
	cp, err := l.checkSize(size)
	if err != nil {
		return Hash{}, err
	}
	return l.rootAt(size, cp)
}

// Tile returns the C2SP tlog-tiles hash tile at level L, index n, with the
// first w hashes (w = 256 for a full tile). It is available once the
// published tree holds every hash in it.
func (l *Log) Tile(level int, n int64, w int) ([]byte, error) {
	if level < 0 || level > 63/TileHeight || n < 0 || w < 1 || w > TileWidth {
		return nil, &InvalidError{Field: "tile", Reason: "level, index or width out of range"}
	}
	nodes := l.Size() >> (TileHeight * level)
	if n > nodes/TileWidth || n*TileWidth+int64(w) > nodes {
		return nil, fmt.Errorf("%w: tile %d/%d.p/%d is beyond the tree", ErrNotFound, level, n, w)
	}
	t, err := l.tile(tileID{L: level, N: n})
	if err != nil {
		return nil, err
	}
	if t.Width() < w {
		return nil, &CorruptionError{What: "tile", Index: -1, Detail: fmt.Sprintf("tile %d/%d has width %d, want at least %d", level, n, t.Width(), w)}
	}
	return t.Bottom(w), nil
}

// EntryBundle returns the C2SP tlog-tiles entry bundle n holding w entries:
// each leaf's data prefixed by its length as a big-endian uint16. Each leaf
// is checked against the tree.
func (l *Log) EntryBundle(n int64, w int) ([]byte, error) {
	if n < 0 || w < 1 || w > TileWidth {
		return nil, &InvalidError{Field: "bundle", Reason: "index or width out of range"}
	}
	first := n * TileWidth
	if n > l.Size()/TileWidth || first+int64(w) > l.Size() {
		return nil, fmt.Errorf("%w: entry bundle %d.p/%d is beyond the tree", ErrNotFound, n, w)
	}
	var out []byte
	next := first
	err := l.store.Scan(leafKey(first), leafKey(first+int64(w)), func(k, v []byte) error {
		idx := int64(binary.BigEndian.Uint64(k[1:]))
		if idx != next {
			return &CorruptionError{What: "leaf", Index: next, Detail: "leaf data is missing"}
		}
		e, err := l.checkEntry(idx, bytes.Clone(v))
		if err != nil {
			return err
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e.Data)))
		out = append(out, e.Data...)
		next++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != first+int64(w) {
		return nil, &CorruptionError{What: "leaf", Index: next, Detail: "leaf data is missing"}
	}
	return out, nil
}

// Checkpoints calls fn with every stored signed checkpoint, oldest first.
// One is stored per group commit.
func (l *Log) Checkpoints(fn func(size int64, note []byte) error) error {
	limit := l.Size()
	return l.store.Scan([]byte{prefixCheckpoint}, []byte{prefixCheckpoint + 1}, func(k, v []byte) error {
		if len(k) != 9 {
			return &CorruptionError{What: "checkpoint", Index: -1, Detail: "malformed checkpoint key"}
		}
		size := int64(binary.BigEndian.Uint64(k[1:]))
		if size > limit {
			return nil
		}
		return fn(size, bytes.Clone(v))
	})
}
