package grpcapi

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// verdictChecker is align.Align's retrieval with fixed verdicts, so that
// these tests of the API see each verdict whatever the engine decides:
// "Fever for a week." is contradicted by s2's "no fever", anything
// starting "Amoxicillin" is unmentioned, the rest supported.
func verdictChecker(segs []align.Segment, sents []align.Sentence) ([]align.Result, error) {
	res, err := align.Align(segs, sents)
	if err != nil {
		return nil, err
	}
	for i, t := range sents {
		res[i].Verdict, res[i].Severity, res[i].Conflicts, res[i].Unsupported = align.Supported, "", nil, nil
		switch {
		case t.Text == "Fever for a week.":
			res[i].Verdict, res[i].Severity = align.Contradicted, align.Major
			res[i].Conflicts = []align.Conflict{{Kind: align.ConflictNegation, Claim: align.Range{Start: 0, End: 5}, SegmentID: "s2",
				CharStart: 33, CharEnd: 41, StartMS: 1000, EndMS: 4000, Words: "no fever"}}
		case strings.HasPrefix(t.Text, "Amoxicillin"):
			res[i].Verdict, res[i].Severity = align.Unmentioned, align.Minor
			res[i].Unsupported = []align.Range{{Start: 0, End: 11}}
		}
	}
	return res, nil
}

func TestResolveSentenceAPI(t *testing.T) {
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.test/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	svc := encounter.New(l.Log, l, blob.New(store, nil), encounter.WithChecker(verdictChecker))
	gs, _ := NewServer(Config{Log: l.Log, Encounters: svc, Auth: inferenceAuth})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := &inferenceStack{conn: conn, enc: pb.NewEncounterServiceClient(conn), log: l,
		ctx: metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", "clinic-a")}
	id := s.visit(t, true)
	mo, err := s.enc.RecordModelOutput(s.ctx, &pb.RecordModelOutputRequest{EncounterId: id, Model: &pb.ModelRef{Name: "m"},
		Note: &pb.DraftNote{Sections: []*pb.DraftSection{{Name: "Subjective", Sentences: []*pb.DraftSentence{
			{SentenceId: "S1", Text: "Cough for three days."}, {SentenceId: "S2", Text: "Fever for a week."}}},
			{Name: "Plan", Sentences: []*pb.DraftSentence{{SentenceId: "P1", Text: "Amoxicillin 500 mg."}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*pb.Sentence{}
	for _, sec := range mo.GetNote().GetSections() {
		for _, x := range sec.GetSentences() {
			byID[x.GetSentenceId()] = x
		}
	}
	s2, p1 := byID["S2"], byID["P1"]
	if s2.GetVerdict() != pb.Verdict_VERDICT_CONTRADICTED || s2.GetSeverity() != pb.Severity_SEVERITY_MAJOR || len(s2.GetConflicts()) != 1 {
		t.Fatalf("S2 %v", s2)
	}
	c := s2.GetConflicts()[0]
	if c.GetKind() != pb.ConflictKind_CONFLICT_KIND_NEGATION || c.GetWords() != "no fever" || c.GetUtf16Start() != 33 || c.GetClaim().GetUtf16End() != 5 ||
		c.GetSpeakerRole() != pb.SpeakerRole_SPEAKER_ROLE_PATIENT || c.GetSegmentIndex() == 0 {
		t.Errorf("conflict %v", c)
	}
	if p1.GetVerdict() != pb.Verdict_VERDICT_UNMENTIONED || p1.GetSeverity() != pb.Severity_SEVERITY_MINOR || len(p1.GetUnsupportedRanges()) != 1 || p1.GetUnsupportedRanges()[0].GetCharEnd() != 11 {
		t.Errorf("P1 %v", p1)
	}
	if byID["S1"].GetVerdict() != pb.Verdict_VERDICT_SUPPORTED || byID["S1"].GetSeverity() != pb.Severity_SEVERITY_UNSPECIFIED {
		t.Errorf("S1 %v", byID["S1"])
	}

	size := l.Size()
	wantStatus := func(name string, err error, code codes.Code, field string) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != code {
			t.Errorf("%s: %v, want %v", name, err, code)
			return
		}
		if field == "" {
			return
		}
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 && br.GetFieldViolations()[0].GetField() == field {
				return
			}
		}
		t.Errorf("%s: %v names no field %q", name, err, field)
	}
	confirm := func(sid string, v pb.Verdict, reason string) *pb.ResolveSentenceRequest {
		return &pb.ResolveSentenceRequest{EncounterId: id, SentenceId: sid, Verdict: v, Action: pb.ResolutionAction_RESOLUTION_ACTION_CONFIRM, Reason: reason}
	}
	_, err = s.enc.ResolveSentence(s.ctx, &pb.ResolveSentenceRequest{EncounterId: id, SentenceId: "S2", Verdict: pb.Verdict_VERDICT_CONTRADICTED, Reason: "x"})
	wantStatus("no action", err, codes.InvalidArgument, "action")
	_, err = s.enc.ResolveSentence(s.ctx, confirm("S2", pb.Verdict_VERDICT_UNSPECIFIED, "x"))
	wantStatus("no verdict", err, codes.InvalidArgument, "verdict")
	_, err = s.enc.ResolveSentence(s.ctx, confirm("S2", pb.Verdict_VERDICT_CONTRADICTED, ""))
	wantStatus("no reason", err, codes.InvalidArgument, "reason")
	_, err = s.enc.ResolveSentence(s.ctx, confirm("S1", pb.Verdict_VERDICT_SUPPORTED, "x"))
	wantStatus("not flagged", err, codes.FailedPrecondition, "sentence_id")
	_, err = s.enc.ResolveSentence(s.ctx, confirm("S2", pb.Verdict_VERDICT_UNMENTIONED, "x"))
	wantStatus("another verdict", err, codes.FailedPrecondition, "verdict")
	_, err = s.enc.ResolveSentence(s.ctx, confirm("Z9", pb.Verdict_VERDICT_CONTRADICTED, "x"))
	wantStatus("unknown sentence", err, codes.NotFound, "")
	_, err = s.enc.SignNote(s.ctx, &pb.SignNoteRequest{EncounterId: id, NoteHash: mo.GetNote().GetNoteHash()})
	wantStatus("sign", err, codes.FailedPrecondition, "")
	st := status.Convert(err)
	if !strings.Contains(st.Message(), "2 flagged sentences are unresolved") {
		t.Errorf("sign refusal %q", st.Message())
	}
	var subjects []string
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				subjects = append(subjects, v.GetType()+" "+v.GetSubject())
			}
		}
	}
	if strings.Join(subjects, ",") != "UNRESOLVED_CONTRADICTED sentences/S2,UNRESOLVED_UNMENTIONED sentences/P1" {
		t.Errorf("sign refusal details %v", subjects)
	}
	if l.Size() != size {
		t.Fatalf("refused requests wrote %d entries", l.Size()-size)
	}

	r, err := s.enc.ResolveSentence(s.ctx, &pb.ResolveSentenceRequest{EncounterId: id, SentenceId: "S2", Verdict: pb.Verdict_VERDICT_CONTRADICTED,
		AlignmentIndex: s2.GetProvenance().GetAlignmentIndex(), Action: pb.ResolutionAction_RESOLUTION_ACTION_EDIT, Text: "No fever.", Reason: "said no fever", Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetEditIndex() == 0 || r.GetAlignmentIndex() != r.GetEditIndex()+1 || r.GetResolutionIndex() != r.GetEditIndex()+2 || len(r.GetReceipt().GetProofs()) != 3 {
		t.Fatalf("edit resolution %v", r)
	}
	if _, err := s.enc.ResolveSentence(s.ctx, confirm("P1", pb.Verdict_VERDICT_UNMENTIONED, "prescribed at the desk")); err != nil {
		t.Fatal(err)
	}
	n, err := s.enc.GetNote(s.ctx, &pb.GetNoteRequest{EncounterId: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range n.GetNote().GetSections() {
		for _, x := range sec.GetSentences() {
			if x.GetSentenceId() == "P1" && (!x.GetResolved() || len(x.GetResolutions()) != 1 || x.GetResolutions()[0].GetActor() != "svc:scribe" ||
				x.GetResolutions()[0].GetAction() != pb.ResolutionAction_RESOLUTION_ACTION_CONFIRM || x.GetResolutions()[0].GetSeverity() != pb.Severity_SEVERITY_MINOR) {
				t.Errorf("P1 after confirming %v", x)
			}
			if x.GetSentenceId() == "S2" && (x.GetVerdict() != pb.Verdict_VERDICT_SUPPORTED || x.GetResolutions()[0].GetNewVerdict() != pb.Verdict_VERDICT_SUPPORTED) {
				t.Errorf("S2 after editing %v", x)
			}
		}
	}
	if _, err := s.enc.SignNote(s.ctx, &pb.SignNoteRequest{EncounterId: id, NoteHash: n.GetNote().GetNoteHash()}); err != nil {
		t.Fatalf("sign after resolving: %v", err)
	}

	// AlignService gives verdicts for ad hoc sentences.
	ar, err := pb.NewAlignServiceClient(conn).Align(s.ctx, &pb.AlignRequest{EncounterId: id, Sentences: []*pb.AlignSentence{{Text: "Fever for a week."}, {Text: "Cough for three days."}}})
	if err != nil {
		t.Fatal(err)
	}
	if res := ar.GetResults(); res[0].GetVerdict() != pb.Verdict_VERDICT_CONTRADICTED || len(res[0].GetConflicts()) != 1 || res[1].GetVerdict() != pb.Verdict_VERDICT_SUPPORTED || ar.GetMethod() == "" {
		t.Errorf("Align results %v", ar)
	}
}

// Only a role that may sign may resolve: the others are refused by the
// policy before the service sees the request, and nothing is written.
func TestResolveSentenceRoles(t *testing.T) {
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.test/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	svc := encounter.New(l.Log, l, blob.New(store, nil), encounter.WithChecker(verdictChecker))
	byRole := func(ctx context.Context, _ string) (auth.Identity, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("x-role"); len(v) == 1 {
			return auth.Identity{Tenant: "clinic-a", Subject: "who." + v[0], Role: v[0]}, nil
		}
		return auth.Identity{}, auth.ErrUnauthenticated
	}
	policy := &auth.Policy{Callers: auth.NewLimiter(1000, 1000), Failures: auth.NewLimiter(1000, 1000)}
	gs, _ := NewServer(Config{Log: l.Log, Encounters: svc, Auth: byRole, Policy: policy})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	enc := pb.NewEncounterServiceClient(conn)
	as := func(role string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-role", role)
	}
	c, err := enc.CreateEncounter(as(auth.RolePipeline), &pb.CreateEncounterRequest{Title: "Cough"})
	if err != nil {
		t.Fatal(err)
	}
	id := c.GetEncounter().GetEncounterId()
	if _, err := enc.RecordSegments(as(auth.RolePipeline), &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
		{SegmentId: "s1", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "A cough for three days, no fever.", EndMs: 3000}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.RecordModelOutput(as(auth.RolePipeline), &pb.RecordModelOutputRequest{EncounterId: id, Model: &pb.ModelRef{Name: "m"},
		Note: &pb.DraftNote{Sections: []*pb.DraftSection{{Name: "Plan", Sentences: []*pb.DraftSentence{{SentenceId: "P1", Text: "Amoxicillin 500 mg."}}}}}}); err != nil {
		t.Fatal(err)
	}
	req := &pb.ResolveSentenceRequest{EncounterId: id, SentenceId: "P1", Verdict: pb.Verdict_VERDICT_UNMENTIONED,
		Action: pb.ResolutionAction_RESOLUTION_ACTION_CONFIRM, Reason: "prescribed at the desk"}
	size := l.Size()
	for _, role := range []string{auth.RolePipeline, auth.RoleAuditor, auth.RoleAdmin} {
		_, err := enc.ResolveSentence(as(role), req)
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), role) {
			t.Errorf("%s: %v, want PermissionDenied naming the role", role, err)
		}
	}
	if l.Size() != size {
		t.Fatalf("refused resolutions wrote %d entries", l.Size()-size)
	}
	if _, err := enc.ResolveSentence(as(auth.RoleClinician), req); err != nil {
		t.Fatalf("clinician: %v", err)
	}
}
