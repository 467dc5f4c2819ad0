package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/evidenceledger/evidence/ledger/storage"
	"github.com/evidenceledger/evidence/pipeline/proxy/proxybench"
)

// benchProxyCmd is "bench proxy": the recording proxies' overhead against
// the same in-process upstream called directly, in one run.
func benchProxyCmd(g *globals) *cobra.Command {
	var protocol, backend, dir string
	var cfg proxybench.Config
	c := &cobra.Command{
		Use:   "proxy",
		Short: "Latency the recording proxies add, and their throughput, against the same fake upstream called directly",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var protocols []string
			switch protocol {
			case "http", "grpc":
				protocols = []string{protocol}
			case "both":
				protocols = []string{"http", "grpc"}
			default:
				return usageError{"--protocol must be http, grpc or both"}
			}
			if backend != "memory" {
				open, err := opener(backend)
				if err != nil {
					return err
				}
				cfg.Open = func(d string) (storage.Store, error) { return open(d) }
			}
			d, cleanup, err := scratch(dir)
			if err != nil {
				return err
			}
			defer cleanup()
			var results []proxybench.Result
			for _, p := range protocols {
				run := cfg
				run.Protocol, run.Dir = p, filepath.Join(d, p)
				r, err := proxybench.Run(cmd.Context(), run)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			var out []map[string]any
			for _, r := range results {
				out = append(out, map[string]any{"protocol": r.Config.Protocol, "stream": r.Config.Stream, "note": r.Config.Note, "sync": r.Config.Sync,
					"storage": backend, "clients": r.Config.Clients, "requests": r.Config.Requests,
					"direct_p50_ms": ms2(r.Direct.P50), "direct_p99_ms": ms2(r.Direct.P99), "direct_req_per_sec": r.Direct.PerSec,
					"proxy_p50_ms": ms2(r.Proxy.P50), "proxy_p99_ms": ms2(r.Proxy.P99), "proxy_req_per_sec": r.Proxy.PerSec,
					"added_p50_ms": ms2(r.AddedP50), "added_p99_ms": ms2(r.AddedP99),
					"errors": r.Direct.Errors + r.Proxy.Errors, "recorded": r.Recorded, "record_drain_ms": ms2(r.Drain)})
			}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "PROTOCOL\tCLIENTS\tDIRECT P50\tDIRECT P99\tDIRECT REQ/S\tPROXY P50\tPROXY P99\tPROXY REQ/S\tADDED P50\tADDED P99\tRECORDED\tERRORS")
				for _, r := range results {
					fmt.Fprintf(w, "%s\t%d\t%v\t%v\t%.0f\t%v\t%v\t%.0f\t%v\t%v\t%d/%d\t%d\n", r.Config.Protocol, r.Config.Clients,
						r.Direct.P50, r.Direct.P99, r.Direct.PerSec, r.Proxy.P50, r.Proxy.P99, r.Proxy.PerSec, r.AddedP50, r.AddedP99,
						r.Recorded, r.Proxy.Requests-r.Proxy.Errors, r.Direct.Errors+r.Proxy.Errors)
				}
			})
		},
	}
	f := c.Flags()
	f.StringVar(&protocol, "protocol", "both", "http (chat completions), grpc (KServe ModelInfer) or both")
	f.StringVar(&backend, "storage", "pebble", "the ledger's storage: pebble, badger or memory")
	f.StringVar(&dir, "dir", "", "scratch directory (default: a temporary one, removed after)")
	f.IntVar(&cfg.Requests, "requests", 20_000, "measured requests per mode")
	f.IntVar(&cfg.Clients, "clients", 64, "concurrent clients")
	f.IntVar(&cfg.Rounds, "rounds", 10, "alternate direct and proxied rounds this many times")
	f.BoolVar(&cfg.Stream, "stream", false, "http: ask for SSE streams")
	f.BoolVar(&cfg.Note, "note", false, "the upstream replies with a SOAP note, recorded and aligned (else a short text)")
	f.BoolVar(&cfg.Sync, "sync", false, "responses wait for each call's durable record")
	f.IntVar(&cfg.QueueSize, "queue", 0, "recording queue size (0: the default, 4096)")
	f.IntVar(&cfg.CallsPerEncounter, "calls-per-encounter", 8, "proxied calls per encounter")
	return c
}
