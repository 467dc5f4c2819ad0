// Package compliance answers what compliance teams ask of Evidence Ledger:
// where every sentence of a note came from, proved against one signed
// checkpoint (Provenance, as JSON, printable HTML or a FHIR R4 Bundle, and
// VerifyReport to check a JSON report offline); who read what (Accesses,
// the HIPAA 45 CFR 164.312(b) audit trail); and crypto-shredding an
// encounter (Shred) while the record of its existence stays verifiable.
//
// The FHIR export follows FHIR R4 (4.0.1): Provenance resources targeting
// the note's Composition, with the targetElement extension for sentences,
// and AuditEvent resources for accesses. docs/compliance.md documents the
// report formats, the extensions this package defines, and how each HIPAA
// 164.312 technical safeguard is met.
//
// Errors name fields, ids and leaf indexes, never PHI.
package compliance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/ledger"
)

// Errors a Service returns, besides the ledger's and encounter's.
var (
	// ErrForbidden: the caller's role may not do this (see the role of
	// each method).
	ErrForbidden = errors.New("compliance: the caller's role is not allowed to do this")
	// ErrNotConfigured: the server lacks what the request needs, such as
	// encryption at rest for shredding.
	ErrNotConfigured = errors.New("compliance: not configured")
)

// allow checks that c's role is one of roles.
func allow(c encounter.Caller, what string, roles ...string) error {
	for _, r := range roles {
		if c.Role == r {
			return nil
		}
	}
	return fmt.Errorf("%w: %s needs the role %v, the caller has %q", ErrForbidden, what, roles, c.Role)
}

// KeyShredder destroys an encounter's data key; *envelope.Keys is one.
type KeyShredder interface {
	Shred(ctx context.Context, tenant, encounter string) (envelope.ShredResult, error)
}

// IndexEraser removes an encounter's documents from a derived index;
// *index.Index is one.
type IndexEraser interface {
	DeleteEncounter(tenant, encounter string) error
}

// Config holds what a Service works on.
type Config struct {
	Log        *ledger.Log
	Encounters *encounter.Service
	Blobs      *blob.Store
	// Keys destroys data keys. Without it Shred refuses to run: destroying
	// plaintext payloads would leave them readable in the storage engine's
	// files until compaction.
	Keys KeyShredder
	// Index, when set, loses an encounter's documents when it is shredded.
	Index IndexEraser
	// Now is the report time; default time.Now.
	Now func() time.Time
}

// Service implements the compliance operations. It is safe for concurrent
// use.
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Log == nil || cfg.Encounters == nil || cfg.Blobs == nil {
		return nil, errors.New("compliance: Config needs Log, Encounters and Blobs")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}, nil
}

// Roles allowed to do each operation.
var (
	rolesProvenance = []string{auth.RoleClinician, auth.RoleAuditor, auth.RoleAdmin}
	rolesAccess     = []string{auth.RoleAuditor, auth.RoleAdmin}
	rolesShred      = []string{auth.RoleAdmin}
)

// Formats of a provenance report.
const (
	FormatJSON = "json"
	FormatHTML = "html"
	FormatFHIR = "fhir"
)

// Export builds the provenance report of an encounter's current note and
// renders it in format (FormatJSON, FormatHTML or FormatFHIR), returning
// the bytes and their media type. It is a read of PHI: with the access trail
// on, an access entry (action "export") is durable before it returns. Roles:
// clinician, auditor, admin.
func (s *Service) Export(ctx context.Context, c encounter.Caller, encounterID, format string) ([]byte, string, error) {
	switch format {
	case FormatJSON, FormatHTML, FormatFHIR:
	default:
		return nil, "", &ledger.InvalidError{Field: "format", Reason: "must be json, html or fhir"}
	}
	r, err := s.Provenance(ctx, c, encounterID, format)
	if err != nil {
		return nil, "", err
	}
	switch format {
	case FormatHTML:
		b, err := r.HTML()
		return b, "text/html; charset=utf-8", err
	case FormatFHIR:
		b, err := r.FHIR()
		return b, "application/fhir+json", err
	}
	b, err := r.JSON()
	return b, "application/json", err
}
