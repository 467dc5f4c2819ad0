package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// benchGRPCCmd is an in-repo load generator for a running server: durable
// segment writes from concurrent clients, then entry-with-proof reads.
func benchGRPCCmd(g *globals) *cobra.Command {
	var clients, batch int
	var duration time.Duration
	c := &cobra.Command{
		Use:   "grpc",
		Short: "Load a running server: durable RecordSegments writes and GetEntry-with-proof reads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx := g.ctx(cmd.Context())
			// One encounter per client: writes to one encounter are serialized.
			encs := make([]string, clients)
			for i := range encs {
				r, err := cl.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "load test"})
				if err != nil {
					return err
				}
				encs[i] = r.GetEncounter().GetEncounterId()
			}
			text := "Synthetic load-test segment: the patient reports a mild cough for three days."
			var entries atomic.Int64
			writes := runLoad(ctx, clients, duration, func(ctx context.Context, w, i int) error {
				segs := make([]*pb.Segment, batch)
				for j := range segs {
					segs[j] = &pb.Segment{SegmentId: fmt.Sprintf("w%d-%d-%d", w, i, j), SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT,
						Text: text, StartMs: int64(i * 1000), EndMs: int64(i*1000 + 900)}
				}
				_, err := cl.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: encs[w], Segments: segs})
				if err == nil {
					entries.Add(int64(batch))
				}
				return err
			})
			if writes.err != nil {
				return writes.err
			}
			info, err := cl.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
			if err != nil {
				return err
			}
			size := info.GetTreeSize()
			reads := runLoad(ctx, clients, duration, func(ctx context.Context, w, i int) error {
				_, err := cl.Ledger.GetEntry(ctx, &pb.GetEntryRequest{LeafIndex: int64((w*7919 + i*104729) % int(size)), IncludeProof: true})
				return err
			})
			if reads.err != nil {
				return reads.err
			}
			perSec := float64(entries.Load()) / writes.elapsed.Seconds()
			out := map[string]any{"clients": clients, "batch": batch, "write_entries_per_sec": perSec, "write_requests": writes.n,
				"write_p50_ms": ms2(writes.p50), "write_p99_ms": ms2(writes.p99),
				"read_per_sec": float64(reads.n) / reads.elapsed.Seconds(), "read_p50_ms": ms2(reads.p50), "read_p99_ms": ms2(reads.p99)}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "clients\t%d, %d segments per request\nwrites\t%.0f entries/s (%d requests, p50 %v, p99 %v)\nreads with proof\t%.0f/s (p50 %v, p99 %v)\n",
					clients, batch, perSec, writes.n, writes.p50, writes.p99, float64(reads.n)/reads.elapsed.Seconds(), reads.p50, reads.p99)
			})
		},
	}
	f := c.Flags()
	f.IntVar(&clients, "clients", 64, "concurrent clients")
	f.IntVar(&batch, "batch", 1, "segments per RecordSegments request")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to run each phase")
	return c
}

type loadResult struct {
	n        int
	elapsed  time.Duration
	p50, p99 time.Duration
	err      error
}

// runLoad calls fn from clients goroutines until duration passes.
func runLoad(ctx context.Context, clients int, duration time.Duration, fn func(ctx context.Context, worker, i int) error) loadResult {
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := fn(ctx, w, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := loadResult{n: len(lats), elapsed: time.Since(start), err: firstErr}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(lats) > 0 {
		r.p50, r.p99 = lats[len(lats)/2], lats[len(lats)*99/100]
	}
	return r
}
