package main

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/summary"
)

// summariesCmd is "evidencectl summaries": offline maintenance of the
// encounter summaries the visit list reads.
func summariesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "summaries", Short: "Maintain the encounter summaries (offline)"}
	c.AddCommand(summariesRebuildCmd(g))
	return c
}

func summariesRebuildCmd(g *globals) *cobra.Command {
	var dataDir, backend, origin string
	var batch int
	c := &cobra.Command{
		Use:   "rebuild --data-dir DIR",
		Short: "Drop the encounter summaries and rebuild them from the log (the server must be stopped)",
		Long: `Rebuild <data-dir>/summaries from the log in <data-dir>. The server must be
stopped: the storage engine's lock refuses a second opener. The new view is
built beside the old one and replaces it only when complete. The server
rebuilds the view by itself when it finds it is not a view of its log; this
command does it ahead of a start, and measures it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return usageError{"--data-dir is required"}
			}
			open, err := opener(backend)
			if err != nil {
				return err
			}
			if origin == "" {
				if origin, err = logOrigin(dataDir); err != nil {
					return err
				}
			}
			key, err := ledger.LoadOrCreateKey(dataDir, origin)
			if err != nil {
				return err
			}
			store, err := open(filepath.Join(dataDir, backend))
			if err != nil {
				return fmt.Errorf("open the log (is the server still running?): %w", err)
			}
			defer store.Close()
			sealer, _, err := offlineSealer(dataDir, "", store)
			if err != nil {
				return err
			}
			l, err := ledger.Open(store, ledger.Options{Origin: origin, Key: key, Sealer: sealer})
			if err != nil {
				return err
			}
			defer l.Close()

			final := filepath.Join(dataDir, "summaries")
			tmp := final + ".rebuild"
			if err := summary.Remove(tmp); err != nil {
				return err
			}
			start := time.Now()
			last := time.Time{}
			v, err := summary.Open(tmp, l, summary.Options{BatchEntries: batch, OnBatch: func(applied, target int64) {
				if time.Since(last) < 500*time.Millisecond && applied < target {
					return
				}
				last = time.Now()
				fmt.Fprint(cmd.ErrOrStderr(), "\r"+progressBar(applied, target, time.Since(start)))
			}})
			if err != nil {
				return err
			}
			applied, err := v.CatchUp(cmd.Context())
			fmt.Fprintln(cmd.ErrOrStderr())
			if cerr := v.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := summary.Remove(final); err != nil {
				return err
			}
			if err := os.Rename(tmp, final); err != nil {
				return err
			}
			el := time.Since(start)
			out := map[string]any{"data_dir": dataDir, "entries": applied, "seconds": el.Seconds(), "entries_per_sec": float64(applied) / el.Seconds()}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "summaries\t%s\nentries\t%d\ntime\t%v (%.0f entries/s)\n", final, applied, el.Round(time.Millisecond), out["entries_per_sec"])
			})
		},
	}
	f := c.Flags()
	f.StringVar(&dataDir, "data-dir", "", "the server's data directory")
	f.StringVar(&backend, "storage", "pebble", "storage engine: pebble or badger")
	f.StringVar(&origin, "origin", "", "log origin (default: read from the data directory's log.pub)")
	f.IntVar(&batch, "batch", 0, "log entries per batch (default 8192)")
	return c
}
