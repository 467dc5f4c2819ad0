// Package readbench measures the read paths of a visit at a health
// system's volume, for "evidencectl bench reads": listing visits from the
// encounter summaries, opening a visit (its note with evidence and its
// transcript), the access entry every read appends, reopening the server
// and rebuilding the summaries.
//
// It fills a server data directory (the layout evidenced uses: log.key,
// keyring.json, pebble/, summaries/) with encounters made of the real
// transcripts and notes of the shared data folder, repeated under new ids,
// written through the encounter service as the API writes them: the
// opening, the transcript, the model's note (aligned), a clinician's edit
// (re-aligned) and, for half of them, a sign-off. Times are simulated over
// a span of days. The filled directory can be measured again, or served by
// evidenced for the page's timings.
package readbench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
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

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/index/indexbench"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
	"github.com/evidenceledger/evidence/summary"
)

// Origin is the log origin of the filled directory: evidenced's default,
// so that it serves the directory as it is.
const Origin = "evidence.localhost/log"

// Tenant owns every encounter of the fill.
const Tenant = "bench"

// Config describes a run.
type Config struct {
	DataDir    string // the shared data folder
	Dir        string // the server data directory to fill, or a filled one to measure again
	Encounters int    // encounters to write
	Entries    int64  // log entries to aim for; transcripts are cut to reach it
	Appenders  int    // concurrent writers during the fill; default 8
	Days       int    // the fill's simulated span; default 90
	Runs       int    // timed samples of each measurement; default 200
	Restarts   int    // reopenings for the cold figures; default 10
	Readers    []int  // concurrent readers for the access trail; default 1, 16, 64
	ReadFor    time.Duration
	// StateCacheBytes is the encounter state cache's budget; default
	// encounter.DefaultStateCacheBytes.
	StateCacheBytes int64
	Rebuild         bool // also rebuild the summaries from the log
	Progress        func(string)
}

// Latency is a distribution of timed samples, in milliseconds.
type Latency struct {
	N     int     `json:"n"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

func latency(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p int) float64 { return ms(s[min(len(s)-1, max(0, (len(s)*p+99)/100-1))]) }
	return Latency{N: len(s), P50MS: at(50), P99MS: at(99), MaxMS: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Listing is one filtered listing's latency and size.
type Listing struct {
	Name    string  `json:"name"`
	Matches int     `json:"matches"` // encounters the filter selects in all
	Latency Latency `json:"latency"` // the first page of 50, with the access entry
}

// Opening is the latency of opening visits, with the share of them whose
// decoded chain the state cache held.
type Opening struct {
	Name    string  `json:"name"`
	Latency Latency `json:"latency"`
	HitRate float64 `json:"cache_hit_rate"`
}

// Trail is concurrent note reads with and without the access trail.
type Trail struct {
	Readers       int     `json:"readers"`
	ReadsPerSec   float64 `json:"reads_per_sec"`
	Latency       Latency `json:"latency"`
	Syncs         int64   `json:"syncs"`          // durable writes of the log during the reads
	ReadsPerSync  float64 `json:"reads_per_sync"` // reads whose access entries one sync covered
	NoTrailPerSec float64 `json:"no_trail_reads_per_sec"`
	NoTrail       Latency `json:"no_trail_latency"`
}

// Result is what a run measured.
type Result struct {
	Encounters      int     `json:"encounters"`
	Entries         int64   `json:"log_entries"`
	Segments        int64   `json:"segments"`
	Notes           int64   `json:"notes"`
	Signed          int64   `json:"signed"`
	SegmentCap      int     `json:"segments_per_visit_cap,omitempty"`
	FillSeconds     float64 `json:"fill_seconds,omitempty"`
	FillEntriesPerS float64 `json:"fill_entries_per_sec,omitempty"`
	FillCPUSeconds  float64 `json:"fill_cpu_seconds,omitempty"`
	ViewLagSeconds  float64 `json:"summaries_caught_up_after_fill_seconds,omitempty"`
	LogBytes        int64   `json:"log_bytes"`
	ViewBytes       int64   `json:"summaries_bytes"`

	ReopenLog     Latency   `json:"reopen_log"`
	ReopenView    Latency   `json:"reopen_summaries"`
	Resumed       bool      `json:"summaries_resumed"` // every reopening resumed without a rebuild
	FirstPageCold Latency   `json:"first_page_cold"`
	FirstPageWarm Latency   `json:"first_page_warm"`
	SecondPage    Latency   `json:"second_page_warm"`
	Listings      []Listing `json:"listings"`
	Openings      []Opening `json:"openings"`
	CacheMaxBytes int64     `json:"state_cache_max_bytes"`
	CacheStates   int       `json:"state_cache_states"` // after the openings
	CacheBytes    int64     `json:"state_cache_bytes"`
	Trails        []Trail   `json:"access_trail"`

	RebuildSeconds    float64 `json:"rebuild_seconds,omitempty"`
	RebuildPerSec     float64 `json:"rebuild_entries_per_sec,omitempty"`
	RebuildCPUSeconds float64 `json:"rebuild_cpu_seconds,omitempty"`

	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	CPUs         int    `json:"cpus"`
	LoadBefore   string `json:"load_before"`
	LoadAfter    string `json:"load_after"`
}

func (c *Config) setDefaults() {
	if c.Appenders <= 0 {
		c.Appenders = 8
	}
	if c.Days <= 0 {
		c.Days = 90
	}
	if c.Runs <= 0 {
		c.Runs = 200
	}
	if c.Restarts <= 0 {
		c.Restarts = 10
	}
	if len(c.Readers) == 0 {
		c.Readers = []int{1, 16, 64}
	}
	if c.ReadFor <= 0 {
		c.ReadFor = 10 * time.Second
	}
	if c.StateCacheBytes <= 0 {
		c.StateCacheBytes = encounter.DefaultStateCacheBytes
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
}

// Run fills cfg.Dir unless it already holds a log, then measures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	res := &Result{CPUs: runtime.NumCPU(), LoadBefore: loadAvg()}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "pebble")); errors.Is(err, fs.ErrNotExist) {
		if err := fill(ctx, cfg, res); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	} else {
		cfg.Progress("measuring the existing fill in " + cfg.Dir)
	}
	if err := measure(ctx, cfg, res); err != nil {
		return nil, err
	}
	res.LogBytes = dirSize(filepath.Join(cfg.Dir, "pebble"))
	res.ViewBytes = dirSize(filepath.Join(cfg.Dir, "summaries"))
	res.PeakRSSBytes = peakRSS()
	res.LoadAfter = loadAvg()
	return res, nil
}

// stack is the server's read path on the data directory: the log (on a
// store that counts syncs), the summaries following it, and encounter
// services with and without the access trail.
type stack struct {
	store   *countingStore
	log     *ledger.Appender
	keys    *envelope.Keys
	view    *summary.View
	svc     *encounter.Service // access trail on, listing from the summaries
	noTrail *encounter.Service
	stop    func()
}

// open opens the stack as evidenced does, timing the log and the
// summaries.
func open(cfg Config, now func() time.Time) (*stack, time.Duration, time.Duration, error) {
	t0 := time.Now()
	kv, err := pebblestore.Open(filepath.Join(cfg.Dir, "pebble"), pebblestore.Options{})
	if err != nil {
		return nil, 0, 0, err
	}
	st := &stack{store: &countingStore{Store: kv}}
	fail := func(err error) (*stack, time.Duration, time.Duration, error) {
		kv.Close()
		return nil, 0, 0, err
	}
	key, err := ledger.LoadOrCreateKey(cfg.Dir, Origin)
	if err != nil {
		return fail(err)
	}
	sealer, _, err := envelope.OpenLocal(kv, envelope.DefaultKeyringPath(cfg.Dir), true)
	if err != nil {
		return fail(err)
	}
	if st.log, err = ledger.Open(st.store, ledger.Options{Origin: Origin, Key: key, Sealer: sealer, Now: now}); err != nil {
		return fail(err)
	}
	st.keys = envelope.NewKeys(sealer, kv)
	logOpen := time.Since(t0)
	t1 := time.Now()
	if st.view, err = summary.Open(filepath.Join(cfg.Dir, "summaries"), st.log.Log, summary.Options{}); err != nil {
		st.log.Close()
		return fail(err)
	}
	viewOpen := time.Since(t1)
	fctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.view.Follow(fctx); close(done) }()
	blobs := blob.New(kv, sealer)
	st.svc = encounter.New(st.log.Log, st.log, blobs, encounter.WithAccessTrail(), encounter.WithKeys(st.keys), encounter.WithSummaries(st.view), encounter.WithStateCacheBytes(cfg.StateCacheBytes))
	st.noTrail = encounter.New(st.log.Log, st.log, blobs, encounter.WithKeys(st.keys), encounter.WithSummaries(st.view), encounter.WithStateCacheBytes(cfg.StateCacheBytes))
	st.stop = func() {
		cancel()
		<-done
		st.view.Close()
		st.log.Close()
		kv.Close()
	}
	return st, logOpen, viewOpen, nil
}

// countingStore counts the durable writes (syncs) the log makes.
type countingStore struct {
	storage.Store
	syncs atomic.Int64
}

func (s *countingStore) Write(b *storage.Batch, sync bool) error {
	if sync {
		s.syncs.Add(1)
	}
	return s.Store.Write(b, sync)
}

func (s *countingStore) WriteAsync(b *storage.Batch) (func() error, error) {
	aw, ok := s.Store.(storage.AsyncWriter)
	if !ok {
		return nil, errors.New("readbench: the store cannot write asynchronously")
	}
	wait, err := aw.WriteAsync(b)
	if err != nil {
		return nil, err
	}
	return func() error { s.syncs.Add(1); return wait() }, nil
}

// plan is the fill: which corpus visit each encounter repeats, and how
// many of its segments.
type plan struct {
	corpus []indexbench.Visit
	cap    int
	total  int64
}

func (p *plan) visit(k int) (v indexbench.Visit, segs []encounter.Segment) {
	v = p.corpus[k%len(p.corpus)]
	rep := k / len(p.corpus)
	segs = v.Segments
	if len(segs) > p.cap {
		// A different window of a long transcript for each repetition.
		off := (rep * p.cap) % (len(segs) - p.cap + 1)
		segs = segs[off : off+p.cap]
	}
	return v, segs
}

func signs(k int) bool { return k%2 == 0 }

// entriesOf is what encounter k appends: the opening, its segments, and
// with a note the model output, its alignment, an edit, its alignment and
// (for half) a sign-off.
func (p *plan) entriesOf(k int) int64 {
	v, segs := p.visit(k)
	n := int64(1 + len(segs))
	if v.Note != nil {
		n += 4
		if signs(k) {
			n++
		}
	}
	return n
}

func newPlan(corpus []indexbench.Visit, encounters int, entries int64) *plan {
	longest := 0
	for _, v := range corpus {
		longest = max(longest, len(v.Segments))
	}
	p := &plan{corpus: corpus}
	lo, hi := 1, longest
	for lo < hi { // the largest cap whose total does not exceed entries
		p.cap = (lo + hi + 1) / 2
		if p.sum(encounters) <= entries {
			lo = p.cap
		} else {
			hi = p.cap - 1
		}
	}
	p.cap = lo
	p.total = p.sum(encounters)
	return p
}

func (p *plan) sum(encounters int) int64 {
	var t int64
	for k := range encounters {
		t += p.entriesOf(k)
	}
	return t
}

// fill writes the encounters through the encounter service, with the
// summaries following the log as in the server.
func fill(ctx context.Context, cfg Config, res *Result) error {
	if cfg.Encounters <= 0 || cfg.Entries <= 0 {
		return errors.New("readbench: a fill needs encounters and entries")
	}
	corpus, err := indexbench.LoadCorpus(cfg.DataDir)
	if err != nil {
		return err
	}
	p := newPlan(corpus, cfg.Encounters, cfg.Entries)
	res.SegmentCap = p.cap
	cfg.Progress(fmt.Sprintf("filling %s: %d encounters, about %d entries (transcripts cut to %d segments)", cfg.Dir, cfg.Encounters, p.total, p.cap))
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	// Simulated time: the log's clock runs from Days ago to now as the
	// planned entries are written.
	span := time.Duration(cfg.Days) * 24 * time.Hour
	begin := time.Now().Add(-span)
	var size atomic.Pointer[ledger.Log]
	now := func() time.Time {
		l := size.Load()
		if l == nil {
			return begin
		}
		return begin.Add(time.Duration(float64(span) * min(1, float64(l.Size())/float64(p.total))))
	}
	st, _, _, err := open(cfg, now)
	if err != nil {
		return err
	}
	defer st.stop()
	if st.log.Size() != 0 {
		return fmt.Errorf("readbench: %s holds a log but no pebble directory", cfg.Dir)
	}
	size.Store(st.log.Log)
	svc := encounter.New(st.log.Log, st.log, nil, encounter.WithKeys(st.keys), encounter.WithStateCacheBytes(64<<20))
	c := encounter.Caller{Tenant: Tenant, Actor: "dr.bench"}
	pipeline := encounter.Caller{Tenant: Tenant, Actor: "svc:bench-scribe"}

	start, cpu0 := time.Now(), cpuTime()
	var done, segsDone, notes, signed atomic.Int64
	work := make(chan int)
	errc := make(chan error, cfg.Appenders)
	var wg sync.WaitGroup
	for range cfg.Appenders {
		wg.Go(func() {
			for k := range work {
				s, n, g, err := write(ctx, svc, pipeline, c, p, k, cfg.Encounters)
				if err != nil {
					errc <- fmt.Errorf("readbench: encounter %d: %w", k, err)
					return
				}
				segsDone.Add(s)
				notes.Add(n)
				signed.Add(g)
				done.Add(1)
			}
		})
	}
	ticker := time.NewTicker(10 * time.Second)
	defer ticker.Stop()
	report := func() {
		d, el := done.Load(), time.Since(start)
		msg := fmt.Sprintf("filling: %d/%d encounters, %d entries, summaries at %d, %v", d, cfg.Encounters, st.log.Size(), st.view.Applied(), el.Round(time.Second))
		if d > 0 {
			msg += fmt.Sprintf(", %.0f entries/s, ETA %v", float64(st.log.Size())/el.Seconds(), time.Duration(float64(el)*float64(int64(cfg.Encounters)-d)/float64(d)).Round(time.Second))
		}
		cfg.Progress(msg)
	}
	var ferr error
feed:
	for k := range cfg.Encounters {
		for {
			select {
			case work <- k:
				continue feed
			case ferr = <-errc:
				break feed
			case <-ticker.C:
				report()
			case <-ctx.Done():
				ferr = ctx.Err()
				break feed
			}
		}
	}
	close(work)
	wg.Wait()
	if ferr == nil {
		select {
		case ferr = <-errc:
		default:
		}
	}
	if ferr != nil {
		return ferr
	}
	res.FillSeconds = time.Since(start).Seconds()
	res.FillCPUSeconds = (cpuTime() - cpu0).Seconds()
	res.FillEntriesPerS = float64(st.log.Size()) / res.FillSeconds
	res.Segments, res.Notes, res.Signed = segsDone.Load(), notes.Load(), signed.Load()
	t := time.Now()
	if err := st.view.WaitApplied(ctx, st.log.Size()); err != nil {
		return err
	}
	res.ViewLagSeconds = time.Since(t).Seconds()
	cfg.Progress(fmt.Sprintf("filled %d entries in %.0fs (%.0f entries/s); the summaries caught up %.1fs later", st.log.Size(), res.FillSeconds, res.FillEntriesPerS, res.ViewLagSeconds))
	return nil
}

// write records encounter k: it returns its segments, whether it got a
// note and whether the note was signed.
func write(ctx context.Context, svc *encounter.Service, pipeline, c encounter.Caller, p *plan, k, encounters int) (segs, note, signed int64, err error) {
	v, window := p.visit(k)
	patients := max(1, encounters/3)
	info, _, err := svc.Create(ctx, pipeline, fmt.Sprintf("Visit %d (%s)", k, v.ID), fmt.Sprintf("mrn-%06d", k%patients))
	if err != nil {
		return 0, 0, 0, err
	}
	for chunk := range slices.Chunk(window, encounter.MaxSegmentsPerRequest) {
		if _, err := svc.RecordSegments(ctx, pipeline, info.ID, slices.Clone(chunk)); err != nil {
			return 0, 0, 0, err
		}
	}
	if v.Note == nil {
		return int64(len(window)), 0, 0, nil
	}
	rec, err := svc.RecordModelOutput(ctx, pipeline, info.ID, encounter.ModelOutput{Model: encounter.Model{Name: "bench-note", Version: "1"}, Note: v.Note, LatencyMS: 1})
	var invalid *ledger.InvalidError
	if errors.As(err, &invalid) {
		return int64(len(window)), 0, 0, nil // a note over the API's limits is not recorded
	}
	if err != nil {
		return 0, 0, 0, err
	}
	first := rec.Note.Sections[0].Sentences[0]
	rec, err = svc.RecordEdit(ctx, c, info.ID, encounter.EditRequest{Action: encounter.ActionReplace, SentenceID: first.ID, Text: first.Text + " Reviewed with the patient.", Reason: "bench"})
	if err != nil {
		return 0, 0, 0, err
	}
	if !signs(k) {
		return int64(len(window)), 1, 0, nil
	}
	// Signing needs every flagged sentence resolved: the clinician
	// confirms each.
	for _, sec := range rec.Note.Sections {
		for _, s := range sec.Sentences {
			if s.NeedsResolution() {
				rec, err = svc.ResolveSentence(ctx, c, info.ID, encounter.ResolveRequest{SentenceID: s.ID, Verdict: s.Verdict,
					Action: encounter.ResolveConfirmed, Reason: "discussed at the visit"})
				if err != nil {
					return 0, 0, 0, err
				}
			}
		}
	}
	if _, err := svc.Sign(ctx, c, info.ID, rec.Note.Hash[:], nil, "reviewed"); err != nil {
		return 0, 0, 0, err
	}
	return int64(len(window)), 1, 1, nil
}

// measure reopens the directory and times the read paths.
func measure(ctx context.Context, cfg Config, res *Result) error {
	reader := encounter.Caller{Tenant: Tenant, Actor: "dr.reader"}
	var logOpens, viewOpens, cold []time.Duration
	res.Resumed = true
	var st *stack
	for i := range cfg.Restarts {
		if st != nil {
			st.stop()
		}
		var lo, vo time.Duration
		var err error
		if st, lo, vo, err = open(cfg, time.Now); err != nil {
			return err
		}
		logOpens, viewOpens = append(logOpens, lo), append(viewOpens, vo)
		if st.view.Applied() == 0 {
			res.Resumed = false // a view rebuilding from the start
		}
		t := time.Now()
		if _, err := st.svc.Find(ctx, reader, encounter.ListQuery{PageSize: 50}); err != nil {
			st.stop()
			return err
		}
		cold = append(cold, time.Since(t))
		cfg.Progress(fmt.Sprintf("reopened %d/%d: log %v, summaries %v, first page %v", i+1, cfg.Restarts, lo.Round(time.Millisecond), vo.Round(time.Millisecond), cold[len(cold)-1].Round(time.Millisecond)))
	}
	defer st.stop()
	res.ReopenLog, res.ReopenView, res.FirstPageCold = latency(logOpens), latency(viewOpens), latency(cold)
	res.Encounters, res.Entries = 0, st.log.Size()

	// The encounters, from the ledger's index of chains.
	var ids []string
	err := st.log.Encounters(Tenant, "", func(id string, _ ledger.Head) error {
		if id != encounter.AuditChain {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.Encounters = len(ids)
	if len(ids) == 0 {
		return errors.New("readbench: no encounters to read")
	}

	timeIt := func(n int, fn func(i int) error) ([]time.Duration, error) {
		out := make([]time.Duration, 0, n)
		for i := range n {
			t := time.Now()
			if err := fn(i); err != nil {
				return nil, err
			}
			out = append(out, time.Since(t))
		}
		return out, nil
	}
	first, err := st.svc.Find(ctx, reader, encounter.ListQuery{PageSize: 50})
	if err != nil {
		return err
	}
	newest := first.Encounters[0].Updated
	warm, err := timeIt(cfg.Runs, func(int) error { _, err := st.svc.Find(ctx, reader, encounter.ListQuery{PageSize: 50}); return err })
	if err != nil {
		return err
	}
	res.FirstPageWarm = latency(warm)
	second, err := timeIt(cfg.Runs, func(int) error {
		_, err := st.svc.Find(ctx, reader, encounter.ListQuery{PageSize: 50, PageToken: first.NextPageToken})
		return err
	})
	if err != nil {
		return err
	}
	res.SecondPage = latency(second)
	cfg.Progress(fmt.Sprintf("first page: cold p99 %.1f ms, warm p99 %.1f ms", res.FirstPageCold.P99MS, res.FirstPageWarm.P99MS))

	for _, l := range []struct {
		name string
		f    encounter.Filter
	}{
		{"unresolved flags, last 24 h", encounter.Filter{Unresolved: true, UpdatedFrom: newest.Add(-24 * time.Hour)}},
		{"unresolved flags", encounter.Filter{Unresolved: true}},
		{"signed", encounter.Filter{Status: encounter.NoteSigned}},
		{"drafted, last 7 days", encounter.Filter{Status: encounter.NoteDrafted, UpdatedFrom: newest.Add(-7 * 24 * time.Hour)}},
		{"one patient", encounter.Filter{PatientRef: "mrn-000042"}},
		{"one patient, signed", encounter.Filter{PatientRef: "mrn-000042", Status: encounter.NoteSigned}},
		{"a day a month ago", encounter.Filter{UpdatedFrom: newest.Add(-31 * 24 * time.Hour), UpdatedTo: newest.Add(-30 * 24 * time.Hour)}},
	} {
		q := encounter.ListQuery{Filter: l.f, PageSize: 50}
		lat, err := timeIt(cfg.Runs, func(int) error { _, err := st.noTrail.Find(ctx, reader, q); return err })
		if err != nil {
			return err
		}
		// The first page with the access entry, as the API serves it.
		withTrail, err := timeIt(cfg.Runs/4+1, func(int) error { _, err := st.svc.Find(ctx, reader, q); return err })
		if err != nil {
			return err
		}
		n, err := count(ctx, st.noTrail, reader, l.f)
		if err != nil {
			return err
		}
		res.Listings = append(res.Listings, Listing{Name: l.name, Matches: n, Latency: latency(append(lat, withTrail...))})
		cfg.Progress(fmt.Sprintf("listing %q: %d matches, p99 %.1f ms", l.name, n, res.Listings[len(res.Listings)-1].Latency.P99MS))
	}

	// Opening visits: the note with its evidence and the transcript, read
	// at once as the page's requests are, each appending its access entry.
	var opened, found int
	openVisit := func(id string) error {
		before := st.svc.CacheStats()
		var wg sync.WaitGroup
		var noteErr, trErr error
		wg.Go(func() { _, noteErr = st.svc.Note(ctx, reader, id) })
		wg.Go(func() { _, _, trErr = st.svc.Transcript(ctx, reader, id) })
		wg.Wait()
		if err := cmpOr(noteErr, trErr); err != nil {
			return err
		}
		// One of the two reads finds the visit in memory if it was
		// there; if it was not, one decodes it (a miss) and the other
		// finds it decoded or waits for it.
		after := st.svc.CacheStats()
		opened++
		if after.Misses == before.Misses {
			found++
		}
		return nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	recent := ids
	// The most recently written 1% of the visits (from the list order):
	// about a day's visits at 100,000 over 90 days.
	if hot, err := st.noTrail.Find(ctx, reader, encounter.ListQuery{PageSize: encounter.MaxPageSize}); err == nil {
		recent = nil
		for _, e := range hot.Encounters {
			recent = append(recent, e.ID)
		}
		for tok := hot.NextPageToken; tok != "" && len(recent) < len(ids)/100; {
			p, err := st.noTrail.Find(ctx, reader, encounter.ListQuery{PageSize: encounter.MaxPageSize, PageToken: tok})
			if err != nil {
				return err
			}
			for _, e := range p.Encounters {
				recent = append(recent, e.ID)
			}
			tok = p.NextPageToken
		}
	}
	for _, o := range []struct {
		name   string
		pick   func() string
		warmup int
	}{
		{"uniform over all visits (mostly cold)", func() string { return ids[rng.IntN(len(ids))] }, 0},
		{fmt.Sprintf("80%% among the 1%% most recent, after %d openings", 15*cfg.Runs), func() string {
			if rng.IntN(10) < 8 {
				return recent[rng.IntN(len(recent))]
			}
			return ids[rng.IntN(len(ids))]
		}, 15 * cfg.Runs},
		{"the same visit again (warm)", func() string { return ids[0] }, 1},
	} {
		for range o.warmup {
			if err := openVisit(o.pick()); err != nil {
				return err
			}
		}
		opened, found = 0, 0
		lat, err := timeIt(cfg.Runs, func(int) error { return openVisit(o.pick()) })
		if err != nil {
			return err
		}
		res.Openings = append(res.Openings, Opening{Name: o.name, Latency: latency(lat), HitRate: float64(found) / float64(max(1, opened))})
		cfg.Progress(fmt.Sprintf("opening %q: p99 %.1f ms, cache hit rate %.2f", o.name, res.Openings[len(res.Openings)-1].Latency.P99MS, res.Openings[len(res.Openings)-1].HitRate))
	}
	cs := st.svc.CacheStats()
	res.CacheMaxBytes = cs.MaxBytes

	res.CacheStates, res.CacheBytes = cs.States, cs.Bytes
	// The access trail: concurrent note reads of visits in memory, with
	// the trail (each read appends and waits for its access entry) and
	// without.
	hot := recent[:min(len(recent), 64)]
	for _, h := range hot {
		if _, err := st.noTrail.Note(ctx, reader, h); err != nil {
			return err
		}
		if _, err := st.svc.Note(ctx, reader, h); err != nil {
			return err
		}
	}
	for _, n := range cfg.Readers {
		tr := Trail{Readers: n}
		var err error
		syncs := st.store.syncs.Load()
		var lat []time.Duration
		if tr.ReadsPerSec, lat, err = readFor(ctx, st.svc, reader, hot, n, cfg.ReadFor); err != nil {
			return err
		}
		tr.Syncs = st.store.syncs.Load() - syncs
		tr.Latency = latency(lat)
		tr.ReadsPerSync = float64(len(lat)) / float64(max(1, tr.Syncs))
		if tr.NoTrailPerSec, lat, err = readFor(ctx, st.noTrail, reader, hot, n, cfg.ReadFor); err != nil {
			return err
		}
		tr.NoTrail = latency(lat)
		res.Trails = append(res.Trails, tr)
		cfg.Progress(fmt.Sprintf("access trail, %d readers: %.0f reads/s with (%.1f reads per sync), %.0f without", n, tr.ReadsPerSec, tr.ReadsPerSync, tr.NoTrailPerSec))
	}

	if cfg.Rebuild {
		dir := filepath.Join(cfg.Dir, "summaries.rebuild-bench")
		if err := summary.Remove(dir); err != nil {
			return err
		}
		defer summary.Remove(dir)
		t, c := time.Now(), cpuTime()
		last := time.Now()
		v, err := summary.Open(dir, st.log.Log, summary.Options{OnBatch: func(applied, target int64) {
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				cfg.Progress(fmt.Sprintf("rebuilding the summaries: %d/%d entries", applied, target))
			}
		}})
		if err != nil {
			return err
		}
		n, err := v.CatchUp(ctx)
		res.RebuildSeconds, res.RebuildCPUSeconds = time.Since(t).Seconds(), (cpuTime() - c).Seconds()
		v.Close()
		if err != nil {
			return err
		}
		res.RebuildPerSec = float64(n) / res.RebuildSeconds
		cfg.Progress(fmt.Sprintf("rebuilt the summaries from %d entries in %.0fs", n, res.RebuildSeconds))
	}
	return nil
}

// count lists every page of a filter and counts the encounters.
func count(ctx context.Context, svc *encounter.Service, c encounter.Caller, f encounter.Filter) (int, error) {
	n := 0
	q := encounter.ListQuery{Filter: f, PageSize: encounter.MaxPageSize}
	for {
		p, err := svc.Find(ctx, c, q)
		if err != nil {
			return 0, err
		}
		n += len(p.Encounters)
		if p.NextPageToken == "" {
			return n, nil
		}
		q.PageToken = p.NextPageToken
	}
}

// readFor reads notes of the hot visits from n goroutines for d.
func readFor(ctx context.Context, svc *encounter.Service, c encounter.Caller, hot []string, n int, d time.Duration) (float64, []time.Duration, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			var lat []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				if _, err := svc.Note(ctx, c, hot[rng.IntN(len(hot))]); err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return float64(len(all)) / d.Seconds(), all, firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

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
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

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
