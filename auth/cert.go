package auth

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// CertURIScheme is the scheme of the URI SAN that names a certificate's
// identity:
//
//	evidence://<tenant>/<role>/<subject>
//
// for example evidence://st-marys/pipeline/svc:asr. The tenant is the URI's
// host, so a certificate's tenant must be a valid DNS-like label sequence:
// letters, digits, '.', '-', '_' and '+' (no ':', '@' or '/'); "*" is
// OperatorTenant. The role is the first path segment and the subject is
// the rest of the path, path-unescaped, so it may hold '/'. A certificate
// must carry exactly one URI SAN of this scheme; other SANs (DNS names,
// other URIs such as SPIFFE ids) are ignored.
const CertURIScheme = "evidence"

// CertificateURI returns the URI SAN that names id, for issuing a client
// certificate.
func CertificateURI(id Identity) *url.URL {
	return &url.URL{Scheme: CertURIScheme, Host: id.Tenant, Path: "/" + id.Role + "/" + id.Subject}
}

// IdentityFromCertificate returns the identity a client certificate names
// in its evidence:// URI SAN. The caller must have verified the
// certificate's chain against the client CAs it trusts (crypto/tls does,
// with tls.VerifyClientCertIfGiven or RequireAndVerifyClientCert, before
// it lists the chain in VerifiedChains); this function only reads it.
func IdentityFromCertificate(cert *x509.Certificate) (Identity, error) {
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme != CertURIScheme {
			continue
		}
		if found != nil {
			return Identity{}, fmt.Errorf("%w: the certificate has more than one %s:// URI", ErrUnauthenticated, CertURIScheme)
		}
		found = u
	}
	if found == nil {
		return Identity{}, fmt.Errorf("%w: the certificate has no %s:// URI SAN", ErrUnauthenticated, CertURIScheme)
	}
	return ParseIdentityURI(found)
}

// ParseIdentityURI parses an evidence://<tenant>/<role>/<subject> URI
// strictly: no user, port, query or fragment, and a valid identity.
func ParseIdentityURI(u *url.URL) (Identity, error) {
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: certificate identity URI: %s", ErrUnauthenticated, why)
	}
	if u.Scheme != CertURIScheme || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return bad("want " + CertURIScheme + "://<tenant>/<role>/<subject>")
	}
	if u.Port() != "" || strings.Contains(u.Host, ":") {
		return bad("the tenant must not hold ':'")
	}
	role, subject, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || !strings.HasPrefix(u.Path, "/") {
		return bad("want " + CertURIScheme + "://<tenant>/<role>/<subject>")
	}
	id := Identity{Tenant: u.Host, Role: role, Subject: subject}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}
