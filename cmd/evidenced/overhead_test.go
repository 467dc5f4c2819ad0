package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/client"
	"github.com/evidenceledger/evidence/grpcapi/gateway"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// BenchmarkSecurityOverhead times one small call (GetLogInfo) with the
// server's security (token authentication, the declaration check, the
// rate limiter's bookkeeping with no effective limit, the deadline) and
// without it (an authenticator that accepts everyone, no policy), over
// gRPC on loopback and over HTTP through the JSON gateway.
//
//	go test ./cmd/evidenced -run '^$' -bench SecurityOverhead -benchtime 3s
func BenchmarkSecurityOverhead(b *testing.B) {
	secured := &tlsServer{}
	cfg := defaultSecurity()
	cfg.RateLimit = 1e9 // limiter bookkeeping, never a refusal
	startSecured(b, b.TempDir(), cfg, secured)
	plainGRPC, plainHTTP := startPlain(b)

	b.Run("grpc/secured", func(b *testing.B) {
		c := secured.grpcClient(b, nil, secured.clinician)
		benchGRPC(b, c)
	})
	b.Run("grpc/open", func(b *testing.B) {
		c, err := client.Dial(plainGRPC, client.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		benchGRPC(b, c)
	})
	b.Run("http/secured", func(b *testing.B) { benchHTTP(b, "http://"+secured.httpAddr+"/api/v1/log", secured.clinician) })
	b.Run("http/open", func(b *testing.B) { benchHTTP(b, plainHTTP+"/api/v1/log", "") })
}

func benchGRPC(b *testing.B, c *client.Client) {
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchHTTP(b *testing.B, url, token string) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for b.Loop() {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// startPlain serves the same log without security: gRPC with an
// authenticator that admits everyone and no policy, HTTP with the bare
// gateway over loopback TCP, as the server was before authentication.
func startPlain(b *testing.B) (string, string) {
	dir := b.TempDir()
	key, _ := ledger.LoadOrCreateKey(dir, "evidence.localhost/log")
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		b.Fatal(err)
	}
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: encounter.New(l.Log, l, blob.New(store, nil)), Auth: devAuthenticator})
	glis, _ := net.Listen("tcp", "127.0.0.1:0")
	go gs.Serve(glis)
	conn, err := grpc.NewClient(glis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	gateway.New(conn).Register(mux)
	hlis, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := &http.Server{Handler: mux}
	go hs.Serve(hlis)
	b.Cleanup(func() { hs.Close(); conn.Close(); gs.Stop(); l.Close(); store.Close() })
	return glis.Addr().String(), "http://" + hlis.Addr().String()
}
