package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
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
	var clients, batch, serverPID int
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
			cpu := newCPUMeter(serverPID)
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
			writeCPU := cpu.since()
			if writes.err != nil {
				return writes.err
			}
			info, err := cl.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
			if err != nil {
				return err
			}
			size := info.GetTreeSize()
			cpu = newCPUMeter(serverPID)
			reads := runLoad(ctx, clients, duration, func(ctx context.Context, w, i int) error {
				_, err := cl.Ledger.GetEntry(ctx, &pb.GetEntryRequest{LeafIndex: int64((w*7919 + i*104729) % int(size)), IncludeProof: true})
				return err
			})
			readCPU := cpu.since()
			if reads.err != nil {
				return reads.err
			}
			perSec := float64(entries.Load()) / writes.elapsed.Seconds()
			out := map[string]any{"clients": clients, "batch": batch, "write_entries_per_sec": perSec, "write_requests": writes.n,
				"write_p50_ms": ms2(writes.p50), "write_p99_ms": ms2(writes.p99),
				"read_per_sec": float64(reads.n) / reads.elapsed.Seconds(), "read_p50_ms": ms2(reads.p50), "read_p99_ms": ms2(reads.p99)}
			if serverPID > 0 {
				out["server_cpu_us_per_write_request"] = us(writeCPU) / float64(max(writes.n, 1))
				out["server_cpu_us_per_entry"] = us(writeCPU) / float64(max(entries.Load(), 1))
				out["server_cpu_cores_writing"] = writeCPU.Seconds() / writes.elapsed.Seconds()
				out["server_cpu_us_per_read"] = us(readCPU) / float64(max(reads.n, 1))
			}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "clients\t%d, %d segments per request\nwrites\t%.0f entries/s (%d requests, p50 %v, p99 %v)\nreads with proof\t%.0f/s (p50 %v, p99 %v)\n",
					clients, batch, perSec, writes.n, writes.p50, writes.p99, float64(reads.n)/reads.elapsed.Seconds(), reads.p50, reads.p99)
				if serverPID > 0 {
					fmt.Fprintf(w, "server CPU\t%.1f µs per write request (%.2f cores while writing), %.1f µs per read\n",
						us(writeCPU)/float64(max(writes.n, 1)), writeCPU.Seconds()/writes.elapsed.Seconds(), us(readCPU)/float64(max(reads.n, 1)))
				}
			})
		},
	}
	f := c.Flags()
	f.IntVar(&clients, "clients", 64, "concurrent clients")
	f.IntVar(&batch, "batch", 1, "segments per RecordSegments request")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to run each phase")
	f.IntVar(&serverPID, "server-pid", 0, "process id of the server, on this machine: report its CPU time per request, read from /proc during each phase")
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

// cpuMeter reads a process's CPU time (user and system) from /proc.
type cpuMeter struct {
	pid   int
	start time.Duration
}

func newCPUMeter(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	m.start = m.read()
	return m
}

// since returns the CPU time the process used since the meter was made; 0
// without a pid.
func (m *cpuMeter) since() time.Duration { return m.read() - m.start }

// read returns utime+stime of /proc/<pid>/stat (fields 14 and 15, in clock
// ticks of 1/100 s on Linux).
func (m *cpuMeter) read() time.Duration {
	if m.pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
