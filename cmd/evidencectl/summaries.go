package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evidenceledger/evidence/encounter/readbench"
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
			l, closeLog, err := openStoppedLog(dataDir, backend, origin)
			if err != nil {
				return err
			}
			defer closeLog()

			final := filepath.Join(dataDir, "summaries")
			tmp := final + ".rebuild"
			if err := summary.Remove(tmp); err != nil {
				return err
			}
			start := time.Now()
			v, err := summary.Open(tmp, l, summary.Options{BatchEntries: batch, OnBatch: rebuildProgress(cmd.ErrOrStderr(), start)})
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
			if err := replaceView(summary.Remove, tmp, final); err != nil {
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

func benchReadsCmd(g *globals) *cobra.Command {
	var cfg readbench.Config
	var readers []int
	var cacheMB int
	c := &cobra.Command{
		Use:   "reads --dir DIR [--encounters N --entries M]",
		Short: "Fill a data directory with real transcripts, then time listing, opening and reading visits",
		Long: `Fill --dir, a server data directory, with --encounters visits and about
--entries log entries made of the real transcripts and notes of --data,
repeated under new ids and written through the encounter service (with
encryption at rest and the encounter summaries following the log), then
time: reopening the log and the summaries, the first page of the visit
list cold (after each reopening) and warm, filtered pages, opening visits
(note with evidence, and transcript), concurrent reads with and without
the access trail, and optionally a rebuild of the summaries. A --dir that
already holds a fill is measured again without writing it. evidenced can
serve the directory afterwards (tenant "bench").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Dir == "" {
				return usageError{"--dir is required"}
			}
			cfg.Readers, cfg.StateCacheBytes = readers, int64(cacheMB)<<20
			cfg.Progress = func(s string) {
				load, _ := os.ReadFile("/proc/loadavg")
				fmt.Fprintf(cmd.ErrOrStderr(), "%s [load %s] %s\n", time.Now().Format("15:04:05"), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "), s)
			}
			r, err := readbench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return g.print(r, func(w *tabwriter.Writer) {
				mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
				lat := func(l readbench.Latency) string {
					return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d)", l.P50MS, l.P99MS, l.MaxMS, l.N)
				}
				fmt.Fprintf(w, "data\t%d encounters, %d log entries (log %s, summaries %s)\n", r.Encounters, r.Entries, mib(r.LogBytes), mib(r.ViewBytes))
				if r.FillSeconds > 0 {
					fmt.Fprintf(w, "fill\t%d segments, %d notes (%d signed), transcripts cut to %d segments; %.0fs, %.0f entries/s, %.0f CPU-s; summaries caught up %.1fs after\n",
						r.Segments, r.Notes, r.Signed, r.SegmentCap, r.FillSeconds, r.FillEntriesPerS, r.FillCPUSeconds, r.ViewLagSeconds)
				}
				fmt.Fprintf(w, "reopen: log\t%s\n", lat(r.ReopenLog))
				fmt.Fprintf(w, "reopen: summaries\t%s; resumed without a rebuild: %v\n", lat(r.ReopenView), r.Resumed)
				fmt.Fprintf(w, "first page of 50, cold\t%s\n", lat(r.FirstPageCold))
				fmt.Fprintf(w, "first page of 50, warm\t%s\n", lat(r.FirstPageWarm))
				fmt.Fprintf(w, "second page of 50\t%s\n", lat(r.SecondPage))
				for _, l := range r.Listings {
					fmt.Fprintf(w, "listing: %s\t%d matches; first page %s\n", l.Name, l.Matches, lat(l.Latency))
				}
				for _, o := range r.Openings {
					fmt.Fprintf(w, "opening: %s\t%s; state cache hit rate %.2f\n", o.Name, lat(o.Latency), o.HitRate)
				}
				fmt.Fprintf(w, "state cache\t%d visits in %s of %s after the openings\n", r.CacheStates, mib(r.CacheBytes), mib(r.CacheMaxBytes))
				for _, t := range r.Trails {
					fmt.Fprintf(w, "note reads, %d readers\twith the access trail %.0f/s (%s), %d syncs, %.1f reads per sync; without %.0f/s (%s)\n",
						t.Readers, t.ReadsPerSec, lat(t.Latency), t.Syncs, t.ReadsPerSync, t.NoTrailPerSec, lat(t.NoTrail))
				}
				if r.RebuildSeconds > 0 {
					fmt.Fprintf(w, "rebuild of the summaries\t%.0fs, %.0f entries/s, %.0f CPU-s\n", r.RebuildSeconds, r.RebuildPerSec, r.RebuildCPUSeconds)
				}
				fmt.Fprintf(w, "machine\t%d CPUs, load %s before, %s after; peak RSS %s\n", r.CPUs, r.LoadBefore, r.LoadAfter, mib(r.PeakRSSBytes))
			})
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.DataDir, "data", "../shared/data", "the shared data folder (align-dev, primock57, aci-bench)")
	f.StringVar(&cfg.Dir, "dir", "", "the data directory to fill (or a filled one to measure again)")
	f.IntVar(&cfg.Encounters, "encounters", 100_000, "encounters to write")
	f.Int64Var(&cfg.Entries, "entries", 10_000_000, "log entries to aim for (transcripts are cut to reach it)")
	f.IntVar(&cfg.Appenders, "appenders", 8, "concurrent writers during the fill")
	f.IntVar(&cfg.Days, "days", 90, "the fill's simulated span of days")
	f.IntVar(&cfg.Runs, "runs", 200, "timed samples of each measurement")
	f.IntVar(&cfg.Restarts, "restarts", 10, "reopenings for the cold first page")
	f.IntSliceVar(&readers, "readers", []int{1, 16, 64}, "concurrent readers for the access trail")
	f.DurationVar(&cfg.ReadFor, "read-for", 10*time.Second, "how long each access-trail measurement reads")
	f.IntVar(&cacheMB, "state-cache-mb", 256, "the encounter state cache's budget")
	f.BoolVar(&cfg.Rebuild, "rebuild", true, "also rebuild the summaries from the log")
	return c
}
