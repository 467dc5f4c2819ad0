package grpcapi

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

func tenantAuth(ctx context.Context, _ string) (auth.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("x-evidence-tenant")
	if len(v) != 1 {
		return auth.Identity{}, auth.ErrUnauthenticated
	}
	return auth.Identity{Tenant: v[0], Subject: "tester", Role: auth.RoleAdmin}, nil
}

func asTenant(tenant string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", tenant)
}

type searchStack struct {
	log *ledger.Appender
	idx *index.Index
	enc pb.EncounterServiceClient
	api pb.SearchServiceClient
}

func newSearchStack(t *testing.T, withSearch bool) *searchStack {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.test/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := index.Open(filepath.Join(t.TempDir(), "index"), l, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Log: l.Log, Encounters: encounter.New(l.Log, l, blob.New(store, nil)), Auth: tenantAuth}
	if withSearch {
		cfg.Search = idx
	}
	gs, _ := NewServer(cfg)
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
	return &searchStack{log: l, idx: idx, enc: pb.NewEncounterServiceClient(conn), api: pb.NewSearchServiceClient(conn)}
}

// record opens an encounter for tenant with the given segments, then
// brings the index up to date.
func (s *searchStack) record(t *testing.T, tenant string, segs ...*pb.Segment) string {
	t.Helper()
	ctx := asTenant(tenant)
	e, err := s.enc.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "visit"})
	if err != nil {
		t.Fatal(err)
	}
	id := e.GetEncounter().GetEncounterId()
	if _, err := s.enc.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: segs}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.idx.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	return id
}

func seg(id string, role pb.SpeakerRole, text string, start int64) *pb.Segment {
	return &pb.Segment{SegmentId: id, SpeakerRole: role, Text: text, StartMs: start, EndMs: start + 3000}
}

func fieldViolation(t *testing.T, err error) (codes.Code, string) {
	t.Helper()
	st := status.Convert(err)
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return st.Code(), br.GetFieldViolations()[0].GetField()
		}
	}
	return st.Code(), ""
}

func TestSearchService(t *testing.T) {
	s := newSearchStack(t, true)
	encA := s.record(t, "tenant-a",
		seg("a1", pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, "Any chest pain?", 1000),
		seg("a2", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "Yes — chest pain since Monday 😀, and I take warfarin.", 4000),
		seg("a3", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "No fever.", 8000),
	)
	s.record(t, "tenant-b", seg("b1", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "Chest pain and warfarin too.", 0))

	ctx := asTenant("tenant-a")
	res, err := s.api.Search(ctx, &pb.SearchRequest{Query: `"chest pain"`, SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, IncludeFacets: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetHits()) != 1 || res.GetTotalSize() != 1 || res.GetTreeSize() != s.log.Size() {
		t.Fatalf("response %v", res)
	}
	h := res.GetHits()[0]
	if h.GetEncounterId() != encA || h.GetSegmentId() != "a2" || h.GetSpeakerRole() != pb.SpeakerRole_SPEAKER_ROLE_PATIENT ||
		h.GetStartMs() != 4000 || h.GetEndMs() != 7000 || h.GetKind() != pb.EntryKind_ENTRY_KIND_SEGMENT || h.GetRecordTime() == nil {
		t.Errorf("hit %v", h)
	}
	e, err := s.log.Entry(h.GetLeafIndex())
	if err != nil || e.Leaf.Encounter != encA || e.Leaf.Kind != ledger.KindSegment {
		t.Errorf("leaf %d is not the segment: %v %v", h.GetLeafIndex(), e, err)
	}
	if len(h.GetHighlights()) != 2 {
		t.Fatalf("highlights %v", h.GetHighlights())
	}
	hl := h.GetHighlights()[0]
	if got := h.GetText()[hl.GetByteStart():hl.GetByteEnd()]; got != "chest" || hl.GetUtf16Start() != 6 || hl.GetByteStart() != 8 {
		t.Errorf("highlight %v covers %q", hl, got)
	}
	if f := res.GetFacets(); len(f.GetSpeakerRoles()) != 1 || f.GetSpeakerRoles()[0].GetValue() != "patient" || f.GetEncounters()[0].GetValue() != encA {
		t.Errorf("facets %v", f)
	}

	// The tenant is the caller's: tenant-b sees only its own segment.
	for _, q := range []string{"", "warfarin", "chest OR fever"} {
		res, err := s.api.Search(asTenant("tenant-b"), &pb.SearchRequest{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range res.GetHits() {
			if h.GetSegmentId() != "b1" {
				t.Errorf("tenant-b query %q found %v", q, h)
			}
		}
	}

	// Paging with tokens.
	var seen []int64
	req := &pb.SearchRequest{Order: pb.SearchOrder_SEARCH_ORDER_OLDEST, PageSize: 1}
	for {
		res, err := s.api.Search(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range res.GetHits() {
			seen = append(seen, h.GetLeafIndex())
		}
		if res.GetNextPageToken() == "" {
			break
		}
		req.PageToken = res.GetNextPageToken()
	}
	if len(seen) != 3 || seen[0] >= seen[1] || seen[1] >= seen[2] {
		t.Errorf("paged leaves %v", seen)
	}

	// Time filters.
	res, err = s.api.Search(ctx, &pb.SearchRequest{Query: "chest", EndTime: timestamppbOf(time.Unix(0, 0))})
	if err != nil || len(res.GetHits()) != 0 {
		t.Errorf("end_time 1970: %v, %v", res, err)
	}
}

func TestSearchServiceBadInput(t *testing.T) {
	s := newSearchStack(t, true)
	s.record(t, "tenant-a", seg("a1", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "chest pain", 0))
	ctx := asTenant("tenant-a")
	long := make([]byte, 2000)
	for i := range long {
		long[i] = 'a' + byte(i%7)
		if i%5 == 4 {
			long[i] = ' '
		}
	}
	for _, tc := range []struct {
		req   *pb.SearchRequest
		code  codes.Code
		field string
	}{
		{&pb.SearchRequest{Query: `"chest`}, codes.InvalidArgument, "query"},
		{&pb.SearchRequest{Query: "chest AND"}, codes.InvalidArgument, "query"},
		{&pb.SearchRequest{Query: string(long)}, codes.InvalidArgument, "query"},
		{&pb.SearchRequest{PageToken: "bogus!"}, codes.InvalidArgument, "page_token"},
		{&pb.SearchRequest{SpeakerRole: 42}, codes.InvalidArgument, "speaker_role"},
		{&pb.SearchRequest{Kinds: []pb.EntryKind{pb.EntryKind_ENTRY_KIND_SEGMENT, 77}}, codes.InvalidArgument, "kinds[1]"},
		{&pb.SearchRequest{Kinds: []pb.EntryKind{pb.EntryKind_ENTRY_KIND_AUDIO}}, codes.InvalidArgument, "kinds[0]"},
		{&pb.SearchRequest{EncounterId: "not an id"}, codes.InvalidArgument, "encounter_id"},
		{&pb.SearchRequest{Order: 9}, codes.InvalidArgument, "order"},
		{&pb.SearchRequest{PageSize: -5}, codes.InvalidArgument, "page_size"},
		{&pb.SearchRequest{StartTime: timestamppbOf(time.Unix(100, 0)), EndTime: timestamppbOf(time.Unix(50, 0))}, codes.InvalidArgument, "start_time"},
	} {
		_, err := s.api.Search(ctx, tc.req)
		code, field := fieldViolation(t, err)
		if code != tc.code || field != tc.field {
			t.Errorf("%v: %v %q (%v), want %v %q", tc.req, code, field, err, tc.code, tc.field)
		}
	}
	// A token of one tenant's search is refused for another tenant.
	res, err := s.api.Search(ctx, &pb.SearchRequest{PageSize: 1, Query: "chest OR pain"})
	if err != nil {
		t.Fatal(err)
	}
	s.record(t, "tenant-a", seg("a2", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "more chest pain", 0))
	res, err = s.api.Search(ctx, &pb.SearchRequest{PageSize: 1, Query: "chest OR pain"})
	if err != nil || res.GetNextPageToken() == "" {
		t.Fatalf("%v %v", res, err)
	}
	_, err = s.api.Search(asTenant("tenant-b"), &pb.SearchRequest{PageSize: 1, Query: "chest OR pain", PageToken: res.GetNextPageToken()})
	if code, field := fieldViolation(t, err); code != codes.InvalidArgument || field != "page_token" {
		t.Errorf("another tenant's token: %v", err)
	}
}

func TestSearchServiceNotConfigured(t *testing.T) {
	s := newSearchStack(t, false)
	_, err := s.api.Search(asTenant("tenant-a"), &pb.SearchRequest{Query: "chest"})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("err = %v, want Unimplemented", err)
	}
}

func timestamppbOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
