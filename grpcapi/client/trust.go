package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/witness"
)

// trust is a log's trust state: its verifier and the latest checkpoint
// verified, optionally kept in a state file. A Client has one; the
// Clients of a Cluster share one, so that every node's answers are
// checked against one history: a checkpoint from any node must be signed
// with the same key and be consistent with the latest one trusted,
// whichever node served that.
type trust struct {
	pinnedKey string // Options.VerifierKey
	statePath string // Options.StatePath
	// policy, when set, is the cosignatures every trusted checkpoint
	// needs (Options.Witnesses).
	policy *witness.Policy

	mu struct {
		sync.Mutex
		state *State
		v     note.Verifier
		vkey  string
		// src is the ledger of the node that served the trusted
		// checkpoint: it can prove an older checkpoint consistent with
		// it.
		src pb.LedgerServiceClient
	}
}

// newTrust returns the trust state of opts, read from its state file if
// there is one.
func newTrust(opts Options) (*trust, error) {
	t := &trust{pinnedKey: opts.VerifierKey, statePath: opts.StatePath}
	if len(opts.Witnesses) > 0 {
		p, err := witness.NewPolicy(opts.Witnesses, opts.WitnessQuorum)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		t.policy = p
	}
	if opts.StatePath == "" {
		return t, nil
	}
	b, err := os.ReadFile(opts.StatePath)
	switch {
	case err == nil:
		var st State
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("client: state file %s: %w", opts.StatePath, err)
		}
		t.mu.state = &st
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("client: %w", err)
	}
	return t, nil
}

// trusted returns the latest trusted state, or nil.
func (t *trust) trusted() *State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.state
}

// verifier returns the log's checkpoint verifier, establishing it on first
// use: the pinned key, else the state file's, else the one l reports.
func (t *trust) verifier(ctx context.Context, l pb.LedgerServiceClient) (note.Verifier, error) {
	t.mu.Lock()
	v, st := t.mu.v, t.mu.state
	t.mu.Unlock()
	if v != nil {
		return v, nil
	}
	vkey := t.pinnedKey
	if vkey == "" && st != nil {
		vkey = st.VerifierKey
	}
	if vkey == "" {
		info, err := l.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
		if err != nil {
			return nil, err
		}
		vkey = info.GetVerifierKey()
	}
	if st != nil && st.VerifierKey != "" && st.VerifierKey != vkey {
		return nil, &VerificationError{What: "the pinned verifier key differs from the one in the state file"}
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, &VerificationError{What: "malformed verifier key: " + err.Error()}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.mu.v == nil:
		t.mu.v, t.mu.vkey = v, vkey
	case t.mu.vkey != vkey:
		// Two nodes, asked at once on first use, named different keys.
		return nil, &VerificationError{What: "nodes report different verifier keys"}
	}
	return t.mu.v, nil
}

// verify checks a signed checkpoint served by node and its consistency
// with the trusted state, and advances the state when it is newer. A
// checkpoint older than the trusted one is proved consistent with it by
// the node that served the trusted one, or any peer that can.
//
// No lock is held while proofs are fetched: when another call advanced the
// state meanwhile, the checkpoint is checked again against the new state,
// because consistency with an older trusted checkpoint does not imply
// consistency with a newer one.
func (t *trust) verify(ctx context.Context, node *Client, signed []byte) (*Checkpoint, error) {
	v, err := t.verifier(ctx, node.Ledger)
	if err != nil {
		return nil, err
	}
	cp, _, _, err := log.ParseCheckpoint(signed, v.Name(), v)
	if err != nil {
		return nil, &VerificationError{What: "checkpoint signature or format: " + err.Error()}
	}
	if t.policy != nil {
		if err := t.policy.Check(signed); err != nil {
			return nil, &VerificationError{What: err.Error()}
		}
	}
	got := &Checkpoint{Origin: cp.Origin, TreeSize: int64(cp.Size), RootHash: cp.Hash, Note: signed}
	for {
		t.mu.Lock()
		st, src := t.mu.state, t.mu.src
		t.mu.Unlock()
		if st != nil && st.Origin != "" && st.Origin != cp.Origin {
			return nil, &VerificationError{What: "the state file is for another log"}
		}
		if st != nil && st.TreeSize > 0 {
			if err := consistent(ctx, node, src, st, got); err != nil {
				return nil, err
			}
		}
		t.mu.Lock()
		if t.mu.state != st {
			t.mu.Unlock()
			continue
		}
		var err error
		if st == nil || got.TreeSize > st.TreeSize {
			t.mu.state = &State{Origin: cp.Origin, VerifierKey: t.mu.vkey, TreeSize: got.TreeSize, RootHash: got.RootHash, Checkpoint: signed}
			t.mu.src = node.Ledger
			err = t.saveLocked()
		}
		t.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return got, nil
	}
}

// consistent proves got consistent with the trusted state st. A newer
// checkpoint is proved by the node that served it; an older one by a node
// that holds the trusted size: src first, then node itself, then its
// peers.
func consistent(ctx context.Context, node *Client, src pb.LedgerServiceClient, st *State, got *Checkpoint) error {
	if got.TreeSize == st.TreeSize {
		if !bytes.Equal(got.RootHash, st.RootHash) {
			return &VerificationError{What: fmt.Sprintf("checkpoint of size %d has another root than the trusted checkpoint of that size", got.TreeSize)}
		}
		return nil
	}
	from, to := st.TreeSize, got.TreeSize
	oldRoot, newRoot := st.RootHash, got.RootHash
	provers := []pb.LedgerServiceClient{node.Ledger}
	if to < from {
		from, to, oldRoot, newRoot = to, from, newRoot, oldRoot
		provers = nil
		if src != nil {
			provers = append(provers, src)
		}
		provers = append(provers, node.Ledger)
		if node.peers != nil {
			provers = append(provers, node.peers()...)
		}
	}
	var lastErr error
	for i, l := range provers {
		if slices.Contains(provers[:i], l) {
			continue
		}
		resp, err := l.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromTreeSize: from, ToTreeSize: to})
		if err != nil {
			lastErr = err
			continue
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(from), uint64(to), resp.GetHashes(), oldRoot, newRoot); err != nil {
			return &VerificationError{What: fmt.Sprintf("checkpoint of size %d is not consistent with the trusted checkpoint of size %d: %v", got.TreeSize, st.TreeSize, err)}
		}
		return nil
	}
	return lastErr
}

// saveLocked writes the trusted state to the state file. t.mu is held.
func (t *trust) saveLocked() error {
	if t.statePath == "" {
		return nil
	}
	b, err := json.MarshalIndent(t.mu.state, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t.statePath), 0o700); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	tmp := t.statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return os.Rename(tmp, t.statePath)
}
