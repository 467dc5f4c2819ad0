package grpcapi

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/openai"
	"github.com/evidenceledger/evidence/pipeline/proxy"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

func inferenceAuth(ctx context.Context, _ string) (auth.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-evidence-tenant"); len(v) == 1 {
		return auth.Identity{Tenant: v[0], Subject: "svc:scribe", Role: auth.RolePipeline}, nil
	}
	return auth.Identity{}, auth.ErrUnauthenticated
}

type inferenceStack struct {
	conn *grpc.ClientConn
	api  pb.InferenceServiceClient
	enc  pb.EncounterServiceClient
	log  *ledger.Appender
	ctx  context.Context
}

// newInferenceStack serves the pipeline with the embedded backend and an
// OpenAI backend whose upstream is openaiURL, and the KServe proxy to
// kserveAddr.
func newInferenceStack(t *testing.T, openaiURL, kserveAddr string) *inferenceStack {
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
	svc := encounter.New(l.Log, l, blob.New(store, nil))
	ob, err := openai.New(openai.Config{BaseURL: openaiURL + "/v1", Model: "fake-model", MaxRetries: -1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := proxy.NewRecorder(svc, l.Log, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := proxy.NewKServe(rec, proxy.KServeConfig{Upstream: kserveAddr})
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline.New(svc, map[string]pipeline.Generator{pipeline.BackendOpenAI: ob}, pipeline.Options{})
	gs, _ := NewServer(Config{Log: l.Log, Encounters: svc, Auth: inferenceAuth, Inference: p, KServeProxy: kp})
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
		rec.Close(context.Background())
		kp.Close()
		l.Close()
	})
	return &inferenceStack{conn: conn, api: pb.NewInferenceServiceClient(conn), enc: pb.NewEncounterServiceClient(conn), log: l,
		ctx: metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", "clinic-a")}
}

func (s *inferenceStack) visit(t *testing.T, segments bool) string {
	t.Helper()
	c, err := s.enc.CreateEncounter(s.ctx, &pb.CreateEncounterRequest{Title: "Cough"})
	if err != nil {
		t.Fatal(err)
	}
	id := c.GetEncounter().GetEncounterId()
	if segments {
		_, err = s.enc.RecordSegments(s.ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
			{SegmentId: "s1", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, Text: "What brings you in?", EndMs: 1000},
			{SegmentId: "s2", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "I've had a cough for three days, no fever.", StartMs: 1000, EndMs: 4000},
			{SegmentId: "s3", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, Text: "Your chest is clear, so rest and drink plenty of fluids.", StartMs: 4000, EndMs: 8000},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func TestGenerateNote(t *testing.T) {
	chat := httptest.NewServer(&upstreamtest.Chat{Fingerprint: "fp_1"})
	defer chat.Close()
	s := newInferenceStack(t, chat.URL, "127.0.0.1:1")
	id := s.visit(t, true)
	for _, b := range []pb.InferenceBackend{pb.InferenceBackend_INFERENCE_BACKEND_UNSPECIFIED, pb.InferenceBackend_INFERENCE_BACKEND_OPENAI} {
		resp, err := s.api.GenerateNote(s.ctx, &pb.GenerateNoteRequest{EncounterId: id, Backend: b, Verify: true})
		if err != nil {
			t.Fatalf("%v: %v", b, err)
		}
		n := resp.GetNote()
		if len(n.GetSections()) == 0 || n.GetModelOutputIndex() != resp.GetModelOutputIndex() || resp.GetAlignmentIndex() <= resp.GetModelOutputIndex() {
			t.Fatalf("%v: %+v", b, resp)
		}
		r := resp.GetReceipt()
		if len(r.GetProofs()) != 2 {
			t.Fatalf("%v: %d proofs", b, len(r.GetProofs()))
		}
		for _, p := range r.GetProofs() {
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.GetLeafIndex()), uint64(p.GetTreeSize()), p.GetLeafHash(), p.GetHashes(), r.GetCheckpoint().GetRootHash()); err != nil {
				t.Errorf("%v: leaf %d: %v", b, p.GetLeafIndex(), err)
			}
		}
		if b == pb.InferenceBackend_INFERENCE_BACKEND_OPENAI && (resp.GetModel().GetVersion() != "fp_1" || resp.GetUsage().GetPromptTokens() == 0 || resp.GetBackend() != "openai") {
			t.Errorf("openai: %+v", resp)
		}
		if b == pb.InferenceBackend_INFERENCE_BACKEND_UNSPECIFIED && (resp.GetModel().GetName() != "soapgen" || resp.GetBackend() != "embedded") {
			t.Errorf("embedded: %+v", resp)
		}
	}
}

func TestGenerateNoteErrors(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + lis.Addr().String()
	lis.Close()
	s := newInferenceStack(t, dead, "127.0.0.1:1")
	id := s.visit(t, true)
	empty := s.visit(t, false)
	size := s.log.Size()
	for _, tc := range []struct {
		req   *pb.GenerateNoteRequest
		code  codes.Code
		field string
	}{
		{&pb.GenerateNoteRequest{EncounterId: id, Backend: 99}, codes.InvalidArgument, "backend"},
		{&pb.GenerateNoteRequest{}, codes.InvalidArgument, "encounter_id"},
		{&pb.GenerateNoteRequest{EncounterId: id, Model: "gpt-4o"}, codes.InvalidArgument, "model"},
		{&pb.GenerateNoteRequest{EncounterId: id, Backend: pb.InferenceBackend_INFERENCE_BACKEND_KSERVE}, codes.FailedPrecondition, ""},
		{&pb.GenerateNoteRequest{EncounterId: empty}, codes.FailedPrecondition, ""},
		{&pb.GenerateNoteRequest{EncounterId: "enc_nope"}, codes.NotFound, ""},
	} {
		_, err := s.api.GenerateNote(s.ctx, tc.req)
		st := status.Convert(err)
		if st.Code() != tc.code {
			t.Errorf("%v: %v, want %v", tc.req, err, tc.code)
			continue
		}
		if tc.field != "" {
			var got string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
					got = br.GetFieldViolations()[0].GetField()
				}
			}
			if got != tc.field {
				t.Errorf("%v: field %q, want %q", tc.req, got, tc.field)
			}
		}
	}
	if s.log.Size() != size {
		t.Errorf("rejected requests wrote %d entries", s.log.Size()-size)
	}
	// The model server is down: Unavailable, and the failure is recorded.
	_, err := s.api.GenerateNote(s.ctx, &pb.GenerateNoteRequest{EncounterId: id, Backend: pb.InferenceBackend_INFERENCE_BACKEND_OPENAI})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "recorded as leaf") {
		t.Fatalf("unreachable backend: %v", err)
	}
	if s.log.Size() != size+1 {
		t.Errorf("the failed call wrote %d entries, want 1", s.log.Size()-size)
	}
}

func TestKServeProxyRegistered(t *testing.T) {
	fake := &upstreamtest.KServe{}
	addr, stop, err := upstreamtest.ServeKServe(fake)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	s := newInferenceStack(t, "http://127.0.0.1:1", addr)
	live, err := inferencepb.NewGRPCInferenceServiceClient(s.conn).ServerLive(s.ctx, &inferencepb.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Fatalf("ServerLive through the ledger: %v %v", live, err)
	}
	h, err := healthpb.NewHealthClient(s.conn).Check(s.ctx, &healthpb.HealthCheckRequest{Service: proxy.ServiceName})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health of %s: %v %v", proxy.ServiceName, h, err)
	}
	// Without ledger credentials the proxy refuses.
	_, err = inferencepb.NewGRPCInferenceServiceClient(s.conn).ServerLive(context.Background(), &inferencepb.ServerLiveRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
}
