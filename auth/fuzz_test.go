package auth

import (
	"context"
	"crypto/ed25519"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestForwardedIdentityRoundTrip(t *testing.T) {
	for _, id := range []Identity{
		alice,
		{Tenant: "a/b", Subject: "c/d:e@f+g", Role: RolePipeline},
		{Tenant: OperatorTenant, Subject: "ops", Role: RoleAdmin},
	} {
		got, err := ParseIdentity(FormatIdentity(id))
		if err != nil || got != id {
			t.Errorf("%+v: %+v %v", id, got, err)
		}
	}
	for _, s := range []string{"", "a/b", "a/clinician/b/c", "a/root/b", "%zz/clinician/b", "*/pipeline/x", "a b/clinician/c"} {
		if _, err := ParseIdentity(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if FromInProcess(nil) || !FromInProcess(NewInProcessListener().Addr()) {
		t.Fatal("FromInProcess")
	}
}

// Fuzzing of every parser of untrusted input in this package. Each must
// return an error, never panic; a success must yield a valid identity.

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Basic x", "Bearer =", "Bearer a==", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := ParseBearer(h)
		if ok && (tok == "" || strings.ContainsAny(tok, " \t\r\n")) {
			t.Fatalf("%q -> %q", h, tok)
		}
	})
}

func FuzzParseIdentity(f *testing.F) {
	f.Add("clinic-a/clinician/dr.a")
	f.Add("%2A/auditor/ops")
	f.Add("a%2Fb/pipeline/c")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err == nil {
			if id.Validate() != nil {
				t.Fatalf("%q -> invalid %+v", s, id)
			}
			if back, err := ParseIdentity(FormatIdentity(id)); err != nil || back != id {
				t.Fatalf("%+v does not round-trip", id)
			}
		}
	})
}

func FuzzParseIdentityURI(f *testing.F) {
	f.Add("evidence://st-marys/pipeline/svc:asr")
	f.Add("evidence://*/auditor/w")
	f.Add("evidence://a:1/b/c")
	f.Add("evidence:///clinician/x")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		id, err := ParseIdentityURI(u)
		if err == nil && id.Validate() != nil {
			t.Fatalf("%q -> invalid %+v", s, id)
		}
	})
}

func FuzzParseTokenFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"tokens":[]}`))
	f.Add([]byte(`{"version":1,"tokens":[{"id":"tok_1","sha256":"` + strings.Repeat("ab", 32) + `","tenant":"t","role":"admin","subject":"s","created":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"tokens":[{"id":"tok_1","sha256":"x","expires":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tf, err := parseTokenFile(b)
		if err != nil {
			return
		}
		for _, r := range tf.Tokens {
			if r.Identity().Validate() != nil || len(r.SHA256) != 64 {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}

func FuzzTokenStore(f *testing.F) {
	path := filepath.Join(f.TempDir(), TokensFileName)
	tok, _, err := CreateToken(path, alice, TokenOptions{})
	if err != nil {
		f.Fatal(err)
	}
	s, err := OpenTokenStore(path, nil)
	if err != nil {
		f.Fatal(err)
	}
	a := &Authenticators{Tokens: s}
	f.Add(tok)
	f.Add(TokenPrefix)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, bearer string) {
		id, err := a.Authenticate(context.Background(), Credentials{Bearer: bearer})
		if err == nil && (bearer != tok || id != alice) {
			t.Fatalf("%q accepted as %+v", bearer, id)
		}
	})
}

// FuzzJWT feeds arbitrary strings, and mutations of a valid token, to the
// verifier. Nothing but the valid token may verify.
func FuzzJWT(f *testing.F) {
	dir := f.TempDir()
	p := newFuzzProvider(f)
	jwks := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwks, p.jwks, 0o644)
	v, err := NewJWTVerifier(JWTConfig{Issuer: "https://idp.example", Audience: "evidence", JWKSFile: jwks})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.token)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(strings.Repeat(".", 2))
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(context.Background(), tok)
		if err == nil && id.Validate() != nil {
			t.Fatalf("invalid identity %+v", id)
		}
	})
}

type fuzzProvider struct {
	jwks  []byte
	token string
}

// newFuzzProvider signs one token with a fixed Ed25519 key, without the
// authtest package (which imports this one).
func newFuzzProvider(f *testing.F) fuzzProvider {
	seed := make([]byte, 32)
	key := jose.JSONWebKey{Key: ed25519Key(seed), KeyID: "k", Algorithm: string(jose.EdDSA)}
	pub, err := key.Public().MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, nil)
	if err != nil {
		f.Fatal(err)
	}
	obj, err := signer.Sign([]byte(`{"iss":"https://idp.example","aud":"evidence","sub":"s","tenant":"t","role":"auditor","exp":4102444800}`))
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := obj.CompactSerialize()
	return fuzzProvider{jwks: []byte(`{"keys":[` + string(pub) + `]}`), token: tok}
}

func ed25519Key(seed []byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seed) }
