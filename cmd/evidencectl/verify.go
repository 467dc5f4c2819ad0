package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/grpcapi/client"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// verifyFailed is returned when verification found problems: exit status 3.
type verifyFailed struct{ n int }

func (e verifyFailed) Error() string { return fmt.Sprintf("%d problems found", e.n) }

func verifyCmd(g *globals) *cobra.Command {
	var dataDir, storageName, keyringPath string
	var trusted []string
	c := &cobra.Command{
		Use:   "verify --data-dir DIR | --server ADDR",
		Short: "Check a whole log: offline (--data-dir, server stopped) or through a server's API (--server)",
		Long: `Check a whole log and exit with status 3 if anything is wrong.

--data-dir DIR (server stopped): every leaf, tile, checkpoint, chain and payload, and
every blob (audio recording) against its hash; the payloads and blobs are opened with
the keyring (<data-dir>/keyring.json, or --keyring), and shredded payloads are reported
as redacted. The store is opened read-only: no file of the
data directory changes. The store must hold the tree of the high-water checkpoint
(<data-dir>/highwater.checkpoint) and of every --trusted-checkpoint FILE (a signed
checkpoint saved from /checkpoint, a witness's cosigned copy, or evidencectl's state
file): a store behind one is reported as rolled back or truncated, one with another
tree of its size as forked.

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
			anchors, err := verifyAnchors(dataDir, trusted)
			if err != nil {
				return err
			}
			s, damaged, err := openForVerify(storageName, filepath.Join(dataDir, storageName))
			if err != nil {
				return err
			}
			if s == nil {
				rep := &ledger.VerifyReport{Problems: []ledger.Problem{*damaged}}
				if err := printReport(g, rep, 0); err != nil {
					return err
				}
				return verifyFailed{1}
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
			rep, err := ledger.Verify(cmd.Context(), s, ledger.VerifyOptions{Origin: v.Name(), Verifier: v, Sealer: sealer, Progress: progress, Anchors: anchors})
			if !g.json {
				fmt.Fprintln(os.Stderr)
			}
			if err != nil {
				return err
			}
			if damaged != nil {
				rep.Problems = append([]ledger.Problem{*damaged}, rep.Problems...)
			}
			// The blobs (audio recordings), which the log names by hash.
			var chunks blob.Sealer
			if bs, ok := sealer.(blob.Sealer); ok {
				chunks = bs
			}
			blobs, bad, err := blob.New(s, chunks).Check()
			if err != nil {
				return err
			}
			for _, b := range bad {
				rep.Problems = append(rep.Problems, ledger.Problem{Check: "blob", Index: -1,
					Detail: fmt.Sprintf("blob %s of encounter %s does not read back whole: %v", b.Hash, b.Scope.Encounter, b.Err)})
			}
			if err := printReport(g, rep, blobs); err != nil {
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
	c.Flags().StringArrayVar(&trusted, "trusted-checkpoint", nil, "a signed checkpoint (or evidencectl state file) the store must hold; repeatable (with --data-dir)")
	return c
}

// openForVerify opens the store read-only. A store that its engine will
// not open read-only (Pebble refuses a damaged record in a write-ahead log
// that a read-write open would take for its end) is reported as a problem,
// and a copy of it is opened the way the server would open it, in a
// temporary directory, so that the report shows what the server would
// serve; the copy is removed by Close.
func openForVerify(name, dir string) (storage.Store, *ledger.Problem, error) {
	s, err := openReadOnly(name, dir)
	if err == nil {
		return s, nil, nil
	}
	if _, serr := os.Stat(dir); serr != nil {
		return nil, nil, fmt.Errorf("open %s: %w", name, serr)
	}
	tmp, terr := os.MkdirTemp("", "evidencectl-verify-")
	if terr != nil {
		return nil, nil, fmt.Errorf("open %s read-only (is the server stopped?): %w", name, err)
	}
	if cerr := copyTree(dir, tmp); cerr != nil {
		os.RemoveAll(tmp)
		return nil, nil, fmt.Errorf("open %s read-only (is the server stopped?): %w", name, err)
	}
	open, _ := opener(name)
	cs, oerr := open(tmp)
	if oerr != nil {
		os.RemoveAll(tmp)
		return nil, &ledger.Problem{Check: "store", Index: -1, Detail: fmt.Sprintf("the %s store does not open, read-only (%v) or as the server opens it (%v): it is damaged", name, err, oerr)}, nil
	}
	p := &ledger.Problem{Check: "store", Index: -1, Detail: fmt.Sprintf("the %s store does not open read-only (%v): what follows is of a copy opened as the server would open it", name, err)}
	return &scratchStore{Store: cs, dir: tmp}, p, nil
}

// scratchStore is a store opened on a temporary copy, removed at Close.
type scratchStore struct {
	storage.Store
	dir string
}

func (s *scratchStore) Close() error {
	err := s.Store.Close()
	os.RemoveAll(s.dir)
	return err
}

// copyTree copies the files and directories under src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// verifyAnchors returns the checkpoints an offline check holds the store
// to: the data directory's high-water checkpoint, and each trusted file.
func verifyAnchors(dataDir string, trusted []string) ([]ledger.Anchor, error) {
	var out []ledger.Anchor
	hw, err := ledger.HighWaterFile(filepath.Join(dataDir, ledger.HighWaterFileName)).Load()
	if err != nil {
		return nil, err
	}
	if hw != nil {
		out = append(out, ledger.Anchor{Name: "the high-water checkpoint " + ledger.HighWaterFileName, Note: hw})
	} else {
		// The check reports it: a missing mark is refused by the server too.
		out = append(out, ledger.Anchor{Name: "the high-water checkpoint " + ledger.HighWaterFileName})
	}
	for _, f := range trusted {
		note, err := readTrustedCheckpoint(f)
		if err != nil {
			return nil, err
		}
		out = append(out, ledger.Anchor{Name: "the trusted checkpoint " + filepath.Base(f), Note: note})
	}
	return out, nil
}

// readTrustedCheckpoint reads a signed checkpoint note, or the checkpoint
// of an evidencectl state file.
func readTrustedCheckpoint(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--trusted-checkpoint: %v", err)}
	}
	var st client.State
	if json.Unmarshal(b, &st) == nil && len(st.Checkpoint) > 0 {
		return st.Checkpoint, nil
	}
	return b, nil
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

func printReport(g *globals, rep *ledger.VerifyReport, blobs int) error {
	if g.json {
		return json.NewEncoder(g.stdout).Encode(struct {
			*ledger.VerifyReport
			Blobs int `json:"blobs"`
		}{rep, blobs})
	}
	return g.print(nil, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "tree size\t%d\nroot hash\t%s\nentries checked\t%d\ncheckpoints\t%d\nencounters\t%d\npayloads checked\t%d\npayloads redacted\t%d\nblobs checked\t%d\n",
			rep.TreeSize, rep.RootHash, rep.Leaves, rep.Checkpoints, rep.Encounters, rep.Payloads, rep.Redacted, blobs)
		for _, p := range rep.Problems {
			switch p.Check {
			case "store":
				fmt.Fprintf(w, "result\tDAMAGED STORE\n")
				continue
			case "rollback":
				fmt.Fprintf(w, "result\tROLLED BACK OR TRUNCATED\n")
			case "fork":
				fmt.Fprintf(w, "result\tFORKED\n")
			default:
				continue
			}
			break
		}
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
