package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/encounter"
	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/pipeline/kserve"
	"github.com/evidenceledger/evidence/pipeline/prompt"
)

// ServiceName is the gRPC service the KServe proxy serves.
const ServiceName = "inference.GRPCInferenceService"

// Methods of inference.GRPCInferenceService the proxy forwards. ModelInfer
// and ModelStreamInfer are recorded; the others (health, metadata, and
// Triton's configuration, statistics, repository, shared-memory, trace and
// log RPCs) are forwarded without recording, since they call no model.
var (
	recordedUnary   = []string{"ModelInfer"}
	unrecordedUnary = []string{"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
		"ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
		"SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
		"CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister", "TraceSetting", "LogSettings"}
)

// KServeConfig configures a KServe proxy.
type KServeConfig struct {
	// Upstream is the inference server's gRPC address, host:port.
	Upstream string
	// TLS, when set, dials the upstream with TLS; else in plaintext.
	TLS *tls.Config
	// DialOptions are added to the upstream connection's.
	DialOptions []grpc.DialOption
}

// MaxUpstreamMessageBytes caps a message from the upstream.
const MaxUpstreamMessageBytes = 64 << 20

// KServeProxy serves inference.GRPCInferenceService on the ledger's gRPC
// server and forwards every call to an upstream inference server, frame
// for frame: messages are relayed as the bytes the peer sent, never
// decoded and re-encoded, so responses are byte-identical, and statuses,
// headers and trailers are passed back as the upstream sent them. The
// caller's metadata is forwarded except the ledger's own: x-evidence-*
// and authorization (the caller's credential for the ledger).
//
// For ModelInfer and ModelStreamInfer it records a model_output with the
// model name and version, the SHA-256 of the BYTES input "text_input" as
// the prompt hash, the SHA-256 and size of the request and response
// messages, the tensor names, types and shapes, the request parameters,
// the gRPC code, the latency, and the note when the BYTES output
// "text_output" parses as one. docs/pipeline.md lists the parameters.
type KServeProxy struct {
	rec      *Recorder
	upstream string
	conn     *grpc.ClientConn
}

// NewKServe returns a KServe proxy to cfg.Upstream that records with rec.
// It does not connect until the first call.
func NewKServe(rec *Recorder, cfg KServeConfig) (*KServeProxy, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("proxy: KServeConfig.Upstream is required")
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxUpstreamMessageBytes), grpc.MaxCallSendMsgSize(MaxUpstreamMessageBytes))}, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Upstream, opts...)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return &KServeProxy{rec: rec, upstream: cfg.Upstream, conn: conn}, nil
}

// Close closes the upstream connection.
func (p *KServeProxy) Close() error { return p.conn.Close() }

// Register registers the proxy as inference.GRPCInferenceService on s.
func (p *KServeProxy) Register(s grpc.ServiceRegistrar) {
	desc := &grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "ModelStreamInfer", Handler: p.streamInfer,
			ServerStreams: true, ClientStreams: true}},
		Metadata: "inference/grpc_service.proto",
	}
	for _, m := range recordedUnary {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: m, Handler: p.unary(m, true)})
	}
	for _, m := range unrecordedUnary {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: m, Handler: p.unary(m, false)})
	}
	s.RegisterService(desc, p)
}

// A frame is carried in an emptypb.Empty: it has no fields, so every
// field of the message is kept as unknown bytes, in order, and marshals
// back to exactly the bytes received.
func frameBytes(m *emptypb.Empty) []byte { return m.ProtoReflect().GetUnknown() }

func (p *KServeProxy) unary(method string, record bool) grpc.MethodHandler {
	full := "/" + ServiceName + "/" + method
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		handler := func(ctx context.Context, req any) (any, error) {
			return p.forward(ctx, full, req.(*emptypb.Empty), record)
		}
		if interceptor == nil {
			return handler(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, handler)
	}
}

// outgoing returns the metadata to forward: the caller's, less the
// ledger's own keys and the transport's reserved ones.
func outgoing(md metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, v := range md {
		if forwardable(k) && k != "authorization" {
			out[k] = v
		}
	}
	return out
}

// forwardable reports whether a metadata key may be relayed: gRPC and
// HTTP/2 reserve pseudo-headers, grpc-* and a few transport headers.
func forwardable(k string) bool {
	switch {
	case strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"), strings.HasPrefix(k, "x-evidence-"):
		return false
	}
	switch k {
	case "content-type", "te", "user-agent", "connection", "host":
		return false
	}
	return true
}

func relayable(md metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, v := range md {
		if forwardable(k) {
			out[k] = v
		}
	}
	return out
}

func callerOf(ctx context.Context) (encounter.Caller, string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return encounter.Caller{}, "", status.Error(codes.Unauthenticated, "no credentials for the evidence ledger")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	enc := ""
	if v := md.Get(strings.ToLower(EncounterHeader)); len(v) > 0 {
		enc = v[0]
	}
	return encounter.Caller{Tenant: id.Tenant, Actor: id.Subject}, enc, nil
}

func admit(rec *Recorder) (*Ticket, error) {
	t, err := rec.Begin()
	if err != nil {
		return nil, status.Error(codes.Unavailable, "the evidence ledger cannot record more calls right now; retry")
	}
	return t, nil
}

func (p *KServeProxy) forward(ctx context.Context, full string, in *emptypb.Empty, record bool) (any, error) {
	var c encounter.Caller
	var enc string
	var ticket *Ticket
	if record {
		var err error
		if c, enc, err = callerOf(ctx); err != nil {
			return nil, err
		}
		if ticket, err = admit(p.rec); err != nil {
			return nil, err
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	octx := metadata.NewOutgoingContext(ctx, outgoing(md))
	var header, trailer metadata.MD
	out := new(emptypb.Empty)
	start := time.Now()
	err := p.conn.Invoke(octx, full, in, out, grpc.Header(&header), grpc.Trailer(&trailer))
	if len(header) > 0 {
		grpc.SetHeader(ctx, relayable(header))
	}
	if len(trailer) > 0 {
		grpc.SetTrailer(ctx, relayable(trailer))
	}
	if record {
		x := &inferExchange{start: start, method: "ModelInfer"}
		x.addRequest(frameBytes(in))
		if err == nil {
			x.addResponse(frameBytes(out))
		}
		x.code = status.Code(err)
		p.finish(ticket, c, enc, x, err, ctx.Err())
	}
	if err != nil {
		return nil, err // the upstream's status, as it sent it
	}
	return out, nil
}

var streamDesc = &grpc.StreamDesc{StreamName: "ModelStreamInfer", ServerStreams: true, ClientStreams: true}

func (p *KServeProxy) streamInfer(_ any, ss grpc.ServerStream) error {
	ctx := ss.Context()
	c, enc, err := callerOf(ctx)
	if err != nil {
		return err
	}
	ticket, err := admit(p.rec)
	if err != nil {
		return err
	}
	x := &inferExchange{start: time.Now(), method: "ModelStreamInfer"}
	md, _ := metadata.FromIncomingContext(ctx)
	uctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, outgoing(md)))
	defer cancel()
	up, err := p.conn.NewStream(uctx, streamDesc, "/"+ServiceName+"/ModelStreamInfer")
	if err != nil {
		x.code = status.Code(err)
		p.finish(ticket, c, enc, x, err, ctx.Err())
		return err
	}
	// Client to upstream. The goroutine ends when the client half-closes
	// or fails, or when the handler returns and the stream ends.
	go func() {
		for {
			m := new(emptypb.Empty)
			if err := ss.RecvMsg(m); err != nil {
				if errors.Is(err, io.EOF) {
					up.CloseSend()
				} else {
					cancel()
				}
				return
			}
			x.addRequest(frameBytes(m))
			if err := up.SendMsg(m); err != nil {
				return // the upstream's error surfaces in RecvMsg below
			}
		}
	}()
	// Upstream to client.
	var upErr error
	headerSent := false
	for {
		m := new(emptypb.Empty)
		if err := up.RecvMsg(m); err != nil {
			if !errors.Is(err, io.EOF) {
				upErr = err
			}
			break
		}
		if !headerSent {
			if h, err := up.Header(); err == nil && len(h) > 0 {
				ss.SetHeader(relayable(h))
			}
			headerSent = true
		}
		x.addResponse(frameBytes(m))
		if err := ss.SendMsg(m); err != nil {
			upErr = err
			cancel()
			break
		}
	}
	if !headerSent {
		if h, err := up.Header(); err == nil && len(h) > 0 {
			ss.SetHeader(relayable(h))
		}
	}
	if t := up.Trailer(); len(t) > 0 {
		ss.SetTrailer(relayable(t))
	}
	x.code = status.Code(upErr)
	p.finish(ticket, c, enc, x, upErr, ctx.Err())
	return upErr
}

// finish hands the call to the recorder, which builds its model_output
// (output) off the response path.
func (p *KServeProxy) finish(t *Ticket, c encounter.Caller, enc string, x *inferExchange, callErr, clientErr error) {
	x.latency = time.Since(x.start)
	t.Finish(Call{Caller: c, Encounter: enc, Build: func() encounter.ModelOutput { return p.output(x, callErr, clientErr) }})
}

// inferExchange is what the proxy saw of a ModelInfer call or a
// ModelStreamInfer stream.
type inferExchange struct {
	start   time.Time
	latency time.Duration
	method  string
	code    codes.Code

	mu struct {
		sync.Mutex
		requests, responses   int
		reqBytes, respBytes   int64
		reqDigest, respDigest hash.Hash
		firstReq, firstResp   [32]byte
		first                 *inferencepb.ModelInferRequest
		promptSHA             string
		version, id           string
		text                  []byte
		textTruncated         bool
		streamErrors          int
		final                 bool
	}
}

// digestFrame adds a frame to a running digest: for one frame, the
// SHA-256 of its bytes; for several, of each frame's 8-byte big-endian
// length and bytes in turn.
func digestFrame(h *hash.Hash, b []byte) {
	if *h == nil {
		*h = sha256.New()
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	(*h).Write(n[:])
	(*h).Write(b)
}

func (x *inferExchange) addRequest(b []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mu.requests++
	x.mu.reqBytes += int64(len(b))
	if x.mu.requests == 1 {
		x.mu.firstReq = sha256.Sum256(b)
		x.mu.first = new(inferencepb.ModelInferRequest)
		if proto.Unmarshal(b, x.mu.first) != nil {
			x.mu.first = nil
		} else if elems, ok, err := kserve.InputBytes(x.mu.first, kserve.DefaultInput); ok && err == nil {
			ps := sha256.New()
			for _, e := range elems {
				ps.Write(e)
			}
			x.mu.promptSHA = hex.EncodeToString(ps.Sum(nil))
		}
	}
	digestFrame(&x.mu.reqDigest, b)
}

func (x *inferExchange) addResponse(b []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mu.responses++
	x.mu.respBytes += int64(len(b))
	if x.mu.responses == 1 {
		x.mu.firstResp = sha256.Sum256(b)
	}
	digestFrame(&x.mu.respDigest, b)
	var resp *inferencepb.ModelInferResponse
	if x.method == "ModelStreamInfer" {
		var sr inferencepb.ModelStreamInferResponse
		if proto.Unmarshal(b, &sr) != nil {
			return
		}
		if sr.GetErrorMessage() != "" {
			x.mu.streamErrors++
		}
		resp = sr.GetInferResponse()
	} else {
		resp = new(inferencepb.ModelInferResponse)
		if proto.Unmarshal(b, resp) != nil {
			return
		}
	}
	if resp == nil {
		return
	}
	if v := resp.GetModelVersion(); v != "" {
		x.mu.version = v
	}
	if v := resp.GetParameters()["triton_final_response"]; v.GetBoolParam() {
		x.mu.final = true
	}
	if elems, ok, err := kserve.OutputBytes(resp, kserve.DefaultOutput); ok && err == nil {
		for _, e := range elems {
			if len(x.mu.text)+len(e) > MaxCaptureBytes {
				x.mu.textTruncated = true
				break
			}
			x.mu.text = append(x.mu.text, e...)
		}
	}
}

// output builds the model_output of an exchange.
func (p *KServeProxy) output(x *inferExchange, callErr, clientErr error) encounter.ModelOutput {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := encounter.ModelOutput{Backend: BackendKServe, LatencyMS: x.latency.Milliseconds(), PromptSHA256: x.mu.promptSHA}
	params := map[string]string{
		"proxy":     "kserve",
		"upstream":  p.upstream,
		"method":    x.method,
		"grpc_code": x.code.String(),
	}
	if x.method == "ModelInfer" {
		if x.mu.requests > 0 {
			params["request_sha256"] = hex.EncodeToString(x.mu.firstReq[:])
		}
		if x.mu.responses > 0 {
			params["response_sha256"] = hex.EncodeToString(x.mu.firstResp[:])
		}
	} else {
		params["requests"] = strconv.Itoa(x.mu.requests)
		params["responses"] = strconv.Itoa(x.mu.responses)
		if x.mu.reqDigest != nil {
			params["request_sha256"] = hex.EncodeToString(x.mu.reqDigest.Sum(nil))
		}
		if x.mu.respDigest != nil {
			params["response_sha256"] = hex.EncodeToString(x.mu.respDigest.Sum(nil))
		}
		if x.mu.streamErrors > 0 {
			params["stream_error_messages"] = strconv.Itoa(x.mu.streamErrors)
		}
		params["final_response"] = strconv.FormatBool(x.mu.final)
	}
	params["request_bytes"] = strconv.FormatInt(x.mu.reqBytes, 10)
	params["response_bytes"] = strconv.FormatInt(x.mu.respBytes, 10)
	if r := x.mu.first; r != nil {
		o.Model.Name = r.GetModelName()
		o.Model.Version = r.GetModelVersion()
		if r.GetId() != "" {
			params["request_id"] = r.GetId()
		}
		params["inputs"] = tensors(r)
		var outs []string
		for _, t := range r.GetOutputs() {
			outs = append(outs, t.GetName())
		}
		if len(outs) > 0 {
			params["outputs"] = strings.Join(outs, ",")
		}
		keys := make([]string, 0, len(r.GetParameters()))
		for k := range r.GetParameters() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i == 16 {
				break
			}
			params["param."+k] = paramString(r.GetParameters()[k])
		}
	} else if x.mu.requests > 0 {
		params["request_parse"] = "not a ModelInferRequest"
	}
	if x.mu.version != "" {
		o.Model.Version = x.mu.version
	}
	switch {
	case callErr != nil && clientErr != nil && x.code == codes.Canceled:
		o.Error = "the client cancelled the call"
	case callErr != nil:
		o.Error = "upstream gRPC " + x.code.String()
	case x.mu.streamErrors > 0 && x.mu.responses == x.mu.streamErrors:
		o.Error = "every stream response carried an error message"
	case !x.mu.textTruncated && len(x.mu.text) > 0:
		text := string(x.mu.text)
		if x.mu.first != nil {
			if in, ok, err := kserve.InputBytes(x.mu.first, kserve.DefaultInput); ok && err == nil && len(in) == 1 {
				text = strings.TrimPrefix(text, string(in[0]))
			}
		}
		if n, err := prompt.Parse(text); err == nil {
			o.Note = n
			params["note"] = "parsed"
		} else {
			params["note"] = "none"
		}
	}
	o.Parameters = params
	return o
}

// tensors describes a request's inputs: name, type and shape, no content.
func tensors(r *inferencepb.ModelInferRequest) string {
	var parts []string
	for _, t := range r.GetInputs() {
		dims := make([]string, len(t.GetShape()))
		for i, d := range t.GetShape() {
			dims[i] = strconv.FormatInt(d, 10)
		}
		parts = append(parts, fmt.Sprintf("%s:%s[%s]", t.GetName(), t.GetDatatype(), strings.Join(dims, ",")))
	}
	return strings.Join(parts, " ")
}

func paramString(v *inferencepb.InferParameter) string {
	switch c := v.GetParameterChoice().(type) {
	case *inferencepb.InferParameter_BoolParam:
		return strconv.FormatBool(c.BoolParam)
	case *inferencepb.InferParameter_Int64Param:
		return strconv.FormatInt(c.Int64Param, 10)
	case *inferencepb.InferParameter_StringParam:
		return c.StringParam
	case *inferencepb.InferParameter_DoubleParam:
		return strconv.FormatFloat(c.DoubleParam, 'g', -1, 64)
	case *inferencepb.InferParameter_Uint64Param:
		return strconv.FormatUint(c.Uint64Param, 10)
	}
	return ""
}
