// Package auth says who is calling and what they may do.
//
// Authentication turns what a request presents (Credentials: a bearer
// token, or the client certificate of a verified mTLS chain) into an
// Identity (tenant, subject, role) through one interface, Authenticator,
// with three implementations: TokenStore (opaque tokens stored only as
// SHA-256 hashes in a mode-0600 file), certificate identities
// (IdentityFromCertificate: a URI SAN evidence://<tenant>/<role>/<subject>)
// and JWTVerifier (OIDC/JWT access tokens checked against a JWKS, RFC 7519
// and RFC 7517). Authenticators combines them.
//
// Authorization is one table (policy.go): every gRPC method and every HTTP
// route declares its Scope and the roles allowed. The gRPC interceptors
// (package grpcapi) and the HTTP middleware (Guard) enforce it, with
// per-caller rate limits (Limiter) and a deadline on every call. The
// tenant of a request is always the caller's: no request field names one.
//
// Nothing in this package logs or returns a credential: error messages
// name the kind of failure, never the token or the claims. docs/security.md
// is the threat model.
package auth

import (
	"context"
	"errors"
	"fmt"
)

// Roles.
const (
	// RolePipeline records audio, segments and model outputs, and calls
	// the inference pipeline and the recording proxies.
	RolePipeline = "pipeline"
	// RoleClinician reads notes and transcripts, edits and signs, in its
	// tenant.
	RoleClinician = "clinician"
	// RoleAuditor reads, verifies, exports and lists the access trail in
	// its tenant; an operator auditor reads every tenant's leaf metadata.
	RoleAuditor = "auditor"
	// RoleAdmin shreds encounters in its tenant; tokens are managed with
	// evidencectl token on the server's data directory.
	RoleAdmin = "admin"
)

// Roles lists every role.
var Roles = []string{RolePipeline, RoleClinician, RoleAuditor, RoleAdmin}

// ValidRole reports whether r is a role.
func ValidRole(r string) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// OperatorTenant is the tenant of the log operator's identities. It is not
// a valid tenant id of the ledger ('*' is not an id byte), so no tenant's
// data can ever be stored under it, and an operator identity is refused by
// every tenant-scoped method. Only the auditor and admin roles exist at
// operator level: they read what spans tenants and holds no PHI (leaf
// metadata of every tenant, entry bundles, metrics).
const OperatorTenant = "*"

// Identity is an authenticated caller.
type Identity struct {
	Tenant  string
	Subject string // who, e.g. "dr.lee@st-marys.example" or "svc:asr"
	Role    string
}

// Operator reports whether id is an operator identity.
func (id Identity) Operator() bool { return id.Tenant == OperatorTenant }

// Limits on identity fields; they match the ledger's tenant and actor ids.
const (
	MaxTenantLen  = 64
	MaxSubjectLen = 128
)

// Validate checks that id is well formed: a known role, a tenant id (or
// OperatorTenant with the auditor or admin role) and a subject, both made
// of the ledger's id bytes (A-Z a-z 0-9 . _ - : @ / +).
func (id Identity) Validate() error {
	if !ValidRole(id.Role) {
		return fmt.Errorf("%w: unknown role", ErrUnauthenticated)
	}
	if id.Operator() {
		if id.Role != RoleAuditor && id.Role != RoleAdmin {
			return fmt.Errorf("%w: an operator identity must be an auditor or an admin", ErrUnauthenticated)
		}
	} else if !validID(id.Tenant, MaxTenantLen) {
		return fmt.Errorf("%w: invalid tenant", ErrUnauthenticated)
	}
	if !validID(id.Subject, MaxSubjectLen) {
		return fmt.Errorf("%w: invalid subject", ErrUnauthenticated)
	}
	return nil
}

// validID mirrors ledger.CheckID, so that an identity that passes is one
// the ledger records.
func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-', c == ':', c == '@', c == '/', c == '+':
		default:
			return false
		}
	}
	return true
}

// Errors. The gRPC boundary maps them to Unauthenticated, PermissionDenied
// and ResourceExhausted (grpcapi/errors.go); HTTP to 401, 403 and 429.
var (
	// ErrUnauthenticated is returned when a request carries no valid
	// credentials.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrForbidden is returned when an authenticated caller's role or
	// scope may not do what it asks.
	ErrForbidden = errors.New("auth: permission denied")
	// ErrRateLimited is returned when a caller exceeds its rate limit.
	ErrRateLimited = errors.New("auth: rate limit exceeded")
)

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity in ctx, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
