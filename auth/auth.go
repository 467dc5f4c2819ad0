// Package auth says who is calling: the identity (tenant, subject, role)
// that authentication established for a request, carried in its context.
package auth

import (
	"context"
	"errors"
)

// Roles.
const (
	RolePipeline  = "pipeline"
	RoleClinician = "clinician"
	RoleAuditor   = "auditor"
	RoleAdmin     = "admin"
)

// Identity is an authenticated caller.
type Identity struct {
	Tenant  string
	Subject string // who, e.g. "dr.lee@st-marys.example" or "svc:asr"
	Role    string
}

// ErrUnauthenticated is returned when a request carries no valid
// credentials.
var ErrUnauthenticated = errors.New("auth: unauthenticated")

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
