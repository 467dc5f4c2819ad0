package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/grpcapi"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

// The authorization matrix: every gRPC method the server registers and
// every HTTP route its mux registers, called by every role of the tenant
// that owns the data, every role of another tenant, the operator's
// auditor and admin, no credentials and bad credentials. The expected
// outcome of each cell is computed from the method's or route's
// declaration in auth/policy.go, by a rule written here independently of
// auth.Rule.Authorize:
//
//   - a public method or route: served;
//   - no or bad credentials: Unauthenticated (401);
//   - a role the declaration does not list, an operator identity on a
//     tenant scope, a tenant identity on the operator scope:
//     PermissionDenied (403);
//   - another tenant's caller on a request that names the owner's data
//     (an encounter, a leaf): NotFound (404), exactly as for a missing
//     one; on a request that names nothing (lists, search, streams):
//     served, and nothing of the owner's is in the answer;
//   - an entry bundle, which mixes tenants here: the operator's auditor
//     only;
//   - otherwise: served. Requests are minimal valid ones (each write on a
//     fresh encounter), so "served" means success: the authorization
//     decision, not validation, decided every cell.

const (
	tenantA = "clinic-a" // owns every fixture
	tenantB = "clinic-b"
	// marker is in the owner's transcript, note and titles (and in no
	// other tenant's), so that a leak of content is seen in any answer.
	marker = "Zorblaxine"
)

type column struct {
	name  string
	token string
	id    auth.Identity // zero for none and bad
	other bool          // a tenant that does not own the fixtures
}

type outcome int

const (
	served outcome = iota
	unauthenticated
	denied
	hidden // NotFound
)

func (o outcome) String() string {
	return [...]string{"served", "Unauthenticated", "PermissionDenied", "NotFound"}[o]
}

// matrixServer is the server as run wires it, on a memory store: every
// service, both proxies (to fake upstreams), compliance with encryption
// at rest, search, and the real HTTP handler; listening on loopback.
type matrixServer struct {
	grpcAddr  string
	httpURL   string
	grpc      *grpc.Server
	sec       *security
	svc       *encounter.Service
	log       *ledger.Appender
	columns   []column
	tokens    map[string]string // "tenant/role" -> token
	enc       string            // the owner's fixture encounter
	leaf      int64             // a leaf of the owner's fixture encounter
	kserve    string            // the fake KServe upstream
	audioData []byte
	handler   http.Handler // the HTTP server's
}

func newMatrixServer(t testing.TB) *matrixServer {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	data := t.TempDir()
	m := &matrixServer{tokens: map[string]string{}}

	// Tokens: every role of both tenants, and the operator's.
	tokensPath := filepath.Join(data, auth.TokensFileName)
	mint := func(tenant, role string) string {
		tok, _, err := auth.CreateToken(tokensPath, auth.Identity{Tenant: tenant, Role: role, Subject: "subject." + role}, auth.TokenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.tokens[tenant+"/"+role] = tok
		return tok
	}
	for _, role := range auth.Roles {
		m.columns = append(m.columns, column{name: "own " + role, token: mint(tenantA, role), id: auth.Identity{Tenant: tenantA, Role: role, Subject: "subject." + role}})
	}
	for _, role := range auth.Roles {
		m.columns = append(m.columns, column{name: "other " + role, token: mint(tenantB, role), id: auth.Identity{Tenant: tenantB, Role: role, Subject: "subject." + role}, other: true})
	}
	for _, role := range []string{auth.RoleAuditor, auth.RoleAdmin} {
		m.columns = append(m.columns, column{name: "operator " + role, token: mint(auth.OperatorTenant, role), id: auth.Identity{Tenant: auth.OperatorTenant, Role: role, Subject: "subject." + role}})
	}
	m.columns = append(m.columns, column{name: "no credentials"}, column{name: "bad credentials", token: auth.GenerateToken()})

	// Storage, the log with encryption at rest, the services.
	key, err := ledger.LoadOrCreateKey(data, "evidence.localhost/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	sealer, err := setupEncryption(data, "", store, logger)
	if err != nil {
		t.Fatal(err)
	}
	m.log, err = ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	blobs := blob.New(store, sealer)
	keys := envelope.NewKeys(sealer, store)
	m.svc = encounter.New(m.log.Log, m.log, blobs, encounter.WithAccessTrail(), encounter.WithKeys(keys))
	idx, stopIndex, err := startIndex(ctx, data, m.log.Log, logger)
	if err != nil {
		t.Fatal(err)
	}
	chat := httptest.NewServer(&upstreamtest.Chat{})
	kaddr, stopKServe, err := upstreamtest.ServeKServe(&upstreamtest.KServe{})
	if err != nil {
		t.Fatal(err)
	}
	m.kserve = kaddr
	icfg := defaultInference()
	icfg.OpenAIUpstream, icfg.KServeUpstream = chat.URL, kaddr
	inf, err := setupInference(icfg, data, m.log.Log, m.svc, nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	comp, err := newCompliance(m.log.Log, m.svc, blobs, keys, idx)
	if err != nil {
		t.Fatal(err)
	}

	// Security as run sets it up, without rate limits (the matrix makes
	// hundreds of calls, and dozens of failed ones, in a second).
	scfg := defaultSecurity()
	scfg.RateLimit = 0
	m.sec, err = setupSecurity(data, scfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	m.sec.policy.Failures = nil
	m.grpc, _ = grpcapi.NewServer(grpcapi.Config{Log: m.log.Log, Encounters: m.svc, Auth: m.sec.authenticate, Policy: m.sec.policy,
		Search: idx, Inference: inf.Pipeline, KServeProxy: inf.KServeProxy, Compliance: comp}, m.sec.grpcOptions()...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.grpcAddr = lis.Addr().String()
	go m.grpc.Serve(lis)
	go m.grpc.Serve(m.sec.inproc)
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.sec.enableDemo(data, httpLis); err != nil {
		t.Fatal(err)
	}
	self, err := m.sec.dialSelf()
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.sec.httpHandler(httpServices{log: m.log.Log, encounter: m.svc, registry: prometheus.NewRegistry(), chatProxy: inf.ChatProxy, self: self})
	if err != nil {
		t.Fatal(err)
	}
	m.handler = h
	hs := &http.Server{Handler: h}
	go hs.Serve(httpLis)
	m.httpURL = "http://" + httpLis.Addr().String()
	t.Cleanup(func() {
		hs.Close()
		self.Close()
		m.grpc.Stop()
		inf.Close(context.Background())
		stopKServe()
		chat.Close()
		stopIndex()
		m.log.Close()
		store.Close()
	})

	// Fixtures: a visit of each tenant, with audio, transcript and note.
	v, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	m.audioData = v.Audio.Data
	m.enc = m.visit(t, tenantA, true)
	m.visit(t, tenantB, true)
	idxs, err := m.log.EncounterIndexes(tenantA, m.enc)
	if err != nil || len(idxs) < 3 {
		t.Fatalf("fixture leaves: %v %v", idxs, err)
	}
	m.leaf = idxs[1]
	return m
}

// visit records an encounter of tenant directly through the service:
// opened, with a recording when audio is set, two segments and a note.
func (m *matrixServer) visit(t testing.TB, tenant string, audio bool) string {
	t.Helper()
	ctx := context.Background()
	c := encounter.Caller{Tenant: tenant, Actor: "svc:fixture"}
	word := "Quelmorine"
	if tenant == tenantA {
		word = marker
	}
	info, _, err := m.svc.Create(ctx, c, "Visit about "+word, "patient-"+word)
	if err != nil {
		t.Fatal(err)
	}
	if audio {
		if _, _, err := m.svc.RecordAudio(ctx, c, info.ID, encounter.Audio{MediaType: demo.MediaType, Codec: "opus"}, bytes.NewReader(m.audioData)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.svc.RecordSegments(ctx, c, info.ID, []encounter.Segment{
		{ID: "g1", Role: encounter.RoleClinician, Text: "Any chest pain since you started " + word + "?", StartMS: 0, EndMS: 2000},
		{ID: "g2", Role: encounter.RolePatient, Text: "Yes, chest pain for two days.", StartMS: 2000, EndMS: 4000},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.svc.RecordModelOutput(ctx, c, info.ID, encounter.ModelOutput{Model: encounter.Model{Name: "test", Version: "1"},
		Note: &encounter.Draft{Sections: []encounter.DraftSection{{Name: "Subjective", Sentences: []encounter.DraftSentence{
			{ID: "S1", Text: "Chest pain for two days on " + word + "."}}}}}}); err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// fresh returns a new encounter of the owner, for a write.
func (m *matrixServer) fresh(t testing.TB) string { return m.visit(t, tenantA, false) }

// noteHash returns the current note hash of an owner's encounter, after
// resolving its flagged sentences (as the fixture's clinician) so that a
// sign-off can succeed, and the sentences without evidence, which a
// sign-off may still acknowledge.
func (m *matrixServer) noteHash(t testing.TB, id string) ([]byte, []string) {
	c := encounter.Caller{Tenant: tenantA, Actor: "svc:fixture"}
	n, err := m.svc.Note(context.Background(), c, id)
	if err != nil {
		t.Fatal(err)
	}
	var ack []string
	for _, sec := range n.Sections {
		for _, s := range sec.Sentences {
			if s.Unsupported() {
				ack = append(ack, s.ID)
			}
			if s.NeedsResolution() {
				if _, err := m.svc.ResolveSentence(context.Background(), c, id, encounter.ResolveRequest{SentenceID: s.ID, Verdict: s.Verdict,
					Action: encounter.ResolveConfirmed, Reason: "fixture"}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return n.Hash[:], ack
}

// flagged returns a new encounter of the owner whose note has a flagged
// sentence (one nothing in the visit mentions), with its id and verdict.
func (m *matrixServer) flagged(t testing.TB) (string, string, string) {
	id := m.fresh(t)
	rec, err := m.svc.RecordEdit(context.Background(), encounter.Caller{Tenant: tenantA, Actor: "svc:fixture"}, id,
		encounter.EditRequest{Action: encounter.ActionAdd, Section: "Subjective", After: "S1", Text: "Allergic to penicillin."})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range rec.Note.Sections {
		for _, s := range sec.Sentences {
			if s.ID == rec.SentenceID && s.NeedsResolution() {
				return id, s.ID, s.Verdict
			}
		}
	}
	t.Fatal("the fixture's added sentence is not flagged")
	return "", "", ""
}

// grpcCall is a minimal valid call of one method: it returns the answer
// (all messages of a stream) and the error.
type grpcCall struct {
	// addressed: the request names the owner's data.
	addressed bool
	call      func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) ([]proto.Message, error)
}

func unary[Req, Resp proto.Message](f func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) func(context.Context) ([]proto.Message, error) {
	return func(ctx context.Context) ([]proto.Message, error) {
		r, err := f(ctx, req)
		if err != nil {
			return nil, err
		}
		return []proto.Message{r}, nil
	}
}

func drain[Resp proto.Message](s interface{ Recv() (Resp, error) }, err error) ([]proto.Message, error) {
	if err != nil {
		return nil, err
	}
	var out []proto.Message
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// grpcCalls are the minimal requests, by full method name.
func (m *matrixServer) grpcCalls(t *testing.T) map[string]grpcCall {
	u := func(addressed bool, f func(conn *grpc.ClientConn) func(context.Context) ([]proto.Message, error)) grpcCall {
		return grpcCall{addressed: addressed, call: func(_ *testing.T, ctx context.Context, conn *grpc.ClientConn) ([]proto.Message, error) {
			return f(conn)(ctx)
		}}
	}
	calls := map[string]grpcCall{
		"/evidence.v1.LedgerService/GetLogInfo": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewLedgerServiceClient(c).GetLogInfo, &pb.GetLogInfoRequest{})
		}),
		"/evidence.v1.LedgerService/GetCheckpoint": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewLedgerServiceClient(c).GetCheckpoint, &pb.GetCheckpointRequest{})
		}),
		"/evidence.v1.LedgerService/GetEntry": u(true, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewLedgerServiceClient(c).GetEntry, &pb.GetEntryRequest{LeafIndex: m.leaf, IncludeProof: true})
		}),
		"/evidence.v1.LedgerService/GetInclusionProof": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewLedgerServiceClient(c).GetInclusionProof, &pb.GetInclusionProofRequest{LeafIndex: m.leaf})
		}),
		"/evidence.v1.LedgerService/GetConsistencyProof": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewLedgerServiceClient(c).GetConsistencyProof, &pb.GetConsistencyProofRequest{FromTreeSize: 1})
		}),
		"/evidence.v1.LedgerService/StreamEntries": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return drain(pb.NewLedgerServiceClient(c).StreamEntries(ctx, &pb.StreamEntriesRequest{}))
		}},
		"/evidence.v1.LedgerService/ListCheckpoints": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return drain(pb.NewLedgerServiceClient(c).ListCheckpoints(ctx, &pb.ListCheckpointsRequest{}))
		}},
		"/evidence.v1.EncounterService/CreateEncounter": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).CreateEncounter, &pb.CreateEncounterRequest{Title: "new visit"})
		}),
		"/evidence.v1.EncounterService/ListEncounters": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).ListEncounters, &pb.ListEncountersRequest{})
		}),
		"/evidence.v1.EncounterService/GetEncounter": u(true, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).GetEncounter, &pb.GetEncounterRequest{EncounterId: m.enc})
		}),
		"/evidence.v1.EncounterService/GetTranscript": u(true, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).GetTranscript, &pb.GetTranscriptRequest{EncounterId: m.enc})
		}),
		"/evidence.v1.EncounterService/GetNote": u(true, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).GetNote, &pb.GetNoteRequest{EncounterId: m.enc})
		}),
		"/evidence.v1.EncounterService/RecordSegments": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).RecordSegments, &pb.RecordSegmentsRequest{EncounterId: m.fresh(t), Segments: []*pb.Segment{
				{SegmentId: "g9", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "And a cough.", StartMs: 5000, EndMs: 6000}}})(ctx)
		}},
		"/evidence.v1.EncounterService/RecordAudio": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			s, err := pb.NewEncounterServiceClient(c).RecordAudio(ctx)
			if err != nil {
				return nil, err
			}
			s.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Header{Header: &pb.AudioHeader{EncounterId: m.fresh(t), MediaType: demo.MediaType, Codec: "opus"}}})
			s.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Chunk{Chunk: m.audioData}})
			r, err := s.CloseAndRecv()
			if err != nil {
				return nil, err
			}
			return []proto.Message{r}, nil
		}},
		"/evidence.v1.EncounterService/RecordModelOutput": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).RecordModelOutput, &pb.RecordModelOutputRequest{EncounterId: m.fresh(t), Model: &pb.ModelRef{Name: "m", Version: "1"},
				Note: &pb.DraftNote{Sections: []*pb.DraftSection{{Name: "Subjective", Sentences: []*pb.DraftSentence{{SentenceId: "S1", Text: "Chest pain."}}}}}})(ctx)
		}},
		"/evidence.v1.EncounterService/RecordEdit": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return unary(pb.NewEncounterServiceClient(c).RecordEdit, &pb.RecordEditRequest{EncounterId: m.fresh(t), Action: pb.EditAction_EDIT_ACTION_REPLACE,
				SentenceId: "S1", Text: "Chest pain for 2 days.", Reason: "clarify"})(ctx)
		}},
		"/evidence.v1.EncounterService/ResolveSentence": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			id, sid, verdict := m.flagged(t)
			v := pb.Verdict_VERDICT_UNMENTIONED
			if verdict == encounter.VerdictContradicted {
				v = pb.Verdict_VERDICT_CONTRADICTED
			}
			return unary(pb.NewEncounterServiceClient(c).ResolveSentence, &pb.ResolveSentenceRequest{EncounterId: id, SentenceId: sid, Verdict: v,
				Action: pb.ResolutionAction_RESOLUTION_ACTION_CONFIRM, Reason: "stated at the door"})(ctx)
		}},
		"/evidence.v1.EncounterService/SignNote": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			id := m.fresh(t)
			h, ack := m.noteHash(t, id)
			return unary(pb.NewEncounterServiceClient(c).SignNote, &pb.SignNoteRequest{EncounterId: id, NoteHash: h, AcknowledgedSentenceIds: ack})(ctx)
		}},
		"/evidence.v1.AlignService/Align": u(true, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewAlignServiceClient(c).Align, &pb.AlignRequest{EncounterId: m.enc, Sentences: []*pb.AlignSentence{{Text: "Chest pain."}}})
		}),
		"/evidence.v1.SearchService/Search": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewSearchServiceClient(c).Search, &pb.SearchRequest{Query: "chest"})
		}),
		"/evidence.v1.InferenceService/GenerateNote": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return unary(pb.NewInferenceServiceClient(c).GenerateNote, &pb.GenerateNoteRequest{EncounterId: m.fresh(t)})(ctx)
		}},
		"/evidence.v1.ComplianceService/ExportProvenance": u(true, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(pb.NewComplianceServiceClient(c).ExportProvenance, &pb.ExportProvenanceRequest{EncounterId: m.enc, Format: pb.ReportFormat_REPORT_FORMAT_JSON})
		}),
		"/evidence.v1.ComplianceService/ListAccessEvents": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return drain(pb.NewComplianceServiceClient(c).ListAccessEvents(ctx, &pb.ListAccessEventsRequest{}))
		}},
		"/evidence.v1.ComplianceService/ShredEncounter": {addressed: true, call: func(t *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return unary(pb.NewComplianceServiceClient(c).ShredEncounter, &pb.ShredEncounterRequest{EncounterId: m.fresh(t), Reason: "authorization matrix"})(ctx)
		}},
		"/evidence.v1.ClusterService/GetClusterStatus": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			msgs, err := unary(pb.NewClusterServiceClient(c).GetClusterStatus, &pb.GetClusterStatusRequest{})(ctx)
			if status.Code(err) == codes.FailedPrecondition {
				// Admitted: the matrix server is a single node, which
				// says it is not a cluster.
				return nil, nil
			}
			return msgs, err
		}},
		"/evidence.v1.ClusterService/RemoveMember": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			msgs, err := unary(pb.NewClusterServiceClient(c).RemoveMember, &pb.RemoveMemberRequest{NodeId: "n1"})(ctx)
			if status.Code(err) == codes.FailedPrecondition {
				// Admitted, as GetClusterStatus.
				return nil, nil
			}
			return msgs, err
		}},
		"/grpc.health.v1.Health/Check": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(healthpb.NewHealthClient(c).Check, &healthpb.HealthCheckRequest{})
		}),
		"/grpc.health.v1.Health/List": u(false, func(c *grpc.ClientConn) func(context.Context) ([]proto.Message, error) {
			return unary(healthpb.NewHealthClient(c).List, &healthpb.HealthListRequest{})
		}),
		"/grpc.health.v1.Health/Watch": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			s, err := healthpb.NewHealthClient(c).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return nil, err
			}
			r, err := s.Recv() // the first status; the stream then waits
			if err != nil {
				return nil, err
			}
			return []proto.Message{r}, nil
		}},
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			s, err := reflectionpb.NewServerReflectionClient(c).ServerReflectionInfo(ctx)
			if err != nil {
				return nil, err
			}
			s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
			s.CloseSend()
			return drain(s, nil)
		}},
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			s, err := reflectionalpha.NewServerReflectionClient(c).ServerReflectionInfo(ctx)
			if err != nil {
				return nil, err
			}
			s.Send(&reflectionalpha.ServerReflectionRequest{MessageRequest: &reflectionalpha.ServerReflectionRequest_ListServices{}})
			s.CloseSend()
			return drain(s, nil)
		}},
	}
	// The KServe proxy's methods, with an empty request frame: when the
	// caller is admitted, the answer is the upstream's own to the same
	// frame (see kserveCode).
	for _, name := range kserveMethodNames {
		method := "/inference.GRPCInferenceService/" + name
		calls[method] = grpcCall{call: func(_ *testing.T, ctx context.Context, c *grpc.ClientConn) ([]proto.Message, error) {
			return rawCall(ctx, c, method, name == "ModelStreamInfer")
		}}
	}
	return calls
}

var kserveMethodNames = []string{"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
	"ModelStreamInfer", "ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
	"SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
	"CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister", "TraceSetting", "LogSettings"}

// rawCall calls method with an empty frame.
func rawCall(ctx context.Context, c *grpc.ClientConn, method string, stream bool) ([]proto.Message, error) {
	if !stream {
		out := &emptypb.Empty{}
		if err := c.Invoke(ctx, method, &emptypb.Empty{}, out); err != nil {
			return nil, err
		}
		return []proto.Message{out}, nil
	}
	s, err := c.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return nil, err
	}
	s.SendMsg(&emptypb.Empty{})
	s.CloseSend()
	var out []proto.Message
	for {
		m := &emptypb.Empty{}
		err := s.RecvMsg(m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// allowed is the declaration's verdict for an authenticated identity,
// computed here from the rule's data alone.
func allowed(r auth.Rule, id auth.Identity) bool {
	if !slices.Contains(r.Roles, id.Role) {
		return false
	}
	op := id.Tenant == auth.OperatorTenant
	switch r.Scope {
	case auth.ScopeTenant:
		return !op
	case auth.ScopeOperator:
		return op
	case auth.ScopeLog, auth.ScopeLeaves:
		return true
	}
	return false
}

// expect is a cell's expected outcome.
func expect(r auth.Rule, col column, addressed, bundle bool) outcome {
	switch {
	case r.Scope == auth.ScopePublic:
		return served
	case col.id.Role == "":
		return unauthenticated
	case !allowed(r, col.id):
		return denied
	case bundle && col.id.Tenant != auth.OperatorTenant:
		return denied
	case addressed && col.other:
		return hidden
	}
	return served
}

// leaks reports whether an answer to another tenant's caller shows the
// owner's data: its name, its encounters or the marker in its content.
func (m *matrixServer) leaks(b []byte) bool {
	if bytes.Contains(b, []byte(tenantA)) || bytes.Contains(b, []byte(marker)) {
		return true
	}
	for _, id := range m.owned() {
		if bytes.Contains(b, []byte(id)) {
			return true
		}
	}
	return false
}

// owned returns the owner's encounter ids.
func (m *matrixServer) owned() []string {
	var out []string
	after := ""
	for {
		infos, more, err := m.svc.List(context.Background(), encounter.Caller{Tenant: tenantA, Actor: "svc:fixture"}, after, 500)
		if err != nil {
			return append(out, m.enc)
		}
		for _, i := range infos {
			out = append(out, i.ID)
		}
		if !more || len(infos) == 0 {
			return out
		}
		after = infos[len(infos)-1].ID
	}
}

func grpcOutcome(err error) (outcome, bool) {
	switch status.Code(err) {
	case codes.Unauthenticated:
		return unauthenticated, true
	case codes.PermissionDenied:
		return denied, true
	case codes.NotFound:
		return hidden, true
	}
	return served, err == nil
}

// TestAuthorizationMatrix runs every cell over gRPC and HTTP.
func TestAuthorizationMatrix(t *testing.T) {
	m := newMatrixServer(t)
	calls := m.grpcCalls(t)
	kcodes := m.kserveCodes(t)
	var cells, failed atomic.Int64
	conns := map[string]*grpc.ClientConn{}
	for _, col := range m.columns {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if col.token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearer(col.token)))
		}
		c, err := grpc.NewClient(m.grpcAddr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[col.name] = c
	}
	var early, late []string
	for _, method := range registeredMethods(m.grpc) {
		if lateMethods[method] {
			late = append(late, method)
		} else {
			early = append(early, method)
		}
	}
	runGRPC := func(t *testing.T, methods []string) {
		fail := func(format string, args ...any) {
			failed.Add(1)
			t.Errorf(format, args...)
		}
		for _, method := range methods {
			rule, ok := auth.MethodRule(method)
			if !ok {
				fail("%s: no declaration", method)
				continue
			}
			spec, ok := calls[method]
			if !ok {
				fail("%s: no request in the matrix; add one to grpcCalls", method)
				continue
			}
			for _, col := range m.columns {
				cells.Add(1)
				want := expect(rule, col, spec.addressed, false)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				msgs, err := spec.call(t, ctx, conns[col.name])
				cancel()
				got, ok := grpcOutcome(err)
				kc, proxied := kcodes[method]
				switch {
				case want == served && proxied:
					// Admitted: the upstream's own answer to the frame.
					if status.Code(err) != kc {
						fail("%s as %s: got %v, want the upstream's own %v", method, col.name, err, kc)
					}
				case got != want:
					fail("%s as %s: got %v (%v), want %v", method, col.name, got, err, want)
				case want == served && !proxied && !ok:
					fail("%s as %s: admitted but failed: %v (the request must be valid)", method, col.name, err)
				case want == served && col.other:
					for _, msg := range msgs {
						if b, _ := protojson.Marshal(msg); m.leaks(b) {
							fail("%s as %s: the answer shows the other tenant's data: %.200s", method, col.name, b)
							break
						}
					}
				}
			}
		}
	}

	t.Run("grpc", func(t *testing.T) { runGRPC(t, early) })
	t.Run("http", func(t *testing.T) {
		fail := func(format string, args ...any) {
			failed.Add(1)
			t.Errorf(format, args...)
		}
		declared := auth.Routes()
		if !slices.Equal(sorted(m.sec.routes), declared) {
			fail("the mux registers %v\nbut auth/policy.go declares %v", sorted(m.sec.routes), declared)
		}
		for _, pattern := range m.sec.routes {
			rule, _ := auth.RouteRule(pattern)
			rt, _ := auth.RouteDeclaration(pattern)
			for _, col := range m.columns {
				cells.Add(1)
				req, addressed, bundle := m.httpRequest(t, pattern)
				if col.token != "" {
					header := "Authorization"
					if rt.Forwards {
						header = "X-Evidence-Authorization"
					}
					req.Header.Set(header, "Bearer "+col.token)
				}
				want := expect(rule, col, addressed, bundle)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var got outcome
				switch resp.StatusCode {
				case 401:
					got = unauthenticated
				case 403:
					got = denied
				case 404:
					got = hidden
				default:
					got = served
				}
				switch {
				case got != want:
					fail("%s as %s: got %d %v, want %v: %.200s", pattern, col.name, resp.StatusCode, got, want, body)
				case want == served && resp.StatusCode/100 != 2:
					fail("%s as %s: admitted but %d: %.300s (the request must be valid)", pattern, col.name, resp.StatusCode, body)
				case want == served && col.other && m.leaks(body):
					fail("%s as %s: the answer shows the other tenant's data: %.200s", pattern, col.name, body)
				}
			}
		}
	})
	// Shredding last: see lateMethods.
	t.Run("grpc shredding", func(t *testing.T) { runGRPC(t, late) })
	t.Logf("authorization matrix: %d cells (%d methods and %d routes x %d callers), %d failed",
		cells.Load(), len(registeredMethods(m.grpc)), len(m.sec.routes), len(m.columns), failed.Load())
}

// lateMethods run after every other cell, HTTP included: once an
// encounter of the owner is shredded, listing the owner's encounters
// fails (FailedPrecondition, an issue outside authorization), which would
// fail the list cells.
var lateMethods = map[string]bool{"/evidence.v1.ComplianceService/ShredEncounter": true}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

func registeredMethods(s *grpc.Server) []string {
	var out []string
	for svc, info := range s.GetServiceInfo() {
		for _, mi := range info.Methods {
			out = append(out, "/"+svc+"/"+mi.Name)
		}
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// kserveCodes calls the fake upstream directly with the frames the
// matrix sends through the proxy: an admitted caller must get the same.
func (m *matrixServer) kserveCodes(t *testing.T) map[string]codes.Code {
	c, err := grpc.NewClient(m.kserve, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string]codes.Code{}
	for _, name := range kserveMethodNames {
		method := "/inference.GRPCInferenceService/" + name
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := rawCall(ctx, c, method, name == "ModelStreamInfer")
		cancel()
		out[method] = status.Code(err)
	}
	return out
}

// httpRequest is a minimal valid request for a route; it reports whether
// it names the owner's data, and whether it asks for an entry bundle.
func (m *matrixServer) httpRequest(t testing.TB, pattern string) (*http.Request, bool, bool) {
	method, path, _ := strings.Cut(pattern, " ")
	body := ""
	addressed := strings.Contains(path, "{id}") || strings.Contains(path, "{index}")
	bundle := false
	id := m.enc
	switch pattern {
	case "POST /api/v1/encounters/{id}/edits":
		id = m.fresh(t)
		body = `{"action":"EDIT_ACTION_REPLACE","sentence_id":"S1","text":"Chest pain for 2 days.","reason":"clarify"}`
	case "POST /api/v1/encounters/{id}/resolutions":
		var sid, verdict string
		id, sid, verdict = m.flagged(t)
		body = fmt.Sprintf(`{"sentence_id":%q,"verdict":"VERDICT_%s","action":"RESOLUTION_ACTION_CONFIRM","reason":"stated at the door"}`, sid, strings.ToUpper(verdict))
	case "POST /api/v1/encounters/{id}/signoff":
		id = m.fresh(t)
		h, ack := m.noteHash(t, id)
		body = fmt.Sprintf(`{"note_hash":%q,"acknowledged_sentence_ids":[%s]}`, base64.StdEncoding.EncodeToString(h), quoted(ack))
	case "POST /api/v1/encounters/{id}/align":
		body = `{"sentences":[{"text":"Chest pain."}]}`
	case "POST /api/v1/encounters/{id}/generate":
		id = m.fresh(t)
		body = `{}`
	case "POST /v1/chat/completions":
		body = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	case "POST /api/v1/session/demo":
		body = `{"role":"clinician"}`
	case "GET /tile/entries/":
		bundle = true
		addressed = true
	}
	tile := "000"
	if size := m.log.Size(); size < 256 {
		tile += fmt.Sprintf(".p/%d", size)
	}
	r := strings.NewReplacer("{id}", id, "{index}", fmt.Sprint(m.leaf), "{file...}", "app.js", "{$}", "")
	path = r.Replace(path)
	switch path {
	case "/tile/":
		path = "/tile/0/" + tile
	case "/tile/entries/":
		path = "/tile/entries/" + tile
	case "/api/v1/search":
		path += "?q=chest"
	case "/api/v1/proofs/inclusion":
		path += fmt.Sprintf("?index=%d", m.leaf)
	case "/api/v1/proofs/consistency":
		path += "?from=1"
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, m.httpURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, addressed, bundle
}

func quoted(ss []string) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", s)
	}
	return b.String()
}

// FuzzHTTPHandler serves arbitrary requests with the server's real HTTP
// handler, as each kind of caller: nothing panics, nothing but a public
// route answers a caller without credentials with a success, and no
// answer is a 500.
func FuzzHTTPHandler(f *testing.F) {
	m := newMatrixServer(f)
	rm, ok := m.handler.(*routeMux)
	if !ok {
		f.Fatal("the handler is not the route mux")
	}
	for _, p := range auth.Routes() {
		method, path, _ := strings.Cut(p, " ")
		path = strings.NewReplacer("{id}", m.enc, "{index}", "1", "{file...}", "app.js", "{$}", "").Replace(path)
		for role := range uint8(len(m.columns)) {
			f.Add(method, path, []byte(`{"role":"clinician","text":"x","sentences":[{"text":"y"}]}`), role)
		}
	}
	f.Add("GET", "/tile/entries%2F000.p%2F3", []byte(nil), uint8(len(m.columns)-2))
	f.Add("POST", "/api/v1/encounters/"+m.enc+"/signoff", []byte(`{"note_hash":"!!"}`), uint8(1))
	f.Add("GET", "/api/v1/encounters/..%2F..%2Fmetrics/audio", []byte(nil), uint8(0))
	f.Fuzz(func(t *testing.T, method, target string, body []byte, role uint8) {
		col := m.columns[int(role)%len(m.columns)]
		r, err := http.NewRequest(method, "http://x"+target, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(r.URL.Path, "/") {
			return
		}
		if col.token != "" {
			r.Header.Set("Authorization", "Bearer "+col.token)
			r.Header.Set("X-Evidence-Authorization", "Bearer "+col.token)
		}
		_, pattern := rm.mux.Handler(r)
		w := httptest.NewRecorder()
		m.handler.ServeHTTP(w, r)
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s as %s: 500 %s", method, target, col.name, w.Body)
		}
		if rule, ok := auth.RouteRule(pattern); ok && rule.Scope != auth.ScopePublic && col.id.Role == "" && w.Code/100 == 2 {
			t.Fatalf("%s %s (%s) without credentials: %d", method, target, pattern, w.Code)
		}
	})
}

// TestCrossTenantTiming: another tenant's encounter answers NotFound in
// the same time as an id that exists nowhere, so timing does not tell
// which ids exist. The lookup is keyed by the caller's tenant, so both
// miss the same way; the test compares median latencies of interleaved
// calls over gRPC and the gateway, with a wide margin for a noisy machine.
func TestCrossTenantTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	m := newMatrixServer(t)
	c, err := grpc.NewClient(m.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(m.tokens[tenantB+"/"+auth.RoleClinician])))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	api := pb.NewEncounterServiceClient(c)
	missing := "enc_" + strings.Repeat("q", 26)
	const n = 300
	var other, none []time.Duration
	for i := range 2 * n {
		id := m.enc
		if i%2 == 1 {
			id = missing
		}
		start := time.Now()
		_, err := api.GetNote(context.Background(), &pb.GetNoteRequest{EncounterId: id})
		d := time.Since(start)
		if status.Code(err) != codes.NotFound {
			t.Fatalf("%s: %v", id, err)
		}
		if st, _ := status.FromError(err); strings.Contains(st.Message(), tenantA) {
			t.Fatalf("the message names the owner: %s", st.Message())
		}
		if i%2 == 0 {
			other = append(other, d)
		} else {
			none = append(none, d)
		}
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	a, b := median(other), median(none)
	t.Logf("median NotFound: another tenant's encounter %v, no such encounter %v", a, b)
	if a > 2*b || b > 2*a {
		t.Errorf("timing differs: %v vs %v", a, b)
	}
}

// TestProxyTenantIsolation: a pipeline of another tenant that names the
// owner's encounter in a proxied call over HTTP or gRPC gets its answer
// from the model server, and the call is recorded in its own tenant,
// never in the owner's encounter.
func TestProxyTenantIsolation(t *testing.T) {
	m := newMatrixServer(t)
	ctx := context.Background()
	before, err := m.log.EncounterIndexes(tenantA, m.enc)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", m.httpURL+"/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("X-Evidence-Authorization", "Bearer "+m.tokens[tenantB+"/"+auth.RolePipeline])
	req.Header.Set("X-Evidence-Encounter", m.enc)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("chat proxy: %d", resp.StatusCode)
	}
	c, err := grpc.NewClient(m.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(m.tokens[tenantB+"/"+auth.RolePipeline])))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := rawCall(metadata.AppendToOutgoingContext(ctx, "x-evidence-encounter", m.enc), c, "/inference.GRPCInferenceService/ServerLive", false); err != nil {
		t.Fatalf("kserve proxy: %v", err)
	}
	// The chat call lands in the caller's tenant (recorded asynchronously).
	deadline := time.Now().Add(20 * time.Second)
	for {
		infos, _, err := m.svc.List(ctx, encounter.Caller{Tenant: tenantB, Actor: "svc:fixture"}, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		found := slices.ContainsFunc(infos, func(i encounter.Info) bool { return i.Count > 1 && i.Title != "Visit about Quelmorine" })
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxied call was not recorded in the caller's tenant")
		}
		time.Sleep(100 * time.Millisecond)
	}
	after, err := m.log.EncounterIndexes(tenantA, m.enc)
	if err != nil || !slices.Equal(after, before) {
		t.Fatalf("the owner's encounter changed: %v -> %v (%v)", before, after, err)
	}
}
