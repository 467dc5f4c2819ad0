package auth

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"google.golang.org/grpc/test/bufconn"
)

// ForwardedIdentityKey is the gRPC metadata key in which the JSON gateway
// passes on the identity that the HTTP middleware established. The server
// believes it only on an in-process connection (InProcessListener), which
// nothing outside the process can open; the gateway sets it from the
// request's context and never copies it from a client's headers.
const ForwardedIdentityKey = "x-evidence-identity"

// FormatIdentity encodes id for ForwardedIdentityKey:
// "<tenant>/<role>/<subject>", each part path-escaped.
func FormatIdentity(id Identity) string {
	return url.PathEscape(id.Tenant) + "/" + url.PathEscape(id.Role) + "/" + url.PathEscape(id.Subject)
}

// ParseIdentity decodes FormatIdentity's output and validates it.
func ParseIdentity(s string) (Identity, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("%w: malformed forwarded identity", ErrUnauthenticated)
	}
	var out [3]string
	for i, p := range parts {
		v, err := url.PathUnescape(p)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: malformed forwarded identity", ErrUnauthenticated)
		}
		out[i] = v
	}
	id := Identity{Tenant: out[0], Role: out[1], Subject: out[2]}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// InProcessListener is a net.Listener whose connections can only be made
// from inside the process, by its Dial method: the JSON gateway's (and
// the demo loader's) way to the gRPC server. It needs no TLS, since no
// byte leaves the process, and connections from it are told from network
// ones by their address (FromInProcess).
type InProcessListener struct {
	l *bufconn.Listener
}

// NewInProcessListener returns a listener with 1 MiB of buffer per
// connection direction.
func NewInProcessListener() *InProcessListener {
	return &InProcessListener{l: bufconn.Listen(1 << 20)}
}

// inProcessAddr is the address of both ends of an in-process connection.
// It is unexported, so no other package can make one.
type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "inprocess" }
func (inProcessAddr) String() string  { return "in-process" }

type inProcessConn struct{ net.Conn }

func (inProcessConn) LocalAddr() net.Addr  { return inProcessAddr{} }
func (inProcessConn) RemoteAddr() net.Addr { return inProcessAddr{} }

// Accept implements net.Listener.
func (l *InProcessListener) Accept() (net.Conn, error) {
	c, err := l.l.Accept()
	if err != nil {
		return nil, err
	}
	return inProcessConn{c}, nil
}

// Close implements net.Listener.
func (l *InProcessListener) Close() error { return l.l.Close() }

// Addr implements net.Listener.
func (l *InProcessListener) Addr() net.Addr { return inProcessAddr{} }

// Dial opens a connection to the listener; use it as a gRPC context
// dialer with the target "passthrough:///in-process".
func (l *InProcessListener) Dial(ctx context.Context, _ string) (net.Conn, error) {
	c, err := l.l.DialContext(ctx)
	if err != nil {
		return nil, err
	}
	return inProcessConn{c}, nil
}

// FromInProcess reports whether addr, a connection's remote address, is
// that of an InProcessListener connection.
func FromInProcess(addr net.Addr) bool {
	_, ok := addr.(inProcessAddr)
	return ok
}
