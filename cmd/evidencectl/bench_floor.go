package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// benchFloorServerCmd serves nothing but grpc-go's health service, whose
// Check is an empty unary handler (a map lookup): the floor of what a
// unary call costs a grpc-go server on this machine, for "bench
// grpc-floor" to measure with --server-pid.
func benchFloorServerCmd() *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:   "floor-server",
		Short: "Serve an empty gRPC unary handler (grpc-go's health Check) on loopback until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lis, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			s := grpc.NewServer()
			healthpb.RegisterHealthServer(s, health.NewServer())
			fmt.Fprintf(cmd.OutOrStdout(), "serving on %s, pid %d\n", lis.Addr(), os.Getpid())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			go func() { <-ctx.Done(); s.Stop() }()
			return s.Serve(lis)
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "address to listen on")
	return c
}

// benchFloorCmd loads a floor-server as "bench grpc" loads evidenced, with
// health Checks instead of writes.
func benchFloorCmd(g *globals) *cobra.Command {
	var addr string
	var clients, serverPID int
	var duration time.Duration
	c := &cobra.Command{
		Use:   "grpc-floor",
		Short: "Load a floor-server with empty unary calls and report its CPU per call",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer conn.Close()
			hc := healthpb.NewHealthClient(conn)
			cpu := newCPUMeter(serverPID)
			res := runLoad(cmd.Context(), clients, duration, func(ctx context.Context, _, _ int) error {
				_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
				return err
			})
			used := cpu.since()
			if res.err != nil {
				return res.err
			}
			perSec := float64(res.n) / res.elapsed.Seconds()
			out := map[string]any{"clients": clients, "calls_per_sec": perSec, "p50_ms": ms2(res.p50), "p99_ms": ms2(res.p99)}
			if serverPID > 0 {
				out["server_cpu_us_per_call"] = us(used) / float64(max(res.n, 1))
				out["server_cpu_cores"] = used.Seconds() / res.elapsed.Seconds()
			}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "clients\t%d\ncalls\t%.0f/s (p50 %v, p99 %v)\n", clients, perSec, res.p50, res.p99)
				if serverPID > 0 {
					fmt.Fprintf(w, "server CPU\t%.1f µs per call (%.2f cores)\n", us(used)/float64(max(res.n, 1)), used.Seconds()/res.elapsed.Seconds())
				}
			})
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "", "the floor-server's address")
	f.IntVar(&clients, "clients", 64, "concurrent clients")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to run")
	f.IntVar(&serverPID, "server-pid", 0, "the floor-server's process id, to read its CPU time from /proc")
	c.MarkFlagRequired("addr")
	return c
}
