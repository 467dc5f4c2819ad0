package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/ledger"
)

// verifyFailed is returned when verification found problems: exit status 3.
type verifyFailed struct{ n int }

func (e verifyFailed) Error() string { return fmt.Sprintf("%d problems found", e.n) }

func verifyCmd(g *globals) *cobra.Command {
	var dataDir, storageName, keyringPath string
	c := &cobra.Command{
		Use:   "verify --data-dir DIR | --server ADDR",
		Short: "Check a whole log: offline (--data-dir, server stopped) or through a server's API (--server)",
		Long: `Check a whole log and exit with status 3 if anything is wrong.

--data-dir DIR (server stopped): every leaf, tile, checkpoint, chain and payload; the
payloads are opened with the keyring (<data-dir>/keyring.json, or --keyring), and
shredded ones are reported as redacted.

--server ADDR (no --data-dir): streams every entry, recomputes every leaf hash and the
tree, checks every stored checkpoint's signature and root, the latest checkpoint
against the trusted state file (--state) and the encounter chains. Payloads are not
readable remotely, so they are not checked; the report says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return verifyRemote(cmd, g)
			}
			vkey, err := os.ReadFile(filepath.Join(dataDir, "log.pub"))
			if err != nil {
				return fmt.Errorf("read the verifier key: %w", err)
			}
			if g.verifierKey != "" && strings.TrimSpace(string(vkey)) != g.verifierKey {
				return verifyFailed{1}
			}
			v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
			if err != nil {
				return err
			}
			if storageName == "" {
				storageName = detectStorage(dataDir)
			}
			open, err := opener(storageName)
			if err != nil {
				return err
			}
			s, err := open(filepath.Join(dataDir, storageName))
			if err != nil {
				return fmt.Errorf("open %s (is the server stopped?): %w", storageName, err)
			}
			defer s.Close()
			sealer, sealerNote, err := offlineSealer(dataDir, keyringPath, s)
			if err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintln(os.Stderr, sealerNote)
			}
			start := time.Now()
			progress := func(done, total int64) {
				if g.json || total == 0 {
					return
				}
				eta := "?"
				if done > 0 {
					eta = (time.Duration(float64(time.Since(start)) * float64(total-done) / float64(done))).Round(time.Second).String()
				}
				fmt.Fprintf(os.Stderr, "\rverifying %s %d/%d entries, ETA %s   ", bar(done, total), done, total, eta)
			}
			rep, err := ledger.Verify(cmd.Context(), s, ledger.VerifyOptions{Origin: v.Name(), Verifier: v, Sealer: sealer, Progress: progress})
			if !g.json {
				fmt.Fprintln(os.Stderr)
			}
			if err != nil {
				return err
			}
			if err := printReport(g, rep); err != nil {
				return err
			}
			if len(rep.Problems) > 0 {
				return verifyFailed{len(rep.Problems)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", "", "the server's data directory (offline check); without it, the server at --server is checked")
	c.Flags().StringVar(&storageName, "storage", "", "pebble or badger (default: detected)")
	c.Flags().StringVar(&keyringPath, "keyring", "", "the keyring that opens the payloads (default <data-dir>/keyring.json)")
	return c
}

func detectStorage(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "badger")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "pebble")); err != nil {
			return "badger"
		}
	}
	return "pebble"
}

func bar(done, total int64) string {
	const width = 30
	n := int(done * width / max(total, 1))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

func printReport(g *globals, rep *ledger.VerifyReport) error {
	if g.json {
		return json.NewEncoder(g.stdout).Encode(rep)
	}
	return g.print(nil, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "tree size\t%d\nroot hash\t%s\nentries checked\t%d\ncheckpoints\t%d\nencounters\t%d\npayloads checked\t%d\npayloads redacted\t%d\n",
			rep.TreeSize, rep.RootHash, rep.Leaves, rep.Checkpoints, rep.Encounters, rep.Payloads, rep.Redacted)
		printResult(w, "INTACT", rep.Problems)
	})
}

// printResult ends a check's table: ok when it found no problems,
// otherwise their number and each of them.
func printResult[P any](w io.Writer, ok string, problems []P) {
	if len(problems) == 0 {
		fmt.Fprintf(w, "result\t%s\n", ok)
		return
	}
	fmt.Fprintf(w, "result\t%d PROBLEMS\n", len(problems))
	for _, p := range problems {
		fmt.Fprintf(w, "  problem\t%v\n", p)
	}
}
