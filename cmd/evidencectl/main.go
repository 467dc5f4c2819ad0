// Command evidencectl is the Evidence Ledger CLI: record, query, align,
// verify and benchmark. Every read from a server is verified: entries
// against inclusion proofs, checkpoints against the log's key and against
// the last checkpoint this CLI trusted (kept in a state file). A failed check
// exits with status 3.
//
// Output is a human-readable table, or JSON with --json.
//
// Exit status: 0 success, 1 error, 2 usage, 3 verification failure.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/grpcapi/client"
)

// Exit statuses.
const (
	exitError  = 1
	exitUsage  = 2
	exitVerify = 3
)

// globals are the flags every command shares.
type globals struct {
	server      string
	token       string
	json        bool
	state       string
	verifierKey string
	tenant      string
	actor       string
	stdout      io.Writer
	// TLS: the CA that signs the server's certificate, a client
	// certificate and key for mTLS, and the name to verify.
	tlsCA, tlsCert, tlsKey, serverName string
	useTLS                             bool
	// witnesses are pinned witness keys; witnessQuorum how many must
	// have cosigned a checkpoint for it to be trusted.
	witnesses     []string
	witnessQuorum int
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ve *client.VerificationError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintln(stderr, "evidencectl: VERIFICATION FAILED:", ve.What)
		return exitVerify
	case errors.As(err, new(verifyFailed)):
		fmt.Fprintln(stderr, "evidencectl: VERIFICATION FAILED:", err)
		return exitVerify
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "evidencectl:", err)
		return exitUsage
	}
	if st, ok := status.FromError(err); ok {
		fmt.Fprintf(stderr, "evidencectl: %s: %s\n", st.Code(), st.Message())
		return exitError
	}
	fmt.Fprintln(stderr, "evidencectl:", err)
	return exitError
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "evidencectl",
		Short:         "Evidence Ledger command-line client",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	f := root.PersistentFlags()
	f.StringVar(&g.server, "server", envOr("EVIDENCE_SERVER", "127.0.0.1:7070"), "server gRPC address (EVIDENCE_SERVER)")
	// The token's default is not shown by --help: it is read from the
	// environment only when the command runs (bearer).
	f.StringVar(&g.token, "token", "", "bearer token (default: the EVIDENCE_TOKEN environment variable)")
	f.BoolVar(&g.json, "json", false, "print JSON instead of a table")
	f.StringVar(&g.state, "state", envOr("EVIDENCE_STATE", defaultStatePath()), "file holding the last trusted checkpoint (EVIDENCE_STATE)")
	f.StringVar(&g.verifierKey, "verifier-key", os.Getenv("EVIDENCE_VERIFIER_KEY"), "pin the log's verifier key (EVIDENCE_VERIFIER_KEY); default: trust on first use")
	f.StringVar(&g.tenant, "tenant", os.Getenv("EVIDENCE_TENANT"), "x-evidence-tenant metadata for development harnesses; evidenced takes the tenant from --token (EVIDENCE_TENANT)")
	f.StringVar(&g.actor, "actor", os.Getenv("EVIDENCE_ACTOR"), "x-evidence-actor metadata for development harnesses; evidenced takes the subject from --token (EVIDENCE_ACTOR)")
	f.StringVar(&g.tlsCA, "ca", os.Getenv("EVIDENCE_CA"), "PEM CA certificate(s) that sign the server's certificate; turns on TLS (EVIDENCE_CA)")
	f.StringVar(&g.tlsCert, "cert", os.Getenv("EVIDENCE_CERT"), "PEM client certificate for mTLS; turns on TLS (EVIDENCE_CERT)")
	f.StringVar(&g.tlsKey, "key", os.Getenv("EVIDENCE_KEY"), "PEM private key of --cert (EVIDENCE_KEY)")
	f.StringVar(&g.serverName, "server-name", os.Getenv("EVIDENCE_SERVER_NAME"), "name to verify in the server's certificate (default: the --server host)")
	f.StringArrayVar(&g.witnesses, "witness-key", nil, "trust only checkpoints cosigned by this witness (a cosignature/v1 verifier key); repeatable")
	f.IntVar(&g.witnessQuorum, "witness-quorum", 0, "cosignatures from --witness-key keys a checkpoint needs (0: all)")
	f.BoolVar(&g.useTLS, "tls", os.Getenv("EVIDENCE_TLS") != "", "use TLS with the system's CAs (EVIDENCE_TLS); implied by --ca and --cert")
	root.AddCommand(tokenCmd(g), logCmd(g), encounterCmd(g), noteCmd(g), segmentsCmd(g), alignCmd(g), benchCmd(g), verifyCmd(g), recoverCmd(g), searchCmd(g), indexCmd(g), summariesCmd(g), clusterCmd(g), keyringCmd(g))
	root.AddCommand(complianceCmds(g)...)
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func defaultStatePath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "evidencectl", "trusted-checkpoint.json")
}

// bearer returns the bearer token: --token, else EVIDENCE_TOKEN.
func (g *globals) bearer() string {
	if g.token != "" {
		return g.token
	}
	return os.Getenv("EVIDENCE_TOKEN")
}

// dial connects to the server with the global flags.
func (g *globals) dial() (*client.Client, error) {
	tc, err := g.tlsConfig()
	if err != nil {
		return nil, err
	}
	return client.Dial(g.server, client.Options{Token: g.bearer(), StatePath: g.state, VerifierKey: g.verifierKey, TLS: tc, Witnesses: g.witnesses, WitnessQuorum: g.witnessQuorum})
}

// tlsConfig returns the TLS configuration of the flags, or nil for
// plaintext (a server on loopback, or one started with --insecure).
func (g *globals) tlsConfig() (*tls.Config, error) {
	if g.tlsCA == "" && g.tlsCert == "" && !g.useTLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: g.serverName}
	if g.tlsCA != "" {
		b, err := os.ReadFile(g.tlsCA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(b) {
			return nil, usageError{fmt.Sprintf("--ca %s holds no PEM certificate", g.tlsCA)}
		}
	}
	if (g.tlsCert == "") != (g.tlsKey == "") {
		return nil, usageError{"--cert and --key go together"}
	}
	if g.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(g.tlsCert, g.tlsKey)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// ctx adds the development identity metadata, when given.
func (g *globals) ctx(ctx context.Context) context.Context {
	if g.tenant != "" {
		ctx = client.WithMetadata(ctx, "x-evidence-tenant", g.tenant)
	}
	if g.actor != "" {
		ctx = client.WithMetadata(ctx, "x-evidence-actor", g.actor)
	}
	return ctx
}

// print writes v as JSON with --json, else calls table.
func (g *globals) print(v any, table func(w *tabwriter.Writer)) error {
	if g.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}
