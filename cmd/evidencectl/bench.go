package main

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/ledgerbench"
	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

func benchCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "bench", Short: "Benchmarks (offline, in a scratch directory)"}
	c.AddCommand(benchAppendCmd(g), benchProofsCmd(g), benchGRPCCmd(g), benchProxyCmd(g), benchSearchCmd(g), benchReadsCmd(g))
	return c
}

func opener(name string) (func(dir string) (storage.Store, error), error) {
	switch name {
	case "pebble":
		return func(dir string) (storage.Store, error) { return pebblestore.Open(dir, pebblestore.Options{}) }, nil
	case "badger":
		return func(dir string) (storage.Store, error) { return badgerstore.Open(dir, badgerstore.Options{}) }, nil
	}
	return nil, usageError{"--storage must be pebble or badger"}
}

// openReadOnly opens a store without changing its files.
func openReadOnly(name, dir string) (storage.Store, error) {
	switch name {
	case "pebble":
		return pebblestore.Open(dir, pebblestore.Options{ReadOnly: true})
	case "badger":
		return badgerstore.Open(dir, badgerstore.Options{ReadOnly: true})
	}
	return nil, usageError{"--storage must be pebble or badger"}
}

func scratch(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o700)
	}
	d, err := os.MkdirTemp("", "evidence-bench-")
	return d, func() { os.RemoveAll(d) }, err
}

const benchOrigin = "bench.localhost/log"

func benchAppendCmd(g *globals) *cobra.Command {
	var backend, dir string
	var entries, appenders, window, payload int
	c := &cobra.Command{
		Use:   "append",
		Short: "Durable append throughput, against the raw backend writing the same batches",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			open, err := opener(backend)
			if err != nil {
				return err
			}
			d, cleanup, err := scratch(dir)
			if err != nil {
				return err
			}
			defer cleanup()
			key, err := ledger.LoadOrCreateKey(d, benchOrigin)
			if err != nil {
				return err
			}
			r, err := ledgerbench.Append(cmd.Context(), ledgerbench.Config{Open: open, Dir: filepath.Join(d, "store"), Entries: entries,
				Appenders: appenders, Window: window, PayloadSize: payload}, key, benchOrigin)
			if err != nil {
				return err
			}
			out := map[string]any{"backend": backend, "entries": r.Entries, "batches": r.Batches, "appenders": appenders, "window": window,
				"payload_bytes": payload, "ledger_entries_per_sec": r.LedgerPerSec, "raw_entries_per_sec": r.RawPerSec,
				"ledger_raw_ratio": r.LedgerRawRate, "p50_ms": ms2(r.LatencyP50), "p99_ms": ms2(r.LatencyP99)}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "backend\t%s\nentries\t%d in %d batches\nappenders\t%d, window %d\nledger\t%.0f entries/s (p50 %v, p99 %v)\nraw\t%.0f entries/s\nledger/raw\t%.2f\n",
					backend, r.Entries, r.Batches, appenders, window, r.LedgerPerSec, r.LatencyP50, r.LatencyP99, r.RawPerSec, r.LedgerRawRate)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&backend, "storage", "pebble", "pebble or badger")
	f.StringVar(&dir, "dir", "", "scratch directory (default: a temporary one, removed after)")
	f.IntVar(&entries, "entries", 200_000, "entries to append")
	f.IntVar(&appenders, "appenders", 64, "concurrent appenders")
	f.IntVar(&window, "window", 1, "appends each appender keeps in flight")
	f.IntVar(&payload, "payload", 512, "payload bytes per entry")
	return c
}

func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func benchProofsCmd(g *globals) *cobra.Command {
	var backend, dir string
	var leaves int64
	var samples int
	c := &cobra.Command{
		Use:   "proofs",
		Short: "Proof latency and reopen time on a log of --leaves entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			open, err := opener(backend)
			if err != nil {
				return err
			}
			d, cleanup, err := scratch(dir)
			if err != nil {
				return err
			}
			defer cleanup()
			key, err := ledger.LoadOrCreateKey(d, benchOrigin)
			if err != nil {
				return err
			}
			opts := ledger.Options{Origin: benchOrigin, Key: key}
			storeDir := filepath.Join(d, "store")
			s, err := open(storeDir)
			if err != nil {
				return err
			}
			l, err := ledger.Open(s, opts)
			if err != nil {
				s.Close()
				return err
			}
			start := time.Now()
			last := time.Now()
			err = ledgerbench.Fill(cmd.Context(), l, leaves, 16, func(size int64) {
				if time.Since(last) > 5*time.Second && !g.json {
					last = time.Now()
					done := float64(size) / float64(leaves)
					eta := time.Duration(float64(time.Since(start)) * (1 - done) / done)
					fmt.Fprintf(os.Stderr, "\rfilling: %d/%d (%.0f%%), ETA %v   ", size, leaves, 100*done, eta.Round(time.Second))
				}
			})
			if err != nil {
				return err
			}
			fill := time.Since(start)
			inc, con, err := ledgerbench.ProofLatency(l, samples, 1)
			if err != nil {
				return err
			}
			l.Close()
			s.Close()
			reopen, err := ledgerbench.Reopen(open, storeDir, opts, 5)
			if err != nil {
				return err
			}
			out := map[string]any{"backend": backend, "leaves": leaves, "fill_seconds": fill.Seconds(),
				"inclusion_p50_us": us(inc.P50), "inclusion_p99_us": us(inc.P99), "consistency_p50_us": us(con.P50), "consistency_p99_us": us(con.P99),
				"reopen_ms": ms2(reopen), "samples": samples}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "\nbackend\t%s\nleaves\t%d (filled in %v)\ninclusion proof\t%v\nconsistency proof\t%v\nreopen\t%v\n", backend, leaves, fill.Round(time.Second), inc, con, reopen)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&backend, "storage", "pebble", "pebble or badger")
	f.StringVar(&dir, "dir", "", "scratch directory (default: a temporary one, removed after)")
	f.Int64Var(&leaves, "leaves", 1_000_000, "log size")
	f.IntVar(&samples, "samples", 10_000, "proofs of each kind to time")
	return c
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
