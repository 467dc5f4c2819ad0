package auth

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type guardFixture struct {
	guard  *Guard
	tokens map[string]string // role -> token of tenant t
	path   string
	logs   *bytes.Buffer
}

func newGuardFixture(t *testing.T) *guardFixture {
	path := filepath.Join(t.TempDir(), TokensFileName)
	f := &guardFixture{tokens: map[string]string{}, path: path, logs: new(bytes.Buffer)}
	for _, role := range Roles {
		tok, _, err := CreateToken(path, Identity{Tenant: "t", Subject: "s-" + role, Role: role}, TokenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[role] = tok
	}
	op, _, _ := CreateToken(path, Identity{Tenant: OperatorTenant, Subject: "ops", Role: RoleAuditor}, TokenOptions{})
	f.tokens["operator"] = op
	store, err := OpenTokenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.guard = &Guard{Auth: &Authenticators{Tokens: store}, Policy: &Policy{Callers: NewLimiter(1000, 1000), Failures: NewLimiter(1000, 1000)},
		Sessions: NewSessions(time.Hour, false), Logger: slog.New(slog.NewJSONHandler(f.logs, nil))}
	return f
}

// serve registers h under pattern and serves one request.
func (f *guardFixture) serve(t *testing.T, pattern string, h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	g, err := f.guard.Wrap(pattern, h)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(pattern, g)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

var echoIdentity = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := FromContext(r.Context())
	if !ok {
		io.WriteString(w, "anonymous")
		return
	}
	io.WriteString(w, FormatIdentity(id))
})

func TestGuard(t *testing.T) {
	f := newGuardFixture(t)
	req := func(method, target, token string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return r
	}
	// Undeclared routes cannot be guarded.
	if _, err := f.guard.Wrap("GET /nope", echoIdentity); err == nil {
		t.Fatal("an undeclared route was wrapped")
	}
	// Public: no credentials needed, none read.
	if w := f.serve(t, "GET /healthz", echoIdentity, req("GET", "/healthz", "garbage")); w.Code != 200 || w.Body.String() != "anonymous" {
		t.Fatalf("public: %d %s", w.Code, w.Body)
	}
	// Tenant routes: 401 without or with bad credentials, 403 for the
	// wrong role, 200 with the identity in the context.
	const note = "GET /api/v1/encounters/{id}/note"
	for _, c := range []struct {
		token string
		code  int
	}{
		{"", 401}, {"garbage", 401}, {TokenPrefix + "x", 401},
		{f.tokens[RolePipeline], 403}, {f.tokens[RoleAdmin], 403}, {f.tokens["operator"], 403},
		{f.tokens[RoleClinician], 200}, {f.tokens[RoleAuditor], 200},
	} {
		w := f.serve(t, note, echoIdentity, req("GET", "/api/v1/encounters/e/note", c.token))
		if w.Code != c.code {
			t.Errorf("token %q: %d, want %d", c.token, w.Code, c.code)
		}
		if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		if w.Code == 200 && w.Body.String() != "t/"+strings.Split(w.Body.String(), "/")[1]+"/s-"+strings.Split(w.Body.String(), "/")[1] {
			t.Errorf("identity %s", w.Body)
		}
	}
	// X-Evidence-Authorization is read first; two Authorization headers
	// are refused.
	r := req("GET", "/api/v1/encounters/e/note", f.tokens[RolePipeline])
	r.Header.Set("X-Evidence-Authorization", "Bearer "+f.tokens[RoleClinician])
	if w := f.serve(t, note, echoIdentity, r); w.Code != 200 {
		t.Errorf("X-Evidence-Authorization: %d", w.Code)
	}
	r = req("GET", "/api/v1/encounters/e/note", f.tokens[RoleClinician])
	r.Header.Add("Authorization", "Bearer "+f.tokens[RoleAuditor])
	if w := f.serve(t, note, echoIdentity, r); w.Code != 401 {
		t.Errorf("two Authorization headers: %d", w.Code)
	}
	// Operator scope.
	if w := f.serve(t, "GET /metrics", echoIdentity, req("GET", "/metrics", f.tokens[RoleAuditor])); w.Code != 403 {
		t.Errorf("tenant auditor on /metrics: %d", w.Code)
	}
	if w := f.serve(t, "GET /metrics", echoIdentity, req("GET", "/metrics", f.tokens["operator"])); w.Code != 200 {
		t.Errorf("operator on /metrics: %d", w.Code)
	}
	// Body limits: by Content-Length at once, and while reading.
	readAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			WriteHTTPError(w, http.StatusRequestEntityTooLarge, "ResourceExhausted", "too large")
		}
	})
	big := strings.Repeat("x", DefaultMaxBody+1)
	r = httptest.NewRequest("POST", "/api/v1/encounters/e/edits", strings.NewReader(big))
	r.Header.Set("Authorization", "Bearer "+f.tokens[RoleClinician])
	if w := f.serve(t, "POST /api/v1/encounters/{id}/edits", readAll, r); w.Code != 413 {
		t.Errorf("large body: %d", w.Code)
	}
	r = httptest.NewRequest("POST", "/api/v1/encounters/e/edits", io.MultiReader(strings.NewReader(big)))
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+f.tokens[RoleClinician])
	if w := f.serve(t, "POST /api/v1/encounters/{id}/edits", readAll, r); w.Code != 413 {
		t.Errorf("large chunked body: %d", w.Code)
	}
	// The handler runs under the route's deadline.
	deadline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := r.Context().Deadline()
		if !ok || time.Until(d) > DefaultTimeout {
			t.Errorf("deadline %v %v", d, ok)
		}
	})
	f.serve(t, note, deadline, req("GET", "/api/v1/encounters/e/note", f.tokens[RoleClinician]))
	// No log line holds a token.
	for _, tok := range f.tokens {
		if strings.Contains(f.logs.String(), tok) {
			t.Fatal("a token was logged")
		}
	}
	if !strings.Contains(f.logs.String(), `"status":401`) {
		t.Fatalf("refusals are not logged: %s", f.logs)
	}
}

func TestGuardRateLimits(t *testing.T) {
	f := newGuardFixture(t)
	f.guard.Policy = &Policy{Callers: NewLimiter(0.001, 3), Failures: NewLimiter(0.001, 2)}
	g, _ := f.guard.Wrap("GET /api/v1/encounters", echoIdentity)
	do := func(token, remote string) int {
		r := httptest.NewRequest("GET", "/api/v1/encounters", nil)
		r.RemoteAddr = remote
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		return w.Code
	}
	for range 3 {
		if c := do(f.tokens[RoleClinician], "10.0.0.1:1"); c != 200 {
			t.Fatalf("within the limit: %d", c)
		}
	}
	if c := do(f.tokens[RoleClinician], "10.0.0.1:1"); c != 429 {
		t.Fatalf("over the limit: %d", c)
	}
	if c := do(f.tokens[RoleAuditor], "10.0.0.1:1"); c != 200 {
		t.Fatalf("another caller: %d", c)
	}
	// Failed authentications per client address.
	if do("bad", "10.0.0.2:5") != 401 || do("bad", "10.0.0.2:6") != 401 || do("bad", "10.0.0.2:7") != 429 {
		t.Fatal("failed authentications are not limited")
	}
	if do("bad", "10.0.0.3:1") != 401 {
		t.Fatal("another address is limited")
	}
}

func TestForwardingRouteIgnoresAuthorization(t *testing.T) {
	f := newGuardFixture(t)
	const chat = "POST /v1/chat/completions"
	r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader("{}"))
	r.Header.Set("Authorization", "Bearer "+f.tokens[RolePipeline])
	if w := f.serve(t, chat, echoIdentity, r); w.Code != 401 {
		t.Fatalf("the upstream's Authorization header was read as a ledger credential: %d", w.Code)
	}
	r = httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader("{}"))
	r.Header.Set("Authorization", "Bearer sk-upstream-key")
	r.Header.Set("X-Evidence-Authorization", "Bearer "+f.tokens[RolePipeline])
	if w := f.serve(t, chat, echoIdentity, r); w.Code != 200 || w.Body.String() != "t/pipeline/s-pipeline" {
		t.Fatalf("X-Evidence-Authorization: %d %s", w.Code, w.Body)
	}
}

func TestSessions(t *testing.T) {
	f := newGuardFixture(t)
	s := f.guard.Sessions
	mux := http.NewServeMux()
	for pattern, h := range map[string]http.Handler{
		"POST /api/v1/session":              http.HandlerFunc(s.SignIn),
		"GET /api/v1/session":               http.HandlerFunc(s.Whoami),
		"DELETE /api/v1/session":            http.HandlerFunc(s.SignOut),
		"GET /api/v1/encounters/{id}/audio": echoIdentity,
		"GET /api/v1/encounters/{id}/note":  echoIdentity,
	} {
		g, err := f.guard.Wrap(pattern, h)
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle(pattern, g)
	}
	do := func(method, target, token string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		for _, c := range cookies {
			r.AddCookie(c)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	w := do("POST", "/api/v1/session", f.tokens[RoleClinician])
	if w.Code != 200 {
		t.Fatalf("sign in: %d %s", w.Code, w.Body)
	}
	var who struct {
		Identity struct{ Tenant, Role, Subject string }
	}
	json.Unmarshal(w.Body.Bytes(), &who)
	if who.Identity.Role != RoleClinician || who.Identity.Tenant != "t" {
		t.Fatalf("sign-in answer %s", w.Body)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != SessionCookiePath || c.MaxAge <= 0 {
		t.Fatalf("cookie %+v", c)
	}
	if strings.Contains(c.Value, f.tokens[RoleClinician]) {
		t.Fatal("the cookie holds the token")
	}
	// The cookie opens audio, and nothing else.
	if w := do("GET", "/api/v1/encounters/e/audio", "", c); w.Code != 200 || w.Body.String() != "t/clinician/s-clinician" {
		t.Fatalf("audio with the cookie: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/api/v1/encounters/e/note", "", c); w.Code != 401 {
		t.Fatalf("the cookie opened a JSON route: %d", w.Code)
	}
	if w := do("GET", "/api/v1/encounters/e/audio", "", &http.Cookie{Name: SessionCookie, Value: "forged"}); w.Code != 401 {
		t.Fatalf("forged cookie: %d", w.Code)
	}
	// Revoking the token ends its sessions.
	list, _ := ListTokens(f.path)
	for _, r := range list {
		if r.Role == RoleClinician {
			RevokeToken(f.path, r.ID)
		}
	}
	waitFor(t, func() bool { return do("GET", "/api/v1/encounters/e/audio", "", c).Code == 401 })
	// Sign-out ends a session.
	w = do("POST", "/api/v1/session", f.tokens[RoleAuditor])
	c = w.Result().Cookies()[0]
	if do("GET", "/api/v1/encounters/e/audio", "", c).Code != 200 {
		t.Fatal("auditor session")
	}
	if w := do("DELETE", "/api/v1/session", "", c); w.Code != 204 || w.Result().Cookies()[0].MaxAge >= 0 {
		t.Fatalf("sign out: %d", w.Code)
	}
	if do("GET", "/api/v1/encounters/e/audio", "", c).Code != 401 {
		t.Fatal("the session outlived sign-out")
	}
}

func TestDemoSignIn(t *testing.T) {
	f := newGuardFixture(t)
	d := &DemoSignIn{Tokens: map[string]string{RoleClinician: f.tokens[RoleClinician], RoleAuditor: f.tokens[RoleAuditor]},
		Auth: f.guard.Auth, Sessions: f.guard.Sessions}
	w := httptest.NewRecorder()
	d.Roles(w, httptest.NewRequest("GET", "/api/v1/session/demo", nil))
	if !strings.Contains(w.Body.String(), `["clinician","auditor"]`) {
		t.Fatalf("roles %s", w.Body)
	}
	w = httptest.NewRecorder()
	d.SignIn(w, httptest.NewRequest("POST", "/api/v1/session/demo", strings.NewReader(`{"role":"auditor"}`)))
	var out struct {
		Token    string
		Identity struct{ Role string }
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code != 200 || out.Token != f.tokens[RoleAuditor] || out.Identity.Role != RoleAuditor || len(w.Result().Cookies()) != 1 {
		t.Fatalf("demo sign-in: %d %s", w.Code, w.Body)
	}
	for _, body := range []string{`{"role":"admin"}`, `{"role":"root"}`, `{`, ``} {
		w = httptest.NewRecorder()
		d.SignIn(w, httptest.NewRequest("POST", "/api/v1/session/demo", strings.NewReader(body)))
		if w.Code == 200 {
			t.Errorf("%s: signed in", body)
		}
	}
}
