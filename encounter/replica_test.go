package encounter

import (
	"slices"
	"testing"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// TestServicesShareTheLog: two Services over one log stand for the
// encounter services of two cluster nodes, each of which sees the other's
// writes only through the log. Each reads the other's writes, writes on
// top of them, and a state that does not match the chain is rebuilt.
func TestServicesShareTheLog(t *testing.T) {
	a, l := newService(t)
	b := New(l.Log, l, blob.New(memstore.New(), nil))
	id := newVisit(t, a)

	// b caches the encounter, then a writes more: b's reads catch up.
	segs, _, err := b.Transcript(ctx, alice, id)
	if err != nil || len(segs) != len(visit) {
		t.Fatalf("b's transcript: %d segments, %v", len(segs), err)
	}
	if _, err := a.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m", Version: "1"}, Note: draft}); err != nil {
		t.Fatal(err)
	}
	n, err := b.Note(ctx, alice, id)
	if err != nil || n.ModelOutput < 0 || len(n.Sections) != len(draft.Sections) {
		t.Fatalf("b's note after a's model output: %+v, %v", n, err)
	}

	// b edits on top of a's output; a, whose state is behind, reads it
	// and edits on top of b's edit.
	rb, err := b.RecordEdit(ctx, alice, id, EditRequest{Action: ActionReplace, SentenceID: "S1", Text: "Sore throat for three days.", Reason: "wording"})
	if err != nil {
		t.Fatal(err)
	}
	na, err := a.Note(ctx, alice, id)
	if err != nil || na.Hash != rb.Note.Hash || na.sentence("S1").Text != "Sore throat for three days." {
		t.Fatalf("a's note after b's edit: %v", err)
	}
	ra, err := a.RecordEdit(ctx, alice, id, EditRequest{Action: ActionAdd, Section: "Plan", Text: "Return if worse.", Reason: "safety net"})
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.Note(ctx, alice, id)
	if err != nil || nb.Hash != ra.Note.Hash {
		t.Fatalf("b's note after a's edit: %v", err)
	}
	// Signing on b what a's edit made, after a resolved its flags: the
	// hashes agree, and b sees a's resolutions.
	resolveAll(t, a, id, ra.Note)
	if _, err := b.Sign(ctx, alice, id, ra.Note.Hash[:], nil, "reviewed"); err != nil {
		t.Fatalf("b signs the note a edited: %v", err)
	}
	ia, err := a.get(alice, id)
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.EncounterHead(alice.Tenant, id)
	if err != nil || ia.Head != h.Index || ia.Count != h.Count {
		t.Fatalf("a's view head %d count %d, chain head %+v (%v)", ia.Head, ia.Count, h, err)
	}

	// A cached state that does not match the chain (same head, another
	// count) is rebuilt from the chain, not trusted.
	s := b.states.acquire(alice.Tenant, id)
	s.mu.Lock()
	s.count += 3
	s.segments = s.segments[:1]
	b.states.release(s)
	s.mu.Unlock()
	segs, _, err = b.Transcript(ctx, alice, id)
	if err != nil || len(segs) != len(visit) {
		t.Fatalf("b's transcript from a damaged view: %d segments, %v", len(segs), err)
	}
	if ib, err := b.get(alice, id); err != nil || ib.Count != h.Count {
		t.Fatalf("b's rebuilt view: %+v %v", ib, err)
	}
}

// TestRetriedRequests: a write retried under the same request id, on
// the same Service or on another one over the log, appends nothing and
// reports the first attempt, although its validation against the state
// (segment ids already recorded, a note that changed) would now refuse it.
func TestRetriedRequests(t *testing.T) {
	a, l := newService(t)
	b := New(l.Log, l, blob.New(memstore.New(), nil))
	id := newVisit(t, a)

	more := []Segment{{ID: "s6", Role: RolePatient, Text: "Thank you.", StartMS: 15000, EndMS: 16000}}
	first, err := a.RecordSegments(ledger.WithRequestID(ctx, "req-segs"), alice, id, more)
	if err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	for _, svc := range []*Service{a, b} {
		again, err := svc.RecordSegments(ledger.WithRequestID(ctx, "req-segs"), alice, id, more)
		if err != nil || again.First != first.First || len(again.Leaves) != 1 {
			t.Fatalf("retried segments: %+v, %v", again, err)
		}
	}
	if _, err := b.RecordSegments(ledger.WithRequestID(ctx, "req-other"), alice, id, more); err == nil {
		t.Fatal("another request with recorded segment ids was accepted")
	}

	out, err := a.RecordModelOutput(ledger.WithRequestID(ctx, "req-out"), alice, id, ModelOutput{Model: Model{Name: "m", Version: "1"}, Note: draft})
	if err != nil {
		t.Fatal(err)
	}
	edit, err := a.RecordEdit(ledger.WithRequestID(ctx, "req-edit"), alice, id, EditRequest{Action: ActionAdd, Section: "Plan", Text: "Rest.", Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	size = l.Size()
	out2, err := b.RecordModelOutput(ledger.WithRequestID(ctx, "req-out"), alice, id, ModelOutput{Model: Model{Name: "m", Version: "1"}, Note: draft})
	if err != nil || out2.Change != out.Change || out2.Alignment != out.Alignment || !slices.Equal(out2.Indexes, out.Indexes) {
		t.Fatalf("retried model output: %+v (first %+v), %v", out2, out, err)
	}
	edit2, err := b.RecordEdit(ledger.WithRequestID(ctx, "req-edit"), alice, id, EditRequest{Action: ActionAdd, Section: "Plan", Text: "Rest.", Reason: "r"})
	if err != nil || edit2.Change != edit.Change || edit2.SentenceID != edit.SentenceID || !slices.Equal(edit2.Indexes, edit.Indexes) {
		t.Fatalf("retried edit: %+v (first %+v), %v", edit2, edit, err)
	}
	if l.Size() != size {
		t.Fatalf("retries appended: %d -> %d", size, l.Size())
	}

	// A retried create reports the encounter the first attempt opened.
	info, app, err := a.Create(ledger.WithRequestID(ctx, "req-create"), alice, "visit", "")
	if err != nil {
		t.Fatal(err)
	}
	info2, app2, err := b.Create(ledger.WithRequestID(ctx, "req-create"), alice, "visit", "")
	if err != nil || info2.ID != info.ID || app2.First != app.First {
		t.Fatalf("retried create: %+v %v (first %+v)", info2, err, info)
	}
	// The request id of a write to another encounter is refused.
	if _, err := a.RecordSegments(ledger.WithRequestID(ctx, "req-create"), alice, id, []Segment{{ID: "x1", Role: RolePatient, Text: "Hi.", StartMS: 0, EndMS: 1}}); err == nil {
		t.Fatal("a request id of another encounter's write was accepted")
	}
}
