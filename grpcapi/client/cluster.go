package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// Request metadata understood by evidenced (docs/api.md).
const (
	// RequestIDKey names a logical write. A server that already recorded
	// a write under the id appends nothing new and answers with the
	// first write's leaf indexes, so a write can be retried safely on any
	// node of a cluster.
	RequestIDKey = "x-evidence-request-id"
	// MinTreeSizeKey makes a read wait until the node's log holds at
	// least that many entries, or fail with Unavailable.
	MinTreeSizeKey = "x-evidence-min-tree-size"
)

// WithRequestID returns ctx with the request id of one logical write, for
// the calls made with it. Use a new id for every logical write: a second
// write under an id is not recorded (the server answers with the first
// write's leaves, or FailedPrecondition when the request differs). Ids are
// 1 to 64 printable ASCII bytes without spaces; the server scopes them by
// caller.
func WithRequestID(ctx context.Context, id string) context.Context {
	return setOutgoing(ctx, RequestIDKey, id)
}

// WithMinTreeSize returns ctx asking the server to answer only once its log
// holds at least n entries, to read a write whose receipt covered n on any
// node of a cluster.
func WithMinTreeSize(ctx context.Context, n int64) context.Context {
	return setOutgoing(ctx, MinTreeSizeKey, strconv.FormatInt(n, 10))
}

// NewRequestID returns a random request id (128 bits, hex).
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID returns ctx's request id, or "".
func requestID(ctx context.Context) string {
	md, _ := metadata.FromOutgoingContext(ctx)
	if v := md.Get(RequestIDKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

// setOutgoing replaces the outgoing metadata key k of ctx with v: the
// server refuses a key sent twice.
func setOutgoing(ctx context.Context, k, v string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(k, v)
	return metadata.NewOutgoingContext(ctx, md)
}

// Retry bounds of a Cluster's calls, when Options leaves them zero.
const (
	DefaultRetryTimeout   = 30 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
	firstBackoff          = 25 * time.Millisecond
	maxBackoff            = time.Second
)

// Cluster is a client of the nodes of one evidenced cluster (issue 10).
//
// Writes go to the node that last accepted one, else to the leader that
// ClusterService.GetClusterStatus names (an operator's call: with another
// caller's token the client goes without), else to the nodes in turn; a
// follower forwards a write to the leader. A write that fails with
// Unavailable, or whose attempt times out, is retried on the next node
// with exponential backoff and jitter, for up to Options.RetryTimeout,
// always under the same request id: the caller's (WithRequestID) or one
// drawn for the call. A retried write whose first attempt was recorded is
// therefore not recorded twice, even when the first node died before
// answering.
//
// Reads of the ledger go to any node and are verified against one trust
// state shared by all nodes: every checkpoint, whichever node serves it,
// must be signed with the log's key and be proved consistent with the
// latest checkpoint trusted so far (see Client). A node behind the
// trusted size still serves proofs at its own size; its checkpoint is
// proved consistent with the trusted one by a node that holds it.
//
// A Cluster is safe for concurrent use. Streams (RecordAudio,
// StreamEntries) are opened on one node and not retried.
type Cluster struct {
	// Encounters calls EncounterService through the write path: with a
	// request id, on the leader, retried. Reads of notes append access
	// entries, so they are writes too.
	Encounters pb.EncounterServiceClient
	// Ledger calls LedgerService on any node, retried on Unavailable,
	// and does not verify: use the Cluster's methods for verified reads.
	Ledger pb.LedgerServiceClient

	nodes          []*Client
	retryTimeout   time.Duration
	attemptTimeout time.Duration

	// noStatus is set once a node refused GetClusterStatus (the
	// caller is not an operator, or the servers are not a cluster).
	noStatus atomic.Bool

	mu struct {
		sync.Mutex
		// writer is the node writes go to first, writerKnown whether
		// it accepted the last write; reader is the next node a read
		// goes to.
		writer      int
		writerKnown bool
		reader      int
	}
}

// DialCluster connects to the nodes at addrs, the public gRPC addresses of
// one cluster's members. Every node is dialed with opts; they share one
// trust state (opts.VerifierKey, opts.StatePath).
func DialCluster(addrs []string, opts Options) (*Cluster, error) {
	if len(addrs) == 0 {
		return nil, errors.New("client: no cluster addresses")
	}
	tr, err := newTrust(opts)
	if err != nil {
		return nil, err
	}
	c := &Cluster{retryTimeout: opts.RetryTimeout, attemptTimeout: opts.AttemptTimeout}
	if c.retryTimeout <= 0 {
		c.retryTimeout = DefaultRetryTimeout
	}
	if c.attemptTimeout <= 0 {
		c.attemptTimeout = DefaultAttemptTimeout
	}
	// Reconnect to a restarted node within a second, not grpc's default
	// of up to two minutes.
	bo := backoff.DefaultConfig
	bo.MaxDelay = time.Second
	reconnect := grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 2 * time.Second})
	for _, a := range addrs {
		n, err := dial(a, opts, tr, reconnect)
		if err != nil {
			c.Close()
			return nil, err
		}
		n.peers = c.ledgers
		c.nodes = append(c.nodes, n)
	}
	c.Encounters = pb.NewEncounterServiceClient(writeConn{c})
	c.Ledger = pb.NewLedgerServiceClient(readConn{c})
	return c, nil
}

// Close closes every node's connection.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// Nodes returns a verifying Client per node, in the order of the
// addresses given to DialCluster. They share the Cluster's trust state.
func (c *Cluster) Nodes() []*Client { return c.nodes }

// Trusted returns the latest checkpoint trusted, or nil before the first
// verified read.
func (c *Cluster) Trusted() *State { return c.nodes[0].tr.trusted() }

func (c *Cluster) ledgers() []pb.LedgerServiceClient {
	ls := make([]pb.LedgerServiceClient, len(c.nodes))
	for i, n := range c.nodes {
		ls[i] = n.Ledger
	}
	return ls
}

// WriteConn returns a connection for any evidence.v1 service client
// (pb.NewXServiceClient(c.WriteConn())) whose calls take the write path.
func (c *Cluster) WriteConn() grpc.ClientConnInterface { return writeConn{c} }

// ReadConn returns a connection whose calls go to any node, retried on
// Unavailable.
func (c *Cluster) ReadConn() grpc.ClientConnInterface { return readConn{c} }

// LatestCheckpoint fetches a checkpoint from any node, verifies it and
// trusts it when it is the newest yet.
func (c *Cluster) LatestCheckpoint(ctx context.Context) (*Checkpoint, error) {
	var cp *Checkpoint
	err := c.retry(ctx, c.readNode, func(ctx context.Context, n *Client) (err error) {
		cp, err = n.LatestCheckpoint(ctx)
		return err
	})
	return cp, err
}

// Entry reads entry index from any node that holds it (a node behind
// waits to catch up; see MinTreeSizeKey) and verifies it as Client.Entry
// does.
func (c *Cluster) Entry(ctx context.Context, index int64) (*VerifiedEntry, error) {
	ctx = WithMinTreeSize(ctx, index+1)
	var e *VerifiedEntry
	err := c.retry(ctx, c.readNode, func(ctx context.Context, n *Client) (err error) {
		e, err = n.Entry(ctx, index)
		return err
	})
	return e, err
}

// writeConn routes calls to the write path.
type writeConn struct{ c *Cluster }

func (w writeConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if requestID(ctx) == "" {
		ctx = WithRequestID(ctx, NewRequestID())
	}
	return w.c.retry(ctx, w.c.writeNode, func(ctx context.Context, n *Client) error {
		return n.conn.Invoke(ctx, method, args, reply, opts...)
	})
}

func (w writeConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if requestID(ctx) == "" {
		ctx = WithRequestID(ctx, NewRequestID())
	}
	n, _ := w.c.writeNode(ctx, 0)
	return n.conn.NewStream(ctx, desc, method, opts...)
}

// readConn routes calls to any node.
type readConn struct{ c *Cluster }

func (r readConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return r.c.retry(ctx, r.c.readNode, func(ctx context.Context, n *Client) error {
		return n.conn.Invoke(ctx, method, args, reply, opts...)
	})
}

func (r readConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	n, _ := r.c.readNode(ctx, 0)
	return n.conn.NewStream(ctx, desc, method, opts...)
}

// A picker chooses the node of an attempt; done reports the attempt's
// outcome: ok, or failed retryably, so that the next attempt goes
// elsewhere.
type picker func(ctx context.Context, attempt int) (n *Client, done func(ok bool))

// writeNode picks the node writes go to: the one that accepted the last
// write, else the leader the cluster names (findLeader), else the next
// node in turn.
func (c *Cluster) writeNode(ctx context.Context, _ int) (*Client, func(bool)) {
	c.mu.Lock()
	known := c.mu.writerKnown
	c.mu.Unlock()
	if !known {
		c.findLeader(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.mu.writer
	return c.nodes[i], func(ok bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case ok:
			c.mu.writer, c.mu.writerKnown = i, true
		case c.mu.writer == i:
			c.mu.writer, c.mu.writerKnown = (i+1)%len(c.nodes), false
		}
	}
}

// readNode spreads reads over the nodes in turn.
func (c *Cluster) readNode(context.Context, int) (*Client, func(bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.mu.reader
	c.mu.reader = (i + 1) % len(c.nodes)
	return c.nodes[i], func(bool) {}
}

// retry runs call on the nodes pick chooses until it succeeds, fails
// with an error a retry cannot help, or Options.RetryTimeout (or ctx)
// ends. Every attempt is bounded by Options.AttemptTimeout.
func (c *Cluster) retry(ctx context.Context, pick picker, call func(context.Context, *Client) error) error {
	give := time.Now().Add(c.retryTimeout)
	wait := firstBackoff
	for attempt := 0; ; attempt++ {
		n, done := pick(ctx, attempt)
		actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
		err := call(actx, n)
		cancel()
		if err == nil {
			done(true)
			return nil
		}
		if !retryable(ctx, err) {
			return err
		}
		done(false)
		// Jitter, so that a crowd of clients does not retry in step.
		d := time.Duration(mrand.Int64N(int64(wait))) + wait/2
		if time.Now().Add(d).After(give) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// retryable reports whether another attempt, maybe on another node, can
// help: the node was unreachable or had no leader (Unavailable, which
// includes "outcome unknown"), or the attempt timed out while the call's
// own context is still live.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var ve *VerificationError
	if errors.As(err, &ve) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}
