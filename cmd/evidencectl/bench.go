package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	c.AddCommand(benchAppendCmd(g), benchProofsCmd(g), benchGRPCCmd(g), benchFloorCmd(g), benchFloorServerCmd(), benchProxyCmd(g), benchSearchCmd(g), benchReadsCmd(g))
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
	var entries, appenders, window, payload, rounds int
	var highWater, compare bool
	c := &cobra.Command{
		Use:   "append",
		Short: "Durable append throughput, against the raw backend writing the same batches",
		Long: `Durable append throughput: appenders append entries of --payload bytes, each
returning once a signed checkpoint covering it is synced. The log keeps its
high-water checkpoint file as the server does (--highwater=false: without it).
In the same run the raw backend writes the same batches (ledger/raw).

--compare-highwater instead runs the log --rounds times without and with the
high-water file, alternating which goes first, and reports both, their ratio,
the CPU time per entry and the load average.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			open, err := opener(backend)
			if err != nil {
				return err
			}
			if rounds < 1 {
				return usageError{"--rounds must be at least 1"}
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
			cfg := ledgerbench.Config{Open: open, Entries: entries, Appenders: appenders, Window: window, PayloadSize: payload}
			if compare {
				return compareHighWater(cmd, g, cfg, d, key, backend, rounds)
			}
			cfg.Dir, cfg.HighWater = filepath.Join(d, "store"), highWater
			r, err := ledgerbench.Append(cmd.Context(), cfg, key, benchOrigin)
			if err != nil {
				return err
			}
			out := map[string]any{"backend": backend, "entries": r.Entries, "batches": r.Batches, "appenders": appenders, "window": window,
				"payload_bytes": payload, "highwater": highWater, "ledger_entries_per_sec": r.LedgerPerSec, "raw_entries_per_sec": r.RawPerSec,
				"ledger_raw_ratio": r.LedgerRawRate, "p50_ms": ms2(r.LatencyP50), "p99_ms": ms2(r.LatencyP99), "cpu_us_per_entry": us2(r.CPUPerEntry)}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "backend\t%s\nentries\t%d in %d batches\nappenders\t%d, window %d\nhigh-water file\t%v\nledger\t%.0f entries/s (p50 %v, p99 %v, CPU %v per entry)\nraw\t%.0f entries/s\nledger/raw\t%.2f\n",
					backend, r.Entries, r.Batches, appenders, window, highWater, r.LedgerPerSec, r.LatencyP50, r.LatencyP99, r.CPUPerEntry, r.RawPerSec, r.LedgerRawRate)
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
	f.BoolVar(&highWater, "highwater", true, "keep the high-water checkpoint file, as the server does")
	f.BoolVar(&compare, "compare-highwater", false, "measure the log without and with the high-water file, --rounds times each (no raw run)")
	f.IntVar(&rounds, "rounds", 3, "rounds of --compare-highwater")
	return c
}

// compareHighWater runs the log without and with its high-water file,
// rounds times, alternating the order, each in a fresh store.
func compareHighWater(cmd *cobra.Command, g *globals, cfg ledgerbench.Config, d string, key *ledger.Key, backend string, rounds int) error {
	cfg.NoRaw = true
	load0 := loadAverage()
	type run struct {
		Round     int     `json:"round"`
		HighWater bool    `json:"highwater"`
		PerSec    float64 `json:"entries_per_sec"`
		P50       float64 `json:"p50_ms"`
		P99       float64 `json:"p99_ms"`
		CPU       float64 `json:"cpu_us_per_entry"`
		PerBatch  float64 `json:"entries_per_batch"`
	}
	var runs []run
	var ratios, cpuOff, cpuOn []float64
	for i := range rounds {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		var perSec [2]float64
		for _, hw := range order {
			c := cfg
			c.HighWater = hw
			c.Dir = filepath.Join(d, fmt.Sprintf("store-%d-%v", i, hw))
			r, err := ledgerbench.Append(cmd.Context(), c, key, benchOrigin)
			if err != nil {
				return err
			}
			os.RemoveAll(c.Dir)
			os.Remove(c.Dir + ".highwater")
			runs = append(runs, run{Round: i + 1, HighWater: hw, PerSec: r.LedgerPerSec, P50: ms2(r.LatencyP50), P99: ms2(r.LatencyP99),
				CPU: us2(r.CPUPerEntry), PerBatch: float64(r.Entries) / float64(max(r.Batches, 1))})
			if hw {
				perSec[1] = r.LedgerPerSec
				cpuOn = append(cpuOn, us2(r.CPUPerEntry))
			} else {
				perSec[0] = r.LedgerPerSec
				cpuOff = append(cpuOff, us2(r.CPUPerEntry))
			}
		}
		ratios = append(ratios, perSec[1]/perSec[0])
	}
	load1 := loadAverage()
	out := map[string]any{"backend": backend, "entries": cfg.Entries, "appenders": cfg.Appenders, "window": cfg.Window, "payload_bytes": cfg.PayloadSize,
		"runs": runs, "median_ratio_with_without": median(ratios), "median_cpu_us_per_entry_without": median(cpuOff),
		"median_cpu_us_per_entry_with": median(cpuOn), "load_average_before": load0, "load_average_after": load1}
	return g.print(out, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "backend\t%s, %d entries of %d bytes, %d appenders, window %d\n", backend, cfg.Entries, cfg.PayloadSize, cfg.Appenders, cfg.Window)
		fmt.Fprintf(w, "round\thigh-water file\tentries/s\tp50 ms\tp99 ms\tCPU µs/entry\tentries/commit\n")
		for _, r := range runs {
			fmt.Fprintf(w, "%d\t%v\t%.0f\t%.2f\t%.2f\t%.2f\t%.0f\n", r.Round, r.HighWater, r.PerSec, r.P50, r.P99, r.CPU, r.PerBatch)
		}
		fmt.Fprintf(w, "with/without\t%.3f (median of %d rounds; each %v)\n", median(ratios), rounds, ratios)
		fmt.Fprintf(w, "CPU µs/entry\twithout %.2f, with %.2f (medians)\n", median(cpuOff), median(cpuOn))
		fmt.Fprintf(w, "load average\t%s before, %s after\n", load0, load1)
	})
}

// loadAverage is the first three fields of /proc/loadavg, or "" where
// there is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func us2(d time.Duration) float64 { return float64(d.Nanoseconds()/10) / 100 }

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
			inc, con, err := ledgerbench.ProofLatency(l.Log, samples, 1)
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
