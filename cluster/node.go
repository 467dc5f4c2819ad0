// Package cluster replicates Evidence Ledger's log across nodes with
// hashicorp/raft, so that the log stays available when a node dies and
// every node serves the same verifiable history.
//
// A Node sits on a ledger.Replica, the ledger's replication seam, and
// nothing in the ledger calls back into it: an append is prepared by the
// Replica on the node that receives it (ledger.Proposal: salts, times and
// sealed payloads fixed), proposed through raft (the leader gathers
// proposals into one raft entry per group commit) and applied on every
// node by the FSM with Replica.Apply, which is deterministic: indexes,
// chain links, tree hashes and the checkpoint signature (Ed25519 with the
// cluster's one log key) come out byte-identical on every node, so clients
// see one log whichever node they ask. Writes that are not appends (blob
// chunks, wrapped data keys, tombstones, purges) go through the same raft
// log. docs/formats.md specifies the raft commands.
//
// Durability: an append is acknowledged once its raft entry is in the
// fsynced raft log of a quorum (raft's commit rule) and the receiving
// node has applied it. Applying does not fsync the ledger's store: the
// Replica syncs it in groups, and after a crash raft applies again every
// entry after its latest snapshot (taken only from a synced store), which
// the Replica skips up to what its store held. docs/architecture.md and
// docs/operations.md say more.
//
// Goroutines: raft's own; the proposer, which batches proposals on the
// leader and keeps up to Config.Pipeline raft entries in flight, with one
// waiter per entry; and the internal gRPC server. Close stops the proposer
// and raft, in that order; close the ledger.Replica after.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// Errors a Node returns.
var (
	// ErrNoLeader: the cluster has no leader now (an election is under
	// way, or this node cannot reach a quorum). Retry later.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrUnknownOutcome: the leader lost its leadership with the write
	// in flight; it may or may not have been committed. Retry with the
	// same request id.
	ErrUnknownOutcome = errors.New("cluster: outcome unknown")
	// ErrConflict: a create-only write lost to an existing key (a data key
	// created concurrently on another node). Retry: the key is now there.
	ErrConflict = errors.New("cluster: conflicting write")
)

// Config configures a Node.
type Config struct {
	// ID names the node in the raft configuration; it must be unique
	// and stable across restarts.
	ID string
	// RaftAddr is the address other nodes reach this one at, for raft
	// and for forwarded writes.
	RaftAddr string
	// APIAddr is this node's public gRPC address, reported in status so
	// that clients can find the leader.
	APIAddr string
	// Dir keeps the raft log and the snapshots.
	Dir string
	// RaftStore keeps the raft log and stable state; nil uses an
	// in-memory store (tests).
	RaftStore storage.Store
	// Transport carries raft traffic and Peers the node's own RPCs
	// (forwarded writes, joins, status). NewTCP makes both from one
	// listener; tests use raft's in-memory transport.
	Transport raft.Transport
	Peers     Peers
	// Bootstrap starts a new cluster with this node as its only member.
	// It is ignored when the node already has raft state.
	Bootstrap bool
	// Logger receives raft's messages at warning level and above and the
	// node's own.
	Logger *slog.Logger
	// MaxBatchEntries and MaxBatchBytes cap one raft entry. Defaults
	// 8,192 entries and 4 MiB.
	MaxBatchEntries int
	MaxBatchBytes   int
	// Pipeline is how many raft entries the leader keeps in flight.
	// Default 16.
	Pipeline int
	// SnapshotThreshold is how many raft entries trigger a snapshot (and
	// log compaction); TrailingLogs how many entries stay after one, so a
	// briefly lagging follower catches up from the log. Defaults 8,192
	// and 10,240.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotInterval is how often raft checks whether to snapshot.
	// Default 2 minutes.
	SnapshotInterval time.Duration
	// Fast shortens raft's timeouts for in-process tests.
	Fast bool
	// ApplyTimeout bounds how long a write waits to be enqueued by raft.
	// Default 10 seconds.
	ApplyTimeout time.Duration
	// OnWrite, if set, is called on every node after it applied a
	// replicated write (a side write, not an append), with its ops; the
	// envelope sealer uses it to forget data keys another node destroyed.
	// OnRestore is called after a snapshot replaced the store.
	OnWrite   func(ops []ledger.WriteOp)
	OnRestore func()
}

func (c *Config) setDefaults() {
	if c.MaxBatchEntries <= 0 {
		c.MaxBatchEntries = 8192
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 4 << 20
	}
	if c.Pipeline <= 0 {
		c.Pipeline = 16
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Peers reaches other nodes' RPCs (package-internal; see NewTCP and the
// in-memory implementation in tests).
type Peers interface {
	// Call sends req to the node at addr and returns its answer.
	Call(ctx context.Context, addr raft.ServerAddress, req *Request) (*Response, error)
}

// Request is a node-to-node RPC: a forwarded command, a join or a status
// query. Exactly one of its parts is set.
type Request struct {
	Command []byte // a raft command to propose (forwarded to the leader)
	Join    *Member
	Remove  string // a node id to remove
	Status  bool
}

// Response answers a Request.
type Response struct {
	Index   uint64 // raft index of a proposed command
	Appends []AppendResult
	Err     string // a failure, as text (errors do not cross nodes)
	Code    int    // errNoLeader, errUnknown, errConflict or errOther
	Status  *NodeStatus
}

// AppendResult is where one forwarded proposal's entries went: their
// first index and leaf data, from the leader's commit.
type AppendResult struct {
	First  int64
	Leaves [][]byte
	Err    string
	Code   int
}

const (
	codeOK = iota
	codeNoLeader
	codeUnknown
	codeConflict
	codeInvalid
	codeOther
)

// Member is one node of the cluster.
type Member struct {
	ID       string
	RaftAddr string
	Voter    bool
}

// NodeStatus is what a node reports about itself.
type NodeStatus struct {
	ID          string
	RaftAddr    string
	APIAddr     string
	State       string // Leader, Follower, Candidate, Shutdown
	Term        uint64
	Leader      string // the leader's id, if known
	LeaderAddr  string // its raft address
	LastIndex   uint64 // last raft index in this node's log
	CommitIndex uint64
	Applied     uint64 // raft index applied to the ledger
	TreeSize    int64
	RootHash    ledger.Hash
	Members     []Member
}

// Node is one member of a replicated log: it appends to its ledger.Replica
// through raft. It is safe for concurrent use.
type Node struct {
	cfg     Config
	raft    *raft.Raft
	rep     *ledger.Replica
	fsm     *fsm
	rstore  *RaftStore
	snaps   raft.SnapshotStore
	metrics *metrics

	proposals      chan *proposal
	basePendingMem bool // see baseSnapshot
	stop           chan struct{}
	stopped        chan struct{}
	closeOnce      sync.Once
}

// proposal is a command waiting for the proposer.
type proposal struct {
	cmd     []byte // a whole command (write, purge), or
	enc     []byte // one encoded ledger proposal, batched with others
	entries int
	done    chan proposed
}

type proposed struct {
	index     uint64
	app       *ledger.Appended // for an append on this leader
	err       error
	conflicts int
}

// New starts a node on rep: it opens the raft log and snapshot store and
// starts raft with rep as the state machine, bootstrapping a new cluster if
// Config.Bootstrap is set and there is no raft state yet. Close the Node
// before rep.
func New(cfg Config, rep *ledger.Replica) (*Node, error) {
	cfg.setDefaults()
	if cfg.ID == "" || cfg.RaftAddr == "" {
		return nil, errors.New("cluster: a node needs an id and a raft address")
	}
	if cfg.Transport == nil || cfg.Peers == nil {
		return nil, errors.New("cluster: a node needs a transport")
	}
	if cfg.RaftStore == nil {
		return nil, errors.New("cluster: Config.RaftStore is required")
	}
	n := &Node{cfg: cfg, rep: rep, proposals: make(chan *proposal, 4096), stop: make(chan struct{}), stopped: make(chan struct{})}
	var err error
	if n.rstore, err = NewRaftStore(cfg.RaftStore); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		n.snaps = raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, err
		}
		fs, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hclogger(cfg.Logger))
		if err != nil {
			return nil, err
		}
		n.snaps = fs
	}
	n.metrics = newMetrics(n)
	if err := n.start(); err != nil {
		if n.raft != nil {
			n.raft.Shutdown().Error()
		}
		return nil, err
	}
	return n, nil
}

func (n *Node) restoreTag() string {
	if n.cfg.Dir == "" {
		return ""
	}
	return filepath.Join(n.cfg.Dir, "restore-in-progress")
}

// start starts raft with the Replica as the state machine.
func (n *Node) start() error {
	rep := n.rep
	n.fsm = &fsm{rep: rep, restoreTag: n.restoreTag(), metrics: n.metrics, onWrite: n.cfg.OnWrite, onRestore: n.cfg.OnRestore}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.Logger = hclogger(n.cfg.Logger)
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.MaxAppendEntries = 256
	if n.cfg.Fast {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	} else {
		rc.HeartbeatTimeout = 500 * time.Millisecond
		rc.ElectionTimeout = 500 * time.Millisecond
		rc.LeaderLeaseTimeout = 250 * time.Millisecond
		rc.CommitTimeout = 10 * time.Millisecond
	}
	// The ledger store is the state machine's durable state: it records
	// the raft index it holds, so a restart needs no snapshot restore.
	// Raft applies again every entry after its latest snapshot, and the
	// Replica skips those its store held (a store synced in groups may
	// have lost the last ones in a crash: raft's log has them). Unless the
	// store is older than the latest snapshot (or a restore was cut
	// short): then raft must restore the snapshot first.
	rc.NoSnapshotRestoreOnStart = true
	if snaps, err := n.snaps.List(); err == nil && len(snaps) > 0 && snaps[0].Index > rep.AppliedIndex() {
		rc.NoSnapshotRestoreOnStart = false
	}
	if tag := n.restoreTag(); tag != "" {
		if _, err := os.Stat(tag); err == nil {
			rc.NoSnapshotRestoreOnStart = false
		}
	}
	has, err := raft.HasExistingState(n.rstore, n.rstore, n.snaps)
	if err != nil {
		return err
	}
	if !has {
		// A first start: the ledger's applied index, if any, belongs to
		// another raft history (a backup of a former cluster). A new
		// cluster keeps the log and applies its own history from index 1;
		// a joining node must start empty, since the cluster's snapshot
		// or log replaces whatever it holds.
		if !n.cfg.Bootstrap && rep.Size() > 0 {
			return fmt.Errorf("cluster: a joining node must start with an empty log; this one holds %d entries (start it with --bootstrap to make a new cluster of it, or give it an empty data directory)", rep.Size())
		}
		if n.cfg.Bootstrap {
			if err := rep.ResetApplied(); err != nil {
				return err
			}
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, n.rstore, n.rstore, n.snaps, n.cfg.Transport)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	if n.cfg.Bootstrap && !has {
		if rep.Size() > 0 {
			if err := n.setBasePending(true); err != nil {
				return err
			}
		}
		cfg := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.cfg.Transport.LocalAddr()}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	if n.basePending() {
		if err := n.baseSnapshot(); err != nil {
			return err
		}
	}
	go n.propose()
	return nil
}

// A cluster bootstrapped on a log that already holds entries (a single
// node's, or a restored backup) has them in its store but not in its raft
// log, so a node that joins must start from a snapshot, never from raft
// index 1. baseSnapshot takes a snapshot and compacts the whole raft log
// into it before the node serves. A marker (a file in Config.Dir) makes a
// restart finish the job if the node stops before it is done.

func (n *Node) baseMarker() string {
	if n.cfg.Dir == "" {
		return ""
	}
	return filepath.Join(n.cfg.Dir, "base-snapshot-pending")
}

func (n *Node) setBasePending(on bool) error {
	n.basePendingMem = on
	m := n.baseMarker()
	if m == "" {
		return nil
	}
	if on {
		return os.WriteFile(m, nil, 0o600)
	}
	if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (n *Node) basePending() bool {
	if n.basePendingMem {
		return true
	}
	if m := n.baseMarker(); m != "" {
		_, err := os.Stat(m)
		return err == nil
	}
	return false
}

func (n *Node) baseSnapshot() error {
	deadline := time.Now().Add(30 * time.Second)
	for n.raft.State() != raft.Leader {
		if time.Now().After(deadline) {
			return errors.New("cluster: bootstrap: not elected leader of the new cluster within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	rc := n.raft.ReloadableConfig()
	keep := rc.TrailingLogs
	rc.TrailingLogs = 0
	if err := n.raft.ReloadConfig(rc); err != nil {
		return err
	}
	err := n.raft.Snapshot().Error()
	rc.TrailingLogs = keep
	if rerr := n.raft.ReloadConfig(rc); err == nil {
		err = rerr
	}
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("cluster: bootstrap: snapshot of the existing log: %w", err)
	}
	return n.setBasePending(false)
}

// Raft returns the node's raft instance, for metrics and tests.
func (n *Node) Raft() *raft.Raft { return n.raft }

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Close stops proposing and shuts raft down. Writes in flight fail with
// ledger.ErrClosed or ErrUnknownOutcome. Close the ledger.Replica after it.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.stop)
		if n.raft != nil {
			<-n.stopped
			err = n.raft.Shutdown().Error()
		}
		if c, ok := n.cfg.Transport.(io.Closer); ok {
			c.Close()
		}
	})
	return err
}

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft != nil && n.raft.State() == raft.Leader }

// Leader returns the leader's raft address and id, empty when unknown.
func (n *Node) Leader() (raft.ServerAddress, raft.ServerID) { return n.raft.LeaderWithID() }

// Append appends entries to the replicated log and returns once they are
// committed by a quorum and applied on this node, with a checkpoint that
// covers them; see ledger.Appender.Append for validation and request ids.
// The Replica prepares them here; on the leader they join the next raft
// entry, on a follower they are forwarded to the leader, and reported once
// this node has applied them too, so that a client reads its own writes
// from the node it wrote to. The answer comes from the commit: nothing is
// read back.
func (n *Node) Append(ctx context.Context, entries []ledger.Entry) (*ledger.Appended, error) {
	p, err := n.rep.Prepare(ctx, entries)
	if err != nil {
		return nil, err
	}
	enc, err := p.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if n.IsLeader() {
		pr := &proposal{enc: enc, entries: p.Len(), done: make(chan proposed, 1)}
		if err := n.enqueue(ctx, pr); err != nil {
			return nil, err
		}
		res := <-pr.done
		if !errors.Is(res.err, ErrNoLeader) {
			return res.app, res.err
		}
		// Leadership moved before the entry was proposed: nothing was
		// appended, so send it to the new leader.
	}
	return n.forwardAppend(ctx, enc)
}

// forwardAppend sends one encoded proposal to the leader and reports it
// once this node applied it.
func (n *Node) forwardAppend(ctx context.Context, enc []byte) (*ledger.Appended, error) {
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	for {
		resp, err := n.forward(context.WithoutCancel(ctx), encodeAppend([][]byte{enc}))
		if err != nil {
			return nil, err
		}
		if len(resp.Appends) != 1 {
			return nil, errors.New("cluster: malformed answer from the leader")
		}
		ar := resp.Appends[0]
		if ar.Code == codeNoLeader && time.Now().Before(deadline) {
			// The leader stepped down before proposing it.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if ar.Err != "" {
			return nil, codeError(ar.Code, ar.Err)
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := n.rep.WaitApplied(wctx, resp.Index); err != nil {
			return nil, fmt.Errorf("cluster: committed at index %d but not yet applied here: %w", resp.Index, err)
		}
		return n.rep.Appended(ar.First, ar.Leaves)
	}
}

// Write applies b, writes that are not appends (payload tombstones, say),
// on every node through the replicated log, in order with the appends, and
// returns once it is applied on this node.
func (n *Node) Write(ctx context.Context, b *storage.Batch) error {
	ops := make([]ledger.WriteOp, len(b.Ops))
	for i, op := range b.Ops {
		ops[i] = ledger.WriteOp{Key: op.Key, Value: op.Value, Delete: op.Delete}
	}
	return n.command(ctx, encodeWrite(ops))
}

// command proposes a whole command and waits until this node applied it.
func (n *Node) command(ctx context.Context, cmd []byte) error {
	var index uint64
	var conflicts int
	if n.IsLeader() {
		pr := &proposal{cmd: cmd, done: make(chan proposed, 1)}
		if err := n.enqueue(ctx, pr); err != nil {
			return err
		}
		res := <-pr.done
		if res.err != nil {
			return res.err
		}
		index, conflicts = res.index, res.conflicts
	} else {
		resp, err := n.forward(ctx, cmd)
		if err != nil {
			return err
		}
		index = resp.Index
		if resp.Code == codeConflict {
			conflicts = 1
		}
	}
	if err := n.rep.WaitApplied(context.WithoutCancel(ctx), index); err != nil {
		return err
	}
	if conflicts > 0 {
		return ErrConflict
	}
	return nil
}

func (n *Node) enqueue(ctx context.Context, pr *proposal) error {
	select {
	case n.proposals <- pr:
		return nil
	case <-n.stop:
		return ledger.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// forward sends a command to the leader, retrying briefly while there is
// none or it changes.
func (n *Node) forward(ctx context.Context, cmd []byte) (*Response, error) {
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	for {
		addr, _ := n.raft.LeaderWithID()
		var resp *Response
		var err error
		switch {
		case n.IsLeader():
			resp = n.handleCommand(ctx, cmd)
		case addr == "":
			err = ErrNoLeader
		default:
			resp, err = n.cfg.Peers.Call(ctx, addr, &Request{Command: cmd})
			if err != nil {
				err = fmt.Errorf("%w: forwarding to the leader: %v", ErrNoLeader, err)
			}
		}
		if err == nil && resp.Code == codeNoLeader {
			err = ErrNoLeader
		}
		if err == nil {
			if resp.Err != "" && resp.Code != codeConflict {
				return nil, codeError(resp.Code, resp.Err)
			}
			return resp, nil
		}
		// Only "no leader" is safe to retry: nothing was proposed.
		if !errors.Is(err, ErrNoLeader) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.stop:
			return nil, ledger.ErrClosed
		}
	}
}

func codeError(code int, msg string) error {
	switch code {
	case codeNoLeader:
		return fmt.Errorf("%w: %s", ErrNoLeader, msg)
	case codeUnknown:
		return fmt.Errorf("%w: %s", ErrUnknownOutcome, msg)
	case codeConflict:
		return fmt.Errorf("%w: %s", ErrConflict, msg)
	case codeInvalid:
		return &ledger.InvalidError{Field: "request", Reason: msg}
	}
	return errors.New(msg)
}

func errorCode(err error) int {
	var inv *ledger.InvalidError
	switch {
	case err == nil:
		return codeOK
	case errors.Is(err, ErrNoLeader), errors.Is(err, raft.ErrNotLeader):
		return codeNoLeader
	case errors.Is(err, ErrUnknownOutcome), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return codeUnknown
	case errors.Is(err, ErrConflict):
		return codeConflict
	case errors.As(err, &inv):
		return codeInvalid
	}
	return codeOther
}

// handleCommand proposes a command forwarded by a follower, on the leader.
func (n *Node) handleCommand(ctx context.Context, cmd []byte) *Response {
	if !n.IsLeader() {
		return &Response{Code: codeNoLeader, Err: "not the leader"}
	}
	if len(cmd) > 0 && cmd[0] == cmdAppend {
		ps, err := decodeAppend(cmd[1:])
		if err != nil {
			return &Response{Code: codeInvalid, Err: err.Error()}
		}
		prs := make([]*proposal, len(ps))
		for i, p := range ps {
			enc, _ := p.AppendBinary(nil)
			prs[i] = &proposal{enc: enc, entries: p.Len(), done: make(chan proposed, 1)}
			if err := n.enqueue(ctx, prs[i]); err != nil {
				return &Response{Code: errorCode(err), Err: err.Error()}
			}
		}
		resp := &Response{Appends: make([]AppendResult, len(ps))}
		for i, pr := range prs {
			res := <-pr.done
			if res.err != nil {
				resp.Appends[i] = AppendResult{Err: res.err.Error(), Code: errorCode(res.err)}
				continue
			}
			resp.Index = max(resp.Index, res.index)
			resp.Appends[i] = AppendResult{First: res.app.First, Leaves: res.app.Leaves}
		}
		return resp
	}
	pr := &proposal{cmd: cmd, done: make(chan proposed, 1)}
	if err := n.enqueue(ctx, pr); err != nil {
		return &Response{Code: errorCode(err), Err: err.Error()}
	}
	res := <-pr.done
	if res.err != nil {
		return &Response{Code: errorCode(res.err), Err: res.err.Error()}
	}
	resp := &Response{Index: res.index}
	if res.conflicts > 0 {
		resp.Code, resp.Err = codeConflict, "create-only key exists"
	}
	return resp
}

// Handle serves a node-to-node request (the internal RPC server calls it).
func (n *Node) Handle(ctx context.Context, req *Request) *Response {
	switch {
	case req.Command != nil:
		return n.handleCommand(ctx, req.Command)
	case req.Join != nil:
		if err := n.AddVoter(ctx, req.Join.ID, req.Join.RaftAddr); err != nil {
			return &Response{Code: errorCode(err), Err: err.Error()}
		}
		return &Response{}
	case req.Remove != "":
		if err := n.RemoveServer(ctx, req.Remove); err != nil {
			return &Response{Code: errorCode(err), Err: err.Error()}
		}
		return &Response{}
	case req.Status:
		st := n.Status()
		return &Response{Status: &st}
	}
	return &Response{Code: codeOther, Err: "empty request"}
}

// propose is the proposer goroutine: on the leader it gathers queued
// proposals into raft entries, at most Config.Pipeline in flight, and
// starts a waiter for each.
func (n *Node) propose() {
	defer close(n.stopped)
	slots := make(chan struct{}, n.cfg.Pipeline)
	var waiters sync.WaitGroup
	defer waiters.Wait()
	var carry *proposal
	for {
		var first *proposal
		if carry != nil {
			first, carry = carry, nil
		} else {
			select {
			case first = <-n.proposals:
			case <-n.stop:
				n.drain()
				return
			}
		}
		select {
		case slots <- struct{}{}:
		case <-n.stop:
			first.done <- proposed{err: ledger.ErrClosed}
			n.drain()
			return
		}
		var batch []*proposal
		var cmd []byte
		if first.cmd != nil {
			batch, cmd = []*proposal{first}, first.cmd
		} else {
			batch = []*proposal{first}
			entries, size := first.entries, len(first.enc)
		gather:
			for entries < n.cfg.MaxBatchEntries && size < n.cfg.MaxBatchBytes {
				select {
				case pr := <-n.proposals:
					if pr.cmd != nil {
						carry = pr
						break gather
					}
					batch = append(batch, pr)
					entries += pr.entries
					size += len(pr.enc)
				default:
					break gather
				}
			}
			encs := make([][]byte, len(batch))
			for i, pr := range batch {
				encs[i] = pr.enc
			}
			cmd = encodeAppend(encs)
		}
		if !n.IsLeader() {
			for _, pr := range batch {
				pr.done <- proposed{err: ErrNoLeader}
			}
			<-slots
			continue
		}
		start := time.Now()
		f := n.raft.Apply(cmd, n.cfg.ApplyTimeout)
		n.metrics.batchEntries.Observe(float64(len(batch)))
		waiters.Add(1)
		go func() {
			defer waiters.Done()
			n.await(f, batch, start)
			<-slots
		}()
	}
}

// await reports the outcome of one raft entry to its proposals.
func (n *Node) await(f raft.ApplyFuture, batch []*proposal, start time.Time) {
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout) {
			// Never appended to the log: safe to retry elsewhere.
			err = fmt.Errorf("%w: %v", ErrNoLeader, err)
		} else {
			err = fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		}
		for _, pr := range batch {
			pr.done <- proposed{err: err}
		}
		return
	}
	res, _ := f.Response().(*applyResult)
	if res == nil {
		res = &applyResult{err: errors.New("cluster: no result")}
	}
	index := f.Index()
	if res.err != nil {
		for _, pr := range batch {
			pr.done <- proposed{index: index, err: res.err}
		}
		return
	}
	if batch[0].cmd != nil {
		batch[0].done <- proposed{index: index, conflicts: res.conflicts}
		return
	}
	if len(res.outcomes) != len(batch) {
		// Applied before (cannot happen for a new entry).
		for _, pr := range batch {
			pr.done <- proposed{index: index, err: ErrUnknownOutcome}
		}
		return
	}
	for i, pr := range batch {
		o := res.outcomes[i]
		pr.done <- proposed{index: index, app: o.Appended, err: o.Err}
	}
	n.metrics.commitSeconds.Observe(time.Since(start).Seconds())
}

func (n *Node) drain() {
	for {
		select {
		case pr := <-n.proposals:
			pr.done <- proposed{err: ledger.ErrClosed}
		default:
			return
		}
	}
}

// AddVoter adds a node to the cluster as a voter; on a follower the
// request is forwarded to the leader. Adding a node that is already a
// member with the same address succeeds.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if !n.IsLeader() {
		return n.forwardMembership(ctx, &Request{Join: &Member{ID: id, RaftAddr: addr, Voter: true}})
	}
	return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout).Error()
}

// RemoveServer removes a node from the cluster; on a follower the request
// is forwarded to the leader. It returns once this node's own view of the
// configuration no longer lists the node (or Config.ApplyTimeout passed).
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	var err error
	if n.IsLeader() {
		err = n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error()
	} else {
		err = n.forwardMembership(ctx, &Request{Remove: id})
	}
	if err != nil {
		return err
	}
	if id == n.cfg.ID {
		return nil // a removed node may never hear of its own removal
	}
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	for n.isMember(id) && time.Now().Before(deadline) {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// isMember reports whether this node's raft configuration lists id.
func (n *Node) isMember(id string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			return true
		}
	}
	return false
}

// forwardMembership sends a membership change to the leader, waiting up
// to Config.ApplyTimeout while there is none (an election after the
// previous change, say).
func (n *Node) forwardMembership(ctx context.Context, req *Request) error {
	deadline := time.Now().Add(n.cfg.ApplyTimeout)
	for {
		err := ErrNoLeader
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			var resp *Response
			if resp, err = n.cfg.Peers.Call(ctx, addr, req); err == nil && resp.Err != "" {
				err = codeError(resp.Code, resp.Err)
			}
		}
		if !errors.Is(err, ErrNoLeader) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stop:
			return ledger.ErrClosed
		}
	}
}

// Join asks the cluster member at addr to add this node as a voter,
// retrying until ctx is done.
func (n *Node) Join(ctx context.Context, addr string) error {
	for {
		resp, err := n.cfg.Peers.Call(ctx, raft.ServerAddress(addr), &Request{Join: &Member{ID: n.cfg.ID, RaftAddr: string(n.cfg.Transport.LocalAddr()), Voter: true}})
		if err == nil && resp.Err == "" {
			return nil
		}
		if err == nil {
			err = codeError(resp.Code, resp.Err)
		}
		n.cfg.Logger.Warn("join failed; retrying", "addr", addr, "error", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: join %s: %w", addr, err)
		case <-time.After(time.Second):
		}
	}
}

// Status reports this node's view of the cluster.
func (n *Node) Status() NodeStatus {
	st := NodeStatus{ID: n.cfg.ID, RaftAddr: string(n.cfg.Transport.LocalAddr()), APIAddr: n.cfg.APIAddr}
	if n.raft == nil {
		return st
	}
	st.State = n.raft.State().String()
	addr, id := n.raft.LeaderWithID()
	st.Leader, st.LeaderAddr = string(id), string(addr)
	st.LastIndex = n.raft.LastIndex()
	st.CommitIndex = n.raft.CommitIndex()
	st.Applied = n.rep.AppliedIndex()
	cp := n.rep.Checkpoint()
	st.TreeSize, st.RootHash = cp.Size, cp.Root
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Members = append(st.Members, Member{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter})
		}
	}
	if term, ok := n.raft.Stats()["term"]; ok {
		fmt.Sscan(term, &st.Term)
	}
	return st
}

// ClusterStatus gathers every member's status, asking each over the
// node-to-node RPC; an unreachable member is reported with State
// "Unreachable".
func (n *Node) ClusterStatus(ctx context.Context) []NodeStatus {
	self := n.Status()
	out := []NodeStatus{self}
	for _, m := range self.Members {
		if m.ID == n.cfg.ID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := n.cfg.Peers.Call(cctx, raft.ServerAddress(m.RaftAddr), &Request{Status: true})
		cancel()
		if err != nil || resp.Status == nil {
			out = append(out, NodeStatus{ID: m.ID, RaftAddr: m.RaftAddr, State: "Unreachable"})
			continue
		}
		out = append(out, *resp.Status)
	}
	return out
}

// hclogger adapts slog to raft's logger, keeping warnings and errors.
func hclogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: &slogWriter{l: l}, JSONFormat: false})
}

type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(string(trimNL(p)), "component", "raft")
	return len(p), nil
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
