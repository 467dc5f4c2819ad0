// Package proxy holds the transparent recording proxies of the inference
// wrapper: an HTTP proxy for OpenAI-compatible POST /v1/chat/completions
// (HTTP) and a gRPC proxy for the KServe v2 / Triton
// inference.GRPCInferenceService (KServe). Existing clients point at the
// ledger instead of their model server; every request is forwarded
// unchanged, every response comes back unchanged (byte-identical bodies,
// the same status codes, headers and trailers), and each request/response
// pair is recorded as a model_output entry of an encounter.
//
// The encounter is named by the x-evidence-encounter header (HTTP) or
// metadata (gRPC). A call without one, or naming an encounter the caller's
// tenant does not have, is recorded under the tenant's default encounter,
// found by its title and created when missing.
//
// # Recording semantics
//
// A call is forwarded at once and its response goes back untouched; the
// recording happens off the response path. The Recorder admits a request
// only when its bounded queue has room; else the proxy answers 503 /
// Unavailable without forwarding ("the evidence ledger cannot record more
// calls right now; retry", with Retry-After), so no call is ever forwarded
// that cannot be recorded. When the exchange ends the call joins the queue
// as it was seen (nothing is parsed or written on the response path), and
// a worker builds its model output and records it with others of its
// encounter in one append through the encounter service: durable in one
// group commit of the ledger, sealed at rest like every payload. Nothing is
// lost silently:
//
//   - a call that cannot be appended is retried with backoff, then written
//     to the spool sealed under its tenant's key, logged by id and counted
//     in evidence_proxy_records_total{result="failed"}; the next start
//     records it (at least once: a call whose append was durable although
//     it failed is found by its call_id and not appended twice);
//   - Close records everything queued before the ledger closes, and
//     spools what it cannot.
//
// What a crash of the process can lose is the calls answered but not yet
// committed: the queue (at most Options.QueueSize calls) and the group
// commit in flight, about one group commit's time under normal load.
// Options.Sync removes that window: the response's last bytes then wait
// until the call is durable in the ledger.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// Encounters is what the recorder needs of the encounter service
// (*encounter.Service).
type Encounters interface {
	Get(ctx context.Context, c encounter.Caller, id string) (encounter.Info, error)
	Create(ctx context.Context, c encounter.Caller, title, patientRef string) (encounter.Info, *ledger.Appended, error)
	List(ctx context.Context, c encounter.Caller, after string, limit int) ([]encounter.Info, bool, error)
	RecordModelOutput(ctx context.Context, c encounter.Caller, id string, o encounter.ModelOutput) (*encounter.Recorded, error)
	RecordCalls(ctx context.Context, c encounter.Caller, id string, outputs []encounter.ModelOutput) (*ledger.Appended, error)
	EnsureAuditKey(ctx context.Context, tenant string) error
}

// ErrOverloaded: the recording queue is full; the request was not
// forwarded. After Close, Begin returns ledger.ErrClosed.
var ErrOverloaded = errors.New("proxy: the recording queue is full")

// Options configure a Recorder.
type Options struct {
	// Dir is the spool directory, for calls that could not be recorded.
	// Empty keeps them in memory only: they are then lost with the
	// process (and counted as failed), so production servers set it.
	Dir string
	// QueueSize bounds the calls admitted but not yet in the ledger. Zero
	// means 4096.
	QueueSize int
	// Workers is the number of goroutines appending to the ledger. Zero
	// means 8.
	Workers int
	// Sync makes Finish wait until the call is durable in the ledger.
	Sync bool
	// Batch caps the calls a worker records in one go. Zero means 256.
	Batch int
	// DefaultTitle is the title of each tenant's default encounter, for
	// calls that name none. Empty means DefaultTitle.
	DefaultTitle string
	// Retries is how many times a failed append is retried before the
	// call is left in the spool. Zero means 5.
	Retries int
	// Sealer encrypts the calls in the spool (model outputs are PHI) under
	// their tenant's key; nil writes them as they are, which only tests
	// should do.
	Sealer Sealer
	// Logger receives ids, counts and error classes, never content.
	Logger *slog.Logger
	// Registry receives the metrics; nil means none.
	Registry prometheus.Registerer
}

// Sealer seals records kept outside the ledger's store under a tenant's
// key (*envelope.Sealer).
type Sealer interface {
	SealRecord(tenant string, aad, plaintext []byte) ([]byte, error)
	OpenRecord(tenant string, aad, sealed []byte) ([]byte, error)
}

// DefaultTitle is the default encounter's title.
const DefaultTitle = "Unlabelled model calls (proxy)"

// Call is one proxied request/response pair, ready to record.
type Call struct {
	Caller encounter.Caller
	// Encounter is the id the request named, or empty.
	Encounter string
	// Output is the model_output to record. The recorder adds the call id
	// to its parameters.
	Output encounter.ModelOutput
	// Build, when set, makes Output: the recorder calls it on its own
	// goroutine, after the response has gone, so that parsing what the
	// proxy saw costs the response nothing. It must not touch anything
	// the proxy still uses.
	Build func() encounter.ModelOutput
}

// Recorder records proxied calls in the ledger through a bounded queue,
// spooling those it cannot record. It is safe for concurrent use.
//
// Goroutines: NewRecorder starts Options.Workers workers and, when the
// spool held unacknowledged calls, a replay goroutine. Close stops intake,
// waits for admitted calls to finish, drains the queue and stops them all;
// call it after the servers using the proxies have stopped and before the
// ledger closes.
type Recorder struct {
	enc   Encounters
	log   *ledger.Log
	opts  Options
	spool *spool // nil without Options.Dir
	slots chan struct{}
	// queues has one queue per worker. The calls of one tenant and named
	// encounter always go to the same worker, so they are recorded in the
	// order they finished.
	queues []chan *pending
	m      *metrics

	intake struct {
		sync.RWMutex
		closed bool
		open   sync.WaitGroup // admitted tickets not yet finished
	}
	workers sync.WaitGroup
	replay  sync.WaitGroup

	defaults struct {
		sync.Mutex
		ids map[string]string // tenant -> default encounter id
	}
	known sync.Map // tenant+"\x00"+encounter -> true, for encounters that exist
}

// pending is a call on its way to the ledger.
type pending struct {
	id      [16]byte
	seg     uint64 // the spool segment holding the call; 0 when it is not spooled
	call    spooledCall
	build   func() encounter.ModelOutput // nil once call.Output is built
	replay  bool
	done    chan error // for Options.Sync; nil otherwise
	started time.Time
}

// spooledCall is the JSON form of a call in the spool.
type spooledCall struct {
	Tenant    string `json:"tenant"`
	Actor     string `json:"actor"`
	Encounter string `json:"encounter,omitempty"`
	// From is the log size when the call finished: if it was recorded, its
	// entry is at or after this index.
	From   int64                 `json:"from"`
	Output encounter.ModelOutput `json:"output"`
}

// NewRecorder returns a Recorder that records through enc, the encounter
// service, on the log l (which it reads to find replayed calls already
// recorded). Calls left in the spool by an earlier process are recorded in
// the background.
func NewRecorder(enc Encounters, l *ledger.Log, opts Options) (*Recorder, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.DefaultTitle == "" {
		opts.DefaultTitle = DefaultTitle
	}
	if opts.Retries <= 0 {
		opts.Retries = 5
	}
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{enc: enc, log: l, opts: opts, slots: make(chan struct{}, opts.QueueSize), m: newMetrics(opts.Registry)}
	r.defaults.ids = map[string]string{}
	var leftover []spooled
	if opts.Dir != "" {
		s, calls, err := openSpool(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("proxy: spool: %w", err)
		}
		r.spool, leftover = s, calls
	}
	r.m.queue.Set(0)
	for range opts.Workers {
		q := make(chan *pending, opts.QueueSize)
		r.queues = append(r.queues, q)
		r.workers.Add(1)
		go r.work(q)
	}
	if len(leftover) > 0 {
		opts.Logger.Info("proxy: recording calls left in the spool", "calls", len(leftover))
		r.replay.Add(1)
		go r.replayCalls(leftover)
	}
	return r, nil
}

// replayCalls queues calls read back from the spool.
func (r *Recorder) replayCalls(calls []spooled) {
	defer r.replay.Done()
	for _, c := range calls {
		p := &pending{id: c.id, seg: c.seg, replay: true, started: time.Now()}
		body := c.body
		var err error
		if c.sealed {
			if r.opts.Sealer == nil {
				err = errors.New("a sealed call and no sealer")
			} else {
				body, err = r.opts.Sealer.OpenRecord(c.tenant, c.id[:], c.body)
			}
		}
		if err == nil {
			err = json.Unmarshal(body, &p.call)
		}
		if err != nil {
			// Unreadable: keep it in the spool, and say so.
			r.m.records.WithLabelValues("failed").Inc()
			r.opts.Logger.Error("proxy: a spooled call does not open or decode; it stays in the spool", "call_id", hex.EncodeToString(c.id[:]))
			continue
		}
		r.slots <- struct{}{}
		r.push(p)
	}
}

// push queues p on its worker's queue. It never blocks: every queued call
// holds a slot, and each queue has room for all of them.
func (r *Recorder) push(p *pending) {
	h := fnv.New32a()
	h.Write([]byte(p.call.Tenant))
	h.Write([]byte{0})
	h.Write([]byte(p.call.Encounter))
	r.m.queue.Inc()
	r.queues[h.Sum32()%uint32(len(r.queues))] <- p
}

// Ticket is an admitted request. Exactly one of Finish or Abandon must be
// called.
type Ticket struct {
	r    *Recorder
	once sync.Once
}

// Begin admits a request for forwarding: it reserves room for its call in
// the queue. It returns ErrOverloaded when the queue is full and
// ledger.ErrClosed after Close; the request must then not be forwarded.
func (r *Recorder) Begin() (*Ticket, error) {
	r.intake.RLock()
	defer r.intake.RUnlock()
	if r.intake.closed {
		return nil, ledger.ErrClosed
	}
	select {
	case r.slots <- struct{}{}:
	default:
		r.m.rejected.Inc()
		return nil, ErrOverloaded
	}
	r.intake.open.Add(1)
	return &Ticket{r: r}, nil
}

// Abandon releases a ticket whose request was not forwarded.
func (t *Ticket) Abandon() {
	t.once.Do(func() {
		<-t.r.slots
		t.r.intake.open.Done()
	})
}

// Finish queues the call for the ledger and returns at once, or, with
// Options.Sync, once it is durable in the ledger. An error (with Sync)
// means the call could not be recorded; it has been logged, counted and
// spooled.
func (t *Ticket) Finish(c Call) error {
	err := ledger.ErrClosed
	t.once.Do(func() {
		defer t.r.intake.open.Done()
		err = t.r.enqueue(c)
	})
	return err
}

// Sync reports whether Finish waits for the call to be durable
// (Options.Sync).
func (r *Recorder) Sync() bool { return r.opts.Sync }

func (r *Recorder) enqueue(c Call) error {
	p := &pending{started: time.Now(), build: c.Build}
	rand.Read(p.id[:])
	p.call = spooledCall{Tenant: c.Caller.Tenant, Actor: c.Caller.Actor, Encounter: c.Encounter, Output: c.Output}
	if r.log != nil {
		p.call.From = r.log.Size()
	}
	if p.build == nil {
		prepare(&p.call.Output, hex.EncodeToString(p.id[:]))
	}
	if r.opts.Sync {
		p.done = make(chan error, 1)
	}
	r.push(p)
	if p.done != nil {
		return <-p.done
	}
	return nil
}

// spoolFailed writes calls that could not be recorded, and are not in the
// spool yet, to the spool, sealed under their tenant's key, so that the
// next start records them.
func (r *Recorder) spoolFailed(ps []*pending) {
	if r.spool == nil {
		return
	}
	for _, p := range ps {
		if p.seg != 0 {
			continue
		}
		callID := hex.EncodeToString(p.id[:])
		body, err := json.Marshal(p.call)
		kind := frameCall
		if err == nil && r.opts.Sealer != nil {
			kind = frameSealedCall
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = r.enc.EnsureAuditKey(ctx, p.call.Tenant)
			cancel()
			var sealed []byte
			if err == nil {
				sealed, err = r.opts.Sealer.SealRecord(p.call.Tenant, p.id[:], body)
			}
			body = append(append([]byte{byte(len(p.call.Tenant))}, p.call.Tenant...), sealed...)
		}
		if err == nil {
			p.seg, err = r.spool.add(kind, p.id, body)
		}
		if err != nil {
			r.opts.Logger.Error("proxy: cannot spool a call that could not be recorded; it is lost", "call_id", callID, "error", err.Error())
		}
	}
}

// Pending returns how many calls are admitted but not yet in the ledger.
func (r *Recorder) Pending() int { return len(r.slots) }

// Close stops admitting requests, waits for admitted ones to finish and
// for the queue to drain into the ledger, then closes the spool. If ctx
// ends first it returns ctx's error; calls not yet recorded stay in the
// spool for the next start.
func (r *Recorder) Close(ctx context.Context) error {
	r.intake.Lock()
	already := r.intake.closed
	r.intake.closed = true
	r.intake.Unlock()
	if already {
		return nil
	}
	done := make(chan struct{})
	go func() {
		r.intake.open.Wait()
		r.replay.Wait()
		for _, q := range r.queues {
			close(q)
		}
		r.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.spool != nil {
		return r.spool.close()
	}
	return nil
}

// work appends the calls of its queue in order, batching runs of calls of
// one encounter whose output is not a note into one ledger append.
func (r *Recorder) work(queue chan *pending) {
	defer r.workers.Done()
	maxBatch := r.opts.Batch
	for p := range queue {
		batch := []*pending{p}
	fill:
		for len(batch) < maxBatch {
			select {
			case q, ok := <-queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		r.m.queue.Sub(float64(len(batch)))
		r.recordBatch(batch)
	}
}

type groupKey struct{ tenant, encounter string }

func (r *Recorder) recordBatch(batch []*pending) {
	for _, p := range batch {
		if p.build != nil {
			p.call.Output = p.build()
			p.build = nil
			prepare(&p.call.Output, hex.EncodeToString(p.id[:]))
		}
	}
	var err error
	for attempt := 0; ; attempt++ {
		batch, err = r.tryBatch(batch)
		if err == nil || attempt == r.opts.Retries || errors.Is(err, ledger.ErrClosed) || errors.As(err, new(*ledger.FailedError)) {
			break
		}
		time.Sleep(min(50*time.Millisecond<<attempt, 5*time.Second))
	}
	if err != nil {
		r.spoolFailed(batch)
	}
	for _, p := range batch {
		r.settle(p, err)
	}
}

// group is the calls of a batch of one tenant that named one encounter,
// in order, and where they are recorded.
type group struct {
	calls    []*pending
	id       string // the encounter recorded under
	fallback string // the named encounter, when the default was used instead
}

// tryBatch records what it can of ps and returns the calls still to
// record, with the error that stopped it. Calls it records are settled.
//
// Each encounter's calls are recorded in order. The leading calls without
// a note of every encounter go into one ledger append; a call with a note
// goes through the encounter service, which aligns it; and so on until
// every call is recorded.
func (r *Recorder) tryBatch(ps []*pending) ([]*pending, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	index := map[groupKey]*group{}
	var groups []*group
	for _, p := range ps {
		k := groupKey{p.call.Tenant, p.call.Encounter}
		g, ok := index[k]
		if !ok {
			g = &group{}
			index[k] = g
			groups = append(groups, g)
		}
		g.calls = append(g.calls, p)
	}
	rest := func() []*pending {
		var out []*pending
		for _, g := range groups {
			out = append(out, g.calls...)
		}
		return out
	}
	for _, g := range groups {
		first := g.calls[0].call
		c := encounter.Caller{Tenant: first.Tenant, Actor: first.Actor}
		var err error
		if g.id, g.fallback, err = r.resolve(ctx, c, first.Encounter); err != nil {
			return rest(), err
		}
		if slices.ContainsFunc(g.calls, func(p *pending) bool { return p.replay }) {
			if g.calls, err = r.dropRecorded(c.Tenant, g.id, g.calls); err != nil {
				return rest(), err
			}
		}
		for _, p := range g.calls {
			if g.fallback != "" {
				p.call.Output.Parameters[paramRequested] = g.fallback
			}
		}
	}
	for {
		var plain []*pending
		var plainIDs []string
		for _, g := range groups {
			n := 0
			for n < len(g.calls) && g.calls[n].call.Output.Note == nil {
				n++
			}
			for _, p := range g.calls[:n] {
				plain, plainIDs = append(plain, p), append(plainIDs, g.id)
			}
		}
		if len(plain) > 0 {
			if err := r.appendPlain(ctx, plainIDs, plain); err != nil {
				return rest(), err
			}
			for _, g := range groups {
				for len(g.calls) > 0 && g.calls[0].call.Output.Note == nil {
					r.settle(g.calls[0], nil)
					g.calls = g.calls[1:]
				}
			}
		}
		noted := false
		for _, g := range groups {
			if len(g.calls) == 0 {
				continue
			}
			noted = true
			p := g.calls[0]
			_, err := r.enc.RecordModelOutput(ctx, encounter.Caller{Tenant: p.call.Tenant, Actor: p.call.Actor}, g.id, p.call.Output)
			var inv *ledger.InvalidError
			switch {
			case errors.As(err, &inv):
				// The note breaks a ledger limit: record the call without it.
				p.call.Output.Note = nil
				p.call.Output.Parameters[paramNoteRejected] = encounter.Fit(inv.Field+": "+inv.Reason, encounter.MaxParameterBytes)
			case err != nil:
				return rest(), err
			default:
				r.settle(p, nil)
				g.calls = g.calls[1:]
			}
		}
		if !noted {
			return nil, nil
		}
	}
}

// appendPlain records calls whose output is not a note, ps[i] under
// encounter ids[i], one encounter.Service.RecordCalls per encounter.
func (r *Recorder) appendPlain(ctx context.Context, ids []string, ps []*pending) error {
	var order []string
	by := map[string][]*pending{}
	for i, p := range ps {
		k := p.call.Tenant + "\x00" + ids[i]
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], p)
	}
	for _, k := range order {
		calls := by[k]
		tenant, id, _ := strings.Cut(k, "\x00")
		outs := make([]encounter.ModelOutput, len(calls))
		for i, p := range calls {
			outs[i] = p.call.Output
		}
		// The calls of one batch may come from several actors of the
		// tenant; each append records one actor, so split by actor.
		start := 0
		for i := 1; i <= len(calls); i++ {
			if i < len(calls) && calls[i].call.Actor == calls[start].call.Actor {
				continue
			}
			c := encounter.Caller{Tenant: tenant, Actor: calls[start].call.Actor}
			if _, err := r.enc.RecordCalls(ctx, c, id, outs[start:i]); err != nil {
				return err
			}
			start = i
		}
	}
	return nil
}

// settle finishes a call: acknowledges it in the spool and releases its
// slot, or, when err is set, leaves it in the spool and reports it.
func (r *Recorder) settle(p *pending, err error) {
	callID := hex.EncodeToString(p.id[:])
	switch {
	case err == nil:
		if r.spool != nil && p.seg != 0 {
			if aerr := r.spool.ack(p.seg, p.id); aerr != nil {
				r.opts.Logger.Warn("proxy: cannot acknowledge a recorded call in the spool", "call_id", callID, "error", aerr.Error())
			}
		}
		result := "recorded"
		if p.replay {
			result = "replayed"
		}
		r.m.records.WithLabelValues(result).Inc()
		r.m.latency.Observe(time.Since(p.started).Seconds())
	default:
		r.m.records.WithLabelValues("failed").Inc()
		where := "it stays in the spool for the next start"
		if p.seg == 0 {
			where = "it is not in the spool: it is lost"
		}
		// Recorder errors come from the ledger and the encounter service,
		// whose messages name fields and ids, never content.
		r.opts.Logger.Error("proxy: a call could not be recorded; "+where, "call_id", callID, "error", err.Error())
	}
	if p.done != nil {
		p.done <- err
	}
	<-r.slots
}

// resolve returns the encounter to record a call under: the one it named,
// if the tenant has it (and it is not redacted), or the tenant's default
// encounter. fallback is the
// named id when the default was used instead.
func (r *Recorder) resolve(ctx context.Context, c encounter.Caller, named string) (id, fallback string, err error) {
	if named != "" {
		k := c.Tenant + "\x00" + named
		if _, ok := r.known.Load(k); ok {
			return named, "", nil
		}
		_, err := r.enc.Get(ctx, c, named)
		switch {
		case err == nil:
			r.known.Store(k, true)
			return named, "", nil
		case !errors.Is(err, ledger.ErrNotFound) && !errors.Is(err, ledger.ErrRedacted) && !errors.As(err, new(*ledger.InvalidError)):
			return "", "", err
		}
		fallback = encounter.Fit(named, encounter.MaxIDBytes)
	}
	id, err = r.defaultEncounter(ctx, c)
	return id, fallback, err
}

// defaultEncounter finds the tenant's default encounter by its title, or
// creates it.
func (r *Recorder) defaultEncounter(ctx context.Context, c encounter.Caller) (string, error) {
	r.defaults.Lock()
	defer r.defaults.Unlock()
	if id, ok := r.defaults.ids[c.Tenant]; ok {
		return id, nil
	}
	after := ""
	for {
		infos, more, err := r.enc.List(ctx, c, after, 500)
		if err != nil {
			return "", err
		}
		for _, info := range infos {
			if info.Title == r.opts.DefaultTitle {
				r.defaults.ids[c.Tenant] = info.ID
				return info.ID, nil
			}
		}
		if !more || len(infos) == 0 {
			break
		}
		after = infos[len(infos)-1].ID
	}
	info, _, err := r.enc.Create(ctx, c, r.opts.DefaultTitle, "")
	if err != nil {
		return "", err
	}
	r.opts.Logger.Info("proxy: created the default encounter for unlabelled calls", "tenant", c.Tenant, "encounter_id", info.ID)
	r.defaults.ids[c.Tenant] = info.ID
	return info.ID, nil
}

// dropRecorded removes replayed calls that are already in the encounter:
// their append was durable but the acknowledgement was not.
func (r *Recorder) dropRecorded(tenant, id string, ps []*pending) ([]*pending, error) {
	from := ps[0].call.From
	for _, p := range ps {
		if p.replay {
			from = min(from, p.call.From)
		}
	}
	idx, err := r.log.EncounterIndexes(tenant, id)
	if err != nil {
		return ps, err
	}
	seen := map[string]bool{}
	for _, x := range idx {
		if x < from {
			continue
		}
		payload, e, err := r.log.Payload(x)
		if err != nil {
			if errors.Is(err, ledger.ErrRedacted) {
				continue
			}
			return ps, err
		}
		if e.Leaf.Kind != ledger.KindModelOutput {
			continue
		}
		v, err := encounter.DecodePayload(e.Leaf.Kind, payload)
		if err != nil {
			continue
		}
		if cid := v.(*encounter.ModelOutput).Parameters[paramCallID]; cid != "" {
			seen[cid] = true
		}
	}
	var out []*pending
	for _, p := range ps {
		if p.replay && seen[hex.EncodeToString(p.id[:])] {
			r.settle(p, nil)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

const paramCallID = "call_id"

// Parameters the recorder adds to a call's output: its call id, and when it
// applies, the encounter it named and why its note was refused.
const (
	paramRequested    = "requested_encounter"
	paramNoteRejected = "note_rejected"
	reservedParams    = 3
)

// prepare makes a call's output acceptable to the encounter service
// whatever the client sent (encounter.FitModelOutput), and adds the call
// id.
func prepare(o *encounter.ModelOutput, callID string) {
	encounter.FitModelOutput(o, reservedParams)
	o.Parameters[paramCallID] = callID
}

type metrics struct {
	records  *prometheus.CounterVec
	rejected prometheus.Counter
	queue    prometheus.Gauge
	latency  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "evidence_proxy_records_total",
			Help: "Proxied calls by recording result: recorded, replayed (from the spool after a restart), failed (left in the spool or lost), unspooled (recorded from memory after a spool error)."}, []string{"result"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "evidence_proxy_rejected_total",
			Help: "Requests refused without forwarding because the recording queue was full."}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "evidence_proxy_queue_calls",
			Help: "Proxied calls waiting for a recording worker."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "evidence_proxy_record_seconds",
			Help: "Time from the end of a proxied call to its durable ledger entry.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.rejected, m.queue, m.latency)
	}
	return m
}
