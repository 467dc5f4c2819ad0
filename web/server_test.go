package web_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/gateway"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/ledger/tlogtiles"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/summary"
	"github.com/evidenceledger/evidence/web"
)

// stack is the server as cmd/evidenced assembles it, in process: the log on
// memory storage, the gRPC services on loopback, the JSON gateway calling
// them, the tlog tiles and the web handler, on one HTTP server.
type stack struct {
	URL  string
	Log  *ledger.Appender
	Svc  *encounter.Service
	API  pb.EncounterServiceClient
	Mux  *http.ServeMux
	HTTP *httptest.Server
	conn *grpc.ClientConn
}

// devAuth is cmd/evidenced's development authenticator: everyone is
// admitted; the tenant and actor come from metadata.
func devAuth(ctx context.Context, _ string) (auth.Identity, error) {
	id := auth.Identity{Tenant: "demo", Subject: "anonymous", Role: auth.RoleAdmin}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-evidence-tenant"); len(v) == 1 && v[0] != "" {
		id.Tenant = v[0]
	}
	if v := md.Get("x-evidence-actor"); len(v) == 1 && v[0] != "" {
		id.Subject = v[0]
	}
	return id, nil
}

// newStack starts a server. front, when set, wraps the server's handler,
// to put test-only routes in front of its own.
func newStack(t testing.TB, front func(http.Handler) http.Handler) *stack {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.localhost/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	sums, err := summary.Open(t.TempDir(), l.Log, summary.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopSummaries := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { sums.Follow(ctx); close(followed) }()
	svc := encounter.New(l.Log, l, blob.New(store, nil), encounter.WithSummaries(sums))
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: svc, Auth: devAuth, Inference: pipeline.New(svc, nil, pipeline.Options{})})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	gateway.New(conn).Register(mux)
	(&tlogtiles.Handler{Log: l.Log}).Register(mux)
	web.New(web.Options{Audio: svc}).Register(mux)
	var h http.Handler = mux
	if front != nil {
		h = front(mux)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		conn.Close()
		gs.Stop()
		stopSummaries()
		<-followed
		sums.Close()
		l.Close()
		store.Close()
	})
	return &stack{URL: hs.URL, Log: l, Svc: svc, API: pb.NewEncounterServiceClient(conn), Mux: mux, HTTP: hs, conn: conn}
}

// as returns a context that calls the API as actor of the demo tenant.
func as(actor string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", "demo", "x-evidence-actor", actor)
}

// loadDemo records the demo visit through the public gRPC API the way
// `evidenced --demo` does (demo.Record). It returns the encounter id.
func loadDemo(t testing.TB, s *stack) string {
	t.Helper()
	id, err := demo.Record(s.conn, as, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// note reads the current note through the API.
func (s *stack) note(t testing.TB, id string) *pb.Note {
	t.Helper()
	r, err := s.API.GetNote(as("test"), &pb.GetNoteRequest{EncounterId: id})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetNote()
}
