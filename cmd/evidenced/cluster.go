package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/cluster"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// clusterConfig makes the server a member of a raft cluster that
// replicates the log (package cluster). Without NodeID the server is a
// single node, as before.
type clusterConfig struct {
	NodeID        string `json:"node_id"`
	RaftAddr      string `json:"raft_addr"`
	RaftAdvertise string `json:"raft_advertise"`
	RaftCA        string `json:"raft_ca"`
	Bootstrap     bool   `json:"bootstrap"`
	Join          string `json:"join"`

	// fast shortens raft's timeouts, for in-process tests.
	fast bool
}

func addClusterFlags(fs *flag.FlagSet, c *clusterConfig) {
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "run as a member of a raft cluster under this id (unique and stable across restarts); unset: a single node")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "cluster mode: address to listen on for raft and node-to-node RPCs (one TCP port)")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "cluster mode: address other nodes reach this one at (default --raft-addr)")
	fs.StringVar(&c.RaftCA, "raft-ca", c.RaftCA, "cluster mode with TLS: PEM CA certificates that signed every node's --tls-cert, which the nodes present to each other (default: the system's roots)")
	fs.BoolVar(&c.Bootstrap, "bootstrap", c.Bootstrap, "cluster mode: start a new cluster with this node as its only member (ignored once the node has raft state)")
	fs.StringVar(&c.Join, "join", c.Join, "cluster mode: raft address of any member of the cluster to join")
}

// applyClusterFromFile copies the setting of flag name from the config
// file's values, and reports whether name is a cluster flag.
func applyClusterFromFile(c, file *clusterConfig, name string) bool {
	switch name {
	case "node-id":
		c.NodeID = file.NodeID
	case "raft-addr":
		c.RaftAddr = file.RaftAddr
	case "raft-advertise":
		c.RaftAdvertise = file.RaftAdvertise
	case "raft-ca":
		c.RaftCA = file.RaftCA
	case "bootstrap":
		c.Bootstrap = file.Bootstrap
	case "join":
		c.Join = file.Join
	default:
		return false
	}
	return true
}

func (c clusterConfig) enabled() bool { return c.NodeID != "" }

func (c clusterConfig) validate() error {
	if !c.enabled() {
		for flag, set := range map[string]bool{"--raft-addr": c.RaftAddr != "", "--raft-advertise": c.RaftAdvertise != "",
			"--raft-ca": c.RaftCA != "", "--bootstrap": c.Bootstrap, "--join": c.Join != ""} {
			if set {
				return fmt.Errorf("%s needs --node-id (cluster mode)", flag)
			}
		}
		return nil
	}
	var errs []error
	if len(c.NodeID) > 64 {
		errs = append(errs, errors.New("--node-id must be at most 64 bytes"))
	}
	if c.RaftAddr == "" {
		errs = append(errs, errors.New("--node-id needs --raft-addr"))
	} else if err := cluster.CheckAddr(c.RaftAddr); err != nil {
		errs = append(errs, fmt.Errorf("--raft-addr: %v", err))
	} else if host, _, _ := net.SplitHostPort(c.RaftAddr); c.RaftAdvertise == "" && unspecifiedHost(host) {
		errs = append(errs, fmt.Errorf("--raft-addr %s listens on every interface: set --raft-advertise to the address other nodes reach this one at", c.RaftAddr))
	}
	if c.RaftAdvertise != "" {
		if err := cluster.CheckAddr(c.RaftAdvertise); err != nil {
			errs = append(errs, fmt.Errorf("--raft-advertise: %v", err))
		}
	}
	if c.Join != "" {
		if err := cluster.CheckAddr(c.Join); err != nil {
			errs = append(errs, fmt.Errorf("--join: %v", err))
		}
	}
	if c.Bootstrap && c.Join != "" {
		errs = append(errs, errors.New("--bootstrap and --join are exclusive: bootstrap the first node, join the others to it"))
	}
	return errors.Join(errs...)
}

func unspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// checkClusterSecrets refuses to start a cluster member that would make
// its own log key or keyring: every member signs checkpoints with the
// cluster's one log key and opens payloads with its one keyring, which
// the operator copies from the bootstrap node's data directory before a
// new member's first start. Only the bootstrap node may create them.
func checkClusterSecrets(dataDir string, c clusterConfig) error {
	if c.Bootstrap {
		return nil
	}
	for _, name := range []string{"log.key", "log.pub", envelope.KeyringFile} {
		if _, err := os.Stat(filepath.Join(dataDir, name)); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cluster mode: %s has no %s: copy log.key, log.pub and %s from the bootstrap node's data directory (mode 0600) before starting this node; every member must share them",
				dataDir, name, envelope.KeyringFile)
		}
	}
	return nil
}

// openClusterKeyring opens the keyring of a cluster member. A tenant's
// key-encryption key is never created here: a key made on one node would
// be unknown to the others, which could not open what it sealed. The
// bootstrap node creates the file (with the demo tenant's key for
// --demo); tenants' keys are added to the bootstrap node's keyring and
// copied to every member (docs/operations.md).
func openClusterKeyring(dataDir string, c clusterConfig, demo bool) (*envelope.Keyring, error) {
	path := envelope.DefaultKeyringPath(dataDir)
	if c.Bootstrap {
		kr, err := envelope.OpenKeyring(path, envelope.KeyringOptions{Create: true})
		if err != nil {
			return nil, err
		}
		if demo && !hasTenantKey(kr, demoTenant) {
			if _, err := kr.Rotate(demoTenant); err != nil {
				return nil, err
			}
		}
	}
	return envelope.OpenKeyring(path, envelope.KeyringOptions{})
}

func hasTenantKey(kr *envelope.Keyring, tenant string) bool {
	for _, k := range kr.Keys() {
		if k.Tenant == tenant {
			return true
		}
	}
	return false
}

// raftMember is this server's part of a cluster: the raft node, its network
// side and its raft log store.
type raftMember struct {
	node   *cluster.Node
	tcp    *cluster.TCP
	raftKV storage.Store
	store  *cluster.Store // the ledger's store, writes replicated
	logger *slog.Logger
	closed sync.Once
}

// startMember opens the raft log under <data-dir>/raft, listens on the raft
// address and starts the raft node on rep; it joins the cluster at the
// configured address in the background, retrying until ctx is done. The
// sealer learns of the key writes other nodes replicate.
func startMember(ctx context.Context, cfg config, sec *security, local storage.Store, rep *ledger.Replica, sealer *envelope.Sealer, apiAddr string, logger *slog.Logger) (*raftMember, error) {
	c := cfg.Cluster
	logger = logger.With("component", "cluster")
	host, _, _ := net.SplitHostPort(c.RaftAddr)
	if sec.tls == nil && !loopbackHost(host) {
		if !cfg.Security.Insecure {
			return nil, fmt.Errorf("refusing to serve raft in plaintext on %s, which is not a loopback address: set --tls-cert and --tls-key, or pass --insecure", c.RaftAddr)
		}
		logger.Warn("raft and node-to-node RPCs in plaintext on a non-loopback address (--insecure): the log's contents cross the network unencrypted", "addr", c.RaftAddr)
	}
	tlsConfig, err := raftTLS(sec, c.RaftCA)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "raft")
	raftKV, err := pebblestore.Open(filepath.Join(dir, "log"), pebblestore.Options{Logger: logger.With("component", "raft-log")})
	if err != nil {
		return nil, fmt.Errorf("raft log: %w", err)
	}
	tcp, err := cluster.NewTCP(c.RaftAddr, c.RaftAdvertise, tlsConfig, logger)
	if err != nil {
		raftKV.Close()
		return nil, fmt.Errorf("--raft-addr: %w", err)
	}
	var onWrite func([]ledger.WriteOp)
	var onRestore func()
	if sealer != nil {
		onWrite = func(ops []ledger.WriteOp) {
			for _, op := range ops {
				sealer.Observe(op.Key, op.Delete)
			}
		}
		onRestore = sealer.ForgetAll
	}
	node, err := cluster.New(cluster.Config{ID: c.NodeID, RaftAddr: string(tcp.Transport().LocalAddr()), APIAddr: apiAddr, Dir: dir,
		RaftStore: raftKV, Transport: tcp.Transport(), Peers: tcp, Bootstrap: c.Bootstrap, Logger: logger, Fast: c.fast,
		OnWrite: onWrite, OnRestore: onRestore}, rep)
	if err != nil {
		tcp.Close()
		raftKV.Close()
		return nil, err
	}
	m := &raftMember{node: node, tcp: tcp, raftKV: raftKV, store: cluster.NewStore(node, local), logger: logger}
	tcp.Serve(node)
	logger.Info("cluster member started", "node_id", c.NodeID, "raft_addr", string(tcp.Transport().LocalAddr()), "bootstrap", c.Bootstrap, "join", c.Join)
	if c.Join != "" {
		go func() {
			start := time.Now()
			if err := node.Join(ctx, c.Join); err != nil {
				if ctx.Err() == nil {
					logger.Error("joining the cluster failed", "join", c.Join, "error", err.Error())
				}
				return
			}
			logger.Info("joined the cluster", "join", c.Join, "join_ms", time.Since(start).Milliseconds(), "tree_size", rep.Size())
		}()
	}
	return m, nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// raftTLS is the raft port's TLS configuration: the server's certificate,
// presented to and required from every peer, which must chain to ca (or
// the system's roots); nil without TLS. Peers present their server
// certificates as client certificates too, so the chain is verified here
// for any key usage rather than by crypto/tls, which would demand the
// clientAuth usage of server certificates.
func raftTLS(sec *security, ca string) (*tls.Config, error) {
	if sec.tls == nil {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--raft-ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--raft-ca: %s holds no PEM certificate", ca)
		}
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("raft: the peer presented no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return fmt.Errorf("raft: peer certificate: %w", err)
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: sec.tls.Certificates, RootCAs: pool,
		ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: verify}, nil
}

// close stops raft, then the network side; the caller closes the ledger
// after it, then the stores.
func (m *raftMember) close() {
	m.closed.Do(func() {
		if err := m.node.Close(); err != nil {
			m.logger.Warn("raft shutdown", "error", err.Error())
		}
		m.tcp.Close()
	})
}
