// Package indexbench measures the full-text index end to end, for
// "evidencectl bench search": it ingests the real transcripts of the shared
// data folder, repeated under new encounter ids, through a real ledger on
// pebble while the real indexer tails it, then times representative
// queries and reports sizes and memory.
package indexbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// Config describes a run.
type Config struct {
	DataDir   string // the shared data folder
	Dir       string // empty scratch directory: the log and index go here
	Segments  int    // ingest at least this many segments
	Appenders int    // concurrent appenders; default 8
	Runs      int    // timed runs of each query; default 30
	// Rebuild also rebuilds the index from the finished log alone, which
	// measures indexing without ingestion competing for the CPUs.
	Rebuild bool
	// Progress, when set, receives a line every few seconds.
	Progress func(string)
}

// QueryResult is the latency of one query.
type QueryResult struct {
	Name     string        `json:"name"`
	Query    string        `json:"query"`
	Hits     uint64        `json:"hits"`
	P50, P99 time.Duration `json:"-"`
	P50MS    float64       `json:"p50_ms"`
	P99MS    float64       `json:"p99_ms"`
}

// Result is what a run measured.
type Result struct {
	Visits            int           `json:"visits"`
	Segments          int64         `json:"segments"`
	Sentences         int64         `json:"note_sentence_versions"` // drafted sentences and edits
	Entries           int64         `json:"log_entries"`
	Documents         uint64        `json:"index_documents"`
	IngestSeconds     float64       `json:"ingest_seconds"`
	IndexSeconds      float64       `json:"index_seconds"`     // from the first append until the index caught up
	IndexCPUSeconds   float64       `json:"index_cpu_seconds"` // process CPU (user+system) over that span, appends included
	CPUPerSegmentUS   float64       `json:"cpu_us_per_segment"`
	SegmentsPerSec    float64       `json:"index_segments_per_sec"`
	RebuildSeconds    float64       `json:"rebuild_seconds,omitempty"`
	RebuildSegPerSec  float64       `json:"rebuild_segments_per_sec,omitempty"`
	RebuildCPUSeconds float64       `json:"rebuild_cpu_seconds,omitempty"`
	IndexBytes        int64         `json:"index_bytes"`
	LogBytes          int64         `json:"log_bytes"`
	PeakRSSBytes      int64         `json:"peak_rss_bytes"`
	PeakHeapBytes     uint64        `json:"peak_go_heap_bytes"`
	HeapAfterGC       uint64        `json:"go_heap_after_gc_bytes"`
	Queries           []QueryResult `json:"queries"`
	QueryP50MS        float64       `json:"query_p50_ms"`
	QueryP99MS        float64       `json:"query_p99_ms"`
	QueryCPUMS        float64       `json:"query_cpu_ms"`   // mean process CPU per timed query
	SettleSeconds     float64       `json:"settle_seconds"` // background merging after indexing, before the queries
	IndexSegments     int           `json:"index_segments"`
	CPUs              int           `json:"cpus"`
	LoadBefore        string        `json:"load_before"`
	LoadAfter         string        `json:"load_after"`
}

const origin = "bench.localhost/log"

// Tenant is the tenant every bench entry belongs to: the worst case for
// the tenant filter, which then selects the whole corpus.
const Tenant = "bench"

// Run builds the corpus, indexes it and times the queries.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Appenders <= 0 {
		cfg.Appenders = 8
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 30
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	corpus, err := LoadCorpus(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	perRep := 0
	for _, v := range corpus {
		perRep += len(v.Segments)
	}
	if perRep == 0 {
		return nil, errors.New("indexbench: the corpus has no segments")
	}
	reps := (cfg.Segments + perRep - 1) / perRep
	res := &Result{CPUs: runtime.NumCPU(), LoadBefore: loadAvg()}

	store, err := pebblestore.Open(filepath.Join(cfg.Dir, "log"), pebblestore.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	key, err := ledger.LoadOrCreateKey(cfg.Dir, origin)
	if err != nil {
		return nil, err
	}
	l, err := ledger.Open(store, ledger.Options{Origin: origin, Key: key})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if l.Size() != 0 {
		return nil, fmt.Errorf("indexbench: %s already holds a log; use an empty directory", cfg.Dir)
	}
	x, err := index.Open(filepath.Join(cfg.Dir, "index"), l, index.Options{})
	if err != nil {
		return nil, err
	}
	defer x.Close()

	mem := startMemSampler()
	ictx, cancelIndex := context.WithCancel(ctx)
	indexDone := make(chan error, 1)
	go func() { indexDone <- x.Follow(ictx) }()
	indexing := true
	stopIndex := func() {
		cancelIndex()
		if indexing {
			<-indexDone
			indexing = false
		}
	}
	defer stopIndex()

	start, cpu0 := time.Now(), cpuTime()
	var segs, sents atomic.Int64
	work := make(chan Visit)
	errc := make(chan error, cfg.Appenders)
	var wg sync.WaitGroup
	for range cfg.Appenders {
		wg.Go(func() {
			for v := range work {
				s, n, err := record(ctx, l, v)
				if err != nil {
					errc <- err
					return
				}
				segs.Add(int64(s))
				sents.Add(int64(n))
			}
		})
	}
	ticker := time.NewTicker(5 * time.Second)
	defer ticker.Stop()
	total := int64(reps * perRep)
	report := func(phase string) {
		done := segs.Load()
		el := time.Since(start)
		msg := fmt.Sprintf("%s: %d/%d segments appended, %d/%d entries indexed, %v", phase, done, total, x.Applied(), l.Size(), el.Round(time.Second))
		if done > 0 && done < total {
			msg += fmt.Sprintf(", ETA %v", time.Duration(float64(el)*float64(total-done)/float64(done)).Round(time.Second))
		}
		progress(msg)
	}
feed:
	for rep := range reps {
		for _, v := range corpus {
			v.ID = fmt.Sprintf("r%02d-%s", rep, v.ID)
			select {
			case work <- v:
			case err := <-errc:
				close(work)
				wg.Wait()
				return nil, err
			case <-ticker.C:
				report("ingesting")
				work <- v
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.IngestSeconds = time.Since(start).Seconds()
	for x.Applied() < l.Size() {
		select {
		case err := <-indexDone:
			indexing = false
			return nil, fmt.Errorf("indexbench: indexing stopped: %w", err)
		case <-ticker.C:
			report("indexing")
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.IndexSeconds = time.Since(start).Seconds()
	res.IndexCPUSeconds = (cpuTime() - cpu0).Seconds()
	stopIndex()
	res.Visits = reps * len(corpus)
	res.Segments, res.Sentences, res.Entries = segs.Load(), sents.Load(), l.Size()
	res.SegmentsPerSec = float64(res.Segments) / res.IndexSeconds
	res.CPUPerSegmentUS = res.IndexCPUSeconds * 1e6 / float64(res.Segments)
	if res.Documents, err = x.DocCount(); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("indexed %d segments in %.0fs (%.0f segments/s end to end); waiting for background merges", res.Segments, res.IndexSeconds, res.SegmentsPerSec))
	if res.SettleSeconds, res.IndexSegments, err = settle(ctx, x); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("settled in %.0fs with %d segments; timing queries", res.SettleSeconds, res.IndexSegments))

	qcpu := cpuTime()
	qs, err := timeQueries(ctx, x, l.Log, cfg.Runs, reps)
	if err != nil {
		return nil, err
	}
	res.QueryCPUMS = float64((cpuTime() - qcpu).Microseconds()) / 1000 / float64(len(qs.all)+2*len(qs.results))
	res.Queries = qs.results
	res.QueryP50MS, res.QueryP99MS = ms(percentile(qs.all, 50)), ms(percentile(qs.all, 99))
	res.IndexBytes = dirSize(filepath.Join(cfg.Dir, "index"))
	res.LogBytes = dirSize(filepath.Join(cfg.Dir, "log"))

	if cfg.Rebuild {
		progress("rebuilding the index from the log")
		dir := filepath.Join(cfg.Dir, "index-rebuild")
		y, err := index.Open(dir, l, index.Options{OnBatch: func(applied, target int64) {
			select {
			case <-ticker.C:
				progress(fmt.Sprintf("rebuilding: %d/%d entries", applied, target))
			default:
			}
		}})
		if err != nil {
			return nil, err
		}
		t, c := time.Now(), cpuTime()
		_, err = y.CatchUp(ctx)
		res.RebuildSeconds = time.Since(t).Seconds()
		res.RebuildCPUSeconds = (cpuTime() - c).Seconds()
		y.Close()
		if err != nil {
			return nil, err
		}
		res.RebuildSegPerSec = float64(res.Segments) / res.RebuildSeconds
	}
	res.PeakHeapBytes = mem.stop()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapAfterGC = ms.HeapInuse
	res.PeakRSSBytes = peakRSS()
	res.LoadAfter = loadAvg()
	return res, nil
}

// settle waits until bleve has finished merging and persisting (at most
// ten minutes), as an index is between bursts of writes, so that the
// query timings do not include merges competing for the CPUs.
func settle(ctx context.Context, x *index.Index) (float64, int, error) {
	start := time.Now()
	quiet := 0
	for time.Since(start) < 10*time.Minute {
		st, err := x.Stats()
		if err != nil {
			return 0, 0, err
		}
		if st.Settling {
			quiet = 0
		} else if quiet++; quiet == 3 {
			return time.Since(start).Seconds(), st.Segments, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	st, err := x.Stats()
	return time.Since(start).Seconds(), st.Segments, err
}

// record appends one visit as the encounter service would: the opening
// entry, its segments in requests of up to 500, then (when it has a note)
// a model output and one clinician edit replacing its first sentence.
func record(ctx context.Context, l *ledger.Appender, v Visit) (segments, sentences int, err error) {
	entry := func(k ledger.Kind, p any) (ledger.Entry, error) {
		b, err := json.Marshal(p)
		return ledger.Entry{Kind: k, Tenant: Tenant, Encounter: v.ID, Actor: "bench", Payload: b}, err
	}
	e, err := entry(ledger.KindEncounter, encounter.Opened{V: encounter.PayloadVersion, Title: "bench visit"})
	if err != nil {
		return 0, 0, err
	}
	if _, err := l.Append(ctx, []ledger.Entry{e}); err != nil {
		return 0, 0, err
	}
	for chunk := range slices.Chunk(v.Segments, 500) {
		es := make([]ledger.Entry, len(chunk))
		for i := range chunk {
			if es[i], err = entry(ledger.KindSegment, chunk[i]); err != nil {
				return 0, 0, err
			}
		}
		if _, err := l.Append(ctx, es); err != nil {
			return 0, 0, err
		}
	}
	if v.Note == nil {
		return len(v.Segments), 0, nil
	}
	for _, s := range v.Note.Sections {
		sentences += len(s.Sentences)
	}
	mo, err := entry(ledger.KindModelOutput, encounter.ModelOutput{V: encounter.PayloadVersion, Model: encounter.Model{Name: "bench-note", Version: "1"}, Note: v.Note, LatencyMS: 1})
	if err != nil {
		return 0, 0, err
	}
	a, err := l.Append(ctx, []ledger.Entry{mo})
	if err != nil {
		return 0, 0, err
	}
	first := v.Note.Sections[0].Sentences[0]
	ed, err := entry(ledger.KindEdit, encounter.Edit{V: encounter.PayloadVersion, Action: encounter.ActionReplace, SentenceID: first.ID,
		Text: first.Text + " Reviewed with the patient.", Base: a.First})
	if err != nil {
		return 0, 0, err
	}
	if _, err := l.Append(ctx, []ledger.Entry{ed}); err != nil {
		return 0, 0, err
	}
	return len(v.Segments), sentences + 1, nil
}

type memSampler struct {
	stopc chan struct{}
	done  chan uint64
}

func startMemSampler() *memSampler {
	m := &memSampler{stopc: make(chan struct{}), done: make(chan uint64)}
	go func() {
		var peak uint64
		var ms runtime.MemStats
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-m.stopc:
				m.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memSampler) stop() uint64 {
	close(m.stopc)
	return <-m.done
}

// peakRSS returns the process's peak resident set (VmHWM), or 0.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
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

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
