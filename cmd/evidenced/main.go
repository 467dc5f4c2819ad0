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
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	stdlog "log"
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

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
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

// run serves until ctx is done, then shuts down in order. In cluster mode
// (--node-id) the log is a raft cluster member's: appends and every other
// write to the ledger's store go through the replicated log.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	clustered := cfg.Cluster.enabled()
	if clustered {
		if err := checkClusterSecrets(cfg.DataDir, cfg.Cluster); err != nil {
			return err
		}
	}
	key, err := ledger.LoadOrCreateKey(cfg.DataDir, cfg.Origin)
	if err != nil {
		return err
	}
	sec, err := setupSecurity(cfg.DataDir, cfg.Security, logger)
	if err != nil {
		return err
	}
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return err
	}
	defer grpcLis.Close()
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer httpLis.Close()
	for name, lis := range map[string]net.Listener{"gRPC": grpcLis, "HTTP": httpLis} {
		if err := checkPlaintext(sec, cfg.Security.Insecure, name, lis); err != nil {
			return err
		}
	}
	if cfg.PprofAddr != "" {
		_, stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	store, err := openStore(cfg, logger)
	if err != nil {
		return fmt.Errorf("the %s store does not open: %w. If it is damaged, restore the data directory from the newest backup or a cluster member (docs/operations.md, \"Recovering from a rolled-back or truncated store\")", cfg.Storage, err)
	}
	defer store.Close()
	// The sealer reads wrapped data keys from the local store; Keys makes
	// and destroys them through writes.
	sealer, err := openSealer(cfg, store, logger)
	if err != nil {
		return err
	}
	opts := ledger.Options{Origin: cfg.Origin, Key: key, Sealer: sealer,
		HighWater: ledger.HighWaterFile(filepath.Join(cfg.DataDir, ledger.HighWaterFileName))}
	// log is what the server reads; app appends to it: the ledger's own
	// Appender on a single node, the raft node in a cluster. writes is the
	// ledger's store for everything that writes it beside the log (blobs,
	// wrapped data keys); in a cluster its writes go through raft too, so
	// that every node holds them.
	var (
		log      *ledger.Log
		app      encounter.Appender
		writes   storage.Store = store
		mem      *raftMember
		closeLog func() error
	)
	start := time.Now()
	if clustered {
		rep, err := ledger.OpenReplica(store, opts)
		if err != nil {
			return openError(err)
		}
		if mem, err = startMember(ctx, cfg, sec, store, rep, sealer, grpcLis.Addr().String(), logger); err != nil {
			rep.Close()
			return err
		}
		defer mem.raftKV.Close()
		log, app, writes = rep.Log, mem.node, mem.store
		closeLog = func() error { mem.close(); return rep.Close() } // raft stops applying before the log closes
	} else {
		a, err := ledger.Open(store, opts)
		if err != nil {
			return openError(err)
		}
		log, app, closeLog = a.Log, a, a.Close
	}
	defer closeLog()
	logger.Info("log opened", "origin", cfg.Origin, "storage", cfg.Storage, "tree_size", log.Size(),
		"open_ms", time.Since(start).Milliseconds(), "verifier_key", log.VerifierKey())

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newLogCollector(log))
	keys := envelope.NewKeys(sealer, writes)
	blobs := blob.New(writes, sealer)
	// The encounter summaries are a view of the log that the visit list
	// reads; every node, cluster member or not, keeps its own.
	sums, stopSummaries, err := startSummaries(ctx, cfg.DataDir, log, logger)
	if err != nil {
		return err
	}
	defer stopSummaries()
	svc := encounter.New(log, app, blobs, encounter.WithAccessTrail(), encounter.WithKeys(keys), encounter.WithSummaries(sums),
		encounter.WithStateCacheBytes(int64(cfg.StateCacheMB)<<20))
	reg.MustRegister(newReadCollector(svc, sums))
	// The search index is a view of the log, optional for nodes that only
	// ingest; without it SearchService is not served.
	var idx *index.Index
	var eraser compliance.IndexEraser
	stopIndex := func() {}
	if cfg.Search {
		idx, stopIndex, err = startIndex(ctx, cfg.DataDir, log, logger)
		if err != nil {
			return err
		}
		eraser = idx
	}
	defer stopIndex()
	inf, err := setupInference(cfg.Inference, cfg.DataDir, log, svc, sealer, reg, logger)
	if err != nil {
		return err
	}
	comp, err := newCompliance(log, svc, blobs, keys, eraser)
	if err != nil {
		return err
	}
	gcfg := grpcapi.Config{Log: log, Encounters: svc, Auth: sec.authenticate, Policy: sec.policy, Logger: logger, Registry: reg,
		Search: idx, Inference: inf.Pipeline, KServeProxy: inf.KServeProxy, Compliance: comp}
	witnessCtx, stopWitnessing := context.WithCancel(ctx)
	defer stopWitnessing()
	sub, err := startWitnessing(witnessCtx, cfg.Witness, cfg.DataDir, log, logger)
	if err != nil {
		return err
	}
	if sub != nil {
		gcfg.Witnessed = sub.Witnessed
	}
	if mem != nil {
		gcfg.Cluster = mem.node
		reg.MustRegister(mem.node.Collectors()...)
	}
	grpcServer, health := grpcapi.NewServer(gcfg, sec.grpcOptions()...)

	// In a cluster the demo is loaded once, by the bootstrap node; the
	// others receive it through the log.
	demo := cfg.Demo && (!clustered || cfg.Cluster.Bootstrap)
	if demo {
		if err := sec.enableDemo(cfg.DataDir, httpLis); err != nil {
			return err
		}
	}
	// The JSON gateway and the demo loader call the gRPC server over an
	// in-process connection, so that authorization and validation stay in
	// one place; the gateway passes on the identity the HTTP guard
	// established.
	self, err := sec.dialSelf()
	if err != nil {
		return err
	}
	defer self.Close()
	handler, err := sec.httpHandler(httpServices{log: log, encounter: svc, registry: reg, chatProxy: inf.ChatProxy, self: self})
	if err != nil {
		return err
	}
	// Headers within 10 s and a whole request within 2 min, so slow
	// clients cannot hold connections; responses (audio, proxied streams)
	// are bounded by each route's deadline instead.
	httpServer := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slogErrorLog(logger)}
	scheme := "http"
	if sec.tls != nil {
		scheme = "https"
		httpLis = tls.NewListener(httpLis, sec.tls.Clone())
	}

	errc := make(chan error, 3)
	go func() { errc <- grpcServer.Serve(grpcLis) }()
	go func() { errc <- grpcServer.Serve(sec.inproc) }()
	go func() { errc <- httpServer.Serve(httpLis) }()
	serving := []any{"grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String(), "tls", sec.tls != nil}
	if mem != nil {
		serving = append(serving, "node_id", cfg.Cluster.NodeID, "raft_addr", string(mem.tcp.Transport().LocalAddr()))
	}
	logger.Info("serving", serving...)

	if demo {
		go func() {
			id, err := loadDemoOn(ctx, cfg.DataDir, self, logger)
			if err != nil {
				logger.Error("demo not loaded", "error", err.Error())
				return
			}
			url := scheme + "://" + httpLis.Addr().String() + "/encounters/" + id
			logger.Info("demo ready", "encounter_id", id, "url", url)
			fmt.Fprintf(os.Stderr, "\nDemo encounter %s is ready. Open %s\n(the page signs in as the demo clinician; tokens are in %s)\n\n", id, url,
				filepath.Join(cfg.DataDir, demoTokensFile))
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
	stopSummaries()
	// Close drains appends already accepted before storage closes; in a
	// cluster raft stops applying first.
	closeLog()
	logger.Info("stopped", "tree_size", log.Size())
	return nil
}

// openError says what an operator can do about a log that does not open
// because its store is behind its high-water checkpoint.
func openError(err error) error {
	var rb *ledger.RollbackError
	switch {
	case errors.As(err, &rb) && rb.Forked:
		return fmt.Errorf("%w. The server refuses to serve it. Restore the data directory from the newest backup or a cluster member that holds the high-water checkpoint's tree (docs/operations.md, \"Recovering from a rolled-back or truncated store\")", err)
	case errors.As(err, &rb):
		return fmt.Errorf("%w. The server refuses to serve a shorter log (store %d entries, high-water checkpoint %d). Restore the data directory from the newest backup or a cluster member, or, to give up the missing entries, run evidencectl recover accept-store (docs/operations.md, \"Recovering from a rolled-back or truncated store\")", err, rb.StoreSize, rb.AnchorSize)
	case errors.Is(err, ledger.ErrNoHighWater):
		return fmt.Errorf("%w. If this store is known to be complete, run evidencectl recover accept-store (docs/operations.md)", err)
	}
	return err
}

// openSealer opens the keyring and the sealer that encrypts payloads and
// audio at rest, reading wrapped data keys from store; in a cluster, with
// the cluster's keyring (see openClusterKeyring).
func openSealer(cfg config, store storage.Store, logger *slog.Logger) (*envelope.Sealer, error) {
	if !cfg.Cluster.enabled() {
		return setupEncryption(cfg.DataDir, "", store, logger)
	}
	kr, err := openClusterKeyring(cfg.DataDir, cfg.Cluster, cfg.Demo)
	if err != nil {
		return nil, err
	}
	logger.Info("encryption at rest", "keyring", envelope.DefaultKeyringPath(cfg.DataDir), "tenant_keys", len(kr.Keys()), "physical_key_erasure", true, "cluster", true)
	return envelope.New(store, kr, envelope.Options{}), nil
}

// slogErrorLog sends net/http's own error lines (TLS handshake failures,
// for example) to the structured log at warning level.
func slogErrorLog(logger *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn)
}
