// Package testenv sets up an in-memory ledger and encounter service for
// the pipeline's tests, with a synthetic visit, and checks recorded
// entries the way an outside verifier would: inclusion proofs verified
// with github.com/transparency-dev/merkle against a checkpoint whose
// signature is verified with golang.org/x/mod/sumdb/note.
package testenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// Origin is the test log's origin.
const Origin = "pipeline.test/log"

// Alice is a caller of tenant clinic-a.
var Alice = encounter.Caller{Tenant: "clinic-a", Actor: "svc:scribe"}

// New returns an encounter service on a new in-memory log, closed when
// the test ends.
func New(t testing.TB) (*encounter.Service, *ledger.Appender) {
	t.Helper()
	kv := memstore.New()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), Origin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(kv, ledger.Options{Origin: Origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return encounter.New(l.Log, l, blob.New(kv, nil)), l
}

// Segments is a short synthetic consultation.
var Segments = []encounter.Segment{
	{ID: "s1", Role: encounter.RoleClinician, Text: "What brings you in today?", StartMS: 0, EndMS: 2000},
	{ID: "s2", Role: encounter.RolePatient, Text: "I've had a cough for three days.", StartMS: 2100, EndMS: 5000},
	{ID: "s3", Role: encounter.RoleClinician, Text: "Any fever?", StartMS: 5100, EndMS: 6000},
	{ID: "s4", Role: encounter.RolePatient, Text: "No.", StartMS: 6100, EndMS: 6500},
	{ID: "s5", Role: encounter.RoleClinician, Text: "Your chest is clear. It looks like a viral infection, so rest and drink plenty of fluids, and come back if you get breathless.", StartMS: 6600, EndMS: 14000},
}

// Visit opens an encounter for c with Segments and returns its id and the
// segments' leaf indexes.
func Visit(t testing.TB, svc *encounter.Service, c encounter.Caller) (string, []int64) {
	t.Helper()
	ctx := context.Background()
	info, _, err := svc.Create(ctx, c, "Cough", "synthetic-1")
	if err != nil {
		t.Fatal(err)
	}
	segs := append([]encounter.Segment(nil), Segments...)
	a, err := svc.RecordSegments(ctx, c, info.ID, segs)
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int64, len(segs))
	for i := range idx {
		idx[i] = a.First + int64(i)
	}
	return info.ID, idx
}

// Output is a recorded model_output entry.
type Output struct {
	Index int64
	Leaf  *ledger.Leaf
	*encounter.ModelOutput
}

// ModelOutputs returns the model_output entries of an encounter, in order.
func ModelOutputs(t testing.TB, l *ledger.Log, tenant, id string) []Output {
	t.Helper()
	var out []Output
	err := l.WalkEncounter(tenant, id, func(e *ledger.StoredEntry) error {
		if e.Leaf.Kind != ledger.KindModelOutput {
			return nil
		}
		p, _, err := l.Payload(e.Index)
		if err != nil {
			return err
		}
		v, err := encounter.DecodePayload(e.Leaf.Kind, p)
		if err != nil {
			return err
		}
		out = append(out, Output{Index: e.Index, Leaf: e.Leaf, ModelOutput: v.(*encounter.ModelOutput)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// VerifyIncluded checks that entry index is in the log: the latest
// checkpoint's signature verifies with the log's verifier key, and the
// entry's inclusion proof verifies against that checkpoint's root.
func VerifyIncluded(t testing.TB, l *ledger.Log, index int64) {
	t.Helper()
	if err := verifyIncluded(l, index); err != nil {
		t.Fatalf("entry %d: %v", index, err)
	}
}

func verifyIncluded(l *ledger.Log, index int64) error {
	cp := l.Checkpoint()
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		return err
	}
	if _, err := note.Open(cp.Note, note.VerifierList(v)); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	e, err := l.Entry(index)
	if err != nil {
		return err
	}
	hashes, err := l.InclusionProof(index, cp.Size)
	if err != nil {
		return err
	}
	p := make([][]byte, len(hashes))
	for i := range hashes {
		p[i] = hashes[i][:]
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(e.Data)
	return proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(cp.Size), leaf, p, cp.Root[:])
}
