package auth

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
)

// Credentials are what a request presents.
type Credentials struct {
	// Bearer is the token of an "Authorization: Bearer" header (or
	// metadata), without the scheme.
	Bearer string
	// Certificate is the leaf of the client's certificate chain, set only
	// when the TLS handshake verified the chain against the configured
	// client CAs.
	Certificate *x509.Certificate
}

// Authenticator establishes who presents c. It returns an error wrapping
// ErrUnauthenticated when c holds nothing it accepts. Implementations are
// safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, c Credentials) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	return f(ctx, c)
}

// MaxBearerLen caps a bearer token; longer ones are refused unread.
const MaxBearerLen = 8 << 10

// Authenticators is the server's Authenticator: opaque tokens, OIDC/JWT
// tokens and client certificates. A bearer token, when present, decides:
// tokens with TokenPrefix go to Tokens, any other to JWT. Without one, a
// verified client certificate decides when Certificates is set. Every
// identity is validated before it is returned.
type Authenticators struct {
	Tokens       *TokenStore  // nil: no opaque tokens
	JWT          *JWTVerifier // nil: no JWTs
	Certificates bool         // accept verified client certificates
}

// Authenticate implements Authenticator.
func (a *Authenticators) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	var (
		id  Identity
		err error
	)
	switch {
	case c.Bearer != "" && len(c.Bearer) > MaxBearerLen:
		err = fmt.Errorf("%w: bearer token too long", ErrUnauthenticated)
	case c.Bearer != "" && strings.HasPrefix(c.Bearer, TokenPrefix):
		if a.Tokens == nil {
			return Identity{}, fmt.Errorf("%w: tokens are not configured", ErrUnauthenticated)
		}
		id, err = a.Tokens.Authenticate(c.Bearer)
	case c.Bearer != "":
		if a.JWT == nil {
			return Identity{}, fmt.Errorf("%w: not a token this server issued", ErrUnauthenticated)
		}
		id, err = a.JWT.Verify(ctx, c.Bearer)
	case c.Certificate != nil && a.Certificates:
		id, err = IdentityFromCertificate(c.Certificate)
	default:
		return Identity{}, fmt.Errorf("%w: no credentials", ErrUnauthenticated)
	}
	if err != nil {
		return Identity{}, err
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// ParseBearer returns the token of an Authorization header value
// "Bearer <token>" (the scheme is case-insensitive, RFC 9110 section
// 11.1). The token must be RFC 6750 token68 bytes.
func ParseBearer(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > MaxBearerLen {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		case c == '=' && i > 0:
			// padding, only at the end
			for _, p := range tok[i:] {
				if p != '=' {
					return "", false
				}
			}
			return tok, true
		default:
			return "", false
		}
	}
	return tok, true
}
