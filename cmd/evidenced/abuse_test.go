package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// TestAbuseLimits drives the limits through the real server: one caller's
// rate limit spans gRPC and HTTP, other callers are unaffected, repeated
// bad credentials are throttled, and oversized requests are refused with
// ResourceExhausted and 413.
func TestAbuseLimits(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultSecurity()
	cfg.RateLimit, cfg.RateBurst = 0.01, 5
	ts := &tlsServer{}
	startSecured(t, dir, cfg, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auditor, _, err := auth.CreateToken(dir+"/"+auth.TokensFileName, auth.Identity{Tenant: "clinic-a", Role: auth.RoleAuditor, Subject: "aud"}, auth.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the token store re-reads the file at most once a second
	c := ts.grpcClient(t, nil, ts.clinician)
	for i := range 5 {
		if _, err := c.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{}); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	if _, err := c.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the limit: %v", err)
	}
	// The same caller over HTTP: the same bucket.
	resp, err := do("GET", "http://"+ts.httpAddr+"/api/v1/encounters", ts.clinician, "")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("HTTP over the limit: %d", resp.StatusCode)
	}
	// Another caller is not limited by the first.
	if _, err := ts.grpcClient(t, nil, auditor).Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{}); err != nil {
		t.Fatalf("another caller: %v", err)
	}
	// Bad credentials, again and again: throttled.
	bad := ts.grpcClient(t, nil, auth.GenerateToken())
	throttled := false
	for range 200 {
		_, err := bad.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{})
		if status.Code(err) == codes.ResourceExhausted {
			throttled = true
			break
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("bad token: %v", err)
		}
	}
	if !throttled {
		t.Fatal("200 bad tokens in a row were not throttled")
	}
	// Sizes: a gRPC message over 4 MiB, an HTTP body over the route's cap.
	big := ts.grpcClient(t, nil, auditor)
	_, err = big.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: strings.Repeat("x", 5<<20)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("5 MiB message: %v", err)
	}
	resp, err = do("POST", "http://"+ts.httpAddr+"/api/v1/encounters/enc_x/edits", auditor, `{"text":"`+strings.Repeat("x", 2<<20)+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body: %d", resp.StatusCode)
	}
}
