package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/auth/authtest"
)

const (
	issuer   = "https://idp.example/realms/st-marys"
	audience = "evidence-ledger"
)

var drLee = auth.Identity{Tenant: "st-marys", Subject: "dr.lee@st-marys.example", Role: auth.RoleClinician}

func jwksFile(t *testing.T, ps ...*authtest.Provider) string {
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, authtest.JWKS(t, ps...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJWTVerifier(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			p := authtest.NewProvider(t, issuer, alg, "k1")
			v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: issuer, Audience: audience, JWKSFile: jwksFile(t, p)})
			if err != nil {
				t.Fatal(err)
			}
			id, err := v.Verify(context.Background(), p.Token(t, audience, drLee))
			if err != nil || id != drLee {
				t.Fatalf("%+v %v", id, err)
			}
		})
	}
}

func TestJWTVerifierRefuses(t *testing.T) {
	p := authtest.NewProvider(t, issuer, jose.ES256, "k1")
	other := authtest.NewProvider(t, issuer, jose.ES256, "k1") // same kid, another key
	v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: issuer, Audience: audience, JWKSFile: jwksFile(t, p)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	std := func(mod func(c *jwt.Claims)) jwt.Claims {
		c := jwt.Claims{Issuer: issuer, Subject: drLee.Subject, Audience: jwt.Audience{audience},
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	claims := map[string]any{"tenant": drLee.Tenant, "role": drLee.Role}
	good := p.Token(t, audience, drLee)
	parts := strings.Split(good, ".")
	cases := map[string]string{
		"another key":       other.Token(t, audience, drLee),
		"wrong issuer":      p.Sign(t, std(func(c *jwt.Claims) { c.Issuer = "https://evil.example" }), claims),
		"wrong audience":    p.Sign(t, std(func(c *jwt.Claims) { c.Audience = jwt.Audience{"other"} }), claims),
		"expired":           p.Sign(t, std(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute)) }), claims),
		"no expiry":         p.Sign(t, std(func(c *jwt.Claims) { c.Expiry = nil }), claims),
		"not yet valid":     p.Sign(t, std(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }), claims),
		"no tenant":         p.Sign(t, std(nil), map[string]any{"role": "clinician"}),
		"no role":           p.Sign(t, std(nil), map[string]any{"tenant": "st-marys"}),
		"unknown role":      p.Sign(t, std(nil), map[string]any{"tenant": "st-marys", "role": "root"}),
		"two roles":         p.Sign(t, std(nil), map[string]any{"tenant": "st-marys", "role": []string{"clinician", "admin"}}),
		"bad tenant":        p.Sign(t, std(nil), map[string]any{"tenant": "st marys", "role": "clinician"}),
		"operator pipeline": p.Sign(t, std(nil), map[string]any{"tenant": "*", "role": "pipeline"}),
		"tampered claims":   parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issuer+`","aud":"`+audience+`","sub":"x","tenant":"other","role":"admin","exp":9999999999}`)) + "." + parts[2],
		"no signature":      parts[0] + "." + parts[1] + ".",
		"garbage":           "a.b.c",
		"two parts":         parts[0] + "." + parts[1],
	}
	// alg "none".
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	cases["alg none"] = none + "." + parts[1] + "."
	// HS256 signed with the provider's public key as the secret: the
	// classic algorithm confusion.
	pub, _ := json.Marshal(p.Key.Public())
	hs := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"k1","typ":"JWT"}`))
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(hs + "." + parts[1]))
	cases["HS256 with the public key"] = hs + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	for name, tok := range cases {
		if id, err := v.Verify(context.Background(), tok); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%s: accepted as %+v (%v)", name, id, err)
		} else if strings.Contains(err.Error(), tok) {
			t.Errorf("%s: the error quotes the token", name)
		}
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
}

func TestJWTClaimNames(t *testing.T) {
	p := authtest.NewProvider(t, issuer, jose.ES256, "k1")
	v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: issuer, Audience: audience, JWKSFile: jwksFile(t, p),
		TenantClaim: "https://evidence.example/tenant", RoleClaim: "realm_access.roles", SubjectClaim: "email"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := p.Sign(t, jwt.Claims{Issuer: issuer, Subject: "f81d4fae", Audience: jwt.Audience{audience, "account"}, Expiry: jwt.NewNumericDate(now.Add(time.Minute))},
		map[string]any{"https://evidence.example/tenant": "st-marys", "email": drLee.Subject,
			"realm_access": map[string]any{"roles": []string{"offline_access", "clinician", "uma_authorization"}}})
	if id, err := v.Verify(context.Background(), tok); err != nil || id != drLee {
		t.Fatalf("%+v %v", id, err)
	}
}

// TestJWKSFromURLRotates serves the key set over TLS and rotates the key:
// a token with an unknown key id makes the verifier fetch the set again.
func TestJWKSFromURLRotates(t *testing.T) {
	k1 := authtest.NewProvider(t, issuer, jose.ES256, "k1")
	k2 := authtest.NewProvider(t, issuer, jose.RS256, "k2")
	var current atomic.Pointer[[]byte]
	set1 := authtest.JWKS(t, k1)
	current.Store(&set1)
	var fetches atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(*current.Load())
	}))
	defer srv.Close()
	clock := time.Now()
	var mu atomic.Int64
	mu.Store(clock.UnixNano())
	now := func() time.Time { return time.Unix(0, mu.Load()) }
	v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: issuer, Audience: audience, JWKSURL: srv.URL + "/jwks", Client: srv.Client(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), k1.Token(t, audience, drLee)); err != nil {
		t.Fatal(err)
	}
	set2 := authtest.JWKS(t, k1, k2)
	current.Store(&set2)
	// Within a minute of the last fetch, an unknown kid does not refetch.
	if _, err := v.Verify(context.Background(), k2.Token(t, audience, drLee)); err == nil {
		t.Fatal("verified with a key not yet fetched")
	}
	mu.Add(int64(2 * time.Minute))
	if _, err := v.Verify(context.Background(), k2.Token(t, audience, drLee)); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches", n)
	}
	// Plain http is refused off loopback.
	if _, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: issuer, Audience: audience, JWKSURL: "http://idp.example/jwks"}); err == nil {
		t.Fatal("http JWKS URL accepted")
	}
}

func TestParseJWKSDropsSecrets(t *testing.T) {
	p := authtest.NewProvider(t, issuer, jose.ES256, "k1")
	priv, _ := json.Marshal(p.Key) // the private key
	sym := `{"kty":"oct","k":"c2VjcmV0","kid":"s"}`
	enc, _ := json.Marshal(jose.JSONWebKey{Key: p.Key.Public().Key, KeyID: "e", Use: "enc"})
	if _, err := auth.ParseJWKS([]byte(`{"keys":[` + string(priv) + `,` + sym + `,` + string(enc) + `]}`)); err == nil {
		t.Fatal("a key set of private, symmetric and encryption keys was accepted")
	}
}
