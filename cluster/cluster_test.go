package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// threeNodes starts a bootstrapped node and joins two more.
func threeNodes(t *testing.T, cfg func(*Config)) (*testNet, []*testNode) {
	tn := newTestNet(t, cfg)
	a := tn.add("a", true)
	tn.leader(a)
	b := tn.add("b", false)
	c := tn.add("c", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []*testNode{b, c} {
		if err := n.node().Join(ctx, string(a.addr)); err != nil {
			t.Fatal(err)
		}
	}
	return tn, []*testNode{a, b, c}
}

func runWriters(tn *testNet, nodes []*testNode, acked *ackSet) (stop func()) {
	ch := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range nodes {
		for w := range 3 {
			wg.Add(1)
			n := n
			go tn.writer(context.Background(), fmt.Sprintf("w%d.%d", i, w), func() *testNode { return n }, acked, ch, &wg)
		}
	}
	return func() { close(ch); wg.Wait() }
}

// TestReplicatedAppends writes through every node at once and checks that
// all nodes hold identical stores with every acknowledged entry, once.
func TestReplicatedAppends(t *testing.T) {
	tn, nodes := threeNodes(t, nil)
	acked := newAckSet()
	stop := runWriters(tn, nodes, acked)
	time.Sleep(1500 * time.Millisecond)
	stop()
	if acked.count() < 50 {
		t.Fatalf("only %d appends acknowledged", acked.count())
	}
	tn.converge(acked, nodes...)
	st := nodes[1].node().ClusterStatus(context.Background())
	if len(st) != 3 {
		t.Fatalf("cluster status lists %d nodes", len(st))
	}
	leaders := 0
	for _, s := range st {
		if s.State == "Leader" {
			leaders++
		}
		if s.TreeSize != nodes[0].log().Size() || len(s.Members) != 3 {
			t.Fatalf("status of %s: size %d, %d members", s.ID, s.TreeSize, len(s.Members))
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders in status", leaders)
	}
}

// TestMinorityLeader isolates the leader: what it is asked to append must
// not be acknowledged, the majority elects a new leader and goes on, and
// after healing the old leader converges without its unacknowledged work.
func TestMinorityLeader(t *testing.T) {
	tn, nodes := threeNodes(t, nil)
	acked := newAckSet()
	stop := runWriters(tn, nodes, acked)
	time.Sleep(300 * time.Millisecond)
	old := tn.leader(nodes...)
	var rest []*testNode
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	tn.partition([]*testNode{old}, rest)
	// Appends on the isolated leader must not succeed.
	type outcome struct {
		app *ledger.Appended
		err error
	}
	isolated := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ledger.WithRequestID(context.Background(), "isolated-1"), 3*time.Second)
		defer cancel()
		app, err := old.node().Append(ctx, []ledger.Entry{{Kind: ledger.KindSegment, Tenant: "t", Encounter: "iso", Actor: "x", Payload: []byte("isolated-1")}})
		isolated <- outcome{app, err}
	}()
	newLeader := tn.leader(rest...)
	before := acked.count()
	time.Sleep(1 * time.Second)
	if acked.count() <= before {
		t.Fatal("the majority acknowledged nothing after the partition")
	}
	o := <-isolated
	if o.err == nil {
		t.Fatalf("the isolated leader acknowledged an append at %d", o.app.First)
	}
	t.Logf("isolated leader %s refused: %v; new leader %s", old.id, o.err, newLeader.id)
	tn.heal()
	time.Sleep(500 * time.Millisecond)
	stop()
	tn.converge(acked, nodes...)
	// The refused append may have been committed after all (its outcome
	// was unknown) but never twice.
	for _, n := range nodes {
		cnt := 0
		for i := range n.log().Size() {
			if p, _, err := n.log().Payload(i); err == nil && string(p) == "isolated-1" {
				cnt++
			}
		}
		if cnt > 1 {
			t.Fatalf("isolated append recorded %d times", cnt)
		}
	}
}

// TestLeaderKilledMidBatch stops the leader while appends are in flight,
// several times; the survivors go on, and the killed node rejoins and
// catches up.
func TestLeaderKilledMidBatch(t *testing.T) {
	tn, nodes := threeNodes(t, nil)
	acked := newAckSet()
	var mu sync.Mutex
	target := 0
	pick := func() *testNode {
		mu.Lock()
		defer mu.Unlock()
		for i := range nodes {
			n := nodes[(target+i)%len(nodes)]
			if !n.stopped() {
				return n
			}
		}
		return nil
	}
	ch := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go tn.writer(context.Background(), fmt.Sprintf("w%d", w), pick, acked, ch, &wg)
	}
	for round := range 3 {
		time.Sleep(400 * time.Millisecond)
		l := tn.leader(nodes...)
		mu.Lock()
		target = round + 1
		mu.Unlock()
		before := acked.count()
		tn.stop(l)
		var rest []*testNode
		for _, n := range nodes {
			if n != l {
				rest = append(rest, n)
			}
		}
		tn.leader(rest...)
		deadline := time.Now().Add(10 * time.Second)
		for acked.count() <= before+5 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: writes did not resume", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The killed node restarts from its stores and catches up.
		tn.start(l, false)
	}
	time.Sleep(300 * time.Millisecond)
	close(ch)
	wg.Wait()
	tn.converge(acked, nodes...)
}

// TestMessageLoss drops a fifth of raft's messages (requests or answers)
// while every node writes.
func TestMessageLoss(t *testing.T) {
	tn, nodes := threeNodes(t, nil)
	acked := newAckSet()
	tn.loss.Store(200)
	stop := runWriters(tn, nodes, acked)
	time.Sleep(2 * time.Second)
	tn.loss.Store(0)
	stop()
	if acked.count() == 0 {
		t.Fatal("nothing acknowledged under message loss")
	}
	tn.converge(acked, nodes...)
}

// TestSnapshotCatchUp keeps a node away while the log is compacted, so
// that it can only catch up from a snapshot.
func TestSnapshotCatchUp(t *testing.T) {
	tn, nodes := threeNodes(t, func(c *Config) {
		c.SnapshotThreshold = 64
		c.TrailingLogs = 16
		c.SnapshotInterval = 50 * time.Millisecond
	})
	acked := newAckSet()
	lag := nodes[2]
	tn.stop(lag)
	stop := runWriters(tn, nodes[:2], acked)
	time.Sleep(1500 * time.Millisecond)
	stop()
	l := tn.leader(nodes[:2]...)
	// Raft may have just taken one of its own (SnapshotInterval is short).
	if err := l.node().raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		t.Fatal(err)
	}
	first, _ := l.node().rstore.FirstIndex()
	if first <= 1 {
		t.Fatalf("the raft log was not compacted (first index %d)", first)
	}
	tn.start(lag, false)
	tn.converge(acked, nodes...)
	if lag.node().metrics == nil {
		t.Fatal("no metrics")
	}
}

// TestMembership adds a fourth node, removes one, and keeps writing.
func TestMembership(t *testing.T) {
	tn, nodes := threeNodes(t, nil)
	acked := newAckSet()
	stop := runWriters(tn, nodes[:1], acked)
	d := tn.add("d", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.node().Join(ctx, string(nodes[1].addr)); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].node().RemoveServer(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	tn.stop(nodes[1])
	// d learns the configuration without b when the leader replicates it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		members := d.node().Status().Members
		if len(members) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members after add and remove: %v", members)
		}
	}
	tn.converge(acked, nodes[0], nodes[2], d)
}

// TestSideWrites replicates writes that are not appends, including
// create-only keys, and tombstones through RedactPayloads.
func TestSideWrites(t *testing.T) {
	tn, nodes := threeNodes(t, nil)
	rs := NewStore(nodes[1].node(), nodes[1].store)
	var b storage.Batch
	b.Set([]byte("Bchunk"), []byte("sealed"))
	if err := rs.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	var k1, k2 storage.Batch
	k1.Set([]byte("kt\x00e\x00d"), []byte("first"))
	k2.Set([]byte("kt\x00e\x00d"), []byte("second"))
	if err := NewStore(nodes[2].node(), nodes[2].store).Write(&k1, true); err != nil {
		t.Fatal(err)
	}
	if err := rs.Write(&k2, true); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create of a key record: %v, want ErrConflict", err)
	}
	app, err := nodes[0].node().Append(context.Background(), []ledger.Entry{{Kind: ledger.KindSegment, Tenant: "t", Encounter: "e", Actor: "a", Payload: []byte("secret")}})
	if err != nil {
		t.Fatal(err)
	}
	// A follower reads up to what it applied: wait for the entry there.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := nodes[2].log().Entry(app.First); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("entry not applied on a follower: %v", err)
		}
	}
	// Record the redaction, as compliance's shred does, then destroy the
	// segment's payload.
	if _, err := nodes[2].node().Append(context.Background(), []ledger.Entry{{Kind: ledger.KindRedaction, Tenant: "t", Encounter: "e", Actor: "a", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	tomb, n, err := nodes[2].log().Tombstones("t", "e", func(k ledger.Kind) bool { return k == ledger.KindSegment })
	if err != nil || n != 1 {
		t.Fatalf("tombstones: %d, %v", n, err)
	}
	if err := nodes[2].node().Write(context.Background(), tomb); err != nil {
		t.Fatal(err)
	}
	tn.converge(nil, nodes...)
	for _, n := range nodes {
		if v, err := n.store.Get([]byte("kt\x00e\x00d")); err != nil || string(v) != "first" {
			t.Fatalf("node %s key record: %q %v", n.id, v, err)
		}
		if _, _, err := n.log().Payload(app.First); !errors.Is(err, ledger.ErrRedacted) {
			t.Fatalf("node %s payload after redaction: %v", n.id, err)
		}
	}
}
