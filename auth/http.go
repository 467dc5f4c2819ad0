package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
)

// HTTP headers that carry credentials. The ledger's own header is
// X-Evidence-Authorization: on proxy routes, where Authorization belongs
// to the upstream model server, it is the only bearer header read.
const (
	HeaderAuthorization         = "Authorization"
	HeaderEvidenceAuthorization = "X-Evidence-Authorization"
)

// Guard enforces the route declarations on HTTP handlers: body size,
// deadline, authentication (client certificate, bearer token, or the
// session cookie on routes that admit it), authorization and the
// per-caller rate limit, in that order. The handler finds the identity
// with FromContext. It is safe for concurrent use.
type Guard struct {
	Auth     Authenticator
	Policy   *Policy
	Sessions *Sessions // nil: no session cookies
	// Logger receives one line per refused request: route, status and the
	// kind of failure, never a credential. Nil discards.
	Logger *slog.Logger
}

// Wrap returns h guarded by the declaration of pattern, or an error if
// pattern has none.
func (g *Guard) Wrap(pattern string, h http.Handler) (http.Handler, error) {
	rt, ok := RouteDeclaration(pattern)
	if !ok {
		return nil, fmt.Errorf("auth: HTTP route %q has no declaration in auth/policy.go", pattern)
	}
	rule, ok := RouteRule(pattern)
	if !ok {
		return nil, fmt.Errorf("auth: HTTP route %q calls the undeclared method %s", pattern, rt.Method)
	}
	logger := g.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	limit := rt.BodyLimit()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(status int, code, msg, why string) {
			logger.LogAttrs(r.Context(), slog.LevelInfo, "http request refused", slog.String("route", pattern),
				slog.Int("status", status), slog.String("reason", why))
			WriteHTTPError(w, status, code, msg)
		}
		if r.ContentLength > limit {
			refuse(http.StatusRequestEntityTooLarge, "ResourceExhausted", fmt.Sprintf("the request body exceeds %d bytes", limit), "body too large")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		ctx, cancel := context.WithTimeout(r.Context(), rule.Deadline())
		defer cancel()
		r = r.WithContext(ctx)
		if rule.Scope == ScopePublic {
			h.ServeHTTP(w, r)
			return
		}
		c, err := g.credentials(r, rt)
		var id Identity
		if err == nil {
			id, err = g.Auth.Authenticate(ctx, c)
		}
		if err != nil {
			if !g.Policy.AllowFailure(clientHost(r.RemoteAddr)) {
				w.Header().Set("Retry-After", "1")
				refuse(http.StatusTooManyRequests, "ResourceExhausted", "too many failed authentications; slow down", "failed authentications")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="evidence"`)
			refuse(http.StatusUnauthorized, "Unauthenticated", "missing or invalid credentials", failureKind(err))
			return
		}
		if err := rule.Authorize(id); err != nil {
			refuse(http.StatusForbidden, "PermissionDenied", "the caller's role may not do this", "forbidden")
			return
		}
		if !g.Policy.AllowCaller(id) {
			w.Header().Set("Retry-After", "1")
			refuse(http.StatusTooManyRequests, "ResourceExhausted", "rate limit exceeded; retry later", "rate limit")
			return
		}
		h.ServeHTTP(w, r.WithContext(NewContext(ctx, id)))
	}), nil
}

// credentials returns what r presents for route rt.
func (g *Guard) credentials(r *http.Request, rt Route) (Credentials, error) {
	var c Credentials
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		c.Certificate = r.TLS.VerifiedChains[0][0]
	}
	headers := []string{HeaderEvidenceAuthorization}
	if !rt.Forwards {
		headers = append(headers, HeaderAuthorization)
	}
	for _, name := range headers {
		vs := r.Header.Values(name)
		if len(vs) == 0 {
			continue
		}
		tok, ok := ParseBearer(vs[0])
		if len(vs) > 1 || !ok {
			return c, fmt.Errorf("%w: malformed %s header", ErrUnauthenticated, name)
		}
		c.Bearer = tok
		return c, nil
	}
	if rt.Cookie && c.Certificate == nil && g.Sessions != nil {
		if tok, ok := g.Sessions.bearer(r); ok {
			c.Bearer = tok
		}
	}
	return c, nil
}

// BearerOf returns the bearer token r presented in its headers.
func BearerOf(r *http.Request) (string, bool) {
	for _, name := range []string{HeaderEvidenceAuthorization, HeaderAuthorization} {
		if v := r.Header.Get(name); v != "" {
			return ParseBearer(v)
		}
	}
	return "", false
}

// failureKind names why authentication failed, for logs: the error's
// text, which this package keeps free of credentials and claims.
func failureKind(err error) string {
	if errors.Is(err, ErrUnauthenticated) {
		return err.Error()
	}
	return "unauthenticated"
}

func clientHost(remote string) string {
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return h
}

// WriteHTTPError writes an error as the JSON gateway does:
// {"code","message"} with the gRPC code's name.
func WriteHTTPError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

// identityJSON is an identity as the session routes return it.
type identityJSON struct {
	Tenant  string `json:"tenant"`
	Role    string `json:"role"`
	Subject string `json:"subject"`
}

func writeIdentity(w http.ResponseWriter, id Identity, extra map[string]any) {
	out := map[string]any{"identity": identityJSON{id.Tenant, id.Role, id.Subject}}
	for k, v := range extra {
		out[k] = v
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	b, _ := json.Marshal(out)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.Write(append(b, '\n'))
}
