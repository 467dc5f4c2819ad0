package batch

import (
	"bytes"
	"context"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRunAlignDev runs the whole batch path (reading, indexing, aligning and checking,
// writing) over all of align-dev, as `evidencectl align batch` does, and reports sentences/s
// and sentences per CPU second. It skips when the shared data is absent.
//
//	go test ./align/batch -run '^$' -bench BenchmarkRunAlignDev -benchtime 3x
func BenchmarkRunAlignDev(b *testing.B) {
	segs, err := os.ReadFile("/work/shared/data/align-dev/segments.jsonl")
	if err != nil {
		b.Skip("align-dev not available")
	}
	sents, err := os.ReadFile("/work/shared/data/align-dev/sentences.jsonl")
	if err != nil {
		b.Skip("align-dev not available")
	}
	n := bytes.Count(sents, []byte("\n"))
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		if err := Run(context.Background(), bytes.NewReader(segs), bytes.NewReader(sents), io.Discard, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "sentences/s")
	// On a machine shared with other load, sentences per CPU second times the cores is what
	// the run would reach with the cores to itself (the encounters run in parallel).
	b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "sentences/cpu-s")
}
