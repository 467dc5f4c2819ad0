package auth

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// Scope says whose data a method or route serves, and so which
// identities may call it at all; the roles of its Rule narrow it further.
type Scope uint8

// Scopes. The zero Scope is invalid, so that every declaration names one.
const (
	// ScopePublic needs no credentials: health checks, reflection, the
	// page's shell and assets, signed checkpoints and hash tiles (none
	// holds PHI or tenant data; hash tiles and checkpoints are meant to be
	// public, for witnesses and tlog clients).
	ScopePublic Scope = iota + 1
	// ScopeTenant serves the caller's tenant's data: only tenant
	// identities. The tenant is the caller's; no request field names one,
	// so another tenant's encounter is NotFound, like a missing one.
	ScopeTenant
	// ScopeLog serves log-wide data that names no tenant: checkpoints,
	// proofs, log info. Tenant and operator identities.
	ScopeLog
	// ScopeLeaves serves leaf metadata (tenant, encounter, actor, time,
	// kind): a tenant identity gets its own tenant's leaves only, and the
	// handler hides every other leaf as NotFound (an entry bundle, which
	// mixes tenants, only when all its leaves are the caller's); an
	// operator identity gets every tenant's.
	ScopeLeaves
	// ScopeOperator serves the operator: only operator identities.
	ScopeOperator
)

func (s Scope) String() string {
	switch s {
	case ScopePublic:
		return "public"
	case ScopeTenant:
		return "tenant"
	case ScopeLog:
		return "log"
	case ScopeLeaves:
		return "leaves"
	case ScopeOperator:
		return "operator"
	}
	return fmt.Sprintf("Scope(%d)", uint8(s))
}

// Default limits of a call whose Rule does not set its own.
const (
	DefaultTimeout = time.Minute
	DefaultMaxBody = 1<<20 + 64<<10 // the gateway's 1 MiB body, with room for its own 413
)

// Rule is what a gRPC method or an HTTP route requires.
type Rule struct {
	Scope Scope
	// Roles that may call; empty for ScopePublic.
	Roles []string
	// Timeout is the longest a call may run: the deadline every call gets
	// (a client's earlier deadline stands). Zero means DefaultTimeout.
	Timeout time.Duration
}

// Deadline returns the rule's timeout.
func (r Rule) Deadline() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// Authorize returns nil if id may call under r, or an error wrapping
// ErrForbidden. It does not look at data: tenant filtering is the
// handler's (ScopeTenant by construction, ScopeLeaves explicitly).
func (r Rule) Authorize(id Identity) error {
	switch r.Scope {
	case ScopePublic:
		return nil
	case ScopeTenant:
		if id.Operator() {
			return fmt.Errorf("%w: an operator identity has no tenant data", ErrForbidden)
		}
	case ScopeOperator:
		if !id.Operator() {
			return fmt.Errorf("%w: only the log operator may", ErrForbidden)
		}
	case ScopeLog, ScopeLeaves:
	default:
		return fmt.Errorf("%w: undeclared", ErrForbidden)
	}
	if !slices.Contains(r.Roles, id.Role) {
		return fmt.Errorf("%w: the %s role may not", ErrForbidden, id.Role)
	}
	return nil
}

// Route is the declaration of an HTTP route.
type Route struct {
	// Method is the gRPC method a gateway route calls: its Rule applies.
	Method string
	// Rule applies when Method is empty.
	Rule Rule
	// Cookie admits the session cookie as a credential, on routes that a
	// page element loads without headers (audio) and on sign-out. Safe
	// methods only, and the cookie is SameSite=Strict.
	Cookie bool
	// Forwards marks a proxy route whose Authorization header belongs to
	// the upstream: the ledger credential is X-Evidence-Authorization (or
	// a client certificate) there, and Authorization is never read.
	Forwards bool
	// MaxBody caps the request body; zero means DefaultMaxBody.
	MaxBody int64
}

// BodyLimit returns the route's body cap.
func (r Route) BodyLimit() int64 {
	if r.MaxBody > 0 {
		return r.MaxBody
	}
	return DefaultMaxBody
}

// Role sets, least privilege first.
var (
	anyRole           = []string{RolePipeline, RoleClinician, RoleAuditor, RoleAdmin}
	readers           = []string{RoleClinician, RoleAuditor}
	pipelineOnly      = []string{RolePipeline}
	clinicianOnly     = []string{RoleClinician}
	auditorOnly       = []string{RoleAuditor}
	adminOnly         = []string{RoleAdmin}
	opening           = []string{RolePipeline, RoleClinician}
	operatorReadRoles = []string{RoleAuditor, RoleAdmin}
)

func tenant(roles []string, timeout time.Duration) Rule {
	return Rule{Scope: ScopeTenant, Roles: roles, Timeout: timeout}
}

var public = Rule{Scope: ScopePublic}

// kserveMethods are the methods of inference.GRPCInferenceService, the
// KServe v2 recording proxy (pipeline/proxy).
var kserveMethods = []string{"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
	"ModelStreamInfer", "ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
	"SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
	"CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister", "TraceSetting", "LogSettings"}

// methods declares every gRPC method the server registers. A test walks
// grpc.Server.GetServiceInfo and fails on any method missing here; an
// undeclared method is refused to everyone.
var methods = func() map[string]Rule {
	m := map[string]Rule{
		// Health and reflection.
		"/grpc.health.v1.Health/Check":                                   public,
		"/grpc.health.v1.Health/Watch":                                   {Scope: ScopePublic, Timeout: time.Hour},
		"/grpc.health.v1.Health/List":                                    public,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Scope: ScopePublic, Timeout: 10 * time.Minute},
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Scope: ScopePublic, Timeout: 10 * time.Minute},

		// The log: no PHI. Entries carry leaf metadata, so they are
		// filtered by tenant.
		"/evidence.v1.LedgerService/GetLogInfo":          {Scope: ScopeLog, Roles: anyRole},
		"/evidence.v1.LedgerService/GetCheckpoint":       {Scope: ScopeLog, Roles: anyRole},
		"/evidence.v1.LedgerService/GetInclusionProof":   {Scope: ScopeLog, Roles: anyRole},
		"/evidence.v1.LedgerService/GetConsistencyProof": {Scope: ScopeLog, Roles: anyRole},
		"/evidence.v1.LedgerService/ListCheckpoints":     {Scope: ScopeLog, Roles: anyRole, Timeout: 10 * time.Minute},
		"/evidence.v1.LedgerService/GetEntry":            {Scope: ScopeLeaves, Roles: anyRole},
		"/evidence.v1.LedgerService/StreamEntries":       {Scope: ScopeLeaves, Roles: auditorOnly, Timeout: time.Hour},

		// Encounters: the pipeline writes, clinicians read, edit, resolve
		// flagged sentences and sign (the roles that may sign are the
		// roles that may resolve), auditors read.
		"/evidence.v1.EncounterService/CreateEncounter":   tenant(opening, 0),
		"/evidence.v1.EncounterService/ListEncounters":    tenant(readers, 0),
		"/evidence.v1.EncounterService/GetEncounter":      tenant(readers, 0),
		"/evidence.v1.EncounterService/RecordSegments":    tenant(pipelineOnly, 0),
		"/evidence.v1.EncounterService/RecordAudio":       tenant(pipelineOnly, 30*time.Minute),
		"/evidence.v1.EncounterService/RecordModelOutput": tenant(pipelineOnly, 0),
		"/evidence.v1.EncounterService/RecordEdit":        tenant(clinicianOnly, 0),
		"/evidence.v1.EncounterService/ResolveSentence":   tenant(clinicianOnly, 0),
		"/evidence.v1.EncounterService/SignNote":          tenant(clinicianOnly, 0),
		"/evidence.v1.EncounterService/GetTranscript":     tenant(readers, 0),
		"/evidence.v1.EncounterService/GetNote":           tenant(readers, 0),
		"/evidence.v1.AlignService/Align":                 tenant(readers, 0),
		"/evidence.v1.SearchService/Search":               tenant(readers, 0),
		"/evidence.v1.InferenceService/GenerateNote":      tenant(pipelineOnly, 10*time.Minute),

		// Compliance: exports for auditors and clinicians, the access
		// trail for auditors, shredding for admins.
		"/evidence.v1.ComplianceService/ExportProvenance": tenant(readers, 5*time.Minute),
		"/evidence.v1.ComplianceService/ListAccessEvents": tenant(auditorOnly, 10*time.Minute),
		"/evidence.v1.ComplianceService/ShredEncounter":   tenant(adminOnly, 5*time.Minute),

		// The raft cluster's health (evidenced in cluster mode): members,
		// indexes and lag, no tenant data; for the operator.
		"/evidence.v1.ClusterService/GetClusterStatus": {Scope: ScopeOperator, Roles: operatorReadRoles, Timeout: 30 * time.Second},
		// Membership changes: the operator's admin.
		"/evidence.v1.ClusterService/RemoveMember": {Scope: ScopeOperator, Roles: adminOnly, Timeout: 30 * time.Second},
	}
	// The KServe recording proxy: the pipeline's, recorded in its tenant.
	for _, name := range kserveMethods {
		m["/inference.GRPCInferenceService/"+name] = tenant(pipelineOnly, 10*time.Minute)
	}
	return m
}()

// routes declares every HTTP route the server registers, by its
// http.ServeMux pattern. A test compares them with the routes the server's
// mux registers; an undeclared route is refused registration.
var routes = map[string]Route{
	// The page's shell and assets hold no data.
	"GET /{$}":              {Rule: public},
	"GET /encounters/{id}":  {Rule: public},
	"GET /assets/{file...}": {Rule: public},
	"GET /demo/attribution": {Rule: public},
	"GET /healthz":          {Rule: public},

	// Sign-in (cmd/evidenced): who am I, a session cookie for audio from
	// a bearer token, sign-out, and demo sign-in when the server offers it.
	"GET /api/v1/session":               {Rule: Rule{Scope: ScopeLog, Roles: anyRole}},
	"POST /api/v1/session":              {Rule: Rule{Scope: ScopeLog, Roles: anyRole}},
	"DELETE /api/v1/session":            {Rule: Rule{Scope: ScopeLog, Roles: anyRole}, Cookie: true},
	"GET /api/v1/session/demo":          {Rule: public},
	"POST /api/v1/session/demo":         {Rule: public, MaxBody: 1 << 10},
	"GET /api/v1/encounters/{id}/audio": {Rule: tenant(readers, 10*time.Minute), Cookie: true},

	// The tlog-tiles read API (ledger/tlogtiles).
	"GET /checkpoint":    {Rule: public},
	"GET /tile/":         {Rule: public},
	"GET /tile/entries/": {Rule: Rule{Scope: ScopeLeaves, Roles: auditorOnly}},
	"GET /metrics":       {Rule: Rule{Scope: ScopeOperator, Roles: operatorReadRoles}},

	// The OpenAI-compatible recording proxy (pipeline/proxy).
	"POST /v1/chat/completions": {Rule: tenant(pipelineOnly, 10*time.Minute), Forwards: true, MaxBody: 256 << 20},

	// The JSON gateway (grpcapi/gateway): the rule of the method called.
	"GET /api/v1/log":                          {Method: "/evidence.v1.LedgerService/GetLogInfo"},
	"GET /api/v1/checkpoint":                   {Method: "/evidence.v1.LedgerService/GetCheckpoint"},
	"GET /api/v1/entries/{index}":              {Method: "/evidence.v1.LedgerService/GetEntry"},
	"GET /api/v1/proofs/inclusion":             {Method: "/evidence.v1.LedgerService/GetInclusionProof"},
	"GET /api/v1/proofs/consistency":           {Method: "/evidence.v1.LedgerService/GetConsistencyProof"},
	"GET /api/v1/encounters":                   {Method: "/evidence.v1.EncounterService/ListEncounters"},
	"GET /api/v1/encounters/{id}":              {Method: "/evidence.v1.EncounterService/GetEncounter"},
	"GET /api/v1/encounters/{id}/transcript":   {Method: "/evidence.v1.EncounterService/GetTranscript"},
	"GET /api/v1/encounters/{id}/note":         {Method: "/evidence.v1.EncounterService/GetNote"},
	"POST /api/v1/encounters/{id}/edits":       {Method: "/evidence.v1.EncounterService/RecordEdit"},
	"POST /api/v1/encounters/{id}/resolutions": {Method: "/evidence.v1.EncounterService/ResolveSentence"},
	"POST /api/v1/encounters/{id}/signoff":     {Method: "/evidence.v1.EncounterService/SignNote"},
	"POST /api/v1/encounters/{id}/align":       {Method: "/evidence.v1.AlignService/Align"},
	"POST /api/v1/encounters/{id}/generate":    {Method: "/evidence.v1.InferenceService/GenerateNote"},
	"GET /api/v1/search":                       {Method: "/evidence.v1.SearchService/Search"},
}

// MethodRule returns the declaration of a gRPC full method name
// ("/package.Service/Method").
func MethodRule(fullMethod string) (Rule, bool) {
	r, ok := methods[fullMethod]
	return r, ok
}

// RouteDeclaration returns the declaration of an http.ServeMux pattern.
func RouteDeclaration(pattern string) (Route, bool) {
	r, ok := routes[pattern]
	return r, ok
}

// RouteRule returns the rule that applies to a route: its own, or that of
// the gRPC method it calls.
func RouteRule(pattern string) (Rule, bool) {
	rt, ok := routes[pattern]
	if !ok {
		return Rule{}, false
	}
	if rt.Method != "" {
		return MethodRule(rt.Method)
	}
	return rt.Rule, true
}

// Methods returns every declared gRPC method, sorted.
func Methods() []string { return sortedKeys(methods) }

// Routes returns every declared HTTP route pattern, sorted.
func Routes() []string { return sortedKeys(routes) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
