package auth_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/auth/authtest"
)

func TestIdentityFromCertificate(t *testing.T) {
	ca := authtest.NewCA(t, "test CA")
	want := auth.Identity{Tenant: "st-marys", Role: auth.RolePipeline, Subject: "svc:asr/eu-1"}
	c := ca.Client(t, want)
	if c.Cert.URIs[0].String() != "evidence://st-marys/pipeline/svc:asr/eu-1" {
		t.Fatalf("URI %s", c.Cert.URIs[0])
	}
	got, err := auth.IdentityFromCertificate(c.Cert)
	if err != nil || got != want {
		t.Fatalf("%+v %v", got, err)
	}
	op := auth.Identity{Tenant: auth.OperatorTenant, Role: auth.RoleAuditor, Subject: "witness"}
	if got, err := auth.IdentityFromCertificate(ca.Client(t, op).Cert); err != nil || got != op {
		t.Fatalf("operator: %+v %v", got, err)
	}
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, uris := range [][]*url.URL{
		nil,
		{u("spiffe://st-marys/svc")},
		{u("evidence://st-marys/pipeline/a"), u("evidence://other/pipeline/a")},
		{u("evidence://st-marys/root/a")},
		{u("evidence://st-marys/pipeline")},
		{u("evidence://st-marys/pipeline/")},
		{u("evidence://st-marys:443/pipeline/a")},
		{u("evidence://user@st-marys/pipeline/a")},
		{u("evidence://st-marys/pipeline/a?x=1")},
		{u("evidence://st-marys/pipeline/a#f")},
		{u("evidence:st-marys/pipeline/a")},
		{u("evidence://*/pipeline/a")}, // operator pipelines do not exist
		{u("evidence://st_marys!/pipeline/a")},
	} {
		c := ca.Issue(t, "x", authtest.CertOptions{Client: true, URIs: uris})
		if id, err := auth.IdentityFromCertificate(c.Cert); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%v: %+v %v", uris, id, err)
		}
	}
	// SANs of other schemes sit beside the identity without harm.
	c = ca.Issue(t, "x", authtest.CertOptions{Client: true, URIs: []*url.URL{u("spiffe://x/y"), auth.CertificateURI(want)}})
	if got, err := auth.IdentityFromCertificate(c.Cert); err != nil || got != want {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestAuthenticatorsChoose(t *testing.T) {
	ca := authtest.NewCA(t, "test CA")
	svc := auth.Identity{Tenant: "st-marys", Role: auth.RolePipeline, Subject: "svc:asr"}
	cert := ca.Client(t, svc).Cert
	a := &auth.Authenticators{}
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, auth.Credentials{Certificate: cert}); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatal("a certificate was accepted with certificates off")
	}
	a.Certificates = true
	if id, err := a.Authenticate(ctx, auth.Credentials{Certificate: cert}); err != nil || id != svc {
		t.Fatalf("%v %v", id, err)
	}
	// A bearer token decides when present, even beside a good certificate.
	for _, bearer := range []string{auth.TokenPrefix + "nope", "a.b.c", "x"} {
		if _, err := a.Authenticate(ctx, auth.Credentials{Certificate: cert, Bearer: bearer}); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("bearer %q: %v", bearer, err)
		}
	}
	if _, err := a.Authenticate(ctx, auth.Credentials{}); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatal(err)
	}
}

func TestParseBearer(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer abc":          "abc",
		"bearer abc":          "abc",
		"BEARER a.b-c_d~e+f/": "a.b-c_d~e+f/",
		"Bearer abc==":        "abc==",
	} {
		if got, ok := auth.ParseBearer(h); !ok || got != want {
			t.Errorf("%q: %q %v", h, got, ok)
		}
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic abc", "Bearer a b", "Bearer a=b", "Bearer =", "Bearer a\x00", "Bearerabc", "Bearer  abc"} {
		if got, ok := auth.ParseBearer(h); ok {
			t.Errorf("%q accepted as %q", h, got)
		}
	}
}
