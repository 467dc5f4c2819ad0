package proxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/encounter"
	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/pipeline/internal/testenv"
	"github.com/evidenceledger/evidence/pipeline/kserve"
	"github.com/evidenceledger/evidence/pipeline/proxy"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

// devAuth stands in for the ledger server's authentication: the tenant
// comes from x-evidence-tenant metadata.
func devAuth(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	id := auth.Identity{Tenant: testenv.Alice.Tenant, Subject: "svc:triton-client", Role: auth.RolePipeline}
	if v := md.Get("x-evidence-tenant"); len(v) == 1 {
		id.Tenant = v[0]
	}
	return auth.NewContext(ctx, id)
}

type authStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s authStream) Context() context.Context { return s.ctx }

// serveProxy serves a KServe proxy to upstream on a server with the dev
// authentication, and returns a connection to it.
func serveProxy(t *testing.T, rec *proxy.Recorder, upstream string) *grpc.ClientConn {
	t.Helper()
	p, err := proxy.NewKServe(rec, proxy.KServeConfig{Upstream: upstream})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(devAuth(ctx), req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, authStream{ss, devAuth(ss.Context())})
		}))
	p.Register(s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return dial(t, lis.Addr().String())
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type grpcEnv struct {
	svc     *encounter.Service
	log     *ledger.Appender
	rec     *proxy.Recorder
	fake    *upstreamtest.KServe
	direct  *grpc.ClientConn
	proxied *grpc.ClientConn
	visit   string
}

func newGRPCEnv(t *testing.T, fake *upstreamtest.KServe) *grpcEnv {
	t.Helper()
	e := &grpcEnv{fake: fake}
	e.svc, e.log = testenv.New(t)
	e.visit, _ = testenv.Visit(t, e.svc, testenv.Alice)
	var err error
	e.rec, err = proxy.NewRecorder(e.svc, e.log.Log, proxy.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rec.Close(ctx) })
	addr, stop, err := upstreamtest.ServeKServe(fake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	e.direct = dial(t, addr)
	e.proxied = serveProxy(t, e.rec, addr)
	return e
}

func inferRequest(text string) *inferencepb.ModelInferRequest {
	return &inferencepb.ModelInferRequest{ModelName: "fake-llm", Id: "req-1",
		Parameters:       map[string]*inferencepb.InferParameter{"max_tokens": {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 256}}},
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "text_input", Datatype: "BYTES", Shape: []int64{1}}},
		Outputs:          []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "text_output"}},
		RawInputContents: [][]byte{kserve.EncodeBytes([]byte(text))}}
}

func TestKServeProxyModelInfer(t *testing.T) {
	e := newGRPCEnv(t, &upstreamtest.KServe{Version: "2"})
	client := inferencepb.NewGRPCInferenceServiceClient(e.proxied)
	octx := metadata.AppendToOutgoingContext(ctx, "x-evidence-encounter", e.visit, "authorization", "Bearer ledger-token", "x-trace", "abc")

	// Metadata and health calls are forwarded, not recorded.
	if live, err := client.ServerLive(octx, &inferencepb.ServerLiveRequest{}); err != nil || !live.GetLive() {
		t.Fatalf("ServerLive: %v %v", live, err)
	}
	md, err := client.ModelMetadata(octx, &inferencepb.ModelMetadataRequest{Name: "fake-llm"})
	if err != nil || md.GetInputs()[0].GetName() != "text_input" {
		t.Fatalf("ModelMetadata: %v %v", md, err)
	}

	var header, trailer metadata.MD
	req := inferRequest("PATIENT: Cough for three days.")
	resp, err := client.ModelInfer(octx, req, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	elems, _, _ := kserve.OutputBytes(resp, "text_output")
	if string(elems[0]) != upstreamtest.Note || resp.GetModelVersion() != "2" || resp.GetId() != "req-1" {
		t.Fatalf("response %v", resp)
	}
	if header.Get("x-upstream-header")[0] != "h" || trailer.Get("x-upstream-trailer")[0] != "t" {
		t.Errorf("header %v trailer %v", header, trailer)
	}
	// The upstream got the caller's metadata, less the ledger's.
	up := e.fake.LastMetadata()
	if len(up.Get("x-trace")) != 1 || len(up.Get("authorization")) != 0 || len(up.Get("x-evidence-encounter")) != 0 {
		t.Errorf("forwarded metadata %v", up)
	}
	// Same response bytes as a direct call.
	direct, err := inferencepb.NewGRPCInferenceServiceClient(e.direct).ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(direct, resp) {
		t.Error("the proxied response differs from the direct one")
	}
	e.rec.Close(ctx) // drains the queue
	outs := testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)
	if len(outs) != 1 {
		t.Fatalf("%d outputs recorded, want 1 (ModelInfer only)", len(outs))
	}
	o := outs[0]
	raw, _ := proto.Marshal(req)
	reqSum := sha256.Sum256(raw)
	promptSum := sha256.Sum256([]byte("PATIENT: Cough for three days."))
	p := o.Parameters
	if o.Backend != proxy.BackendKServe || o.Model.Name != "fake-llm" || o.Model.Version != "2" || o.Note == nil || o.Error != "" ||
		o.PromptSHA256 != hex.EncodeToString(promptSum[:]) {
		t.Errorf("recorded %+v", o.ModelOutput)
	}
	if p["request_sha256"] != hex.EncodeToString(reqSum[:]) || p["grpc_code"] != "OK" || p["request_id"] != "req-1" ||
		p["inputs"] != "text_input:BYTES[1]" || p["param.max_tokens"] != "256" || p["note"] != "parsed" {
		t.Errorf("parameters %v", p)
	}
	testenv.VerifyIncluded(t, e.log.Log, o.Index)
}

// TestKServeProxyRelaysBytes: an upstream whose encoding a re-encoding
// proxy would change (fields out of order, an unknown field, a
// non-minimal varint) gets its bytes through unchanged.
func TestKServeProxyRelaysBytes(t *testing.T) {
	var odd []byte
	odd = protowire.AppendTag(odd, 2, protowire.BytesType) // model_version before model_name
	odd = protowire.AppendString(odd, "9")
	odd = protowire.AppendTag(odd, 99, protowire.VarintType) // unknown to this protocol
	odd = append(odd, 0x81, 0x80, 0x00)                      // 1, encoded in three bytes
	odd = protowire.AppendTag(odd, 1, protowire.BytesType)
	odd = protowire.AppendString(odd, "fake-llm")
	s := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		in := new(emptypb.Empty)
		if err := ss.RecvMsg(in); err != nil {
			return err
		}
		out := new(emptypb.Empty)
		out.ProtoReflect().SetUnknown(odd)
		return ss.SendMsg(out)
	}))
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(lis)
	defer s.Stop()
	svc, l := testenv.New(t)
	rec, _ := proxy.NewRecorder(svc, l.Log, proxy.Options{})
	defer rec.Close(ctx)
	conn := serveProxy(t, rec, lis.Addr().String())
	got := new(emptypb.Empty)
	raw := new(emptypb.Empty)
	rb, _ := proto.Marshal(inferRequest("x"))
	raw.ProtoReflect().SetUnknown(rb)
	if err := conn.Invoke(ctx, "/inference.GRPCInferenceService/ModelInfer", raw, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.ProtoReflect().GetUnknown(), odd) {
		t.Errorf("relayed %x, want %x", got.ProtoReflect().GetUnknown(), odd)
	}
}

func TestKServeProxyErrors(t *testing.T) {
	e := newGRPCEnv(t, &upstreamtest.KServe{Code: codes.ResourceExhausted})
	client := inferencepb.NewGRPCInferenceServiceClient(e.proxied)
	octx := metadata.AppendToOutgoingContext(ctx, "x-evidence-encounter", e.visit)
	_, err := client.ModelInfer(octx, inferRequest("x"))
	_, derr := inferencepb.NewGRPCInferenceServiceClient(e.direct).ModelInfer(ctx, inferRequest("x"))
	if st, dst := status.Convert(err), status.Convert(derr); st.Code() != codes.ResourceExhausted || st.Message() != dst.Message() {
		t.Fatalf("proxied %v, direct %v", err, derr)
	}
	// Unreachable upstream: Unavailable, recorded.
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := lis.Addr().String()
	lis.Close()
	deadConn := serveProxy(t, e.rec, dead)
	_, err = inferencepb.NewGRPCInferenceServiceClient(deadConn).ModelInfer(octx, inferRequest("x"))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("unreachable: %v", err)
	}
	e.rec.Close(ctx)
	outs := testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)
	if len(outs) != 2 {
		t.Fatalf("%d outputs", len(outs))
	}
	if outs[0].Error != "upstream gRPC ResourceExhausted" || outs[1].Error != "upstream gRPC Unavailable" || outs[0].Model.Name != "fake-llm" {
		t.Errorf("recorded %q, %q", outs[0].Error, outs[1].Error)
	}
}

func TestKServeProxyStream(t *testing.T) {
	e := newGRPCEnv(t, &upstreamtest.KServe{StreamPieces: 5})
	octx := metadata.AppendToOutgoingContext(ctx, "x-evidence-encounter", e.visit)
	stream, err := inferencepb.NewGRPCInferenceServiceClient(e.proxied).ModelStreamInfer(octx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(inferRequest("PATIENT: Cough.")); err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	var text strings.Builder
	n := 0
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		el, _, _ := kserve.OutputBytes(m.GetInferResponse(), "text_output")
		text.Write(el[0])
		n++
	}
	if n != 5 || text.String() != upstreamtest.Note || stream.Trailer().Get("x-upstream-trailer")[0] != "t" {
		t.Fatalf("%d responses, trailer %v", n, stream.Trailer())
	}
	e.rec.Close(ctx)
	outs := testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)
	if len(outs) != 1 {
		t.Fatalf("%d outputs", len(outs))
	}
	p := outs[0].Parameters
	if p["method"] != "ModelStreamInfer" || p["requests"] != "1" || p["responses"] != "5" || p["final_response"] != "true" || outs[0].Note == nil {
		t.Errorf("recorded %+v", outs[0].ModelOutput)
	}
}
