package compliance

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

func collect(t *testing.T, f *fixture, c encounter.Caller, q AccessQuery) []AccessEvent {
	t.Helper()
	var out []AccessEvent
	if err := f.svc.Accesses(ctx, c, q, func(ev AccessEvent) error { out = append(out, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAccessQueries(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	other, _, err := f.enc.Create(ctx, scribe, "Another visit", "")
	if err != nil {
		t.Fatal(err)
	}
	bob := encounter.Caller{Tenant: "clinic-a", Actor: "dr.bob"}
	if _, err := f.enc.Get(ctx, bob, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.enc.List(ctx, bob, "", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := f.enc.RecordAccess(ctx, encounter.Caller{Tenant: "clinic-b", Actor: "dr.bob"}, "", encounter.Access{Action: encounter.AccessSearch}); err != nil {
		t.Fatal(err)
	}

	byEnc := collect(t, f, auditor, AccessQuery{Encounter: f.id})
	actions := []string{}
	for _, ev := range byEnc {
		actions = append(actions, ev.Action+"/"+ev.Actor)
	}
	// The fixture's note and transcript reads, and the list by dr.bob that
	// disclosed the visit's title (from the audit chain).
	if got := strings.Join(actions, " "); got != "get_note/dr.alice get_transcript/dr.alice list_encounters/dr.bob" {
		t.Fatalf("accesses of the visit: %s", got)
	}
	if byEnc[1].Role != "clinician" || byEnc[1].Remote != "10.1.2.3:4000" || byEnc[2].Encounter != encounter.AuditChain {
		t.Fatalf("events %+v", byEnc)
	}
	byBob := collect(t, f, auditor, AccessQuery{Actor: "dr.bob"})
	if len(byBob) != 2 || byBob[0].Action != encounter.AccessGetEncounter || byBob[1].Action != encounter.AccessListEncounters {
		t.Fatalf("dr.bob's accesses in clinic-a: %+v (clinic-b's must not appear)", byBob)
	}
	since := collect(t, f, admin, AccessQuery{From: start})
	if len(since) != 2 {
		t.Fatalf("%d accesses since the start of the test, want 2", len(since))
	}
	before := collect(t, f, admin, AccessQuery{To: start})
	if len(before) != 2 || before[0].Action != encounter.AccessNote {
		t.Fatalf("accesses before the start: %+v", before)
	}
	if len(collect(t, f, admin, AccessQuery{From: time.Now().Add(time.Hour)})) != 0 {
		t.Fatal("accesses in the future")
	}
	if err := f.svc.Accesses(ctx, clinician, AccessQuery{}, func(AccessEvent) error { return nil }); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a clinician reads the trail: %v", err)
	}
	if err := f.svc.Accesses(ctx, auditor, AccessQuery{From: time.Now(), To: start}, func(AccessEvent) error { return nil }); err == nil {
		t.Fatal("an empty time range accepted")
	}
	if err := f.svc.Accesses(ctx, auditor, AccessQuery{Actor: "bad actor"}, func(AccessEvent) error { return nil }); err == nil {
		t.Fatal("an invalid actor accepted")
	}
}

func TestShred(t *testing.T) {
	f := newFixture(t)
	other := f.visit(t)
	if _, err := f.svc.Shred(ctx, clinician, f.id, "patient request"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a clinician shreds: %v", err)
	}
	if _, err := f.svc.Shred(ctx, admin, f.id, ""); err == nil {
		t.Fatal("no reason accepted")
	}
	if _, err := f.svc.Shred(ctx, admin, f.id, "line\nbreak"); err == nil {
		t.Fatal("a control character accepted")
	}
	if _, err := f.svc.Shred(ctx, admin, encounter.AuditChain, "nope"); err == nil {
		t.Fatal("the audit chain shredded")
	}
	if _, err := f.svc.Shred(ctx, admin, "enc_nothere", "x"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown encounter: %v", err)
	}
	segs, recs, err := f.enc.Transcript(ctx, clinician, f.id)
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	audioHash, err := blob.ParseHash(recs[0].BlobSHA256)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Shred(ctx, admin, f.id, "patient request 2026-11-26 #1234")
	if err != nil {
		t.Fatal(err)
	}
	if res.Payloads < 10 || res.Blobs != 1 || !res.IndexCleared || res.Already || res.Redaction == nil {
		t.Fatalf("Shred = %+v", res)
	}
	if len(f.index.deleted) != 1 || f.index.deleted[0] != "clinic-a/"+f.id {
		t.Fatalf("index deletions %v", f.index.deleted)
	}
	// Reads say "redacted"; the other visit is untouched.
	if _, err := f.enc.Note(ctx, clinician, f.id); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("Note after shred: %v", err)
	}
	if _, _, err := f.svc.Export(ctx, auditor, f.id, FormatFHIR); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("Export after shred: %v", err)
	}
	if _, err := f.blobs.Open(blob.Scope{Tenant: "clinic-a", Encounter: f.id}, audioHash); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("recording after shred: %v", err)
	}
	if _, err := f.enc.Note(ctx, clinician, other); err != nil {
		t.Fatalf("the other visit after shred: %v", err)
	}
	// Nothing can be written to it any more.
	if _, err := f.enc.RecordSegments(ctx, scribe, f.id, []encounter.Segment{{ID: "late", Role: "patient", Text: "late", EndMS: 1}}); !errors.Is(err, ledger.ErrRedacted) {
		t.Fatalf("write after shred: %v", err)
	}
	// Every payload of the encounter but its access and redaction entries
	// is destroyed, and no segment opens.
	for _, g := range segs {
		if _, _, err := f.log.Payload(g.Index); !errors.Is(err, ledger.ErrRedacted) {
			t.Fatalf("segment %d after shred: %v", g.Index, err)
		}
	}
	// The access trail of the shredded encounter survives, and the
	// redaction entry says what happened, without PHI.
	evs := collect(t, f, auditor, AccessQuery{Encounter: f.id})
	if len(evs) < 3 {
		t.Fatalf("%d accesses after shred", len(evs))
	}
	p, e, err := f.log.Payload(res.Redaction.First)
	if err != nil || e.Leaf.Kind != ledger.KindRedaction || e.Leaf.Actor != admin.Actor {
		t.Fatalf("redaction entry: %v, %v", e, err)
	}
	red, err := encounter.DecodeRedaction(p)
	if err != nil || red.Reason != "patient request 2026-11-26 #1234" || red.Payloads != res.Payloads || red.Blobs != 1 || !red.IndexCleared {
		t.Fatalf("redaction payload %+v, %v", red, err)
	}
	// The whole log still verifies, counting the destroyed payloads.
	f.log.Close()
	rep, err := ledger.Verify(ctx, f.kv, ledger.VerifyOptions{Origin: origin, Verifier: f.key.Verifier(), Sealer: f.sealer})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Redacted != int64(res.Payloads) {
		t.Fatalf("verify after shred: %d redacted (want %d), problems %v", rep.Redacted, res.Payloads, rep.Problems)
	}
	// No plaintext of it is left in the store, encrypted or not.
	found := false
	f.kv.Scan(nil, nil, func(k, v []byte) error {
		if bytes.Contains(v, []byte("zorblat")) || bytes.Contains(k, []byte("zorblat")) {
			found = true
		}
		return nil
	})
	if found {
		t.Fatal("plaintext in the store")
	}
}

func TestShredTwice(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Shred(ctx, admin, f.id, "first"); err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Shred(ctx, admin, f.id, "again, after a failure")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Already || res.Payloads != 0 || res.Blobs != 0 {
		t.Fatalf("second Shred = %+v", res)
	}
}

func TestShredNeedsKeys(t *testing.T) {
	f := newFixture(t)
	s, err := New(Config{Log: f.log.Log, Encounters: f.enc, Blobs: f.blobs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Shred(ctx, admin, f.id, "x"); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("Shred without keys: %v", err)
	}
}
