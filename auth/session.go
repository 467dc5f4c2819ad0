package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// SessionCookie is the name of the session cookie.
const SessionCookie = "evidence_session"

// SessionCookiePath scopes the cookie to the API, where the audio route
// and sign-out are the only routes that read it.
const SessionCookiePath = "/api/v1/"

// MaxSessions bounds the sessions held at once.
const MaxSessions = 10_000

// Sessions are the page's audio credential. An <audio> element cannot
// send an Authorization header, so signing in (POST /api/v1/session with
// the bearer token) sets a cookie that the audio route admits:
//
//   - HttpOnly: the page's scripts cannot read it, so an injected script
//     cannot carry it off (it could use the token in sessionStorage, but
//     the cookie adds nothing to steal);
//   - SameSite=Strict and Path=/api/v1/: no other site's page can make the
//     browser send it, and it goes nowhere but the API;
//   - Secure when the server serves TLS;
//   - an opaque random id, mapped in memory to the bearer token it was
//     made from, which is re-authenticated on every use: revoking or
//     expiring the token ends the session, and so does signing out or a
//     restart. It lives at most the session TTL.
//
// Short-lived signed audio URLs were the alternative. They were not
// chosen because a URL is a bearer credential that leaks where URLs go
// (history, logs, copy and paste, screenshots of the address bar), and
// one minted per recording still outlives a sign-out.
//
// Sessions is safe for concurrent use.
type Sessions struct {
	ttl    time.Duration
	secure bool

	mu struct {
		sync.Mutex
		m map[[32]byte]session
	}
}

type session struct {
	bearer  string
	expires time.Time
}

// NewSessions returns a session store. secure marks the cookie Secure
// (set it when the HTTP server serves TLS).
func NewSessions(ttl time.Duration, secure bool) *Sessions {
	s := &Sessions{ttl: ttl, secure: secure}
	s.mu.m = map[[32]byte]session{}
	return s
}

func sessionKey(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// start creates a session for bearer and sets its cookie on w.
func (s *Sessions) start(w http.ResponseWriter, bearer string) {
	var b [32]byte
	rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now()
	s.mu.Lock()
	if len(s.mu.m) >= MaxSessions {
		for k, v := range s.mu.m {
			if now.After(v.expires) {
				delete(s.mu.m, k)
			}
		}
		for k := range s.mu.m {
			if len(s.mu.m) < MaxSessions {
				break
			}
			delete(s.mu.m, k) // full of live sessions: drop an arbitrary one
		}
	}
	s.mu.m[sessionKey(id)] = session{bearer: bearer, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: SessionCookiePath, MaxAge: int(s.ttl / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
}

// bearer returns the bearer token of r's session cookie.
func (s *Sessions) bearer(r *http.Request) (string, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || len(c.Value) > 64 {
		return "", false
	}
	k := sessionKey(c.Value)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.mu.m[k]
	if !ok {
		return "", false
	}
	if time.Now().After(v.expires) {
		delete(s.mu.m, k)
		return "", false
	}
	return v.bearer, true
}

// end ends r's session and expires its cookie.
func (s *Sessions) end(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		s.mu.Lock()
		delete(s.mu.m, sessionKey(c.Value))
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: SessionCookiePath, MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
}

// Whoami serves GET /api/v1/session: the caller's identity.
func (s *Sessions) Whoami(w http.ResponseWriter, r *http.Request) {
	id, _ := FromContext(r.Context())
	writeIdentity(w, id, nil)
}

// SignIn serves POST /api/v1/session: behind the Guard, which has
// authenticated the bearer token, it starts a session for that token and
// returns the identity.
func (s *Sessions) SignIn(w http.ResponseWriter, r *http.Request) {
	id, _ := FromContext(r.Context())
	tok, ok := BearerOf(r)
	if !ok {
		WriteHTTPError(w, http.StatusBadRequest, "InvalidArgument", "sign in with a bearer token")
		return
	}
	s.start(w, tok)
	writeIdentity(w, id, nil)
}

// SignOut serves DELETE /api/v1/session.
func (s *Sessions) SignOut(w http.ResponseWriter, r *http.Request) {
	s.end(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// DemoSignIn offers the demo tenant's tokens to the page, for a server
// started with --demo on loopback: anyone who can reach the page may sign
// in as a demo role, which is the point of a demo and unacceptable
// anywhere else (evidenced refuses it on a non-loopback address).
type DemoSignIn struct {
	// Tokens maps a role to its demo token.
	Tokens   map[string]string
	Auth     Authenticator
	Sessions *Sessions
}

// Roles serves GET /api/v1/session/demo: {"roles":[...]}.
func (d *DemoSignIn) Roles(w http.ResponseWriter, r *http.Request) {
	var roles []string
	for _, role := range Roles {
		if d.Tokens[role] != "" {
			roles = append(roles, role)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{"roles": roles})
}

// SignIn serves POST /api/v1/session/demo with {"role":"clinician"}: it
// returns the role's token and identity, and starts a session.
func (d *DemoSignIn) SignIn(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Role string `json:"role"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<10))
	if err != nil || json.Unmarshal(b, &req) != nil || !slices.Contains(Roles, req.Role) {
		WriteHTTPError(w, http.StatusBadRequest, "InvalidArgument", `want {"role":"clinician"} (or auditor, pipeline, admin)`)
		return
	}
	tok := d.Tokens[req.Role]
	if tok == "" {
		WriteHTTPError(w, http.StatusNotFound, "NotFound", "no demo token for this role")
		return
	}
	id, err := d.Auth.Authenticate(r.Context(), Credentials{Bearer: tok})
	if err != nil {
		WriteHTTPError(w, http.StatusServiceUnavailable, "Unavailable", "the demo token is not registered")
		return
	}
	d.Sessions.start(w, tok)
	writeIdentity(w, id, map[string]any{"token": tok})
}
