package web_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/gateway"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/web"
)

// guardMux registers every route through an auth.Guard, as evidenced
// does.
type guardMux struct {
	t     testing.TB
	mux   *http.ServeMux
	guard *auth.Guard
}

func (m guardMux) Handle(pattern string, h http.Handler) {
	g, err := m.guard.Wrap(pattern, h)
	if err != nil {
		m.t.Fatal(err)
	}
	m.mux.Handle(pattern, g)
}

func (m guardMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// secureStack is the server with evidenced's security: tokens, the HTTP
// guard on every route, the gRPC policy, the gateway on an in-process
// connection that forwards the guard's identity, and the session routes;
// with demo sign-in when demo is set. It holds one visit of the demo
// tenant and returns its id and the tokens by role.
func secureStack(t *testing.T, demoSignIn bool) (string, string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	tokensPath := filepath.Join(dir, auth.TokensFileName)
	tokens := map[string]string{}
	for _, role := range auth.Roles {
		tok, _, err := auth.CreateToken(tokensPath, auth.Identity{Tenant: "demo", Role: role, Subject: role + ".demo"}, auth.TokenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
	}
	store, err := auth.OpenTokenStore(tokensPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	authn := &auth.Authenticators{Tokens: store}
	sessions := auth.NewSessions(time.Hour, false)
	guard := &auth.Guard{Auth: authn, Policy: &auth.Policy{}, Sessions: sessions}

	key, _ := ledger.LoadOrCreateKey(dir, "evidence.localhost/log")
	ms := memstore.New()
	l, err := ledger.Open(ms, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	svc := encounter.New(l.Log, l, blob.New(ms, nil))
	inproc := auth.NewInProcessListener()
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: svc, Policy: &auth.Policy{},
		Auth: func(ctx context.Context, _ string) (auth.Identity, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			if p, ok := peer.FromContext(ctx); ok && auth.FromInProcess(p.Addr) && len(md.Get(auth.ForwardedIdentityKey)) == 1 {
				return auth.ParseIdentity(md.Get(auth.ForwardedIdentityKey)[0])
			}
			return auth.Identity{}, auth.ErrUnauthenticated
		}})
	go gs.Serve(inproc)
	conn, err := grpc.NewClient("passthrough:///in-process", grpc.WithContextDialer(inproc.Dial), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	mux := guardMux{t: t, mux: http.NewServeMux(), guard: guard}
	gateway.New(conn).Register(mux)
	web.New(web.Options{Audio: svc, Caller: func(r *http.Request) (encounter.Caller, error) {
		id, ok := auth.FromContext(r.Context())
		if !ok {
			return encounter.Caller{}, web.ErrUnauthenticated
		}
		return encounter.Caller{Tenant: id.Tenant, Actor: id.Subject}, nil
	}}).Register(mux)
	mux.HandleFunc("GET /api/v1/session", sessions.Whoami)
	mux.HandleFunc("POST /api/v1/session", sessions.SignIn)
	mux.HandleFunc("DELETE /api/v1/session", sessions.SignOut)
	if demoSignIn {
		d := &auth.DemoSignIn{Tokens: map[string]string{auth.RoleClinician: tokens[auth.RoleClinician], auth.RoleAuditor: tokens[auth.RoleAuditor]}, Auth: authn, Sessions: sessions}
		mux.HandleFunc("GET /api/v1/session/demo", d.Roles)
		mux.HandleFunc("POST /api/v1/session/demo", d.SignIn)
	}
	hs := httptest.NewServer(mux.mux)
	t.Cleanup(func() { hs.Close(); conn.Close(); gs.Stop(); l.Close(); ms.Close() })

	v, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := encounter.Caller{Tenant: "demo", Actor: "svc:test"}
	info, _, err := svc.Create(context.Background(), c, v.Title, "demo-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.RecordAudio(context.Background(), c, info.ID, encounter.Audio{MediaType: demo.MediaType, Codec: "opus", DurationMS: v.Audio.DurationMS}, bytes.NewReader(v.Audio.Data)); err != nil {
		t.Fatal(err)
	}
	return hs.URL, info.ID, tokens
}

// TestSignIn drives the sign-in screen: a demo server signs the page in
// as the demo clinician by itself, the audio element's cookie works and
// is HttpOnly, sign-out ends the session and shows the screen without
// signing in again, a bad token is refused, a pasted token signs in; a
// server without demo sign-in shows the screen alone.
func TestSignIn(t *testing.T) {
	url, id, tokens := secureStack(t, true)
	tb := newTab(t, 1280, 800)
	tb.do(chromedp.Navigate(url + "/"))
	tb.wait(`document.querySelector('.visit-card') !== null`, 15*time.Second)
	if who := eval[string](tb, `document.getElementById('account-who').textContent`); !strings.HasPrefix(who, "Clinician") {
		t.Fatalf("signed in as %q", who)
	}
	if c := eval[string](tb, `document.cookie`); strings.Contains(c, auth.SessionCookie) {
		t.Fatal("the session cookie is readable by scripts")
	}
	audio := fmt.Sprintf(`fetch('/api/v1/encounters/%s/audio', {headers: {Range: 'bytes=0-3'}}).then((r) => r.status)`, id)
	if st := eval[int](tb, audio); st != 206 {
		t.Fatalf("audio with the session cookie: %d", st)
	}
	// The visit's player gets the recording through the cookie.
	tb.do(chromedp.Navigate(url + "/encounters/" + id))
	tb.wait(`document.querySelector('audio').readyState >= 1 && document.querySelector('audio').duration > 0`, 15*time.Second)

	// Sign out: the screen, with the demo people, and no automatic sign-in.
	// Sign-out reloads the page: wait for the old one to go first.
	eval[bool](tb, `window.beforeSignOut = true`)
	tb.do(chromedp.Click(chromedp.CSS(`#sign-out`)))
	waitNavigated(tb)
	tb.wait(`document.getElementById('sign-in-form') !== null && document.getElementById('demo-auditor') !== null`, 15*time.Second)
	if st := eval[int](tb, audio); st != 401 {
		t.Fatalf("audio after sign-out: %d", st)
	}
	if eval[bool](tb, `sessionStorage.getItem('evidence.token') !== null`) {
		t.Fatal("the token outlived sign-out")
	}
	// A bad token is refused; a good one signs in.
	tb.do(chromedp.SendKeys(chromedp.CSS(`#token-input`), auth.GenerateToken()), chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)))
	tb.wait(`!document.getElementById('sign-in-error').hidden`, 10*time.Second)
	tb.do(chromedp.SetValue(chromedp.CSS(`#token-input`), tokens[auth.RoleAuditor]), chromedp.Click(chromedp.CSS(`#sign-in-form button[type=submit]`)))
	tb.wait(`document.querySelector('.visit-card') !== null && document.getElementById('account-who').textContent.startsWith('Auditor')`, 15*time.Second)

	// Without demo sign-in: the screen, and nothing else.
	url2, _, _ := secureStack(t, false)
	tb2 := newTab(t, 1280, 800)
	tb2.do(chromedp.Navigate(url2 + "/"))
	tb2.wait(`document.getElementById('sign-in-form') !== null`, 15*time.Second)
	if eval[bool](tb2, `document.querySelector('.sign-in-demo') !== null`) {
		t.Fatal("demo sign-in offered by a server without it")
	}
	tb2.screenshot("sign-in")
}

// waitNavigated waits until the page marked with window.beforeSignOut
// has been replaced by a new one.
func waitNavigated(tb *tab) {
	tb.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if still, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`window.beforeSignOut === true`)); err == nil && !still {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatal("the page did not reload after sign-out")
}
