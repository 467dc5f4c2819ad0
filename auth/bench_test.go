package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/auth/authtest"
)

// go test ./auth -run '^$' -bench . -benchtime 2s

func BenchmarkTokenAuthenticate(b *testing.B) {
	path := filepath.Join(b.TempDir(), auth.TokensFileName)
	for range 999 {
		auth.CreateToken(path, drLee, auth.TokenOptions{})
	}
	tok, _, _ := auth.CreateToken(path, drLee, auth.TokenOptions{})
	s, err := auth.OpenTokenStore(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := &auth.Authenticators{Tokens: s}
	ctx := context.Background()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, auth.Credentials{Bearer: tok}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			p := authtest.NewProvider(b, issuer, alg, "k1")
			f := filepath.Join(b.TempDir(), "jwks.json")
			os.WriteFile(f, authtest.JWKS(b, p), 0o644)
			v, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: issuer, Audience: audience, JWKSFile: f})
			if err != nil {
				b.Fatal(err)
			}
			tok := p.Token(b, audience, drLee)
			ctx := context.Background()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGuard(b *testing.B) {
	path := filepath.Join(b.TempDir(), auth.TokensFileName)
	tok, _, _ := auth.CreateToken(path, drLee, auth.TokenOptions{})
	s, _ := auth.OpenTokenStore(path, nil)
	g := &auth.Guard{Auth: &auth.Authenticators{Tokens: s}, Policy: &auth.Policy{Callers: auth.NewLimiter(1e9, 1e9)}}
	h, err := g.Wrap("GET /api/v1/encounters/{id}/note", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/v1/encounters/e/note", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
