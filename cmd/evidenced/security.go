package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi/gateway"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/tlogtiles"
	"github.com/evidenceledger/evidence/web"
)

// securityConfig configures authentication, TLS and abuse limits
// (docs/security.md). Every field is a flag, an EVIDENCE_* environment
// variable and a key of the config file.
type securityConfig struct {
	// TLS on both listeners; ClientCA also verifies client certificates
	// (mTLS), whose evidence:// URI SAN names the caller.
	TLSCert  string `json:"tls_cert"`
	TLSKey   string `json:"tls_key"`
	ClientCA string `json:"client_ca"`
	// Insecure allows plaintext on a non-loopback address.
	Insecure bool `json:"insecure"`
	// TokensFile holds the bearer tokens' hashes; default
	// <data-dir>/tokens.json.
	TokensFile string `json:"tokens_file"`
	// OIDC/JWT bearer tokens.
	OIDCIssuer       string `json:"oidc_issuer"`
	OIDCAudience     string `json:"oidc_audience"`
	OIDCJWKS         string `json:"oidc_jwks"`
	OIDCTenantClaim  string `json:"oidc_tenant_claim"`
	OIDCRoleClaim    string `json:"oidc_role_claim"`
	OIDCSubjectClaim string `json:"oidc_subject_claim"`
	// Per-caller rate limit: requests a second, and burst.
	RateLimit float64 `json:"rate_limit"`
	RateBurst int     `json:"rate_burst"`
}

func defaultSecurity() securityConfig {
	return securityConfig{OIDCTenantClaim: "tenant", OIDCRoleClaim: "role", OIDCSubjectClaim: "sub", RateLimit: 100, RateBurst: 400}
}

func addSecurityFlags(fs *flag.FlagSet, c *securityConfig) {
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) for TLS on the gRPC and HTTP listeners")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert (mode 0600)")
	fs.StringVar(&c.ClientCA, "client-ca", c.ClientCA, "PEM CA certificates that sign client certificates (mTLS); a verified certificate's evidence://<tenant>/<role>/<subject> URI SAN is its identity")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow plaintext on a non-loopback address (logs a warning); never for PHI on a network")
	fs.StringVar(&c.TokensFile, "tokens-file", c.TokensFile, "bearer tokens file, written by evidencectl token create (default <data-dir>/tokens.json)")
	fs.StringVar(&c.OIDCIssuer, "oidc-issuer", c.OIDCIssuer, "accept OIDC/JWT bearer tokens from this issuer (iss)")
	fs.StringVar(&c.OIDCAudience, "oidc-audience", c.OIDCAudience, "audience (aud) a JWT must name")
	fs.StringVar(&c.OIDCJWKS, "oidc-jwks", c.OIDCJWKS, "the issuer's JSON Web Key Set: a file, or an https:// URL")
	fs.StringVar(&c.OIDCTenantClaim, "oidc-tenant-claim", c.OIDCTenantClaim, "JWT claim holding the tenant (a name or a dot-separated path)")
	fs.StringVar(&c.OIDCRoleClaim, "oidc-role-claim", c.OIDCRoleClaim, "JWT claim holding the role: a string, or an array with exactly one of pipeline, clinician, auditor, admin")
	fs.StringVar(&c.OIDCSubjectClaim, "oidc-subject-claim", c.OIDCSubjectClaim, "JWT claim holding the subject")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "requests a second each caller may make on average (0: no limit)")
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "requests a caller may make at once")
}

// applySecurityFromFile copies the setting of flag name from the config
// file's values, and reports whether name is a security flag.
func applySecurityFromFile(c, file *securityConfig, name string) bool {
	switch name {
	case "tls-cert":
		c.TLSCert = file.TLSCert
	case "tls-key":
		c.TLSKey = file.TLSKey
	case "client-ca":
		c.ClientCA = file.ClientCA
	case "insecure":
		c.Insecure = file.Insecure
	case "tokens-file":
		c.TokensFile = file.TokensFile
	case "oidc-issuer":
		c.OIDCIssuer = file.OIDCIssuer
	case "oidc-audience":
		c.OIDCAudience = file.OIDCAudience
	case "oidc-jwks":
		c.OIDCJWKS = file.OIDCJWKS
	case "oidc-tenant-claim":
		c.OIDCTenantClaim = file.OIDCTenantClaim
	case "oidc-role-claim":
		c.OIDCRoleClaim = file.OIDCRoleClaim
	case "oidc-subject-claim":
		c.OIDCSubjectClaim = file.OIDCSubjectClaim
	case "rate-limit":
		c.RateLimit = file.RateLimit
	case "rate-burst":
		c.RateBurst = file.RateBurst
	default:
		return false
	}
	return true
}

func (c securityConfig) validate() error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("--client-ca needs --tls-cert and --tls-key"))
	}
	if c.OIDCIssuer != "" && (c.OIDCAudience == "" || c.OIDCJWKS == "") {
		errs = append(errs, errors.New("--oidc-issuer needs --oidc-audience and --oidc-jwks"))
	}
	if c.RateLimit < 0 || c.RateBurst < 1 {
		errs = append(errs, errors.New("--rate-limit must not be negative and --rate-burst must be at least 1"))
	}
	return errors.Join(errs...)
}

// security is how the server authenticates and authorizes callers on
// both listeners; setupSecurity builds it from the configuration.
type security struct {
	authn    *auth.Authenticators
	policy   *auth.Policy
	sessions *auth.Sessions
	guard    *auth.Guard
	// inproc is the gRPC server's in-process listener: the JSON gateway's
	// and the demo loader's way in, believed when it forwards an identity.
	inproc *auth.InProcessListener
	// tls is the servers' TLS configuration; nil serves plaintext.
	tls *tls.Config
	// demoTokens are the demo tenant's tokens (role -> token) when the
	// page offers demo sign-in; set by enableDemo.
	demoTokens map[string]string
	// routes are the HTTP patterns httpHandler registered.
	routes []string
	logger *slog.Logger
}

// setupSecurity reads the tokens file, the JWT verifier's key set and the
// TLS material. A key file or tokens file that group or others can read
// is refused.
func setupSecurity(dataDir string, cfg securityConfig, logger *slog.Logger) (*security, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	path := cfg.TokensFile
	if path == "" {
		path = filepath.Join(dataDir, auth.TokensFileName)
	}
	tokens, err := auth.OpenTokenStore(path, logger.With("component", "auth"))
	if err != nil {
		return nil, err
	}
	s := &security{authn: &auth.Authenticators{Tokens: tokens}, logger: logger, inproc: auth.NewInProcessListener()}
	if cfg.OIDCIssuer != "" {
		jc := auth.JWTConfig{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience, TenantClaim: cfg.OIDCTenantClaim,
			RoleClaim: cfg.OIDCRoleClaim, SubjectClaim: cfg.OIDCSubjectClaim, Logger: logger.With("component", "auth")}
		if strings.HasPrefix(cfg.OIDCJWKS, "https://") || strings.HasPrefix(cfg.OIDCJWKS, "http://") {
			jc.JWKSURL = cfg.OIDCJWKS
		} else {
			jc.JWKSFile = cfg.OIDCJWKS
		}
		if s.authn.JWT, err = auth.NewJWTVerifier(jc); err != nil {
			return nil, err
		}
	}
	if cfg.TLSCert != "" {
		if err := auth.CheckSecretFile(cfg.TLSKey); err != nil {
			return nil, err
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		if cfg.ClientCA != "" {
			b, err := os.ReadFile(cfg.ClientCA)
			if err != nil {
				return nil, fmt.Errorf("client CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("client CA: %s holds no PEM certificate", cfg.ClientCA)
			}
			// Clients without a certificate (bearer tokens, browsers) are
			// still served; a certificate that is presented must verify.
			s.tls.ClientAuth, s.tls.ClientCAs = tls.VerifyClientCertIfGiven, pool
			s.authn.Certificates = true
		}
	}
	s.policy = &auth.Policy{Callers: auth.NewLimiter(cfg.RateLimit, cfg.RateBurst), Failures: auth.NewLimiter(5, 50)}
	s.sessions = auth.NewSessions(12*time.Hour, s.tls != nil)
	s.guard = &auth.Guard{Auth: s.authn, Policy: s.policy, Sessions: s.sessions, Logger: logger.With("component", "http")}
	logger.Info("authentication", "tokens_file", path, "tokens", tokens.Len(), "oidc", cfg.OIDCIssuer != "",
		"tls", s.tls != nil, "client_certificates", s.authn.Certificates, "rate_limit", cfg.RateLimit)
	return s, nil
}

// grpcOptions are the gRPC server's transport options.
func (s *security) grpcOptions() []grpc.ServerOption {
	if s.tls == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(inProcessPlain{credentials.NewTLS(s.tls)})}
}

// inProcessPlain is the server's TLS credentials, except on in-process
// connections, which never leave the process and carry no TLS.
type inProcessPlain struct {
	credentials.TransportCredentials
}

func (c inProcessPlain) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if auth.FromInProcess(conn.RemoteAddr()) {
		return insecure.NewCredentials().ServerHandshake(conn)
	}
	return c.TransportCredentials.ServerHandshake(conn)
}

func (c inProcessPlain) Clone() credentials.TransportCredentials {
	return inProcessPlain{c.TransportCredentials.Clone()}
}

// authenticate is the gRPC server's Authenticator. On an in-process
// connection, an identity forwarded by the gateway decides; anywhere else
// that metadata is ignored. Otherwise the bearer token of
// x-evidence-authorization or authorization decides, or the verified
// client certificate.
func (s *security) authenticate(ctx context.Context, _ string) (auth.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	p, _ := peer.FromContext(ctx)
	if p != nil && auth.FromInProcess(p.Addr) {
		switch v := md.Get(auth.ForwardedIdentityKey); len(v) {
		case 0:
		case 1:
			return auth.ParseIdentity(v[0])
		default:
			return auth.Identity{}, fmt.Errorf("%w: more than one forwarded identity", auth.ErrUnauthenticated)
		}
	}
	var c auth.Credentials
	for _, key := range []string{"x-evidence-authorization", "authorization"} {
		v := md.Get(key)
		if len(v) == 0 {
			continue
		}
		tok, ok := auth.ParseBearer(v[0])
		if len(v) > 1 || !ok {
			return auth.Identity{}, fmt.Errorf("%w: malformed %s", auth.ErrUnauthenticated, key)
		}
		c.Bearer = tok
		break
	}
	if p != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			c.Certificate = ti.State.VerifiedChains[0][0]
		}
	}
	return s.authn.Authenticate(ctx, c)
}

// dialSelf connects to the gRPC server over its in-process listener.
func (s *security) dialSelf() (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///in-process", grpc.WithContextDialer(s.inproc.Dial), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
}

// isLoopback reports whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// checkPlaintext refuses to serve plaintext on a non-loopback address
// unless insecure is set, which logs a warning.
func checkPlaintext(s *security, insecure bool, name string, lis net.Listener) error {
	if s.tls != nil || isLoopback(lis.Addr()) {
		return nil
	}
	if !insecure {
		return fmt.Errorf("refusing to serve %s in plaintext on %s, which is not a loopback address: set --tls-cert and --tls-key, or pass --insecure", name, lis.Addr())
	}
	s.logger.Warn("serving in plaintext on a non-loopback address (--insecure): credentials and PHI cross the network unencrypted", "listener", name, "addr", lis.Addr().String())
	return nil
}

// routeMux registers HTTP handlers through the Guard: every pattern must
// have a declaration in auth/policy.go, or the server does not start.
type routeMux struct {
	mux      *http.ServeMux
	guard    *auth.Guard
	patterns []string
	errs     []error
}

func newRouteMux(g *auth.Guard) *routeMux { return &routeMux{mux: http.NewServeMux(), guard: g} }

// Handle registers h for pattern behind the Guard.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	g, err := m.guard.Wrap(pattern, h)
	if err != nil {
		m.errs = append(m.errs, err)
		return
	}
	m.patterns = append(m.patterns, pattern)
	m.mux.Handle(pattern, g)
}

// HandleFunc registers h for pattern behind the Guard.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

func (m *routeMux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

// err reports the routes that had no declaration.
func (m *routeMux) err() error { return errors.Join(m.errs...) }

// httpServices are what the HTTP server serves besides the security
// routes.
type httpServices struct {
	log       *ledger.Log
	encounter *encounter.Service
	registry  *prometheus.Registry
	chatProxy http.Handler // nil: no proxy route
	self      grpc.ClientConnInterface
}

// httpHandler returns the HTTP server's handler: the JSON gateway, the
// tlog tiles, health and metrics, the chat proxy, the page with its audio
// route, and sign-in, every route behind the Guard.
func (s *security) httpHandler(d httpServices) (http.Handler, error) {
	mux := newRouteMux(s.guard)
	gateway.New(d.self).Register(mux)
	(&tlogtiles.Handler{Log: d.log, AuthorizeEntries: authorizeEntries}).Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{}))
	if d.chatProxy != nil {
		mux.Handle("POST /v1/chat/completions", d.chatProxy)
	}
	mountWeb(mux, d.encounter, s.logger)
	mux.HandleFunc("GET /api/v1/session", s.sessions.Whoami)
	mux.HandleFunc("POST /api/v1/session", s.sessions.SignIn)
	mux.HandleFunc("DELETE /api/v1/session", s.sessions.SignOut)
	if s.demoTokens != nil {
		d := &auth.DemoSignIn{Tokens: s.demoTokens, Auth: s.authn, Sessions: s.sessions}
		mux.HandleFunc("GET /api/v1/session/demo", d.Roles)
		mux.HandleFunc("POST /api/v1/session/demo", d.SignIn)
	}
	if err := mux.err(); err != nil {
		return nil, err
	}
	s.routes = mux.patterns
	var h http.Handler = mux
	if s.tls != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
			mux.ServeHTTP(w, r)
		})
	}
	return h, nil
}

// httpCaller is the caller of an HTTP request, as the Guard established
// it: the audio route's web.CallerFunc and the chat proxy's identity.
func httpCaller(r *http.Request) (encounter.Caller, error) {
	id, ok := auth.FromContext(r.Context())
	if !ok || id.Operator() {
		return encounter.Caller{}, web.ErrUnauthenticated
	}
	return encounter.Caller{Tenant: id.Tenant, Actor: id.Subject}, nil
}

// authorizeEntries decides who may read a C2SP entry bundle, which holds
// the leaves of every tenant in 256 consecutive indexes: an operator
// auditor any bundle; a tenant auditor only a bundle all of whose leaves
// are its tenant's (in a single-tenant deployment, every bundle), which
// tells it nothing it cannot learn from its own entries. Every leaf is
// decoded before deciding, so that the time to refuse does not depend on
// where the first foreign leaf is.
func authorizeEntries(r *http.Request, bundle []byte) (int, error) {
	id, ok := auth.FromContext(r.Context())
	if !ok {
		return http.StatusUnauthorized, auth.ErrUnauthenticated
	}
	foreign := false
	for data := bundle; len(data) > 0; {
		if len(data) < 2 || len(data) < 2+int(binary.BigEndian.Uint16(data)) {
			return http.StatusInternalServerError, errors.New("malformed entry bundle")
		}
		n := int(binary.BigEndian.Uint16(data))
		leaf, err := ledger.DecodeLeaf(data[2 : 2+n])
		if err != nil {
			return http.StatusInternalServerError, err
		}
		foreign = foreign || leaf.Tenant != id.Tenant
		data = data[2+n:]
	}
	if foreign && !id.Operator() {
		return http.StatusForbidden, fmt.Errorf("%w: the bundle holds other tenants' leaves", auth.ErrForbidden)
	}
	return 0, nil
}

// Demo identities: one token per role for the demo tenant.
var demoSubjects = map[string]string{
	auth.RoleClinician: "dr.demo",
	auth.RoleAuditor:   "auditor.demo",
	auth.RolePipeline:  "svc:demo-pipeline",
	auth.RoleAdmin:     "admin.demo",
}

const (
	demoTenant     = "demo"
	demoTokensFile = "demo-tokens.json"
)

// ensureDemoTokens returns the demo tenant's tokens, role -> token, from
// <dataDir>/demo-tokens.json ({"clinician":"…","auditor":"…",
// "pipeline":"…","admin":"…"}, mode 0600) when every one of them is still
// registered in the tokens file with its identity; otherwise it makes new
// ones, registers them, revokes the demo tokens registered before and
// writes the file.
func ensureDemoTokens(dataDir string, tokens *auth.TokenStore, tokensPath string) (map[string]string, error) {
	path := filepath.Join(dataDir, demoTokensFile)
	if b, err := os.ReadFile(path); err == nil {
		if err := auth.CheckSecretFile(path); err != nil {
			return nil, err
		}
		var m map[string]string
		ok := json.Unmarshal(b, &m) == nil && len(m) == len(demoSubjects)
		for role, subject := range demoSubjects {
			id, err := tokens.Authenticate(m[role])
			ok = ok && err == nil && id == auth.Identity{Tenant: demoTenant, Role: role, Subject: subject}
		}
		if ok {
			return m, nil
		}
	}
	old, err := auth.ListTokens(tokensPath)
	if err != nil {
		return nil, err
	}
	for _, r := range old {
		if r.Label == "demo" && r.Tenant == demoTenant {
			if _, err := auth.RevokeToken(tokensPath, r.ID); err != nil {
				return nil, err
			}
		}
	}
	m := map[string]string{}
	for _, role := range slices.Sorted(maps.Keys(demoSubjects)) {
		tok := auth.GenerateToken()
		if _, err := auth.RegisterToken(tokensPath, tok, auth.Identity{Tenant: demoTenant, Role: role, Subject: demoSubjects[role]}, auth.TokenOptions{Label: "demo"}); err != nil {
			return nil, err
		}
		m[role] = tok
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := auth.WriteSecretFile(path, append(b, '\n')); err != nil {
		return nil, err
	}
	return m, tokens.Reload()
}

// readDemoTokens returns the tokens in <dataDir>/demo-tokens.json, or nil.
func readDemoTokens(dataDir string) map[string]string {
	path := filepath.Join(dataDir, demoTokensFile)
	if auth.CheckSecretFile(path) != nil {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// enableDemo writes the demo tokens and, on a loopback HTTP listener,
// offers demo sign-in on the page. Off loopback the page asks for a token
// (the ones in demo-tokens.json work).
func (s *security) enableDemo(dataDir string, httpLis net.Listener) error {
	m, err := ensureDemoTokens(dataDir, s.authn.Tokens, s.authn.Tokens.Path())
	if err != nil {
		return fmt.Errorf("demo tokens: %w", err)
	}
	if isLoopback(httpLis.Addr()) {
		s.demoTokens = m
	} else {
		s.logger.Warn("demo sign-in is off on a non-loopback address; sign in with a token from demo-tokens.json", "addr", httpLis.Addr().String())
	}
	s.logger.Info("demo tokens ready", "file", filepath.Join(dataDir, demoTokensFile), "demo_sign_in", s.demoTokens != nil)
	return nil
}
