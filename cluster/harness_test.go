package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// The in-process harness runs nodes with raft's in-memory transport,
// wrapped to drop messages, and an in-memory Peers for forwarded writes.
// A partition cuts both.

const testOrigin = "evidence.test/cluster"

type testNet struct {
	t     *testing.T
	key   *ledger.Key
	mu    sync.Mutex
	nodes map[raft.ServerAddress]*testNode
	cut   map[[2]raft.ServerAddress]bool // blocked directions
	loss  atomic.Uint64                  // per-mille of raft RPCs dropped
	rng   *rand.Rand
	cfg   func(*Config)

	// Every checkpoint any node published or acknowledged: size -> root.
	seenMu sync.Mutex
	seen   map[int64]ledger.Hash
}

// testNode is one node of a testNet. Its stores survive a stop and a
// restart; each start makes a new incarnation (transport, Node, Log),
// which writers and forwarded calls read concurrently with the test
// goroutine that stops and restarts it, so it is kept under mu.
type testNode struct {
	id     string
	addr   raft.ServerAddress
	dir    string
	store  *crashStore // the ledger's; a stop loses what it did not sync
	raftKV storage.Store

	mu struct {
		sync.Mutex
		inmem   *raft.InmemTransport
		node    *Node
		log     *ledger.Replica
		stopped bool // true until started, and after a stop
	}
}

// running returns the node's current incarnation, and false when it is
// stopped.
func (n *testNode) running() (*Node, *ledger.Replica, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.node, n.mu.log, !n.mu.stopped
}

// node returns the current (or last) Node.
func (n *testNode) node() *Node {
	nd, _, _ := n.running()
	return nd
}

// log returns the current (or last) Replica.
func (n *testNode) log() *ledger.Replica {
	_, l, _ := n.running()
	return l
}

func (n *testNode) stopped() bool {
	_, _, ok := n.running()
	return !ok
}

func (n *testNode) inmem() *raft.InmemTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.inmem
}

func newTestNet(t *testing.T, cfg func(*Config)) *testNet {
	k, err := ledger.LoadOrCreateKey(t.TempDir(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return &testNet{t: t, key: k, nodes: map[raft.ServerAddress]*testNode{}, cut: map[[2]raft.ServerAddress]bool{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), cfg: cfg, seen: map[int64]ledger.Hash{}}
}

// add creates and starts a node; the first one bootstraps.
func (tn *testNet) add(id string, bootstrap bool) *testNode {
	tn.t.Helper()
	n := &testNode{id: id, addr: raft.ServerAddress("inmem-" + id), dir: tn.t.TempDir(), store: newCrashStore(), raftKV: memstore.New()}
	n.mu.stopped = true
	tn.mu.Lock()
	tn.nodes[n.addr] = n
	tn.mu.Unlock()
	tn.start(n, bootstrap)
	return n
}

func (tn *testNet) start(n *testNode, bootstrap bool) {
	tn.t.Helper()
	_, inmem := raft.NewInmemTransport(n.addr)
	tn.mu.Lock()
	n.mu.Lock()
	n.mu.inmem = inmem
	n.mu.Unlock()
	for _, o := range tn.nodes {
		if o == n || o.stopped() {
			continue
		}
		if oi := o.inmem(); oi != nil {
			inmem.Connect(o.addr, oi)
			oi.Connect(n.addr, inmem)
		}
	}
	tn.mu.Unlock()
	cfg := Config{ID: n.id, RaftAddr: string(n.addr), APIAddr: "api-" + n.id, Dir: n.dir, RaftStore: n.raftKV,
		Transport: &lossy{tn: tn, from: n.addr, Transport: inmem}, Peers: &testPeers{tn: tn, from: n.addr},
		Bootstrap: bootstrap, Fast: true, ApplyTimeout: 5 * time.Second}
	if tn.cfg != nil {
		tn.cfg(&cfg)
	}
	l, err := ledger.OpenReplica(n.store, ledger.Options{Origin: testOrigin, Key: tn.key, SyncInterval: 50 * time.Millisecond})
	if err != nil {
		tn.t.Fatal(err)
	}
	node, err := New(cfg, l)
	if err != nil {
		tn.t.Fatal(err)
	}
	n.mu.Lock()
	n.mu.node, n.mu.log, n.mu.stopped = node, l, false
	n.mu.Unlock()
	tn.t.Cleanup(func() { tn.stop(n) })
}

// stop shuts a node down as a crash would: the others lose it at once, and
// its ledger store keeps only what was synced when it stopped (raft's log
// keeps everything, as its writes are synced), so that its next start
// applies again, from raft's log, what the store lost.
func (tn *testNet) stop(n *testNode) { tn.halt(n, true) }

// shutdown stops a node cleanly: its store keeps everything it applied.
func (tn *testNet) shutdown(n *testNode) { tn.halt(n, false) }

func (tn *testNet) halt(n *testNode, crash bool) {
	n.mu.Lock()
	if n.mu.stopped || n.mu.node == nil {
		n.mu.Unlock()
		return
	}
	n.mu.stopped = true
	node, l, inmem := n.mu.node, n.mu.log, n.mu.inmem
	n.mu.Unlock()
	tn.record(n)
	crashed := n.store.crash()
	node.Close()
	l.Close()
	if crash {
		n.store = crashed
	}
	inmem.DisconnectAll()
	tn.mu.Lock()
	for _, o := range tn.nodes {
		if oi := o.inmem(); oi != nil {
			oi.Disconnect(n.addr)
		}
	}
	tn.mu.Unlock()
}

// partition cuts every link between the two groups.
func (tn *testNet) partition(a, b []*testNode) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			tn.cut[[2]raft.ServerAddress{x.addr, y.addr}] = true
			tn.cut[[2]raft.ServerAddress{y.addr, x.addr}] = true
		}
	}
}

func (tn *testNet) heal() {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	clear(tn.cut)
}

func (tn *testNet) blocked(from, to raft.ServerAddress) bool {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	if tn.cut[[2]raft.ServerAddress{from, to}] {
		return true
	}
	if l := tn.loss.Load(); l > 0 && tn.rng.Uint64N(1000) < l {
		return true
	}
	return false
}

// leader waits for a leader among the running nodes and returns it.
func (tn *testNet) leader(among ...*testNode) *testNode {
	tn.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range among {
			if nd, _, ok := n.running(); ok && nd.IsLeader() {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tn.t.Fatal("no leader elected")
	return nil
}

// record notes every checkpoint a node stored and fails on a second root
// for a size.
func (tn *testNet) record(n *testNode) {
	tn.t.Helper()
	err := n.log().Checkpoints(func(size int64, note []byte) error {
		cp, err := ledger.OpenCheckpoint(note, testOrigin, tn.key.Verifier())
		if err != nil {
			return err
		}
		tn.see(cp)
		return nil
	})
	if err != nil {
		tn.t.Errorf("node %s checkpoints: %v", n.id, err)
	}
}

func (tn *testNet) see(cp *ledger.Checkpoint) {
	tn.seenMu.Lock()
	defer tn.seenMu.Unlock()
	if r, ok := tn.seen[cp.Size]; ok && r != cp.Root {
		tn.t.Errorf("two roots signed for size %d: %x and %x", cp.Size, r[:], cp.Root[:])
	}
	tn.seen[cp.Size] = cp.Root
}

// lossy is a node's raft transport: it drops the RPCs the node sends
// over a cut link or at random; a dropped call may have been delivered
// (its answer is what is lost) or not.
type lossy struct {
	raft.Transport
	tn   *testNet
	from raft.ServerAddress
}

var errDropped = errors.New("test: message dropped")

func (l *lossy) drop(to raft.ServerAddress) (deliver bool, drop bool) {
	if !l.tn.blocked(l.from, to) {
		return true, false
	}
	// Half of the lost messages are lost on the way back.
	return l.tn.coin() && !l.tn.cutLink(l.from, to), true
}

func (tn *testNet) coin() bool {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.rng.IntN(2) == 0
}

func (tn *testNet) cutLink(from, to raft.ServerAddress) bool {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.cut[[2]raft.ServerAddress{from, to}]
}

func (l *lossy) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (l *lossy) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	deliver, drop := l.drop(target)
	if deliver {
		if err := l.Transport.AppendEntries(id, target, args, resp); err != nil {
			return err
		}
	}
	if drop {
		return errDropped
	}
	return nil
}

func (l *lossy) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	deliver, drop := l.drop(target)
	if deliver {
		if err := l.Transport.RequestVote(id, target, args, resp); err != nil {
			return err
		}
	}
	if drop {
		return errDropped
	}
	return nil
}

func (l *lossy) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	deliver, drop := l.drop(target)
	if deliver {
		pv, ok := l.Transport.(raft.WithPreVote)
		if !ok {
			return errors.New("no prevote")
		}
		if err := pv.RequestPreVote(id, target, args, resp); err != nil {
			return err
		}
	}
	if drop {
		return errDropped
	}
	return nil
}

func (l *lossy) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if l.tn.cutLink(l.from, target) {
		return errDropped
	}
	return l.Transport.InstallSnapshot(id, target, args, resp, data)
}

func (l *lossy) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	if _, drop := l.drop(target); drop {
		return errDropped
	}
	return l.Transport.TimeoutNow(id, target, args, resp)
}

func (l *lossy) Close() error {
	if c, ok := l.Transport.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// testPeers delivers node-to-node RPCs in memory, subject to partitions.
type testPeers struct {
	tn   *testNet
	from raft.ServerAddress
}

func (p *testPeers) Call(ctx context.Context, addr raft.ServerAddress, req *Request) (*Response, error) {
	p.tn.mu.Lock()
	n := p.tn.nodes[addr]
	p.tn.mu.Unlock()
	if n == nil || p.tn.cutLink(p.from, addr) {
		return nil, fmt.Errorf("test: %s unreachable", addr)
	}
	node, _, ok := n.running()
	if !ok {
		return nil, fmt.Errorf("test: %s unreachable", addr)
	}
	return node.Handle(ctx, req), nil
}

// dump returns a store's keys and values.
func dump(t *testing.T, s storage.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := s.Scan([]byte{0}, nil, func(k, v []byte) error {
		out[string(k)] = bytes.Clone(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// converge waits until every running node applied the same raft index and
// checks that their stores are identical, that every acknowledged entry is
// present, and that no two nodes signed different roots for one size.
func (tn *testNet) converge(acked *ackSet, nodes ...*testNode) {
	tn.t.Helper()
	var running []*testNode
	for _, n := range nodes {
		if !n.stopped() {
			running = append(running, n)
		}
	}
	// Raft entries that are not applied to the ledger (a new leader's
	// no-op, membership changes) can end the log, so the ledger's applied
	// index may stay below the commit index. An empty replicated write
	// through the leader is applied everywhere: once every node has
	// applied it, all hold the same state.
	deadline := time.Now().Add(30 * time.Second)
	var ref uint64
	for ref == 0 {
		if l := tn.leader(running...); l != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := l.node().Write(ctx, &storage.Batch{}); err == nil {
				ref = l.log().AppliedIndex()
			}
			cancel()
		}
		if ref == 0 && time.Now().After(deadline) {
			tn.t.Fatal("no barrier write through a leader")
		}
	}
	for {
		same := true
		for _, n := range running {
			if n.log().AppliedIndex() < ref {
				same = false
			}
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			for _, n := range running {
				tn.t.Logf("node %s: commit %d applied %d size %d state %s", n.id, n.node().raft.CommitIndex(), n.log().AppliedIndex(), n.log().Size(), n.node().raft.State())
			}
			tn.t.Fatal("nodes did not converge")
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := dump(tn.t, running[0].store)
	for _, n := range running[1:] {
		got := dump(tn.t, n.store)
		if len(got) != len(want) {
			tn.t.Fatalf("node %s holds %d keys, node %s %d", n.id, len(got), running[0].id, len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				tn.t.Fatalf("node %s differs from node %s at key %x", n.id, running[0].id, k)
			}
		}
	}
	for _, n := range running {
		tn.record(n)
		if acked != nil {
			acked.check(tn.t, n)
		}
		rep, err := ledger.Verify(context.Background(), n.store, ledger.VerifyOptions{Origin: testOrigin, Verifier: tn.key.Verifier()})
		if err != nil || len(rep.Problems) > 0 {
			tn.t.Fatalf("node %s does not verify: %v %v", n.id, err, rep.Problems)
		}
	}
}

// ackSet records acknowledged appends.
type ackSet struct {
	mu    sync.Mutex
	byReq map[string]*ledger.Appended
	all   []*ledger.Appended
}

func newAckSet() *ackSet { return &ackSet{byReq: map[string]*ledger.Appended{}} }

func (a *ackSet) add(t *testing.T, req string, app *ledger.Appended) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.byReq[req]; ok && prev.First != app.First {
		t.Errorf("request %s acknowledged at %d and at %d", req, prev.First, app.First)
	}
	a.byReq[req] = app
	a.all = append(a.all, app)
}

func (a *ackSet) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byReq)
}

// check fails unless every acknowledged entry is on n, and each request id
// was recorded once.
func (a *ackSet) check(t *testing.T, n *testNode) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for req, app := range a.byReq {
		for i, d := range app.Leaves {
			e, err := n.log().Entry(app.First + int64(i))
			if err != nil || !bytes.Equal(e.Data, d) {
				t.Fatalf("node %s lacks acknowledged entry %d of request %s: %v", n.id, app.First+int64(i), req, err)
			}
		}
	}
	// Every payload names its request: a request recorded twice shows
	// up as two leaves with the same payload text.
	seen := map[string]int64{}
	size := n.log().Size()
	for i := range size {
		p, _, err := n.log().Payload(i)
		if err != nil {
			t.Fatalf("node %s payload %d: %v", n.id, i, err)
		}
		if prev, ok := seen[string(p)]; ok {
			t.Fatalf("node %s recorded %q twice, at %d and %d", n.id, p, prev, i)
		}
		seen[string(p)] = i
	}
}

// writer appends from node n until stop is closed, each append with its own
// request id, retrying an append whose outcome is unknown with the same
// id, as a client does.
func (tn *testNet) writer(ctx context.Context, name string, nodes func() *testNode, acked *ackSet, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		req := fmt.Sprintf("%s-%d", name, i)
		entries := []ledger.Entry{{Kind: ledger.KindSegment, Tenant: "t", Encounter: fmt.Sprintf("e%d", i%5), Actor: name, Payload: []byte(req)}}
		for try := 0; ; try++ {
			var nd *Node
			ok := false
			if n := nodes(); n != nil {
				nd, _, ok = n.running()
			}
			if !ok {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			cctx, cancel := context.WithTimeout(ledger.WithRequestID(ctx, req), 10*time.Second)
			app, err := nd.Append(cctx, entries)
			cancel()
			if err == nil {
				tn.see(app.Checkpoint)
				acked.add(tn.t, req, app)
				break
			}
			select {
			case <-stop:
				return // the outcome stays unknown; not acknowledged
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// crashStore is an in-memory store that can lose what was written but not
// synced, as a killed process loses the unsynced tail of pebble's
// write-ahead log: readers see every write at once, and a synced write or
// Sync makes every write before it durable.
type crashStore struct {
	*memstore.Store // what readers see
	mu              sync.Mutex
	durable         *memstore.Store
	pending         []*storage.Batch // written since the last sync, in order
}

func newCrashStore() *crashStore {
	return &crashStore{Store: memstore.New(), durable: memstore.New()}
}

func (s *crashStore) Write(b *storage.Batch, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Store.Write(b, false); err != nil {
		return err
	}
	c := new(storage.Batch)
	for _, op := range b.Ops {
		if op.Delete {
			c.Delete(bytes.Clone(op.Key))
		} else {
			c.Set(bytes.Clone(op.Key), bytes.Clone(op.Value))
		}
	}
	s.pending = append(s.pending, c)
	if sync {
		return s.syncLocked()
	}
	return nil
}

func (s *crashStore) WriteAsync(b *storage.Batch) (func() error, error) {
	return func() error { return nil }, s.Write(b, true)
}

func (s *crashStore) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncLocked()
}

func (s *crashStore) syncLocked() error {
	for _, b := range s.pending {
		if err := s.durable.Write(b, true); err != nil {
			return err
		}
	}
	s.pending = nil
	return nil
}

// crash returns the store a restart after a crash now would find: what
// was synced.
func (s *crashStore) crash() *crashStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := newCrashStore()
	var b storage.Batch
	s.durable.Scan(nil, nil, func(k, v []byte) error {
		b.Set(bytes.Clone(k), bytes.Clone(v))
		return nil
	})
	c.Store.Write(&b, true)
	c.durable.Write(&b, true)
	return c
}
