// Package grpcapi is the gRPC boundary of Evidence Ledger: the evidence.v1
// protobuf API (proto/, with generated code in gen/), and service
// implementations that only validate requests, translate between protobuf
// and the domain packages, and map errors to status codes (errors.go). No
// business logic lives here, and no generated type leaves this package
// tree.
package grpcapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
)

// Authenticator establishes who makes a request, from its context (its
// metadata and peer). It returns an error wrapping auth.ErrUnauthenticated
// for missing or bad credentials.
type Authenticator func(ctx context.Context, method string) (auth.Identity, error)

// Config holds what the server serves.
type Config struct {
	Log        *ledger.Log
	Encounters *encounter.Service
	Auth       Authenticator
	Logger     *slog.Logger
	// Registry receives the RPC metrics; nil means none.
	Registry prometheus.Registerer
	// Search serves SearchService when set.
	Search *index.Index
	// Inference serves InferenceService when set (*pipeline.Pipeline), and
	// KServeProxy, when set, serves inference.GRPCInferenceService as the
	// recording proxy (*proxy.KServeProxy).
	Inference   NoteGenerator
	KServeProxy Registrar
	// Compliance serves ComplianceService when set. Searches are recorded
	// in the access trail when Encounters has it on.
	Compliance *compliance.Service
	// Policy, when set, makes the interceptors enforce the declaration of
	// every method (auth.MethodRule): an undeclared method is refused, a
	// public one needs no credentials, any other is authenticated with
	// Auth (none: refused), authorized by its rule (PermissionDenied),
	// limited per caller (ResourceExhausted; calls over the in-process
	// connection were limited by the HTTP middleware) and bounded by the
	// rule's deadline. Failed authentications are limited per client
	// address. Nil authenticates non-public calls with Auth, if set, and
	// authorizes nothing: for package tests only; evidenced always sets
	// it.
	Policy *auth.Policy
	// Witnessed, when set, returns the latest checkpoint cosigned by the
	// log's witnesses (*witness.Submitter), served by GetCheckpoint with
	// witnessed set.
	Witnessed func() []byte
	// Cluster, when set, is the raft member this server runs on, and
	// ClusterService reports on its cluster; without it ClusterService
	// answers FailedPrecondition.
	Cluster Cluster
}

// MaxMessageBytes caps a request message.
const MaxMessageBytes = 4 << 20

// NewServer returns a gRPC server with every evidence.v1 service, server
// reflection and grpc.health.v1.Health registered. The health status is
// SERVING for the whole server and each service.
func NewServer(cfg Config, opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := newRPCMetrics(cfg.Registry)
	opts = append(opts,
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.ChainUnaryInterceptor(recoverUnary(cfg.Logger), observeUnary(cfg.Logger, m), guardUnary(cfg.Auth, cfg.Policy), consistencyUnary(cfg.Log), accessUnary(cfg.Encounters)),
		grpc.ChainStreamInterceptor(recoverStream(cfg.Logger), observeStream(cfg.Logger, m), guardStream(cfg.Auth, cfg.Policy), consistencyStream(cfg.Log), accessStream()),
	)
	s := grpc.NewServer(opts...)
	pb.RegisterLedgerServiceServer(s, &ledgerServer{log: cfg.Log, witnessed: cfg.Witnessed})
	pb.RegisterEncounterServiceServer(s, &encounterServer{svc: cfg.Encounters, log: cfg.Log})
	pb.RegisterAlignServiceServer(s, &alignServer{svc: cfg.Encounters})
	if cfg.Search != nil {
		pb.RegisterSearchServiceServer(s, &searchServer{idx: cfg.Search})
	}
	if cfg.Inference != nil {
		pb.RegisterInferenceServiceServer(s, &inferenceServer{gen: cfg.Inference})
	}
	if cfg.KServeProxy != nil {
		cfg.KServeProxy.Register(s)
	}
	if cfg.Compliance != nil {
		pb.RegisterComplianceServiceServer(s, &complianceServer{svc: cfg.Compliance})
	}
	pb.RegisterClusterServiceServer(s, &clusterServer{c: cfg.Cluster})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	for name := range s.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	reflection.Register(s)
	return s, hs
}

// public methods need no credentials: health checks and reflection.
func public(method string) bool {
	if r, ok := auth.MethodRule(method); ok {
		return r.Scope == auth.ScopePublic
	}
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

// guard authenticates and authorizes a call as Config.Policy says, and
// returns its context, with the caller's identity and the method's
// deadline, and the context's cancel function.
func guard(ctx context.Context, a Authenticator, p *auth.Policy, method string) (context.Context, context.CancelFunc, error) {
	if p == nil {
		if public(method) || a == nil {
			return ctx, func() {}, nil
		}
		id, err := a(ctx, method)
		if err != nil {
			return nil, nil, status.Error(codes.Unauthenticated, "missing or invalid credentials")
		}
		return auth.NewContext(ctx, id), func() {}, nil
	}
	rule, ok := auth.MethodRule(method)
	if !ok {
		return nil, nil, statusOf(fmt.Errorf("%w: %s has no declaration", auth.ErrForbidden, method))
	}
	ctx, cancel := context.WithTimeout(ctx, rule.Deadline())
	if rule.Scope == auth.ScopePublic {
		return ctx, cancel, nil
	}
	fail := func(err error) (context.Context, context.CancelFunc, error) {
		cancel()
		return nil, nil, statusOf(err)
	}
	pr, _ := peer.FromContext(ctx)
	inProcess := pr != nil && auth.FromInProcess(pr.Addr)
	var id auth.Identity
	err := auth.ErrUnauthenticated
	if a != nil {
		id, err = a(ctx, method)
	}
	if err != nil {
		if !inProcess && pr != nil && !p.AllowFailure(peerHost(pr.Addr)) {
			return fail(fmt.Errorf("%w: too many failed authentications; slow down", auth.ErrRateLimited))
		}
		return fail(fmt.Errorf("%w: missing or invalid credentials", auth.ErrUnauthenticated))
	}
	if err := rule.Authorize(id); err != nil {
		return fail(err)
	}
	if !inProcess && !p.AllowCaller(id) {
		return fail(fmt.Errorf("%w: retry later", auth.ErrRateLimited))
	}
	return auth.NewContext(ctx, id), cancel, nil
}

func peerHost(a net.Addr) string {
	if a == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func guardUnary(a Authenticator, p *auth.Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, cancel, err := guard(ctx, a, p, info.FullMethod)
		if err != nil {
			return nil, err
		}
		defer cancel()
		return handler(ctx, req)
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func guardStream(a Authenticator, p *auth.Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, cancel, err := guard(ss.Context(), a, p, info.FullMethod)
		if err != nil {
			return err
		}
		defer cancel()
		return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
}

// rpcMetrics counts RPCs by method and code and times them.
type rpcMetrics struct {
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newRPCMetrics(r prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "evidence_grpc_requests_total", Help: "gRPC requests by method and status code."}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "evidence_grpc_request_seconds", Help: "gRPC request latency by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)}, []string{"method"}),
	}
	if r != nil {
		r.MustRegister(m.calls, m.latency)
	}
	return m
}

func (m *rpcMetrics) observe(log *slog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	d := time.Since(start)
	m.calls.WithLabelValues(method, code.String()).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
	// Log the method and code only: messages may name ids, never content,
	// but request fields are PHI and are never logged.
	level := slog.LevelDebug
	if code == codes.Internal || code == codes.DataLoss || code == codes.Unavailable {
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "rpc", "method", method, "code", code.String(), "duration_ms", float64(d.Microseconds())/1000)
}

func observeUnary(log *slog.Logger, m *rpcMetrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observe(log, info.FullMethod, start, err)
		return resp, err
	}
}

func observeStream(log *slog.Logger, m *rpcMetrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.observe(log, info.FullMethod, start, err)
		return err
	}
}

func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in handler", "method", info.FullMethod, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in handler", "method", info.FullMethod, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}
