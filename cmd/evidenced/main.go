// Command evidenced is the Evidence Ledger server: the verifiable log with
// embedded storage (pebble or badger), the evidence.v1 gRPC API with
// reflection and health, and an HTTP server for the C2SP tlog-tiles read
// API, /healthz and Prometheus /metrics.
//
// Logs are JSON lines on stderr. They carry methods, codes, ids and sizes,
// never PHI. SIGINT or SIGTERM shuts down gracefully: the servers stop
// accepting, appends in flight are made durable, then storage is closed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/gateway"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
	"github.com/evidenceledger/evidence/ledger/tlogtiles"
)

func main() {
	cfg, err := loadConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "evidenced:", err)
		os.Exit(2)
	}
	logger := newLogger(cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("evidenced stopped", "error", err.Error())
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func openStore(cfg config, logger *slog.Logger) (storage.Store, error) {
	dir := filepath.Join(cfg.DataDir, cfg.Storage)
	quiet := logger.With("component", cfg.Storage)
	if cfg.Storage == "badger" {
		return badgerstore.Open(dir, badgerstore.Options{Logger: quiet})
	}
	return pebblestore.Open(dir, pebblestore.Options{Logger: quiet})
}

// run serves until ctx is done, then shuts down in order.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	key, err := ledger.LoadOrCreateKey(cfg.DataDir, cfg.Origin)
	if err != nil {
		return err
	}
	store, err := openStore(cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	log, err := ledger.Open(store, ledger.Options{Origin: cfg.Origin, Key: key})
	if err != nil {
		return err
	}
	defer log.Close()
	logger.Info("log opened", "origin", cfg.Origin, "storage", cfg.Storage, "tree_size", log.Size(),
		"open_ms", time.Since(start).Milliseconds(), "verifier_key", log.VerifierKey())

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newLogCollector(log))
	svc := encounter.New(log, blob.New(store, nil))
	idx, stopIndex, err := startIndex(ctx, cfg.DataDir, log, logger)
	if err != nil {
		return err
	}
	defer stopIndex()
	inf, err := setupInference(cfg.Inference, cfg.DataDir, log, svc, reg, logger)
	if err != nil {
		return err
	}
	grpcServer, health := grpcapi.NewServer(grpcapi.Config{Log: log, Encounters: svc, Auth: devAuthenticator, Logger: logger, Registry: reg,
		Search: idx, Inference: inf.Pipeline, KServeProxy: inf.KServeProxy})

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return err
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return err
	}
	// The JSON gateway calls the gRPC server over loopback, so that
	// authentication and validation stay in one place.
	self, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer self.Close()
	mux := http.NewServeMux()
	gateway.New(self).Register(mux)
	(&tlogtiles.Handler{Log: log}).Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if inf.ChatProxy != nil {
		mux.Handle("POST /v1/chat/completions", inf.ChatProxy)
	}
	mountWeb(mux, svc, logger)
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- grpcServer.Serve(grpcLis) }()
	go func() { errc <- httpServer.Serve(httpLis) }()
	logger.Info("serving", "grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String())

	if cfg.Demo {
		go func() {
			id, err := loadDemo(ctx, cfg.DataDir, grpcLis.Addr().String(), logger)
			if err != nil {
				logger.Error("demo not loaded", "error", err.Error())
				return
			}
			url := "http://" + httpLis.Addr().String() + "/encounters/" + id
			logger.Info("demo ready", "encounter_id", id, "url", url)
			fmt.Fprintf(os.Stderr, "\nDemo encounter %s is ready. Open %s\n\n", id, url)
		}()
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		logger.Error("server failed", "error", err.Error())
	}
	logger.Info("shutting down")
	health.Shutdown()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		grpcServer.Stop()
	}
	httpServer.Shutdown(shutdownCtx)
	if err := inf.Close(shutdownCtx); err != nil {
		logger.Error("proxied calls left in the spool for the next start", "error", err.Error())
	}
	stopIndex()
	// Close drains appends already accepted before storage closes.
	log.Close()
	logger.Info("stopped", "tree_size", log.Size())
	return nil
}

// devAuthenticator accepts every caller, taking the tenant and subject from
// the x-evidence-tenant and x-evidence-actor metadata (defaults "demo" and
// "anonymous"). It is for development until token authentication is
// configured.
func devAuthenticator(ctx context.Context, _ string) (auth.Identity, error) {
	id := auth.Identity{Tenant: "demo", Subject: "anonymous", Role: auth.RoleAdmin}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-evidence-tenant"); len(v) == 1 && v[0] != "" {
		id.Tenant = v[0]
	}
	if v := md.Get("x-evidence-actor"); len(v) == 1 && v[0] != "" {
		id.Subject = v[0]
	}
	if ledger.CheckID("tenant", id.Tenant, ledger.MaxTenantLen) != nil || ledger.CheckID("actor", id.Subject, ledger.MaxActorLen) != nil {
		return id, auth.ErrUnauthenticated
	}
	return id, nil
}
