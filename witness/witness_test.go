package witness_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/witness"
	"github.com/evidenceledger/evidence/witness/witnesstest"
)

const origin = "witness.test/log"

func appendN(t *testing.T, l *ledger.Appender, n int, tag string) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), []ledger.Entry{{Kind: ledger.KindSegment, Tenant: "t", Encounter: "e", Actor: "a", Payload: fmt.Appendf(nil, "%s %d", tag, i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

func copyStore(t *testing.T, src storage.Store) storage.Store {
	dst := memstore.New()
	var b storage.Batch
	src.Scan(nil, nil, func(k, v []byte) error { b.Set(slices.Clone(k), slices.Clone(v)); return nil })
	if err := dst.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestRealWitness submits the log's checkpoints to the real
// transparency-dev witness: it cosigns a growing log, and refuses the same
// log rolled back to an older copy and then forked; a client policy that
// requires the witness's cosignature accepts the first and refuses the
// forked log's checkpoints.
func TestRealWitness(t *testing.T) {
	key, err := ledger.LoadOrCreateKey(t.TempDir(), origin)
	if err != nil {
		t.Fatal(err)
	}
	w := witnesstest.Start(t, "witness.test/w1", origin, key.VerifierKey())
	ww, err := witness.Parse(w.VKey + "=" + w.URL)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := witness.NewPolicy([]string{w.VKey}, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := memstore.New()
	l, err := ledger.Open(s, ledger.Options{Origin: origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 5, "a")
	backup := copyStore(t, s) // the log at size 5
	sub, err := witness.NewSubmitter(l, []witness.Witness{ww}, witness.SubmitterOptions{Path: filepath.Join(t.TempDir(), witness.WitnessedFileName)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var rtts []time.Duration
	for round := range 4 {
		appendN(t, l, 3, fmt.Sprint("b", round))
		start := time.Now()
		if !sub.Round(ctx, l.Checkpoint()) {
			t.Fatalf("round %d: not cosigned: %v", round, sub.LastError(0))
		}
		rtts = append(rtts, time.Since(start))
		signed := sub.Witnessed()
		if err := policy.Check(signed); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		cp, err := ledger.OpenCheckpoint(signed, origin, key.Verifier())
		if err != nil || cp.Size != l.Size() {
			t.Fatalf("round %d: witnessed checkpoint %v, %v", round, cp, err)
		}
	}
	t.Logf("witness round trips (submit, cosign, check): %v", rtts)
	witnessed := l.Size() // 17

	// The log rolled back to the copy at size 5: the witness refuses to go
	// back (old size larger than the checkpoint: 400).
	l.Close()
	rolled, err := ledger.Open(backup, ledger.Options{Origin: origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer rolled.Close()
	_, err = ww.AddCheckpoint(ctx, witnessed, nil, rolled.Checkpoint().Note)
	var refused *witness.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("the witness accepted a rolled-back checkpoint: %v", err)
	}
	// Submitted as the server would (from the size it knew, then the
	// witness's): refused, and nothing is cosigned.
	sub2, _ := witness.NewSubmitter(rolled, []witness.Witness{ww}, witness.SubmitterOptions{})
	if sub2.Round(ctx, rolled.Checkpoint()) || sub2.Refusals() == 0 || sub2.Witnessed() != nil {
		t.Fatalf("a rolled-back log got cosigned: refusals %d", sub2.Refusals())
	}
	// The rolled-back log grows again with other entries: a fork. The
	// witness finds it inconsistent with what it cosigned (422).
	appendN(t, rolled, 20, "fork")
	if sub2.Round(ctx, rolled.Checkpoint()) {
		t.Fatal("a forked log got cosigned")
	}
	if err := sub2.LastError(0); !errors.As(err, &refused) || refused.Status != 422 {
		t.Fatalf("the witness's answer to a fork: %v, want a 422 refusal", err)
	}
	// A client requiring the witness refuses the forked log's checkpoint.
	var pe *witness.PolicyError
	if err := policy.Check(rolled.Checkpoint().Note); !errors.As(err, &pe) || pe.Have != 0 {
		t.Fatalf("policy on the forked checkpoint: %v", err)
	}
}
