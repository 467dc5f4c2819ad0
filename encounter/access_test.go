package encounter

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// failingStore fails every write once fail is set.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

func (f *failingStore) Write(b *storage.Batch, sync bool) error {
	if f.fail.Load() {
		return errors.New("disk on fire")
	}
	return f.Store.Write(b, sync)
}

func newAuditedService(t *testing.T) (*Service, *ledger.Appender, *failingStore) {
	t.Helper()
	kv := &failingStore{Store: memstore.New()}
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "encounter.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(kv, ledger.Options{Origin: "encounter.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return New(l.Log, l, blob.New(kv, nil), WithAccessTrail()), l, kv
}

// accesses returns the access entries of a chain after index from.
func accesses(t *testing.T, l *ledger.Appender, tenant, enc string, from int64) []*Access {
	t.Helper()
	idx, err := l.EncounterIndexesFrom(tenant, enc, from)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Access
	for _, x := range idx {
		p, e, err := l.Payload(x)
		if err != nil {
			t.Fatal(err)
		}
		if e.Leaf.Kind != ledger.KindAccess {
			continue
		}
		if e.Leaf.Actor != alice.Actor || e.Leaf.Tenant != alice.Tenant {
			t.Fatalf("access entry %d by %s of %s", x, e.Leaf.Actor, e.Leaf.Tenant)
		}
		a, err := DecodeAccess(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestAccessTrail(t *testing.T) {
	svc, l, _ := newAuditedService(t)
	id := newVisit(t, svc)
	if _, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: draft}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.RecordAudio(ctx, alice, id, Audio{MediaType: "audio/wav"}, bytes.NewReader([]byte("RIFF...."))); err != nil {
		t.Fatal(err)
	}
	if got := accesses(t, l, alice.Tenant, id, 0); len(got) != 0 {
		t.Fatalf("writes recorded %d access entries", len(got))
	}
	before := l.Size()
	rctx := WithOrigin(ctx, Origin{Role: "clinician", Channel: "/evidence.v1.EncounterService/GetNote", Remote: "10.0.0.7:5123", ForwardedFor: "192.0.2.1"})
	n1, err := svc.Note(rctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Transcript(ctx, alice, id); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, alice, id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.AudioBlob(ctx, alice, id, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Align(ctx, alice, id, []align.Sentence{{Text: "Sore throat."}}); err != nil {
		t.Fatal(err)
	}
	got := accesses(t, l, alice.Tenant, id, before)
	want := []string{AccessNote, AccessTranscript, AccessGetEncounter, AccessAudio, AccessAlign}
	if len(got) != len(want) {
		t.Fatalf("%d access entries, want %d", len(got), len(want))
	}
	for i, a := range got {
		if a.Action != want[i] {
			t.Fatalf("access %d is %q, want %q", i, a.Action, want[i])
		}
	}
	if a := got[0]; a.Role != "clinician" || a.Remote != "10.0.0.7:5123" || a.ForwardedFor != "192.0.2.1" || a.Channel != "/evidence.v1.EncounterService/GetNote" || a.Head != n1.Head {
		t.Fatalf("note access %+v", a)
	}
	if a := got[1]; a.Channel != "internal" || a.Count != len(visit) {
		t.Fatalf("transcript access without an origin: %+v", a)
	}
	if a := got[3]; len(a.Leaves) != 1 || a.Leaves[0] < 0 {
		t.Fatalf("audio access names no leaf: %+v", a)
	}
	// Access entries change nothing in the note (the projection ignores
	// them), and the note can still be signed.
	n2, err := svc.Note(ctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	if n2.Hash != n1.Hash || n2.ModelOutput != n1.ModelOutput {
		t.Fatal("reading the note changed it")
	}
	resolveAll(t, svc, id, n2)
	if _, err := svc.Sign(ctx, alice, id, n2.Hash[:], nil, ""); err != nil {
		t.Fatalf("sign after reads: %v", err)
	}
}

func TestAuditChain(t *testing.T) {
	svc, l, _ := newAuditedService(t)
	a := newVisit(t, svc)
	b := newVisit(t, svc)
	infos, _, err := svc.List(ctx, alice, "", 10)
	if err != nil || len(infos) != 2 {
		t.Fatalf("List = %d, %v", len(infos), err)
	}
	got := accesses(t, l, alice.Tenant, AuditChain, 0)
	if len(got) != 1 || got[0].Action != AccessListEncounters || len(got[0].Encounters) != 2 {
		t.Fatalf("audit chain %+v", got)
	}
	for _, e := range got[0].Encounters {
		if e != a && e != b {
			t.Fatalf("listed %q", e)
		}
	}
	// The audit chain is never an encounter.
	infos, _, err = svc.List(ctx, alice, "", 10)
	if err != nil || len(infos) != 2 {
		t.Fatalf("second List = %d, %v", len(infos), err)
	}
	for _, i := range infos {
		if i.ID == AuditChain {
			t.Fatal("List returned the audit chain")
		}
	}
	if _, err := svc.Get(ctx, alice, AuditChain); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Get(audit chain) = %v, want NotFound", err)
	}
	if x, err := svc.RecordAccess(ctx, alice, "", Access{Action: AccessSearch, Encounters: []string{a}, Count: 1}); err != nil || x < 0 {
		t.Fatalf("RecordAccess = %d, %v", x, err)
	}
	if got := accesses(t, l, alice.Tenant, AuditChain, 0); len(got) != 3 || got[2].Action != AccessSearch {
		t.Fatalf("audit chain after a search: %d entries", len(got))
	}
}

// TestReadFailsWithoutDurableAccess: a read is served only once its access
// entry is durable; when the log cannot write, nothing is served.
func TestReadFailsWithoutDurableAccess(t *testing.T) {
	svc, _, kv := newAuditedService(t)
	id := newVisit(t, svc)
	if _, err := svc.Note(ctx, alice, id); err != nil {
		t.Fatal(err)
	}
	kv.fail.Store(true)
	n, err := svc.Note(ctx, alice, id)
	if err == nil || n != nil {
		t.Fatalf("Note with a failing log = %v, %v; want nothing served", n, err)
	}
	if _, _, err := svc.Transcript(ctx, alice, id); err == nil {
		t.Fatal("Transcript served without an access entry")
	}
	if _, _, err := svc.List(ctx, alice, "", 10); err == nil {
		t.Fatal("List served without an access entry")
	}
}

func TestNoTrailByDefault(t *testing.T) {
	svc, l := newService(t)
	id := newVisit(t, svc)
	before := l.Size()
	if _, err := svc.Note(ctx, alice, id); err != nil {
		t.Fatal(err)
	}
	if l.Size() != before || svc.AccessTrail() {
		t.Fatal("a read appended without WithAccessTrail")
	}
}

func TestRedactionEntryStopsReads(t *testing.T) {
	svc, l, _ := newAuditedService(t)
	id := newVisit(t, svc)
	if _, err := svc.Note(ctx, alice, id); err != nil {
		t.Fatal(err)
	}
	// The state is cached and holds the transcript; a redaction entry must
	// stop it being served, even though every payload still opens.
	p, _ := encodePayload(Redaction{V: PayloadVersion, Reason: "test"})
	if _, err := l.Append(ctx, []ledger.Entry{{Kind: ledger.KindRedaction, Tenant: alice.Tenant, Encounter: id, Actor: "admin", Payload: p}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Transcript(ctx, alice, id); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("Transcript after a redaction entry: %v, want ErrRedacted", err)
	}
	if _, err := svc.Note(ctx, alice, id); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("Note after a redaction entry: %v, want ErrRedacted", err)
	}
	svc.Forget(alice, id)
	if _, err := svc.Get(ctx, alice, id); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("Get after Forget: %v, want ErrRedacted", err)
	}
}
