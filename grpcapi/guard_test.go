package grpcapi

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
)

// TestGuard checks the interceptors' decisions one by one: every call
// gets its method's deadline, undeclared methods are refused, a policy
// without an authenticator refuses, roles are enforced, and the per-caller
// limit applies to network peers, not to in-process ones (the HTTP guard
// limited those already).
func TestGuard(t *testing.T) {
	clin := auth.Identity{Tenant: "t", Subject: "s", Role: auth.RoleClinician}
	as := func(id auth.Identity) Authenticator {
		return func(context.Context, string) (auth.Identity, error) { return id, nil }
	}
	p := &auth.Policy{Callers: auth.NewLimiter(0.001, 2), Failures: auth.NewLimiter(0.001, 2)}
	network := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5}})
	inproc := peer.NewContext(context.Background(), &peer.Peer{Addr: auth.NewInProcessListener().Addr()})

	const note = "/evidence.v1.EncounterService/GetNote"
	for _, c := range []struct {
		method string
		want   time.Duration
	}{
		{note, auth.DefaultTimeout},
		{"/evidence.v1.AlignService/Align", auth.DefaultTimeout},
		{"/evidence.v1.ComplianceService/ExportProvenance", 5 * time.Minute},
		{"/grpc.health.v1.Health/Check", auth.DefaultTimeout},
	} {
		ctx, cancel, err := guard(inproc, as(clin), p, c.method)
		if err != nil {
			t.Fatalf("%s: %v", c.method, err)
		}
		d, ok := ctx.Deadline()
		if !ok || time.Until(d) > c.want || time.Until(d) < c.want-time.Minute {
			t.Errorf("%s: deadline in %v, want %v", c.method, time.Until(d), c.want)
		}
		cancel()
	}
	// A client's earlier deadline stands.
	short, cancelShort := context.WithTimeout(inproc, time.Second)
	defer cancelShort()
	ctx, cancel, _ := guard(short, as(clin), p, note)
	if d, _ := ctx.Deadline(); time.Until(d) > time.Second {
		t.Error("the client's deadline was extended")
	}
	cancel()

	code := func(ctx context.Context, a Authenticator, p *auth.Policy, m string) codes.Code {
		_, cancel, err := guard(ctx, a, p, m)
		if cancel != nil {
			cancel()
		}
		return status.Code(err)
	}
	if c := code(inproc, as(clin), p, "/evidence.v1.Nope/Nope"); c != codes.PermissionDenied {
		t.Errorf("undeclared method: %v", c)
	}
	if c := code(inproc, nil, p, note); c != codes.Unauthenticated {
		t.Errorf("a policy without an authenticator: %v", c)
	}
	if c := code(inproc, as(auth.Identity{Tenant: "t", Subject: "s", Role: auth.RolePipeline}), p, note); c != codes.PermissionDenied {
		t.Errorf("pipeline reads a note: %v", c)
	}
	// In process: no limit; over the network: 2, then ResourceExhausted.
	for range 5 {
		if c := code(inproc, as(clin), p, note); c != codes.OK {
			t.Fatalf("in process: %v", c)
		}
	}
	for i := range 3 {
		want := codes.OK
		if i == 2 {
			want = codes.ResourceExhausted
		}
		if c := code(network, as(clin), p, note); c != want {
			t.Fatalf("network call %d: %v, want %v", i, c, want)
		}
	}
	// Failed authentications from one address: 2, then ResourceExhausted.
	bad := func(context.Context, string) (auth.Identity, error) { return auth.Identity{}, auth.ErrUnauthenticated }
	for i := range 3 {
		want := codes.Unauthenticated
		if i == 2 {
			want = codes.ResourceExhausted
		}
		if c := code(network, bad, p, note); c != want {
			t.Fatalf("failed authentication %d: %v, want %v", i, c, want)
		}
	}
	// Public methods need no credentials, even from a throttled address.
	if c := code(network, bad, p, "/grpc.health.v1.Health/Check"); c != codes.OK {
		t.Errorf("health check: %v", c)
	}
}
