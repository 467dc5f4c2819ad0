package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// roleAuth takes the tenant, subject and role from metadata.
func roleAuth(ctx context.Context, _ string) (auth.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k, def string) string {
		if v := md.Get(k); len(v) == 1 {
			return v[0]
		}
		return def
	}
	return auth.Identity{Tenant: get("x-evidence-tenant", "clinic-a"), Subject: get("x-evidence-actor", "tester"), Role: get("x-evidence-role", auth.RoleAdmin)}, nil
}

func as(actor, role string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", "clinic-a", "x-evidence-actor", actor, "x-evidence-role", role)
}

type complianceStack struct {
	key    *ledger.Key
	idx    *index.Index
	enc    pb.EncounterServiceClient
	search pb.SearchServiceClient
	ledger pb.LedgerServiceClient
	api    pb.ComplianceServiceClient
}

func newComplianceStack(t *testing.T) *complianceStack {
	t.Helper()
	dir := t.TempDir()
	key, err := ledger.LoadOrCreateKey(dir, "evidence.test/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	sealer, _, err := envelope.OpenLocal(store, filepath.Join(dir, envelope.KeyringFile), true)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.test/log", Key: key, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := index.Open(filepath.Join(dir, "index"), l, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs := blob.New(store, sealer)
	keys := envelope.NewKeys(sealer, store)
	enc := encounter.New(l.Log, l, blobs, encounter.WithAccessTrail(), encounter.WithKeys(keys))
	cs, err := compliance.New(compliance.Config{Log: l.Log, Encounters: enc, Blobs: blobs, Keys: keys, Index: idx})
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := NewServer(Config{Log: l.Log, Encounters: enc, Auth: roleAuth, Search: idx, Compliance: cs})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		idx.Close()
		l.Close()
	})
	return &complianceStack{key: key, idx: idx, enc: pb.NewEncounterServiceClient(conn), search: pb.NewSearchServiceClient(conn),
		ledger: pb.NewLedgerServiceClient(conn), api: pb.NewComplianceServiceClient(conn)}
}

func (s *complianceStack) visit(t *testing.T) string {
	t.Helper()
	ctx := as("svc:scribe", auth.RolePipeline)
	e, err := s.enc.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "knee"})
	if err != nil {
		t.Fatal(err)
	}
	id := e.GetEncounter().GetEncounterId()
	if _, err := s.enc.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
		seg("g1", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "My left knee has been swollen for a week.", 0),
		seg("g2", pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, "Ice it and rest.", 3000),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.enc.RecordModelOutput(ctx, &pb.RecordModelOutputRequest{EncounterId: id, Model: &pb.ModelRef{Name: "m", Version: "1"},
		Note: &pb.DraftNote{Sections: []*pb.DraftSection{{Name: "S", Sentences: []*pb.DraftSentence{{SentenceId: "s1", Text: "Swollen left knee for a week."}}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.idx.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *complianceStack) accesses(t *testing.T, req *pb.ListAccessEventsRequest) []*pb.AccessEvent {
	t.Helper()
	st, err := s.api.ListAccessEvents(as("audit.bob", auth.RoleAuditor), req)
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.AccessEvent
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.GetEvent())
	}
}

func TestComplianceService(t *testing.T) {
	s := newComplianceStack(t)
	id := s.visit(t)
	dr := as("dr.alice", auth.RoleClinician)

	if _, err := s.enc.GetNote(dr, &pb.GetNoteRequest{EncounterId: id}); err != nil {
		t.Fatal(err)
	}
	res, err := s.search.Search(dr, &pb.SearchRequest{Query: "knee"})
	if err != nil || len(res.GetHits()) == 0 {
		t.Fatalf("search: %v, %d hits", err, len(res.GetHits()))
	}
	if _, err := s.search.Search(dr, &pb.SearchRequest{Query: "nothingmatchesthis"}); err != nil {
		t.Fatal(err)
	}

	// The report, over gRPC, verifies offline with the log's key.
	rep, err := s.api.ExportProvenance(dr, &pb.ExportProvenanceRequest{EncounterId: id, Format: pb.ReportFormat_REPORT_FORMAT_JSON})
	if err != nil {
		t.Fatal(err)
	}
	r, err := compliance.ParseReport(bytes.NewReader(rep.GetContent()))
	if err != nil {
		t.Fatal(err)
	}
	if c := compliance.VerifyReport(r, s.key.VerifierKey()); len(c.Problems) != 0 {
		t.Fatalf("report problems: %v", c.Problems)
	}
	fhir, err := s.api.ExportProvenance(dr, &pb.ExportProvenanceRequest{EncounterId: id, Format: pb.ReportFormat_REPORT_FORMAT_FHIR})
	if err != nil || fhir.GetContentType() != "application/fhir+json" || !bytes.Contains(fhir.GetContent(), []byte(`"resourceType": "Bundle"`)) {
		t.Fatalf("FHIR export: %v, %q", err, fhir.GetContentType())
	}

	// The trail: the note read with its origin, the search (one, with
	// hits) in the audit chain, and both exports.
	evs := s.accesses(t, &pb.ListAccessEventsRequest{EncounterId: id})
	var got []string
	for _, ev := range evs {
		got = append(got, ev.GetAction()+"/"+ev.GetFormat())
	}
	if strings.Join(got, " ") != "get_note/ search/ export/json export/fhir" {
		t.Fatalf("trail of the encounter: %v", got)
	}
	note := evs[0]
	if note.GetActor() != "dr.alice" || note.GetRole() != auth.RoleClinician || note.GetChannel() != "/evidence.v1.EncounterService/GetNote" ||
		!strings.HasPrefix(note.GetRemoteAddr(), "127.0.0.1:") {
		t.Fatalf("note read event %v", note)
	}
	if sr := evs[1]; sr.GetEncounterId() != encounter.AuditChain || len(sr.GetEncounterIds()) != 1 || sr.GetEncounterIds()[0] != id || sr.GetCount() == 0 {
		t.Fatalf("search event %v", sr)
	}

	// Roles and validation.
	for name, tc := range map[string]struct {
		err  error
		code codes.Code
	}{
		"pipeline exports": {func() error {
			_, err := s.api.ExportProvenance(as("svc:x", auth.RolePipeline), &pb.ExportProvenanceRequest{EncounterId: id, Format: pb.ReportFormat_REPORT_FORMAT_JSON})
			return err
		}(), codes.PermissionDenied},
		"no format": {func() error {
			_, err := s.api.ExportProvenance(dr, &pb.ExportProvenanceRequest{EncounterId: id})
			return err
		}(), codes.InvalidArgument},
		"clinician shreds": {func() error {
			_, err := s.api.ShredEncounter(dr, &pb.ShredEncounterRequest{EncounterId: id, Reason: "x"})
			return err
		}(), codes.PermissionDenied},
		"no reason": {func() error {
			_, err := s.api.ShredEncounter(as("admin.ann", auth.RoleAdmin), &pb.ShredEncounterRequest{EncounterId: id})
			return err
		}(), codes.InvalidArgument},
	} {
		if status.Code(tc.err) != tc.code {
			t.Errorf("%s: %v, want %v", name, tc.err, tc.code)
		}
	}
	if code, field := fieldViolation(t, func() error {
		_, err := s.api.ShredEncounter(as("admin.ann", auth.RoleAdmin), &pb.ShredEncounterRequest{EncounterId: id})
		return err
	}()); code != codes.InvalidArgument || field != "reason" {
		t.Fatalf("no reason: %v %q", code, field)
	}
	st, _ := s.api.ListAccessEvents(dr, &pb.ListAccessEventsRequest{})
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a clinician lists the trail: %v", err)
	}

	// Shredding.
	sh, err := s.api.ShredEncounter(as("admin.ann", auth.RoleAdmin), &pb.ShredEncounterRequest{EncounterId: id, Reason: "patient request"})
	if err != nil {
		t.Fatal(err)
	}
	if sh.GetPayloadsDestroyed() < 4 || !sh.GetIndexCleared() || len(sh.GetReceipt().GetLeafIndexes()) != 1 {
		t.Fatalf("shred %v", sh)
	}
	if _, err := s.enc.GetNote(dr, &pb.GetNoteRequest{EncounterId: id}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "redacted") {
		t.Fatalf("note after shred: %v", err)
	}
	if res, err := s.search.Search(dr, &pb.SearchRequest{Query: "knee"}); err != nil || len(res.GetHits()) != 0 {
		t.Fatalf("search after shred: %v, %d hits", err, len(res.GetHits()))
	}
	if len(s.accesses(t, &pb.ListAccessEventsRequest{EncounterId: id})) != 4 {
		t.Fatal("the trail of a shredded encounter was lost")
	}
}

func TestListCheckpoints(t *testing.T) {
	s := newComplianceStack(t)
	s.visit(t)
	st, err := s.ledger.ListCheckpoints(context.Background(), &pb.ListCheckpointsRequest{StartTreeSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(s.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, last := 0, int64(0)
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cp, err := ledger.OpenCheckpoint(r.GetCheckpoint().GetNote(), "evidence.test/log", v)
		if err != nil || cp.Size != r.GetCheckpoint().GetTreeSize() || !bytes.Equal(cp.Root[:], r.GetCheckpoint().GetRootHash()) || cp.Size <= last {
			t.Fatalf("checkpoint %d: %v", n, err)
		}
		last = cp.Size
		n++
	}
	if n < 3 {
		t.Fatalf("%d checkpoints", n)
	}
	if _, err := s.ledger.ListCheckpoints(context.Background(), &pb.ListCheckpointsRequest{StartTreeSize: -1}); err != nil {
		t.Fatal(err)
	}
}
