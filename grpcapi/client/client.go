// Package client is the Go client of the evidence.v1 API. Its ledger reads
// are verified, the way transparency-log clients verify: every checkpoint's
// signature is checked against the log's verifier key, every new checkpoint
// is proved consistent with the last one this client trusted (kept in a
// small state file), and every entry is proved included in a verified
// checkpoint. Proofs are checked with github.com/transparency-dev/merkle,
// not with code from this project. A failed check returns a
// *VerificationError and nothing from that response is trusted.
//
// DialCluster connects to the nodes of a replicated cluster (Cluster):
// writes carry a request id (x-evidence-request-id) and are retried on
// another node under the same id when a node fails, so that none is
// recorded twice; reads go to any node and are verified against one trust
// state shared by all of them.
package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// VerificationError reports a response that failed a cryptographic check:
// the server is faulty or lying, or the state file is from another log.
type VerificationError struct {
	What string
}

func (e *VerificationError) Error() string { return "verification failed: " + e.What }

// Options configure Dial and DialCluster.
type Options struct {
	// Token is sent as a bearer token on every call.
	Token string
	// TLS enables TLS with this configuration; nil dials in plaintext.
	TLS *tls.Config
	// VerifierKey pins the log's checkpoint key ("name+hash+key"). Empty
	// means trust on first use: the key recorded in the state file, or
	// the one the server reports when there is no state yet.
	VerifierKey string
	// StatePath is the file that keeps the last trusted checkpoint. Empty
	// keeps it in memory only.
	StatePath string
	// Witnesses pins the cosignature/v1 verifier keys of the log's
	// witnesses (C2SP tlog-witness). With them, the client trusts only
	// checkpoints cosigned by at least WitnessQuorum of them (0: all):
	// LatestCheckpoint asks for the server's witnessed checkpoint, entries
	// are proved included in it, and any other checkpoint fails with a
	// *VerificationError.
	Witnesses     []string
	WitnessQuorum int

	// RetryTimeout bounds how long a Cluster retries one call on other
	// nodes (default DefaultRetryTimeout), and AttemptTimeout one
	// attempt (default DefaultAttemptTimeout). Dial ignores them.
	RetryTimeout   time.Duration
	AttemptTimeout time.Duration
}

// Client calls an evidence.v1 server. Its methods are safe for concurrent
// use.
type Client struct {
	conn       *grpc.ClientConn
	Ledger     pb.LedgerServiceClient
	Encounters pb.EncounterServiceClient
	opts       Options

	// tr is the trust state; the Clients of a Cluster share one.
	tr *trust
	// peers, when set (by a Cluster), lists the other nodes' ledgers,
	// asked for the consistency proof of a checkpoint older than the
	// trusted one, which this node cannot prove.
	peers func() []pb.LedgerServiceClient
}

// State is the client's trust state: the log's identity and the latest
// checkpoint it verified.
type State struct {
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	TreeSize    int64  `json:"tree_size"`
	RootHash    []byte `json:"root_hash"`
	Checkpoint  []byte `json:"checkpoint"`
}

type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return false }

// Dial connects to addr.
func Dial(addr string, opts Options) (*Client, error) {
	tr, err := newTrust(opts)
	if err != nil {
		return nil, err
	}
	return dial(addr, opts, tr)
}

// dial connects to addr with the trust state tr.
func dial(addr string, opts Options, tr *trust, extra ...grpc.DialOption) (*Client, error) {
	dopts := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	if opts.TLS != nil {
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(opts.TLS)))
	} else {
		dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if opts.Token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(tokenCreds(opts.Token)))
	}
	conn, err := grpc.NewClient(addr, append(dopts, extra...)...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, Ledger: pb.NewLedgerServiceClient(conn), Encounters: pb.NewEncounterServiceClient(conn), opts: opts, tr: tr}, nil
}

// Conn returns the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// WithMetadata returns ctx with extra request metadata.
func WithMetadata(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// Checkpoint is a checkpoint this client verified.
type Checkpoint struct {
	Origin   string
	TreeSize int64
	RootHash []byte
	Note     []byte
}

// LatestCheckpoint fetches, verifies and trusts the server's latest
// checkpoint.
func (c *Client) LatestCheckpoint(ctx context.Context) (*Checkpoint, error) {
	resp, err := c.Ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{Witnessed: c.tr.policy != nil})
	if err != nil {
		return nil, err
	}
	return c.tr.verify(ctx, c, resp.GetCheckpoint().GetNote())
}

// VerifiedEntry is an entry proved included in a verified checkpoint.
type VerifiedEntry struct {
	Entry      *pb.Entry
	Proof      [][]byte
	Checkpoint *Checkpoint
}

// Entry reads entry index and verifies it: the leaf hash is recomputed from
// the leaf data and proved included in the server's checkpoint, which is
// verified and proved consistent with the trusted one.
func (c *Client) Entry(ctx context.Context, index int64) (*VerifiedEntry, error) {
	if c.tr.policy != nil {
		return c.witnessedEntry(ctx, index)
	}
	resp, err := c.Ledger.GetEntry(ctx, &pb.GetEntryRequest{LeafIndex: index, IncludeProof: true})
	if err != nil {
		return nil, err
	}
	cp, err := c.tr.verify(ctx, c, resp.GetCheckpoint().GetNote())
	if err != nil {
		return nil, err
	}
	e := resp.GetEntry()
	if err := checkLeaf(e, index); err != nil {
		return nil, err
	}
	p := resp.GetProof()
	if p.GetTreeSize() != cp.TreeSize {
		return nil, &VerificationError{What: "the proof is not for the returned checkpoint"}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(cp.TreeSize), e.GetLeafHash(), p.GetHashes(), cp.RootHash); err != nil {
		return nil, &VerificationError{What: fmt.Sprintf("entry %d is not included in the checkpoint of size %d: %v", index, cp.TreeSize, err)}
	}
	return &VerifiedEntry{Entry: e, Proof: p.GetHashes(), Checkpoint: cp}, nil
}

// witnessedEntry is Entry under a witness policy: the entry is proved
// included in the witnessed checkpoint.
func (c *Client) witnessedEntry(ctx context.Context, index int64) (*VerifiedEntry, error) {
	cp, err := c.LatestCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	if index >= cp.TreeSize {
		return nil, fmt.Errorf("client: entry %d is not yet covered by a witnessed checkpoint (size %d)", index, cp.TreeSize)
	}
	resp, err := c.Ledger.GetEntry(ctx, &pb.GetEntryRequest{LeafIndex: index})
	if err != nil {
		return nil, err
	}
	e := resp.GetEntry()
	if err := checkLeaf(e, index); err != nil {
		return nil, err
	}
	p, err := c.Ledger.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{LeafIndex: index, TreeSize: cp.TreeSize})
	if err != nil {
		return nil, err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(cp.TreeSize), e.GetLeafHash(), p.GetProof().GetHashes(), cp.RootHash); err != nil {
		return nil, &VerificationError{What: fmt.Sprintf("entry %d is not included in the witnessed checkpoint of size %d: %v", index, cp.TreeSize, err)}
	}
	return &VerifiedEntry{Entry: e, Proof: p.GetProof().GetHashes(), Checkpoint: cp}, nil
}

func checkLeaf(e *pb.Entry, index int64) error {
	if e.GetLeafIndex() != index {
		return &VerificationError{What: fmt.Sprintf("asked for entry %d, got %d", index, e.GetLeafIndex())}
	}
	h := rfc6962.DefaultHasher.HashLeaf(e.GetLeafData())
	if string(h) != string(e.GetLeafHash()) {
		return &VerificationError{What: fmt.Sprintf("entry %d: leaf hash does not match leaf data", index)}
	}
	return nil
}

// InclusionProof fetches the inclusion proof of an entry in the tree of
// the given size (0 for the latest) and, when that size is the latest
// verified checkpoint, verifies it.
func (c *Client) InclusionProof(ctx context.Context, index, size int64) (*pb.InclusionProof, bool, error) {
	cp, err := c.LatestCheckpoint(ctx)
	if err != nil {
		return nil, false, err
	}
	if size == 0 {
		size = cp.TreeSize
	}
	resp, err := c.Ledger.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{LeafIndex: index, TreeSize: size})
	if err != nil {
		return nil, false, err
	}
	p := resp.GetProof()
	if size != cp.TreeSize {
		return p, false, nil
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(size), p.GetLeafHash(), p.GetHashes(), cp.RootHash); err != nil {
		return nil, false, &VerificationError{What: fmt.Sprintf("inclusion proof of %d in %d: %v", index, size, err)}
	}
	return p, true, nil
}

// ConsistencyProof fetches the consistency proof between two tree sizes.
// The latest checkpoint is verified first; the proof itself can only be
// checked against roots the caller knows.
func (c *Client) ConsistencyProof(ctx context.Context, from, to int64) (*pb.GetConsistencyProofResponse, error) {
	if _, err := c.LatestCheckpoint(ctx); err != nil {
		return nil, err
	}
	return c.Ledger.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromTreeSize: from, ToTreeSize: to})
}

// LeafHash returns the RFC 6962 hash of leaf data.
func LeafHash(data []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, data...))
	return h[:]
}
