// Package ledgerbench measures the ledger: durable append throughput against
// the raw storage backend, proof latency and reopen time, for Go benchmarks and
// for "evidencectl bench".
//
// Append measures durable append throughput of the ledger on a storage
// backend against the backend alone writing the same bytes. The ledger run
// records every storage batch the log writes. The raw run then writes
// exactly those batches, in order and with the same sync policy (each batch
// synced, with as many awaiting their sync as the ledger allows),
// to a fresh store of the same backend. The ratio of the two throughputs is
// the cost of the ledger's own work (validation, hashing, tiles, chains,
// signing) on top of the storage it needs.
package ledgerbench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// Config describes one append run.
type Config struct {
	Open        func(dir string) (storage.Store, error)
	Dir         string // empty directory for the ledger's store; Dir+"-raw" for the raw run
	Entries     int    // total entries to append
	Appenders   int    // concurrent appenders, each appending one entry per call
	Window      int    // appends each appender keeps in flight; 1 waits for each
	PayloadSize int
	Encounters  int // entries are spread over this many encounters
	// HighWater keeps the log's high-water checkpoint in the file
	// Dir+".highwater", as the server does (ledger.Options.HighWater).
	HighWater bool
	// NoRaw skips the raw run: Raw, RawPerSec and LedgerRawRate stay zero.
	NoRaw bool
}

// Result is what a run measured.
type Result struct {
	Entries       int
	Batches       int
	Ledger        time.Duration
	Raw           time.Duration
	LatencyP50    time.Duration
	LatencyP99    time.Duration
	BytesWritten  int64
	LedgerPerSec  float64
	RawPerSec     float64
	LedgerRawRate float64
	// CPU is the process's CPU time (user and system, every goroutine
	// and the store's background work) during the ledger run, and
	// CPUPerEntry that divided by the entries; zero where the platform
	// does not report it.
	CPU         time.Duration
	CPUPerEntry time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%d entries in %d batches: ledger %.0f entries/s (p50 %v, p99 %v, CPU %v per entry), raw %.0f entries/s, ledger/raw %.2f, %.1f MiB written",
		r.Entries, r.Batches, r.LedgerPerSec, r.LatencyP50, r.LatencyP99, r.CPUPerEntry, r.RawPerSec, r.LedgerRawRate, float64(r.BytesWritten)/(1<<20))
}

// recorder keeps the shape of every batch written through it, encoded
// into large pointer-free chunks: keeping the batches themselves would
// leave hundreds of megabytes of pointers for the garbage collector to scan
// during the ledger run and not during the raw one, which would skew the
// comparison. It keeps every key and each value's length, not the values:
// the raw run writes values of the same lengths (filled with random bytes
// once), which costs the store the same (the ledger's values are hashes,
// salts and payloads; nothing is compressed), and copying every value in
// the ledger's commit path would charge the ledger for the bookkeeping.
type recorder struct {
	storage.Store
	mu      sync.Mutex
	chunks  [][]byte
	batches int
	bytes   int64
}

const chunkSize = 16 << 20

func (r *recorder) keep(b *storage.Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	need := 8
	for _, op := range b.Ops {
		need += 9 + len(op.Key)
	}
	if len(r.chunks) == 0 || cap(r.chunks[len(r.chunks)-1])-len(r.chunks[len(r.chunks)-1]) < need {
		r.chunks = append(r.chunks, make([]byte, 0, max(chunkSize, need)))
	}
	c := r.chunks[len(r.chunks)-1]
	c = binary.BigEndian.AppendUint32(c, uint32(len(b.Ops)))
	c = binary.BigEndian.AppendUint32(c, 0)
	for _, op := range b.Ops {
		del := byte(0)
		if op.Delete {
			del = 1
		}
		c = append(c, del)
		c = binary.BigEndian.AppendUint32(c, uint32(len(op.Key)))
		c = append(c, op.Key...)
		c = binary.BigEndian.AppendUint32(c, uint32(len(op.Value)))
	}
	r.chunks[len(r.chunks)-1] = c
	r.batches++
	r.bytes += int64(b.Size())
}

// decode returns the recorded batches in order, each value cut from
// filler.
func (r *recorder) decode() []*storage.Batch {
	var out []*storage.Batch
	var filler []byte
	for _, c := range r.chunks {
		for len(c) > 0 {
			n := int(binary.BigEndian.Uint32(c))
			c = c[8:]
			b := new(storage.Batch)
			for range n {
				del := c[0] == 1
				kl := int(binary.BigEndian.Uint32(c[1:]))
				k := c[5 : 5+kl]
				c = c[5+kl:]
				vl := int(binary.BigEndian.Uint32(c))
				c = c[4:]
				if vl > len(filler) {
					filler = make([]byte, max(vl, 1<<20))
					rand.Read(filler)
				}
				v := filler[:vl:vl]
				if del {
					b.Delete(k)
				} else {
					b.Set(k, v)
				}
			}
			out = append(out, b)
		}
	}
	return out
}

func (r *recorder) Write(b *storage.Batch, sync bool) error {
	if err := r.Store.Write(b, sync); err != nil {
		return err
	}
	r.keep(b)
	return nil
}

// WriteAsync passes through when the store has it, so the log pipelines its
// commits exactly as it does without the recorder.
func (r *recorder) WriteAsync(b *storage.Batch) (func() error, error) {
	aw, ok := r.Store.(storage.AsyncWriter)
	if !ok {
		return func() error { return nil }, r.Write(b, true)
	}
	wait, err := aw.WriteAsync(b)
	if err != nil {
		return nil, err
	}
	r.keep(b)
	return wait, nil
}

// Append appends cfg.Entries entries through a ledger, then replays its
// batches on a raw store, and reports both.
func Append(ctx context.Context, cfg Config, key *ledger.Key, origin string) (Result, error) {
	if cfg.Appenders <= 0 {
		cfg.Appenders = 64
	}
	if cfg.Encounters <= 0 {
		cfg.Encounters = 1000
	}
	if cfg.Window <= 0 {
		cfg.Window = 1
	}
	s, err := cfg.Open(cfg.Dir)
	if err != nil {
		return Result{}, err
	}
	rec := &recorder{Store: s}
	opts := ledger.Options{Origin: origin, Key: key}
	if cfg.HighWater {
		opts.HighWater = ledger.HighWaterFile(cfg.Dir + ".highwater")
	}
	l, err := ledger.Open(rec, opts)
	if err != nil {
		return Result{}, err
	}
	payload := make([]byte, cfg.PayloadSize)
	rand.Read(payload)
	rec.mu.Lock()
	rec.chunks, rec.batches, rec.bytes = nil, 0, 0 // drop the empty tree's checkpoint
	rec.mu.Unlock()

	var next atomic.Int64
	lat := make([][]time.Duration, cfg.Appenders)
	errs := make(chan error, cfg.Appenders)
	cpu0 := processCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.Appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			type flight struct {
				p  *ledger.Pending
				t0 time.Time
			}
			var window []flight
			wait := func() bool {
				f := window[0]
				window = window[1:]
				if _, err := f.p.Wait(); err != nil {
					errs <- err
					return false
				}
				lat[w] = append(lat[w], time.Since(f.t0))
				return true
			}
			for {
				i := next.Add(1) - 1
				if i >= int64(cfg.Entries) {
					break
				}
				e := ledger.Entry{Kind: ledger.KindSegment, Tenant: "bench", Encounter: fmt.Sprintf("enc-%d", i%int64(cfg.Encounters)), Actor: "bench", Payload: payload}
				t0 := time.Now()
				p, err := l.AppendAsync(ctx, []ledger.Entry{e})
				if err != nil {
					errs <- err
					return
				}
				window = append(window, flight{p, t0})
				if len(window) >= cfg.Window && !wait() {
					return
				}
			}
			for len(window) > 0 {
				if !wait() {
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	l.Close()
	// Close the ledger's store so that its background compactions do not
	// compete with the raw run for the disk.
	if err := s.Close(); err != nil {
		return Result{}, err
	}
	select {
	case err := <-errs:
		return Result{}, err
	default:
	}

	var rawElapsed time.Duration
	if !cfg.NoRaw {
		raw, err := cfg.Open(cfg.Dir + "-raw")
		if err != nil {
			return Result{}, err
		}
		defer raw.Close()
		batches := rec.decode()
		runtime.GC()
		rawStart := time.Now()
		if err := replay(raw, batches, l.PipelineDepth()); err != nil {
			return Result{}, err
		}
		rawElapsed = time.Since(rawStart)
	}

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := Result{
		Entries:      cfg.Entries,
		Batches:      rec.batches,
		Ledger:       elapsed,
		Raw:          rawElapsed,
		BytesWritten: rec.bytes,
		LedgerPerSec: float64(cfg.Entries) / elapsed.Seconds(),
		CPU:          cpu,
		CPUPerEntry:  cpu / time.Duration(max(cfg.Entries, 1)),
	}
	if len(all) > 0 {
		r.LatencyP50 = all[len(all)/2]
		r.LatencyP99 = all[len(all)*99/100]
	}
	if !cfg.NoRaw {
		r.RawPerSec = float64(cfg.Entries) / rawElapsed.Seconds()
		r.LedgerRawRate = r.LedgerPerSec / r.RawPerSec
	}
	return r, nil
}

// replay writes batches in order, each synced, with at most depth awaiting
// their sync when the store can apply without waiting: the ledger's policy.
func replay(s storage.Store, batches []*storage.Batch, depth int) error {
	aw, async := s.(storage.AsyncWriter)
	if !async {
		for _, b := range batches {
			if err := s.Write(b, true); err != nil {
				return err
			}
		}
		return nil
	}
	var waits []func() error
	for i := range batches {
		if len(waits) == depth {
			if err := waits[0](); err != nil {
				return err
			}
			waits = waits[1:]
		}
		wait, err := aw.WriteAsync(batches[i])
		if err != nil {
			return err
		}
		waits = append(waits, wait)
	}
	for _, w := range waits {
		if err := w(); err != nil {
			return err
		}
	}
	return nil
}
