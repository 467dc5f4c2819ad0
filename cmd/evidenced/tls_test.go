package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/auth/authtest"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// tlsServer is the server's TLS wiring with a CA for servers and another
// for clients: gRPC and HTTP on loopback, both TLS, client certificates
// verified against the client CA.
type tlsServer struct {
	grpcAddr, httpAddr string
	serverCA, clientCA *authtest.CA
	clinician          string // a bearer token
	logs               *lockedBuffer
}

// lockedBuffer collects log lines written by the servers' goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	ts := &tlsServer{serverCA: authtest.NewCA(t, "server CA"), clientCA: authtest.NewCA(t, "client CA")}
	certFile, keyFile := ts.serverCA.Server(t).WriteFiles(t, dir, "server")
	cfg := defaultSecurity()
	cfg.TLSCert, cfg.TLSKey, cfg.ClientCA = certFile, keyFile, ts.clientCA.WriteFile(t, dir, "clients")
	startSecured(t, dir, cfg, ts)
	return ts
}

// startSecured serves a log on a memory store with the security of cfg:
// gRPC and HTTP on loopback, TLS when cfg has it. It makes a clinician
// token of clinic-a and sets the addresses in ts.
func startSecured(t testing.TB, dir string, cfg securityConfig, ts *tlsServer) {
	t.Helper()
	ts.logs = new(lockedBuffer)
	var err error
	ts.clinician, _, err = auth.CreateToken(filepath.Join(dir, auth.TokensFileName), auth.Identity{Tenant: "clinic-a", Role: auth.RoleClinician, Subject: "dr.a"}, auth.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(ts.logs, nil))
	sec, err := setupSecurity(dir, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ledger.LoadOrCreateKey(dir, "evidence.localhost/log")
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	svc := encounter.New(l.Log, l, blob.New(store, nil))
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: svc, Auth: sec.authenticate, Policy: sec.policy}, sec.grpcOptions()...)
	glis, _ := net.Listen("tcp", "127.0.0.1:0")
	hlis, _ := net.Listen("tcp", "127.0.0.1:0")
	ts.grpcAddr, ts.httpAddr = glis.Addr().String(), hlis.Addr().String()
	go gs.Serve(glis)
	go gs.Serve(sec.inproc)
	self, err := sec.dialSelf()
	if err != nil {
		t.Fatal(err)
	}
	h, err := sec.httpHandler(httpServices{log: l.Log, encounter: svc, registry: prometheus.NewRegistry(), self: self})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ErrorLog: slogErrorLog(logger)}
	if sec.tls != nil {
		go hs.Serve(tls.NewListener(hlis, sec.tls.Clone()))
	} else {
		go hs.Serve(hlis)
	}
	t.Cleanup(func() { hs.Close(); self.Close(); gs.Stop(); l.Close(); store.Close() })
}

// clientTLS is a client configuration trusting the server CA, with an
// optional client certificate.
func (ts *tlsServer) clientTLS(cert *authtest.Issued) *tls.Config {
	c := &tls.Config{RootCAs: ts.serverCA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS}
	}
	return c
}

func (ts *tlsServer) grpcClient(t testing.TB, c *tls.Config, token string) *client.Client {
	cl, err := client.Dial(ts.grpcAddr, client.Options{TLS: c, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// forceCert makes a client send cert whatever CAs the server names.
func forceCert(c *tls.Config, cert *authtest.Issued) *tls.Config {
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	return c
}

func TestTLSAndMTLS(t *testing.T) {
	ts := startTLSServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pipeline := ts.clientCA.Client(t, auth.Identity{Tenant: "clinic-a", Role: auth.RolePipeline, Subject: "svc:asr"})

	t.Run("gRPC bearer over TLS", func(t *testing.T) {
		c := ts.grpcClient(t, ts.clientTLS(nil), ts.clinician)
		if _, err := c.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("gRPC mTLS identity", func(t *testing.T) {
		c := ts.grpcClient(t, ts.clientTLS(pipeline), "")
		created, err := c.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "visit"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Encounters.GetNote(ctx, &pb.GetNoteRequest{EncounterId: created.GetEncounter().GetEncounterId()}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("the certificate's pipeline role read a note: %v", err)
		}
		// A bearer token beside the certificate decides.
		c2 := ts.grpcClient(t, ts.clientTLS(pipeline), ts.clinician)
		if _, err := c2.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{}); err != nil {
			t.Fatalf("token beside a certificate: %v", err)
		}
	})
	rogue := authtest.NewCA(t, "rogue").Client(t, auth.Identity{Tenant: "clinic-a", Role: auth.RoleAdmin, Subject: "x"})
	t.Run("gRPC failures", func(t *testing.T) {
		cases := map[string]struct {
			tls  *tls.Config
			code codes.Code
		}{
			"plaintext client":  {nil, codes.Unavailable},
			"unknown server CA": {&tls.Config{RootCAs: authtest.NewCA(t, "other").Pool()}, codes.Unavailable},
			// A client withholds a certificate the server's CA list does
			// not name; one that sends it anyway fails the handshake.
			"client CA unknown":       {ts.clientTLS(rogue), codes.Unauthenticated},
			"client CA unknown, sent": {forceCert(ts.clientTLS(nil), rogue), codes.Unavailable},
			"expired client":          {ts.clientTLS(ts.clientCA.Issue(t, "old", authtest.CertOptions{Client: true, URIs: pipeline.Cert.URIs, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})), codes.Unavailable},
			"no identity in cert":     {ts.clientTLS(ts.clientCA.Issue(t, "anon", authtest.CertOptions{Client: true})), codes.Unauthenticated},
			"no credentials":          {ts.clientTLS(nil), codes.Unauthenticated},
		}
		for name, c := range cases {
			cl := ts.grpcClient(t, c.tls, "")
			_, err := cl.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{})
			if status.Code(err) != c.code {
				t.Errorf("%s: %v, want %v", name, err, c.code)
			}
		}
	})
	t.Run("HTTPS", func(t *testing.T) {
		get := func(c *tls.Config, path, token string) (*http.Response, string) {
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c}, Timeout: 10 * time.Second}
			req, _ := http.NewRequest("GET", "https://"+ts.httpAddr+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return nil, err.Error()
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp, string(b)
		}
		resp, body := get(ts.clientTLS(nil), "/api/v1/encounters", ts.clinician)
		if resp == nil || resp.StatusCode != 200 {
			t.Fatalf("bearer over HTTPS: %v %s", resp, body)
		}
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Error("no HSTS header")
		}
		// The certificate's identity reaches the gRPC service through the
		// gateway: a pipeline may read the log, not the encounter list.
		if resp, body := get(ts.clientTLS(pipeline), "/api/v1/log", ""); resp == nil || resp.StatusCode != 200 {
			t.Fatalf("mTLS over HTTPS: %v %s", resp, body)
		}
		if resp, _ := get(ts.clientTLS(pipeline), "/api/v1/encounters", ""); resp == nil || resp.StatusCode != 403 {
			t.Fatalf("mTLS pipeline listed encounters: %v", resp)
		}
		if resp, _ := get(ts.clientTLS(nil), "/api/v1/encounters", ""); resp == nil || resp.StatusCode != 401 {
			t.Fatalf("no credentials: %v", resp)
		}
		if resp, _ := get(&tls.Config{RootCAs: authtest.NewCA(t, "other").Pool()}, "/healthz", ""); resp != nil {
			t.Fatal("a client that does not trust the server's CA got an answer")
		}
		if resp, _ := get(forceCert(ts.clientTLS(nil), rogue), "/healthz", ""); resp != nil {
			t.Fatal("a certificate of an unknown CA was accepted")
		}
		// Plaintext to the TLS port is refused.
		pr, err := http.Get("http://" + ts.httpAddr + "/healthz")
		if err == nil {
			if pr.StatusCode == 200 {
				t.Fatal("plaintext HTTP served on the TLS port")
			}
			pr.Body.Close()
		}
	})
	for _, s := range []string{ts.clinician, "PRIVATE KEY"} {
		if strings.Contains(ts.logs.String(), s) {
			t.Fatalf("the log holds %q", s)
		}
	}
}

func TestPlaintextOnlyOnLoopback(t *testing.T) {
	var logs bytes.Buffer
	sec := &security{logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	loop, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close()
	if err := checkPlaintext(sec, false, "HTTP", loop); err != nil {
		t.Fatalf("loopback: %v", err)
	}
	any, err := net.Listen("tcp", "0.0.0.0:0") // accepts nothing in this test
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	if err := checkPlaintext(sec, false, "HTTP", any); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("plaintext on every address: %v", err)
	}
	if err := checkPlaintext(sec, true, "HTTP", any); err != nil || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Fatalf("--insecure: %v, logs %s", err, logs.String())
	}
	sec.tls = &tls.Config{}
	if err := checkPlaintext(sec, false, "HTTP", any); err != nil {
		t.Fatalf("TLS on every address: %v", err)
	}
}

func TestSecretsFilesAreChecked(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, "ca")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	os.Chmod(keyFile, 0o644)
	cfg := defaultSecurity()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	if _, err := setupSecurity(dir, cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("a world-readable TLS key: %v", err)
	}
	os.Chmod(keyFile, 0o600)
	if _, err := setupSecurity(dir, cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, auth.TokensFileName)
	auth.CreateToken(tokens, auth.Identity{Tenant: "t", Role: auth.RoleAdmin, Subject: "s"}, auth.TokenOptions{})
	os.Chmod(tokens, 0o640)
	if _, err := setupSecurity(dir, defaultSecurity(), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a group-readable tokens file was accepted")
	}
	// Demo tokens are written 0600, and a loosened file is refused.
	os.Chmod(tokens, 0o600)
	store, err := auth.OpenTokenStore(tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ensureDemoTokens(dir, store, tokens)
	if err != nil || len(m) != 4 {
		t.Fatalf("%v %v", m, err)
	}
	demoFile := filepath.Join(dir, demoTokensFile)
	if fi, _ := os.Stat(demoFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo-tokens.json mode %v", fi.Mode())
	}
	again, err := ensureDemoTokens(dir, store, tokens)
	if err != nil || again["clinician"] != m["clinician"] {
		t.Fatal("the demo tokens were not reused")
	}
	os.Chmod(demoFile, 0o644)
	if _, err := ensureDemoTokens(dir, store, tokens); err == nil {
		t.Fatal("a world-readable demo-tokens.json was accepted")
	}
}
