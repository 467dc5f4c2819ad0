package grpcapi

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/summary"
)

// TestListEncounters lists through the API from the encounter summaries:
// the filters arrive as the service's, every summary field is in the
// answer, and bad fields are InvalidArgument naming them.
func TestListEncounters(t *testing.T) {
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.test/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	v, err := summary.Open(t.TempDir(), l, summary.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { v.Follow(ctx); close(followed) }()
	enc := encounter.New(l.Log, l, blob.New(store, nil), encounter.WithSummaries(v))
	gs, _ := NewServer(Config{Log: l.Log, Encounters: enc, Auth: roleAuth})
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
		cancel()
		<-followed
		v.Close()
		l.Close()
	})
	api := pb.NewEncounterServiceClient(conn)
	pipe, doc := as("svc:scribe", auth.RolePipeline), as("dr.a", auth.RoleClinician)

	var ids []string
	for i, ref := range []string{"mrn-1", "mrn-2", "mrn-1"} {
		c, err := api.CreateEncounter(pipe, &pb.CreateEncounterRequest{Title: []string{"first", "second", "third"}[i], PatientRef: ref})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.GetEncounter().GetEncounterId())
	}
	if _, err := api.RecordSegments(pipe, &pb.RecordSegmentsRequest{EncounterId: ids[0], Segments: []*pb.Segment{
		seg("g1", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "Sore throat for three days.", 0)}}); err != nil {
		t.Fatal(err)
	}
	mo, err := api.RecordModelOutput(pipe, &pb.RecordModelOutputRequest{EncounterId: ids[0], Model: &pb.ModelRef{Name: "m"}, Note: &pb.DraftNote{Sections: []*pb.DraftSection{
		{Name: "Subjective", Sentences: []*pb.DraftSentence{{SentenceId: "S1", Text: "Sore throat for 3 days."}, {SentenceId: "S2", Text: "Allergic to penicillin."}}}}}})
	if err != nil {
		t.Fatal(err)
	}

	all, err := api.ListEncounters(doc, &pb.ListEncountersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.GetEncounters()) != 3 || all.GetEncounters()[0].GetEncounterId() != ids[0] || all.GetTreeSize() < mo.GetReceipt().GetCheckpoint().GetTreeSize() {
		t.Fatalf("listed %v", all)
	}
	first := all.GetEncounters()[0]
	if first.GetTitle() != "first" || first.GetPatientRef() != "mrn-1" || first.GetNoteStatus() != pb.NoteStatus_NOTE_STATUS_DRAFTED ||
		first.GetFlaggedSentences() != 1 || first.GetUnresolvedSentences() != 1 || first.GetEntryCount() != 4 ||
		first.GetUpdateTime().AsTime().Before(first.GetCreateTime().AsTime()) {
		t.Fatalf("the drafted visit: %v", first)
	}
	// GetEncounter, computed from the chain, says the same.
	got, err := api.GetEncounter(doc, &pb.GetEncounterRequest{EncounterId: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	if g := got.GetEncounter(); g.GetNoteStatus() != first.GetNoteStatus() || g.GetUnresolvedSentences() != first.GetUnresolvedSentences() ||
		!g.GetUpdateTime().AsTime().Equal(first.GetUpdateTime().AsTime()) {
		t.Fatalf("GetEncounter %v, listed %v", g, first)
	}

	count := func(req *pb.ListEncountersRequest) int {
		t.Helper()
		r, err := api.ListEncounters(doc, req)
		if err != nil {
			t.Fatal(err)
		}
		return len(r.GetEncounters())
	}
	future := timestamppb.New(time.Now().Add(time.Hour))
	for name, c := range map[string]struct {
		req  *pb.ListEncountersRequest
		want int
	}{
		"drafted":    {&pb.ListEncountersRequest{NoteStatus: pb.NoteStatus_NOTE_STATUS_DRAFTED}, 1},
		"no note":    {&pb.ListEncountersRequest{NoteStatus: pb.NoteStatus_NOTE_STATUS_NONE}, 2},
		"signed":     {&pb.ListEncountersRequest{NoteStatus: pb.NoteStatus_NOTE_STATUS_SIGNED}, 0},
		"unresolved": {&pb.ListEncountersRequest{HasUnresolvedFlags: true}, 1},
		"patient":    {&pb.ListEncountersRequest{PatientRef: "mrn-1"}, 2},
		"future":     {&pb.ListEncountersRequest{UpdateTimeStart: future}, 0},
		"until then": {&pb.ListEncountersRequest{UpdateTimeEnd: future}, 3},
		"page of 2":  {&pb.ListEncountersRequest{PageSize: 2}, 2},
	} {
		if got := count(c.req); got != c.want {
			t.Errorf("%s: %d encounters, want %d", name, got, c.want)
		}
	}
	page, err := api.ListEncounters(doc, &pb.ListEncountersRequest{PageSize: 2})
	if err != nil || page.GetNextPageToken() == "" {
		t.Fatalf("first page of 2: %v %v", page, err)
	}
	rest, err := api.ListEncounters(doc, &pb.ListEncountersRequest{PageSize: 2, PageToken: page.GetNextPageToken()})
	if err != nil || len(rest.GetEncounters()) != 1 || rest.GetEncounters()[0].GetEncounterId() != ids[1] || rest.GetNextPageToken() != "" {
		t.Fatalf("second page: %v %v", rest, err)
	}

	for field, req := range map[string]*pb.ListEncountersRequest{
		"page_size":         {PageSize: -1},
		"page_token":        {PageToken: page.GetNextPageToken(), NoteStatus: pb.NoteStatus_NOTE_STATUS_SIGNED},
		"note_status":       {NoteStatus: 7},
		"update_time_start": {UpdateTimeStart: &timestamppb.Timestamp{Nanos: -1}},
		"update_time_end":   {UpdateTimeStart: future, UpdateTimeEnd: timestamppb.New(time.Now())},
		"patient_ref":       {PatientRef: "bad\nref"},
	} {
		_, err := api.ListEncounters(doc, req)
		if status.Code(err) != codes.InvalidArgument || violation(err) != field {
			t.Errorf("%s: %v, want InvalidArgument naming it", field, err)
		}
	}
}

func violation(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}
