// Command omniwitness runs the transparency-dev witness, its omniwitness
// serving code with in-memory state, for one log on one address: the C2SP
// tlog-witness the tests of github.com/evidenceledger/evidence submit
// checkpoints to. It makes no outbound calls (no feeders, bastion or
// distributor). It prints "listening ADDR" once it serves.
//
// It is a module of its own so that the witness's dependencies stay out of
// the project's build.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	f_note "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/witness/omniwitness"
	"github.com/transparency-dev/witness/persistence/inmemory"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve the witness on")
	keyPath := flag.String("private_key_path", "", "file holding the witness's note signing key")
	logKey := flag.String("log_vkey", "", "the witnessed log's checkpoint verifier key")
	logOrigin := flag.String("log_origin", "", "the witnessed log's origin")
	flag.Parse()
	if err := run(*listen, *keyPath, *logOrigin, *logKey); err != nil {
		fmt.Fprintln(os.Stderr, "omniwitness:", err)
		os.Exit(1)
	}
}

func run(listen, keyPath, origin, vkey string) error {
	skey, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	signer, err := f_note.NewSignerForCosignatureV1(strings.TrimSpace(string(skey)))
	if err != nil {
		return err
	}
	logs, err := omniwitness.NewStaticLogConfig(fmt.Appendf(nil, "Logs:\n  - Origin: %q\n    PublicKey: %q\n", origin, vkey))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println("listening", lis.Addr().String())
	cfg := omniwitness.OperatorConfig{WitnessKeys: []note.Signer{signer}, WitnessVerifier: signer.Verifier(), Logs: logs}
	return omniwitness.Main(context.Background(), cfg, inmemory.New(), lis, http.DefaultClient)
}
