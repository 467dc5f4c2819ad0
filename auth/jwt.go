package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWTConfig configures a JWTVerifier for the access tokens (or ID tokens)
// of an OIDC provider.
type JWTConfig struct {
	// Issuer must equal the token's "iss". Required.
	Issuer string
	// Audience must be one of the token's "aud". Required.
	Audience string
	// JWKSFile or JWKSURL is where the provider's public keys are (RFC
	// 7517 JSON Web Key Set); exactly one is required. A URL must be https
	// (http only on a loopback host). Keys are re-read when a token names
	// an unknown key id (at most once a minute) and every Refresh.
	JWKSFile string
	JWKSURL  string
	// Claim names for the identity; a name not found as a top-level claim
	// is tried as a dot-separated path ("realm_access.roles"). The role
	// claim may be a string or an array holding exactly one role of this
	// server. Defaults: "tenant", "role" and "sub".
	TenantClaim  string
	RoleClaim    string
	SubjectClaim string
	// Leeway allows for clock skew on exp, nbf and iat; default 1 minute.
	Leeway time.Duration
	// Refresh is how often the key set is re-read; default 1 hour.
	Refresh time.Duration
	// Client fetches JWKSURL; nil means one with a 10-second timeout.
	Client *http.Client
	// Logger receives key set fetch failures; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// jwtAlgorithms are the signature algorithms accepted: asymmetric only.
// "none" and the HMAC algorithms are never accepted, so a public key can
// not be used as an HMAC secret.
var jwtAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// MaxJWKSBytes caps a key set document.
const MaxJWKSBytes = 1 << 20

// JWTVerifier checks signed JWTs (RFC 7519, compact JWS) against an OIDC
// provider's key set: the signature with a key of the set (by "kid"), the
// issuer, the audience, expiry ("exp" is required), not-before and
// issued-at; then it reads the identity from the configured claims. It is
// safe for concurrent use.
type JWTVerifier struct {
	cfg    JWTConfig
	logger *slog.Logger

	mu struct {
		sync.Mutex
		keys    jose.JSONWebKeySet
		fetched time.Time // last successful load
		tried   time.Time // last attempt
	}
}

// NewJWTVerifier checks cfg and loads the key set. A key set file that
// cannot be read is an error; a URL that cannot be fetched is logged and
// retried on use, so that a provider that is down does not stop the
// server from starting.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: JWT verification needs an issuer and an audience")
	}
	if (cfg.JWKSFile == "") == (cfg.JWKSURL == "") {
		return nil, errors.New("auth: JWT verification needs exactly one of a JWKS file and a JWKS URL")
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname()))) {
			return nil, errors.New("auth: the JWKS URL must be https (http only on loopback)")
		}
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "role"
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = "sub"
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = time.Minute
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Hour
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &JWTVerifier{cfg: cfg, logger: cfg.Logger}
	if v.logger == nil {
		v.logger = slog.New(slog.DiscardHandler)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.loadLocked(context.Background()); err != nil {
		if cfg.JWKSFile != "" {
			return nil, err
		}
		v.logger.Warn("JWKS not fetched; JWTs are refused until it is", "url", cfg.JWKSURL, "error", err.Error())
	}
	return v, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// loadLocked reads the key set. v.mu must be held.
func (v *JWTVerifier) loadLocked(ctx context.Context) error {
	v.mu.tried = v.cfg.Now()
	var b []byte
	if v.cfg.JWKSFile != "" {
		f, err := os.Open(v.cfg.JWKSFile)
		if err != nil {
			return fmt.Errorf("auth: JWKS: %w", err)
		}
		b, err = io.ReadAll(io.LimitReader(f, MaxJWKSBytes+1))
		f.Close()
		if err != nil {
			return fmt.Errorf("auth: JWKS: %w", err)
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
		if err != nil {
			return fmt.Errorf("auth: JWKS: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := v.cfg.Client.Do(req)
		if err != nil {
			return fmt.Errorf("auth: JWKS: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("auth: JWKS: the provider answered %s", resp.Status)
		}
		if b, err = io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1)); err != nil {
			return fmt.Errorf("auth: JWKS: %w", err)
		}
	}
	if len(b) > MaxJWKSBytes {
		return fmt.Errorf("auth: JWKS larger than %d bytes", MaxJWKSBytes)
	}
	keys, err := ParseJWKS(b)
	if err != nil {
		return err
	}
	v.mu.keys, v.mu.fetched = keys, v.cfg.Now()
	return nil
}

// ParseJWKS parses a JSON Web Key Set, keeping the public signature keys:
// keys marked for encryption ("use":"enc"), symmetric keys and private
// keys are dropped, so that no secret can verify a token.
func ParseJWKS(b []byte) (jose.JSONWebKeySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("auth: JWKS: %w", err)
	}
	var out jose.JSONWebKeySet
	for _, k := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(k); err != nil {
			continue // a key type this library does not know; others may serve
		}
		if !key.Valid() || !key.IsPublic() || (key.Use != "" && key.Use != "sig") {
			continue
		}
		out.Keys = append(out.Keys, key)
	}
	if len(out.Keys) == 0 {
		return jose.JSONWebKeySet{}, errors.New("auth: JWKS holds no public signature key")
	}
	return out, nil
}

// candidates returns the keys that may have signed a token with this key
// id and algorithm, re-reading the key set when it is stale or the key
// id is unknown (at most once a minute).
func (v *JWTVerifier) candidates(ctx context.Context, kid, alg string) []jose.JSONWebKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Now()
	find := func() []jose.JSONWebKey {
		var out []jose.JSONWebKey
		for _, k := range v.mu.keys.Keys {
			if (kid == "" || k.KeyID == kid) && (k.Algorithm == "" || k.Algorithm == alg) {
				out = append(out, k)
			}
		}
		return out
	}
	keys := find()
	stale := now.Sub(v.mu.fetched) >= v.cfg.Refresh
	if (len(keys) == 0 || stale) && now.Sub(v.mu.tried) >= time.Minute {
		if err := v.loadLocked(ctx); err != nil {
			v.logger.Warn("JWKS not refreshed", "error", err.Error())
		}
		keys = find()
	}
	return keys
}

// Verify checks token and returns the identity its claims name.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Identity, error) {
	fail := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: JWT: %s", ErrUnauthenticated, why)
	}
	if len(token) > MaxBearerLen || strings.Count(token, ".") != 2 {
		return fail("not a compact JWS")
	}
	tok, err := jwt.ParseSigned(token, jwtAlgorithms)
	if err != nil {
		return fail("malformed or unsupported algorithm")
	}
	if len(tok.Headers) != 1 {
		return fail("want one signature")
	}
	h := tok.Headers[0]
	var std jwt.Claims
	var claims map[string]any
	verified := false
	for _, k := range v.candidates(ctx, h.KeyID, h.Algorithm) {
		if err := tok.Claims(k, &std, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return fail("signature does not verify with a key of the provider")
	}
	if std.Expiry == nil {
		return fail("no expiry")
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: v.cfg.Now()}, v.cfg.Leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return fail("expired")
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return fail("wrong issuer")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return fail("wrong audience")
	case err != nil:
		return fail("not valid yet")
	}
	tenant, ok := claim(claims, v.cfg.TenantClaim).(string)
	if !ok {
		return fail("no tenant claim")
	}
	subject, ok := claim(claims, v.cfg.SubjectClaim).(string)
	if !ok {
		return fail("no subject claim")
	}
	role, err := roleClaim(claim(claims, v.cfg.RoleClaim))
	if err != nil {
		return fail(err.Error())
	}
	id := Identity{Tenant: tenant, Subject: subject, Role: role}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// claim returns claims[name], or the value at a dot-separated path.
func claim(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// roleClaim reads a role claim: a role, or an array holding exactly one
// role of this server (other values, such as the provider's own roles,
// are ignored).
func roleClaim(v any) (string, error) {
	switch r := v.(type) {
	case string:
		if ValidRole(r) {
			return r, nil
		}
	case []any:
		found := ""
		for _, x := range r {
			s, _ := x.(string)
			if !ValidRole(s) {
				continue
			}
			if found != "" && found != s {
				return "", errors.New("the role claim names more than one role")
			}
			found = s
		}
		if found != "" {
			return found, nil
		}
	}
	return "", errors.New("no role of this server in the role claim")
}
