package main

import (
	"context"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/ledger"
	"google.golang.org/grpc/metadata"
)

// devAuthenticator accepts every caller as an admin of the tenant named
// in the x-evidence-tenant metadata (default "demo"), with the subject of
// x-evidence-actor (default "anonymous"). Tests of the server's wiring
// that are not about security use it with a grpcapi.Server without a
// Policy; the server itself authenticates with setupSecurity.
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
