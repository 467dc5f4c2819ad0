package cluster

import (
	"context"
	"errors"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// Store is a storage.Store whose writes go through the replicated log and
// whose reads are this node's. Give it to everything that writes the
// ledger's store beside the ledger itself: blobs (audio chunks and
// manifests) and the envelope sealer (wrapped data keys, shred markers).
//
// A Write returns once the write is committed and applied on this node, so
// a node reads its own writes. Sets of keys under 'k' (wrapped data keys
// and shred markers, docs/formats.md) are create-only: if another node
// created the same key first, the Write returns ErrConflict and leaves
// that node's key in place, which is then read back on retry. This keeps
// two nodes from sealing an encounter's first payloads under two different
// data keys. Store implements storage.Purger: a purge runs on every node.
type Store struct {
	n     *Node
	local storage.Store
}

// NewStore returns the replicated view of local, the ledger's store on n.
func NewStore(n *Node, local storage.Store) *Store { return &Store{n: n, local: local} }

// Get implements storage.Store from this node's state.
func (s *Store) Get(key []byte) ([]byte, error) { return s.local.Get(key) }

// Scan implements storage.Store from this node's state.
func (s *Store) Scan(start, end []byte, fn func(key, value []byte) error) error {
	return s.local.Scan(start, end, fn)
}

// Write implements storage.Store through the replicated log. The write is
// durable on a quorum's raft logs and on this node when it returns,
// whatever sync says.
func (s *Store) Write(b *storage.Batch, sync bool) error {
	if b.Len() == 0 {
		return nil
	}
	ops := make([]ledger.WriteOp, len(b.Ops))
	for i, op := range b.Ops {
		ops[i] = ledger.WriteOp{Key: op.Key, Value: op.Value, Delete: op.Delete,
			CreateOnly: !op.Delete && len(op.Key) > 0 && op.Key[0] == 'k'}
	}
	return s.n.command(context.Background(), encodeWrite(ops))
}

// Purge implements storage.Purger on every node.
func (s *Store) Purge(prefix []byte) error {
	if len(prefix) == 0 {
		return errors.New("cluster: an empty purge prefix")
	}
	return s.n.command(context.Background(), encodePurge(prefix))
}

// Close does nothing: the local store belongs to its opener.
func (s *Store) Close() error { return nil }

var (
	_ storage.Store  = (*Store)(nil)
	_ storage.Purger = (*Store)(nil)
)
