package cluster

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

func copyStore(t *testing.T, from storage.Store) *crashStore {
	t.Helper()
	to := newCrashStore()
	var b storage.Batch
	if err := from.Scan([]byte{0}, nil, func(k, v []byte) error {
		b.Set(bytes.Clone(k), bytes.Clone(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := to.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestBootstrapFromBackup rebuilds a cluster from one member's store, as
// docs/operations.md tells an operator to after losing every node: the
// copy bootstraps a new cluster with a new raft log whose indexes start
// again at 1, and those entries must be applied, not taken for replays of
// the old history. A node that joins with entries of its own is refused.
func TestBootstrapFromBackup(t *testing.T) {
	tn, nodes := threeNodes(t, nil)
	ctx := context.Background()
	for i := range 30 {
		if _, err := nodes[i%3].node().Append(ctx, []ledger.Entry{{Kind: ledger.KindSegment, Tenant: "t", Encounter: "e", Actor: "a", Payload: []byte(fmt.Sprint("segment ", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	tn.converge(nil, nodes...)
	for _, n := range nodes {
		tn.shutdown(n)
	}
	backup := copyStore(t, nodes[0].store)

	tn2 := newTestNet(t, nil)
	tn2.key = tn.key
	r := &testNode{id: "r", addr: "inmem-r", dir: t.TempDir(), store: backup, raftKV: memstore.New()}
	r.mu.stopped = true
	tn2.nodes[r.addr] = r
	tn2.start(r, true)
	tn2.leader(r)
	if r.log().AppliedIndex() != 0 {
		t.Fatalf("applied index after bootstrapping from a backup: %d, want 0", r.log().AppliedIndex())
	}
	before := r.log().Size()
	if before != 30 {
		t.Fatalf("restored log holds %d entries, want 30", before)
	}
	app, err := r.node().Append(ctx, []ledger.Entry{{Kind: ledger.KindSegment, Tenant: "t", Encounter: "e", Actor: "a", Payload: []byte("after the restore")}})
	if err != nil {
		t.Fatal(err)
	}
	if app.First != before || r.log().Size() != before+1 {
		t.Fatalf("append after the restore went to %d (size %d), want %d", app.First, r.log().Size(), before)
	}

	// An empty node joins the new cluster and catches up.
	s := tn2.add("s", false)
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.node().Join(jctx, string(r.addr)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.node().Append(ctx, []ledger.Entry{{Kind: ledger.KindSegment, Tenant: "t", Encounter: "e", Actor: "a", Payload: []byte("through the new node")}}); err != nil {
		t.Fatal(err)
	}
	tn2.converge(nil, r, s)
	if s.log().Size() != before+2 {
		t.Fatalf("the joined node holds %d entries, want %d", s.log().Size(), before+2)
	}

	// A node holding entries may not join: raft's history would be
	// applied on top of them.
	_, inmem := raft.NewInmemTransport("inmem-x")
	l, err := ledger.OpenReplica(copyStore(t, nodes[1].store), ledger.Options{Origin: testOrigin, Key: tn.key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	node, err := New(Config{ID: "x", RaftAddr: "inmem-x", Dir: t.TempDir(), RaftStore: memstore.New(), Transport: inmem, Peers: &testPeers{tn: tn2, from: "inmem-x"}, Fast: true}, l)
	if err == nil || !strings.Contains(err.Error(), "empty log") {
		if node != nil {
			node.Close()
		}
		t.Fatalf("a joining node with 30 entries started: %v", err)
	}
}
