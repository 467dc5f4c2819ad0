// Package authtest makes credentials for tests: a certificate authority
// that issues server and client certificates (with the evidence:// URI
// SAN of package auth), and an OIDC provider's signing keys with a JWKS.
// Everything is generated in memory; nothing here is for production.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/evidenceledger/evidence/auth"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte
}

// NewCA returns a new self-signed CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Pool returns a pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issued is a certificate and its key.
type Issued struct {
	Cert    *x509.Certificate
	TLS     tls.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// CertOptions shape an issued certificate.
type CertOptions struct {
	DNS       []string
	IPs       []net.IP
	URIs      []*url.URL
	Client    bool // extended key usage client auth (else server auth)
	NotBefore time.Time
	NotAfter  time.Time
}

// Issue returns a certificate signed by ca.
func (ca *CA) Issue(t testing.TB, cn string, o CertOptions) *Issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(12 * time.Hour)
	}
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     o.DNS,
		IPAddresses:  o.IPs,
		URIs:         o.URIs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := &Issued{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
	out.TLS = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
	return out
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost.
func (ca *CA) Server(t testing.TB) *Issued {
	return ca.Issue(t, "localhost", CertOptions{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
}

// Client issues a client certificate naming id.
func (ca *CA) Client(t testing.TB, id auth.Identity) *Issued {
	return ca.Issue(t, id.Subject, CertOptions{Client: true, URIs: []*url.URL{auth.CertificateURI(id)}})
}

// WriteFiles writes the certificate and key as PEM files in dir (the key
// mode 0600) and returns their paths.
func (i *Issued) WriteFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, i.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, i.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// WriteFile writes the CA certificate as a PEM file in dir.
func (ca *CA) WriteFile(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name+".crt")
	if err := os.WriteFile(p, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Provider is an OIDC provider's signing key.
type Provider struct {
	Issuer string
	Key    jose.JSONWebKey // private
	signer jose.Signer
}

// NewProvider returns a provider with a new key of the given algorithm
// (jose.ES256, jose.RS256 or jose.EdDSA) and key id.
func NewProvider(t testing.TB, issuer string, alg jose.SignatureAlgorithm, kid string) *Provider {
	t.Helper()
	var key any
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		key, err = rsaKey()
	case jose.EdDSA:
		key, err = edKey()
	default:
		t.Fatalf("authtest: algorithm %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(alg), Use: "sig"}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwk}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return &Provider{Issuer: issuer, Key: jwk, signer: signer}
}

// JWKS returns the key sets's JSON with the public halves of providers'
// keys.
func JWKS(t testing.TB, ps ...*Provider) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, p := range ps {
		set.Keys = append(set.Keys, p.Key.Public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Sign returns a signed JWT with the standard claims and extra.
func (p *Provider) Sign(t testing.TB, std jwt.Claims, extra map[string]any) string {
	t.Helper()
	s, err := jwt.Signed(p.signer).Claims(std).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Token returns a JWT for id from p, for audience aud, valid for an hour.
func (p *Provider) Token(t testing.TB, aud string, id auth.Identity) string {
	now := time.Now()
	return p.Sign(t, jwt.Claims{Issuer: p.Issuer, Subject: id.Subject, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))},
		map[string]any{"tenant": id.Tenant, "role": id.Role})
}

func rsaKey() (any, error) { return rsa.GenerateKey(rand.Reader, 2048) }

func edKey() (any, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return k, err
}
