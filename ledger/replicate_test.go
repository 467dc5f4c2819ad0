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

// lockstep is a Replicator for tests: a totally ordered log of encoded
// proposals, applied in order to every replica, one proposal batch per
// index, like a consensus layer that never fails.
type lockstep struct {
	mu       sync.Mutex
	replicas []*Log
	index    uint64
	group    int // proposals per applied batch
	pending  []*Proposal
	waits    []chan result
}

func (r *lockstep) Replicate(ctx context.Context, p *Proposal) (func() (*Appended, error), error) {
	c := make(chan result, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, p)
	r.waits = append(r.waits, c)
	if len(r.pending) >= r.group {
		r.flushLocked()
	}
	return func() (*Appended, error) { res := <-c; return res.app, res.err }, nil
}

func (r *lockstep) Write(ctx context.Context, b *storage.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
	r.index++
	var first *Applying
	for i, l := range r.replicas {
		a, err := l.ApplyWrite(r.index, b)
		if err != nil {
			return err
		}
		if i == 0 {
			first = a
		}
	}
	return first.Done()
}

// flushLocked sends the pending proposals through their encoding and
// applies them to every replica at the next index.
func (r *lockstep) flushLocked() {
	if len(r.pending) == 0 {
		return
	}
	r.index++
	var wire []byte
	for _, p := range r.pending {
		wire, _ = p.AppendBinary(wire)
	}
	var first *Applying
	for i, l := range r.replicas {
		var ps []*Proposal
		rest := wire
		for len(rest) > 0 {
			p, next, err := ParseProposal(rest)
			if err != nil {
				panic(err)
			}
			ps, rest = append(ps, p), next
		}
		a, err := l.Apply(r.index, ps)
		if err != nil {
			panic(err)
		}
		if i == 0 {
			first = a
		}
	}
	for i, c := range r.waits {
		app, err := first.Wait(i)
		c <- result{app: app, err: err}
	}
	r.pending, r.waits = nil, nil
}

func (r *lockstep) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

func openReplicas(t *testing.T, n, group int) (*lockstep, []*Log, []storage.Store) {
	t.Helper()
	k := testKey(t)
	r := &lockstep{group: group}
	var stores []storage.Store
	for range n {
		s := memstore.New()
		l, err := Open(s, Options{Origin: testOrigin, Key: k, Replicator: r, RequestIDWindow: 64})
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
		r.group = 1 + rng.IntN(4)
		a, err := logs[0].AppendAsync(actx, entries)
		if err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			r.flush()
		}
		_ = a
		if i%20 == 19 {
			r.flush()
			app, err := a.Wait()
			if err != nil {
				t.Fatal(err)
			}
			acked = append(acked, app)
		}
	}
	r.flush()
	for _, l := range logs {
		if _, err := l.Apply(r.index+1, nil); err != nil {
			t.Fatal(err)
		}
	}
	r.index++
	// Let every replica's pipeline drain.
	for _, l := range logs {
		a, err := l.ApplyWrite(r.index+1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Done(); err != nil {
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
	for _, l := range logs {
		if l.AppliedIndex() != r.index+1 {
			t.Fatalf("AppliedIndex = %d, want %d", l.AppliedIndex(), r.index+1)
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
		}
	}
	// A repeat, replayed at an old index, is ignored.
	a, err := logs[1].Apply(1, nil)
	if a != nil || err != nil {
		t.Fatalf("Apply at an applied index = %v, %v; want nil, nil", a, err)
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

func mustAppendCtx(t *testing.T, l *Log, ctx context.Context, entries ...Entry) *Appended {
	t.Helper()
	a, err := l.Append(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestReloadAfterInstall copies one replica's store into a lagging one, as
// installing a snapshot does, and checks that Reload picks it up.
func TestReloadAfterInstall(t *testing.T) {
	r, logs, stores := openReplicas(t, 2, 1)
	ctx := context.Background()
	lagging := logs[1]
	r.replicas = logs[:1]
	for i := range 40 {
		if _, err := logs[0].Append(ctx, []Entry{segment("e", fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := logs[0].ApplyWrite(r.index+1, &storage.Batch{Ops: []storage.Op{{Key: []byte("zz"), Value: []byte("side")}}})
	if err != nil || a.Done() != nil {
		t.Fatal(err)
	}
	var b storage.Batch
	stores[0].Scan([]byte{0}, nil, func(k, v []byte) error {
		b.Set(bytes.Clone(k), bytes.Clone(v))
		return nil
	})
	if err := stores[1].Write(&b, true); err != nil {
		t.Fatal(err)
	}
	if err := lagging.Reload(); err != nil {
		t.Fatal(err)
	}
	if lagging.Size() != 40 || lagging.AppliedIndex() != r.index+1 || lagging.Checkpoint().Root != logs[0].Checkpoint().Root {
		t.Fatalf("after Reload: size %d, applied %d", lagging.Size(), lagging.AppliedIndex())
	}
	r.index++
	r.replicas = logs
	if _, err := logs[0].Append(ctx, []Entry{segment("e", "after")}); err != nil {
		t.Fatal(err)
	}
	// The replicator acknowledges on the first replica; wait for the other.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := lagging.WaitApplied(wctx, r.index); err != nil {
		t.Fatal(err)
	}
	if lagging.Size() != 41 {
		t.Fatalf("the reloaded replica did not apply the next append: size %d", lagging.Size())
	}
}

func TestProposalEncoding(t *testing.T) {
	l := openTestLog(t, memstore.New(), testKey(t))
	req, err := l.prepare([]Entry{segment("e1", "hello"), {Kind: KindEdit, Tenant: "t", Encounter: "e2", Actor: "dr", Payload: nil}})
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
	req, _ := l.prepare([]Entry{segment("e1", "hello")})
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
