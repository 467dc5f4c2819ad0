package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// lockstep is a consensus layer for tests: a totally ordered log of
// commands (encoded proposals, side writes), applied in order to every
// replica, like one that never fails. Commands are kept, so that a replica
// can apply them again after a crash.
type lockstep struct {
	mu       sync.Mutex
	replicas []*Replica
	cmds     []command // cmds[i] is at replication index i+1
	group    int       // proposals per applied batch
	pending  [][]byte
	waits    []chan Outcome
}

// command is one entry of the lockstep log: encoded proposals or side
// write ops.
type command struct {
	proposals [][]byte
	write     []WriteOp
}

// append prepares entries on the first replica and queues the proposal;
// the returned function waits for its outcome there.
func (r *lockstep) append(ctx context.Context, entries []Entry) (func() (*Appended, error), error) {
	p, err := r.replicas[0].Prepare(ctx, entries)
	if err != nil {
		return nil, err
	}
	enc, _ := p.AppendBinary(nil)
	c := make(chan Outcome, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, enc)
	r.waits = append(r.waits, c)
	if len(r.pending) >= r.group {
		r.flushLocked()
	}
	return func() (*Appended, error) { o := <-c; return o.Appended, o.Err }, nil
}

func (r *lockstep) write(ops []WriteOp) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
	r.cmds = append(r.cmds, command{write: ops})
	for _, l := range r.replicas {
		if err := applyCommand(l, uint64(len(r.cmds)), r.cmds[len(r.cmds)-1], nil); err != nil {
			return err
		}
	}
	return nil
}

// applyCommand applies one command to a replica, parsing proposals from
// their encoding as a follower does; outcomes, if not nil, receives the
// proposals' outcomes.
func applyCommand(l *Replica, index uint64, c command, outcomes *[]Outcome) error {
	if c.write != nil {
		_, err := l.ApplyWrite(index, c.write)
		return err
	}
	var ps []*Proposal
	for _, enc := range c.proposals {
		p, rest, err := ParseProposal(enc)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("proposal does not parse: %v", err)
		}
		ps = append(ps, p)
	}
	out, err := l.Apply(index, ps)
	if outcomes != nil {
		*outcomes = out
	}
	return err
}

// flushLocked applies the pending proposals to every replica at the next
// index.
func (r *lockstep) flushLocked() {
	if len(r.pending) == 0 {
		return
	}
	r.cmds = append(r.cmds, command{proposals: r.pending})
	index := uint64(len(r.cmds))
	var first []Outcome
	for i, l := range r.replicas {
		var out []Outcome
		if err := applyCommand(l, index, r.cmds[index-1], &out); err != nil {
			panic(err)
		}
		if i == 0 {
			first = out
		}
	}
	for i, c := range r.waits {
		c <- first[i]
	}
	r.pending, r.waits = nil, nil
}

func (r *lockstep) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

// index is the last replication index.
func (r *lockstep) index() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint64(len(r.cmds))
}

func openReplicas(t *testing.T, n, group int) (*lockstep, []*Replica, []storage.Store) {
	t.Helper()
	k := testKey(t)
	r := &lockstep{group: group}
	var stores []storage.Store
	for range n {
		s := memstore.New()
		l, err := OpenReplica(s, Options{Origin: testOrigin, Key: k, RequestIDWindow: 64})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		r.replicas = append(r.replicas, l)
		stores = append(stores, s)
	}
	return r, r.replicas, stores
}

// dump returns every key and value of a store, in order.
func dump(t *testing.T, s storage.Store) []string {
	t.Helper()
	var out []string
	if err := s.Scan([]byte{0}, nil, func(k, v []byte) error {
		out = append(out, fmt.Sprintf("%x=%x", k, v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplicasAreIdentical applies the same proposals to three logs and
// checks that their stores are byte-identical and that every checkpoint
// they signed is the same, and that request ids are recognised.
func TestReplicasAreIdentical(t *testing.T) {
	r, logs, stores := openReplicas(t, 3, 1)
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	var acked []*Appended
	for i := range 300 {
		n := 1 + rng.IntN(5)
		entries := make([]Entry, n)
		for j := range entries {
			entries[j] = segment(fmt.Sprintf("enc-%d", rng.IntN(7)), fmt.Sprintf("payload %d/%d", i, j))
		}
		actx := ctx
		if i%3 == 0 {
			actx = WithRequestID(ctx, fmt.Sprintf("req-%d", i))
		}
		if i%50 == 49 {
			// A retry of an earlier request id: nothing is appended.
			actx = WithRequestID(ctx, fmt.Sprintf("req-%d", i-49))
		}
		r.mu.Lock()
		r.group = 1 + rng.IntN(4)
		r.mu.Unlock()
		wait, err := r.append(actx, entries)
		if err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			r.flush()
		}
		if i%20 == 19 {
			r.flush()
			app, err := wait()
			if err != nil && !errors.Is(err, ErrRequestReused) {
				t.Fatal(err)
			}
			if err == nil {
				acked = append(acked, app)
			}
		}
		if i%37 == 36 {
			if err := r.write([]WriteOp{{Key: []byte(fmt.Sprintf("zz%d", i)), Value: []byte("side")}, {Key: []byte("zzonce"), Value: []byte{byte(i)}, CreateOnly: true}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.flush()
	for _, l := range logs {
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	want := dump(t, stores[0])
	for i := 1; i < len(stores); i++ {
		got := dump(t, stores[i])
		if len(got) != len(want) {
			t.Fatalf("replica %d has %d keys, replica 0 has %d", i, len(got), len(want))
		}
		for j := range want {
			if got[j] != want[j] {
				t.Fatalf("replica %d differs from replica 0 at key %d: %s vs %s", i, j, got[j], want[j])
			}
		}
	}
	if v, err := stores[2].Get([]byte("zzonce")); err != nil || v[0] != 36 {
		t.Fatalf("create-only key: %v %v, want the first write's", v, err)
	}
	for _, l := range logs {
		if l.AppliedIndex() != r.index() {
			t.Fatalf("AppliedIndex = %d, want %d", l.AppliedIndex(), r.index())
		}
		if rep, err := Verify(context.Background(), l.store, VerifyOptions{Origin: testOrigin, Verifier: l.opts.Key.Verifier()}); err != nil || len(rep.Problems) > 0 {
			t.Fatalf("Verify: %v %v", err, rep.Problems)
		}
	}
	for _, a := range acked {
		for _, l := range logs {
			for i, d := range a.Leaves {
				e, err := l.Entry(a.First + int64(i))
				if err != nil || !bytes.Equal(e.Data, d) {
					t.Fatalf("acknowledged entry %d missing or different on a replica: %v", a.First+int64(i), err)
				}
			}
			// Proofs from the commit verify against its checkpoint.
			_, p, err := a.InclusionProof(a.First + int64(len(a.Leaves)-1))
			if err != nil {
				t.Fatal(err)
			}
			q, err := l.InclusionProof(a.First+int64(len(a.Leaves)-1), a.Checkpoint.Size)
			if err != nil || fmt.Sprint(p) != fmt.Sprint(q) {
				t.Fatalf("the commit's proof differs from the stored tree's: %v", err)
			}
		}
	}
	// A repeat, replayed at an old index, is ignored.
	out, err := logs[1].Apply(1, nil)
	if out != nil || err != nil {
		t.Fatalf("Apply at an applied index = %v, %v; want nil, nil", out, err)
	}
}

func TestRequestIDs(t *testing.T) {
	eachStore(t, func(t *testing.T, s storage.Store, reopen func() storage.Store) {
		k := testKey(t)
		l, err := Open(s, Options{Origin: testOrigin, Key: k, RequestIDWindow: 50})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		first, err := l.Append(WithRequestID(ctx, "r1"), []Entry{segment("e", "a"), segment("e", "b")})
		if err != nil {
			t.Fatal(err)
		}
		// A retry with new salts and payloads reports the first append.
		again, err := l.Append(WithRequestID(ctx, "r1"), []Entry{segment("e", "a"), segment("e", "b")})
		if err != nil {
			t.Fatal(err)
		}
		if again.First != first.First || !bytes.Equal(again.Leaves[1], first.Leaves[1]) || l.Size() != 2 {
			t.Fatalf("retry appended again: first %d, retry %d, size %d", first.First, again.First, l.Size())
		}
		if _, err := l.Append(WithRequestID(ctx, "r1"), []Entry{segment("e", "a")}); !errors.Is(err, ErrRequestReused) {
			t.Fatalf("reuse for another append: %v, want ErrRequestReused", err)
		}
		// Several appends under one context get ids r2, r2#1, ...
		rctx := WithRequestID(ctx, "r2")
		mustAppendCtx(t, l, rctx, segment("e", "c"))
		mustAppendCtx(t, l, rctx, segment("e", "d"))
		if _, err := s.Get(requestKey("r2#1")); err != nil {
			t.Fatalf("second append's id: %v", err)
		}
		if _, err := l.Append(ctx, []Entry{segment("e", "x")}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(WithRequestID(ctx, "bad id"), []Entry{segment("e", "x")}); err == nil {
			t.Fatal("a request id with a space was accepted")
		}
		size := l.Size()
		l.Close()
		// Ids survive a restart.
		s = reopen()
		l, err = Open(s, Options{Origin: testOrigin, Key: k, RequestIDWindow: 50})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		again, err = l.Append(WithRequestID(ctx, "r1"), []Entry{segment("e", "a"), segment("e", "b")})
		if err != nil || again.First != first.First || l.Size() != size {
			t.Fatalf("retry after restart: %v, first %d, size %d (want %d)", err, again.First, l.Size(), size)
		}
		// Past the window an id is forgotten, and its records pruned.
		for i := range 120 {
			mustAppend(t, l, segment("f", fmt.Sprint(i)))
		}
		if _, err := s.Get(requestKey("r1")); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("r1 not pruned: %v", err)
		}
		n := 0
		s.Scan([]byte{prefixReqAge}, []byte{prefixReqAge + 1}, func(k, v []byte) error { n++; return nil })
		if n != 0 {
			t.Fatalf("%d age records left after pruning", n)
		}
		late, err := l.Append(WithRequestID(ctx, "r1"), []Entry{segment("e", "z")})
		if err != nil || late.First == first.First {
			t.Fatalf("an expired id: %v, first %d", err, late.First)
		}
		if rep, err := Verify(context.Background(), s, VerifyOptions{Origin: testOrigin, Verifier: k.Verifier()}); err != nil || len(rep.Problems) > 0 {
			t.Fatalf("Verify: %v %v", err, rep.Problems)
		}
	})
}

func mustAppendCtx(t *testing.T, l *Appender, ctx context.Context, entries ...Entry) *Appended {
	t.Helper()
	a, err := l.Append(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSnapshotRestore installs one replica's snapshot on a lagging one and
// checks that it picks it up and applies what follows.
func TestSnapshotRestore(t *testing.T) {
	r, logs, stores := openReplicas(t, 2, 1)
	ctx := context.Background()
	lagging := logs[1]
	r.replicas = logs[:1]
	for i := range 40 {
		wait, err := r.append(ctx, []Entry{segment("e", fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.write([]WriteOp{{Key: []byte("zz"), Value: []byte("side")}}); err != nil {
		t.Fatal(err)
	}
	snap, err := logs[0].Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := lagging.Restore(bytes.NewReader(buf.Bytes()[:buf.Len()-3])); err == nil {
		t.Fatal("a truncated snapshot was restored")
	}
	if err := lagging.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if lagging.Size() != 40 || lagging.AppliedIndex() != r.index() || lagging.Checkpoint().Root != logs[0].Checkpoint().Root {
		t.Fatalf("after Restore: size %d, applied %d", lagging.Size(), lagging.AppliedIndex())
	}
	if v, err := stores[1].Get([]byte("zz")); err != nil || string(v) != "side" {
		t.Fatalf("side write after Restore: %q %v", v, err)
	}
	r.replicas = logs
	wait, err := r.append(ctx, []Entry{segment("e", "after")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := lagging.WaitApplied(wctx, r.index()); err != nil {
		t.Fatal(err)
	}
	if lagging.Size() != 41 || lagging.Checkpoint().Root != logs[0].Checkpoint().Root {
		t.Fatalf("the restored replica did not apply the next append: size %d", lagging.Size())
	}
}

func TestProposalEncoding(t *testing.T) {
	l := openTestLog(t, memstore.New(), testKey(t))
	req, err := l.prepare([]Entry{segment("e1", "hello"), {Kind: KindEdit, Tenant: "t", Encounter: "e2", Actor: "dr", Payload: nil}}, "")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proposal{RequestID: "abc", entries: req.entries, bytes: req.bytes}
	enc, _ := p.AppendBinary(nil)
	got, rest, err := ParseProposal(append(enc, 9))
	if err != nil || len(rest) != 1 || got.RequestID != "abc" || got.Len() != 2 {
		t.Fatalf("ParseProposal: %v, rest %d", err, len(rest))
	}
	again, _ := got.AppendBinary(nil)
	if !bytes.Equal(again, enc) {
		t.Fatal("re-encoding differs")
	}
	for i := range enc {
		if _, _, err := ParseProposal(enc[:i]); err == nil {
			t.Fatalf("truncated proposal of %d bytes parsed", i)
		}
	}
}

func FuzzParseProposal(f *testing.F) {
	l, _ := Open(memstore.New(), Options{Origin: testOrigin, Key: testKey(f)})
	defer l.Close()
	req, _ := l.prepare([]Entry{segment("e1", "hello")}, "")
	enc, _ := (&Proposal{RequestID: "x", entries: req.entries}).AppendBinary(nil)
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, rest, err := ParseProposal(data)
		if err != nil {
			return
		}
		enc, _ := p.AppendBinary(nil)
		if !bytes.Equal(append(enc, rest...), data) {
			t.Fatal("a parsed proposal does not re-encode to its input")
		}
	})
}
