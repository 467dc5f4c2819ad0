package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/auth/authtest"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

func runCtl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	out, _, code := runCtl(t, "token", "create", "--data-dir", dir, "--tenant", "st-marys", "--role", "clinician", "--subject", "dr.lee", "--label", "ward 3")
	tok := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tok, auth.TokenPrefix) {
		t.Fatalf("create: exit %d %q", code, out)
	}
	path := filepath.Join(dir, auth.TokensFileName)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file: %v", err)
	}
	s, err := auth.OpenTokenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Authenticate(tok); err != nil || id != (auth.Identity{Tenant: "st-marys", Role: "clinician", Subject: "dr.lee"}) {
		t.Fatalf("%v %v", id, err)
	}
	out, _, code = runCtl(t, "token", "list", "--data-dir", dir, "--json")
	var recs []auth.TokenRecord
	if code != 0 || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 1 || recs[0].Label != "ward 3" || strings.Contains(out, tok[len(auth.TokenPrefix):]) {
		t.Fatalf("list: exit %d %s", code, out)
	}
	if _, _, code := runCtl(t, "token", "revoke", "--data-dir", dir, recs[0].ID); code != 0 {
		t.Fatalf("revoke: exit %d", code)
	}
	if out, _, _ := runCtl(t, "token", "list", "--data-dir", dir); strings.Contains(out, recs[0].ID) {
		t.Fatal("revoked token listed")
	}
	for _, args := range [][]string{
		{"token", "create", "--data-dir", dir, "--tenant", "t", "--role", "root", "--subject", "s"},
		{"token", "create", "--data-dir", dir, "--tenant", "*", "--role", "pipeline", "--subject", "s"},
		{"token", "create", "--data-dir", dir, "--role", "admin", "--subject", "s"},
	} {
		if _, _, code := runCtl(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	os.Chmod(path, 0o644)
	if _, _, code := runCtl(t, "token", "list", "--data-dir", dir); code == 0 {
		t.Fatal("listed a world-readable tokens file")
	}
}

// TestTLSFlags talks to a TLS server that requires a client certificate
// for its identity: --ca verifies the server, --cert and --key present
// the client's; without --ca the server is not trusted.
func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := authtest.NewCA(t, "server CA"), authtest.NewCA(t, "client CA")
	caFile := serverCA.WriteFile(t, dir, "ca")
	certFile, keyFile := clientCA.Client(t, auth.Identity{Tenant: "t", Role: auth.RoleAuditor, Subject: "aud"}).WriteFiles(t, dir, "client")
	srv := serverCA.Server(t)
	key, _ := ledger.LoadOrCreateKey(dir, "evidence.localhost/log")
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	authn := &auth.Authenticators{Certificates: true}
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: encounter.New(l.Log, l, blob.New(store, nil)), Policy: &auth.Policy{},
		Auth: func(ctx context.Context, _ string) (auth.Identity, error) { return certIdentity(ctx, authn) }},
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}, ClientCAs: clientCA.Pool(), ClientAuth: tls.VerifyClientCertIfGiven})))
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go gs.Serve(lis)
	defer gs.Stop()
	base := []string{"--server", lis.Addr().String(), "--state", filepath.Join(dir, "state.json")}
	if out, errs, code := runCtl(t, append(base, "--ca", caFile, "--cert", certFile, "--key", keyFile, "log", "info")...); code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("mTLS: exit %d %s %s", code, out, errs)
	}
	if _, errs, code := runCtl(t, append(base, "--ca", caFile, "log", "info")...); code == 0 || !strings.Contains(errs, "Unauthenticated") {
		t.Fatalf("no client certificate: exit %d %s", code, errs)
	}
	if _, _, code := runCtl(t, append(base, "--tls", "log", "info")...); code == 0 {
		t.Fatal("a server signed by an unknown CA was trusted")
	}
	if _, _, code := runCtl(t, append(base, "log", "info")...); code == 0 {
		t.Fatal("plaintext to a TLS server succeeded")
	}
	if _, _, code := runCtl(t, append(base, "--ca", caFile, "--cert", certFile, "log", "info")...); code != exitUsage {
		t.Fatalf("--cert without --key: exit %d", code)
	}
}

// certIdentity is the identity of the verified client certificate of the
// call in ctx.
func certIdentity(ctx context.Context, a auth.Authenticator) (auth.Identity, error) {
	var c auth.Credentials
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			c.Certificate = ti.State.VerifiedChains[0][0]
		}
	}
	return a.Authenticate(ctx, c)
}
