package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/evidenceledger/evidence/ledger"
)

// One TCP port carries both raft and the node-to-node RPCs, as Consul does:
// the first byte of every connection says which (after the TLS handshake
// when TLS is on). Raft uses hashicorp/raft's NetworkTransport over it; the
// RPCs are gRPC with a gob codec, served only on this port, never on the
// public API.
const (
	protoRaft = 'R'
	protoRPC  = 'G'
)

// TCP is the network side of a node: the raft transport and the RPC
// client and server on one listener.
type TCP struct {
	ln        net.Listener
	advertise net.Addr
	tls       *tls.Config // server and client config; nil for plaintext
	raftLn    *chanListener
	rpcLn     *chanListener
	transport *raft.NetworkTransport
	server    *grpc.Server

	mu    sync.Mutex
	conns map[raft.ServerAddress]*grpc.ClientConn
}

// NewTCP listens on bind for raft and RPC traffic. advertise is the
// address other nodes dial (bind's address when empty). With tlsConfig the
// port speaks TLS only and requires client certificates from the same CA
// (set ClientAuth and ClientCAs, RootCAs and Certificates): every node is
// both server and client. Without it the port is plaintext, which is only
// safe on loopback or a private network.
func NewTCP(bind, advertise string, tlsConfig *tls.Config, logger *slog.Logger) (*TCP, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	t := &TCP{ln: ln, tls: tlsConfig, conns: make(map[raft.ServerAddress]*grpc.ClientConn)}
	t.advertise = ln.Addr()
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, err
		}
		t.advertise = a
	}
	t.raftLn = newChanListener(t.advertise)
	t.rpcLn = newChanListener(t.advertise)
	go t.accept()
	t.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &streamLayer{t: t}, MaxPool: 4, Timeout: 10 * time.Second, Logger: hclogger(logger),
	})
	return t, nil
}

// Transport returns the raft transport.
func (t *TCP) Transport() raft.Transport { return t.transport }

// Serve serves node-to-node RPCs for n until Close.
func (t *TCP) Serve(n *Node) {
	t.server = grpc.NewServer(grpc.ForceServerCodec(gobCodec{}), grpc.MaxRecvMsgSize(256<<20))
	t.server.RegisterService(&rpcDesc, n)
	go t.server.Serve(t.rpcLn)
}

// Close stops the listener, the RPC server and the transport.
func (t *TCP) Close() error {
	if t.server != nil {
		t.server.Stop()
	}
	t.mu.Lock()
	for _, c := range t.conns {
		c.Close()
	}
	t.conns = nil
	t.mu.Unlock()
	err := t.ln.Close()
	t.transport.Close()
	t.raftLn.Close()
	t.rpcLn.Close()
	return err
}

func (t *TCP) accept() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go t.route(c)
	}
}

// route reads the protocol byte of an accepted connection and hands it
// to raft or the RPC server.
func (t *TCP) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if t.tls != nil {
		tc := tls.Server(c, t.tls)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
		c = tc
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch b[0] {
	case protoRaft:
		t.raftLn.push(c)
	case protoRPC:
		t.rpcLn.push(c)
	default:
		c.Close()
	}
}

// dial connects to a node for protocol proto.
func (t *TCP) dial(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if t.tls != nil {
		cfg := t.tls.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Call implements Peers over gRPC.
func (t *TCP) Call(ctx context.Context, addr raft.ServerAddress, req *Request) (*Response, error) {
	t.mu.Lock()
	if t.conns == nil {
		t.mu.Unlock()
		return nil, ledger.ErrClosed
	}
	conn := t.conns[addr]
	if conn == nil {
		var err error
		conn, err = grpc.NewClient("passthrough:///"+string(addr),
			grpc.WithTransportCredentials(insecure.NewCredentials()), // TLS, if any, is in the dialer
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return t.dial(ctx, a, protoRPC) }),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(gobCodec{}), grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(256<<20)))
		if err != nil {
			t.mu.Unlock()
			return nil, err
		}
		t.conns[addr] = conn
	}
	t.mu.Unlock()
	resp := new(Response)
	if err := conn.Invoke(ctx, "/evidence.cluster.Node/Call", req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// rpcDesc is the one-method gRPC service of node-to-node calls.
var rpcDesc = grpc.ServiceDesc{
	ServiceName: "evidence.cluster.Node",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			req := new(Request)
			if err := dec(req); err != nil {
				return nil, err
			}
			return srv.(*Node).Handle(ctx, req), nil
		},
	}},
}

// gobCodec encodes node-to-node messages with encoding/gob.
type gobCodec struct{}

func (gobCodec) Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	err := gob.NewEncoder(&b).Encode(v)
	return b.Bytes(), err
}

func (gobCodec) Unmarshal(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

func (gobCodec) Name() string { return "gob" }

// streamLayer is raft's view of the shared port.
type streamLayer struct{ t *TCP }

func (s *streamLayer) Accept() (net.Conn, error) { return s.t.raftLn.Accept() }
func (s *streamLayer) Close() error              { return nil }
func (s *streamLayer) Addr() net.Addr            { return s.t.advertise }
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.t.dial(ctx, string(addr), protoRaft)
}

// chanListener is a net.Listener fed with routed connections.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn, 16), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

var errNotTCP = errors.New("cluster: not a TCP address")

// CheckAddr checks that a raft address is host:port.
func CheckAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: %q: %v", errNotTCP, addr, err)
	}
	return nil
}
