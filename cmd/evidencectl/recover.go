package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/ledger"
)

func recoverCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "recover", Short: "Operator actions on a stopped server's data directory after a refused start"}
	c.AddCommand(acceptStoreCmd(g))
	return c
}

func acceptStoreCmd(g *globals) *cobra.Command {
	var dataDir, storageName string
	c := &cobra.Command{
		Use:   "accept-store --data-dir DIR",
		Short: "Accept the store as it is: replace the high-water checkpoint with the store's own",
		Long: `Replace the high-water checkpoint (<data-dir>/highwater.checkpoint) with the store's own
latest checkpoint, so that a server that refused the store (rolled back, truncated,
or without a high-water checkpoint) starts on it. The old file is kept beside it as
highwater.checkpoint.superseded-<unix time>.

This gives up every entry the old checkpoint covers beyond the store: clients and
witnesses that saw them will refuse the log from now on, rightly. Use it only when
no backup or cluster member holds them (docs/operations.md). The server must be
stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return usageError{"--data-dir is required"}
			}
			vkey, err := os.ReadFile(filepath.Join(dataDir, "log.pub"))
			if err != nil {
				return fmt.Errorf("read the verifier key: %w", err)
			}
			v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
			if err != nil {
				return err
			}
			if storageName == "" {
				storageName = detectStorage(dataDir)
			}
			s, err := openReadOnly(storageName, filepath.Join(dataDir, storageName))
			if err != nil {
				return fmt.Errorf("open %s (is the server stopped?): %w", storageName, err)
			}
			defer s.Close()
			path := filepath.Join(dataDir, ledger.HighWaterFileName)
			if old, err := os.ReadFile(path); err == nil {
				keep := fmt.Sprintf("%s.superseded-%d", path, time.Now().Unix())
				if err := os.WriteFile(keep, old, 0o644); err != nil {
					return err
				}
			}
			storeSize, markSize, err := ledger.AcceptStore(s, v.Name(), v, ledger.HighWaterFile(path))
			if err != nil {
				return err
			}
			out := map[string]int64{"store_size": storeSize, "previous_high_water_size": markSize}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "store size\t%d\n", storeSize)
				if markSize >= 0 {
					fmt.Fprintf(w, "previous high-water size\t%d\n", markSize)
				} else {
					fmt.Fprintf(w, "previous high-water size\tnone\n")
				}
				fmt.Fprintf(w, "high-water checkpoint\treplaced\n")
			})
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", "", "the stopped server's data directory")
	c.Flags().StringVar(&storageName, "storage", "", "pebble or badger (default: detected)")
	return c
}
