// Package proxybench measures the overhead of the recording proxies, for
// Go benchmarks and for "evidencectl bench proxy": the same in-process
// upstream (package upstreamtest) is called directly and through the
// proxy, in the same run, by the same concurrent clients, alternating
// rounds so that both modes see the same machine. It reports the latency
// percentiles of both, the latency the proxy adds, the throughput of both,
// and whether every proxied call was recorded in the ledger.
//
// The ledger is real: a log on the storage the caller opens (pebble in the
// CLI, with fsync) and the recorder's spool in the scratch directory, so
// recording competes with the proxy for the machine as it would in
// production.
package proxybench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/pipeline/kserve"
	"github.com/evidenceledger/evidence/pipeline/proxy"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

// Config describes one run.
type Config struct {
	// Open opens the ledger's store in a directory; nil keeps it in memory.
	Open func(dir string) (storage.Store, error)
	// Dir is an empty scratch directory.
	Dir string
	// Protocol is "http" (chat completions) or "grpc" (KServe ModelInfer).
	Protocol string
	// Requests is the number of measured requests per mode.
	Requests int
	// Clients is the number of concurrent clients.
	Clients int
	// Rounds alternates the modes this many times; zero means 10.
	Rounds int
	// Stream asks the chat upstream for SSE (http only).
	Stream bool
	// Note makes the upstream reply with a SOAP note, which the recorder
	// records with the note and aligns; else a short text reply.
	Note bool
	// Sync makes the proxy wait for each call's durable record.
	Sync bool
	// QueueSize is the recorder's queue; zero means its default.
	QueueSize int
	// CallsPerEncounter is how many proxied calls name the same
	// encounter before the next one is used, as a visit's calls would;
	// zero means 8.
	CallsPerEncounter int
}

// Stats summarises one mode.
type Stats struct {
	Requests, Errors int
	P50, P99, Max    time.Duration
	PerSec           float64
}

// Result is what a run measured.
type Result struct {
	Config             Config
	Direct, Proxy      Stats
	AddedP50, AddedP99 time.Duration
	// Recorded is the number of proxied calls in the ledger at the end;
	// it must equal Proxy.Requests - Proxy.Errors.
	Recorded int
	// Drain is how long recording took to catch up after the last response.
	Drain time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%s, %d clients: direct p50 %v p99 %v %.0f req/s; proxy p50 %v p99 %v %.0f req/s; added p50 %v p99 %v; %d/%d recorded, drain %v, %d errors",
		r.Config.Protocol, r.Config.Clients, r.Direct.P50, r.Direct.P99, r.Direct.PerSec, r.Proxy.P50, r.Proxy.P99, r.Proxy.PerSec,
		r.AddedP50, r.AddedP99, r.Recorded, r.Proxy.Requests-r.Proxy.Errors, r.Drain, r.Direct.Errors+r.Proxy.Errors)
}

const origin = "bench.localhost/log"

// caller is the one the benchmark's clients act as.
var caller = encounter.Caller{Tenant: "bench", Actor: "svc:bench"}

// Run measures the proxy of cfg.Protocol.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Clients <= 0 || cfg.Requests < cfg.Clients {
		return Result{}, errors.New("proxybench: need at least one client and a request per client")
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 10
	}
	if cfg.CallsPerEncounter <= 0 {
		cfg.CallsPerEncounter = 8
	}
	warm := min(cfg.Requests/10, 20*cfg.Clients)
	key, err := ledger.LoadOrCreateKey(cfg.Dir, origin)
	if err != nil {
		return Result{}, err
	}
	var store storage.Store = memstore.New()
	if cfg.Open != nil {
		if store, err = cfg.Open(filepath.Join(cfg.Dir, "store")); err != nil {
			return Result{}, err
		}
	}
	defer store.Close()
	l, err := ledger.Open(store, ledger.Options{Origin: origin, Key: key})
	if err != nil {
		return Result{}, err
	}
	defer l.Close()
	svc := encounter.New(l.Log, l, blob.New(store, nil))
	encs, err := createEncounters(ctx, svc, (warm+cfg.Requests)/cfg.CallsPerEncounter+1)
	if err != nil {
		return Result{}, err
	}
	var calls atomic.Int64
	label := func() string { return encs[int(calls.Add(1)-1)/cfg.CallsPerEncounter%len(encs)] }
	rec, err := proxy.NewRecorder(svc, l.Log, proxy.Options{Dir: filepath.Join(cfg.Dir, "spool"), Sync: cfg.Sync, QueueSize: cfg.QueueSize})
	if err != nil {
		return Result{}, err
	}
	defer rec.Close(context.Background())

	var direct, proxied func(ctx context.Context, client int) error
	var stop func()
	switch cfg.Protocol {
	case "http":
		direct, proxied, stop, err = setupHTTP(cfg, rec, label)
	case "grpc":
		direct, proxied, stop, err = setupGRPC(cfg, rec, label)
	default:
		err = fmt.Errorf("proxybench: protocol %q is not http or grpc", cfg.Protocol)
	}
	if err != nil {
		return Result{}, err
	}
	defer stop()

	// Warm up connections, caches and the default paths of both.
	run(ctx, direct, warm, cfg.Clients)
	run(ctx, proxied, warm, cfg.Clients)

	var dl, pl []time.Duration
	var dd, pd time.Duration
	var de, pe int
	per := cfg.Requests / cfg.Rounds
	for range cfg.Rounds {
		lat, errs, wall := run(ctx, direct, per, cfg.Clients)
		dl, de, dd = append(dl, lat...), de+errs, dd+wall
		lat, errs, wall = run(ctx, proxied, per, cfg.Clients)
		pl, pe, pd = append(pl, lat...), pe+errs, pd+wall
	}
	res := Result{Config: cfg, Direct: stats(dl, de, dd), Proxy: stats(pl, pe, pd)}
	res.AddedP50, res.AddedP99 = res.Proxy.P50-res.Direct.P50, res.Proxy.P99-res.Direct.P99

	start := time.Now()
	for rec.Pending() > 0 {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	res.Drain = time.Since(start)
	for _, id := range encs {
		err := l.WalkEncounter(caller.Tenant, id, func(e *ledger.StoredEntry) error {
			if e.Leaf.Kind == ledger.KindModelOutput {
				res.Recorded++
			}
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	// The warm-up calls were recorded too.
	res.Recorded -= warm
	return res, nil
}

// createEncounters opens n encounters, 64 at a time.
func createEncounters(ctx context.Context, svc *encounter.Service, n int) ([]string, error) {
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	sem := make(chan struct{}, 64)
	for i := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			info, _, err := svc.Create(ctx, caller, fmt.Sprintf("bench visit %d", i), "")
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			ids[i] = info.ID
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return ids, nil
}

// run makes n calls from clients goroutines and returns their latencies,
// the number that failed and the wall time.
func run(ctx context.Context, call func(context.Context, int) error, n, clients int) ([]time.Duration, int, time.Duration) {
	lat := make([]time.Duration, n)
	var errs int
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				err := call(ctx, c)
				lat[i] = time.Since(t)
				if err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return lat, errs, time.Since(start)
}

func stats(lat []time.Duration, errs int, wall time.Duration) Stats {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return Stats{Requests: len(lat), Errors: errs, P50: q(0.50), P99: q(0.99), Max: lat[len(lat)-1], PerSec: float64(len(lat)) / wall.Seconds()}
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func setupHTTP(cfg Config, rec *proxy.Recorder, label func() string) (direct, proxied func(context.Context, int) error, stop func(), err error) {
	chat := &upstreamtest.Chat{ChunkBytes: 64}
	if !cfg.Note {
		chat.Content = "The patient reports a cough for three days and no fever."
	}
	ul, err := listen()
	if err != nil {
		return nil, nil, nil, err
	}
	us := &http.Server{Handler: chat}
	go us.Serve(ul)
	h, err := proxy.NewHTTP(rec, proxy.HTTPConfig{Upstream: "http://" + ul.Addr().String(),
		Identify: func(*http.Request) (encounter.Caller, error) { return caller, nil }})
	if err != nil {
		us.Close()
		return nil, nil, nil, err
	}
	pl, err := listen()
	if err != nil {
		us.Close()
		return nil, nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/chat/completions", h)
	ps := &http.Server{Handler: mux}
	go ps.Serve(pl)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * cfg.Clients, MaxIdleConnsPerHost: 2 * cfg.Clients, DisableCompression: true}}
	body := []byte(fmt.Sprintf(`{"model":"bench-model","stream":%t,"temperature":0,"messages":[{"role":"system","content":"Write a SOAP note."},{"role":"user","content":%q}]}`,
		cfg.Stream, bytes.Repeat([]byte("PATIENT: I have had a cough for three days. "), 20)))
	call := func(base string, labelled bool) func(context.Context, int) error {
		url := base + "/v1/chat/completions"
		return func(ctx context.Context, c int) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if labelled {
				req.Header.Set(proxy.EncounterHeader, label())
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return err
		}
	}
	stop = func() {
		client.CloseIdleConnections()
		ps.Close()
		us.Close()
	}
	return call("http://"+ul.Addr().String(), false), call("http://"+pl.Addr().String(), true), stop, nil
}

func setupGRPC(cfg Config, rec *proxy.Recorder, label func() string) (direct, proxied func(context.Context, int) error, stop func(), err error) {
	fake := &upstreamtest.KServe{}
	if !cfg.Note {
		fake.Text = "The patient reports a cough for three days and no fever."
	}
	uaddr, ustop, err := upstreamtest.ServeKServe(fake)
	if err != nil {
		return nil, nil, nil, err
	}
	kp, err := proxy.NewKServe(rec, proxy.KServeConfig{Upstream: uaddr})
	if err != nil {
		ustop()
		return nil, nil, nil, err
	}
	// The ledger's server authenticates every call; this stands in for it.
	withCaller := func(ctx context.Context) context.Context {
		return auth.NewContext(ctx, auth.Identity{Tenant: caller.Tenant, Subject: caller.Actor, Role: auth.RolePipeline})
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(withCaller(ctx), req)
	}))
	kp.Register(s)
	pl, err := listen()
	if err != nil {
		ustop()
		return nil, nil, nil, err
	}
	go s.Serve(pl)
	dconn, err := grpc.NewClient(uaddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, nil, err
	}
	pconn, err := grpc.NewClient(pl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, nil, err
	}
	text := bytes.Repeat([]byte("PATIENT: I have had a cough for three days. "), 20)
	req := &inferencepb.ModelInferRequest{ModelName: "fake-llm",
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: kserve.DefaultInput, Datatype: "BYTES", Shape: []int64{1}}},
		RawInputContents: [][]byte{kserve.EncodeBytes(text)}}
	dc, pc := inferencepb.NewGRPCInferenceServiceClient(dconn), inferencepb.NewGRPCInferenceServiceClient(pconn)
	direct = func(ctx context.Context, _ int) error {
		_, err := dc.ModelInfer(ctx, req)
		return err
	}
	proxied = func(ctx context.Context, _ int) error {
		_, err := pc.ModelInfer(metadata.AppendToOutgoingContext(ctx, "x-evidence-encounter", label()), req)
		return err
	}
	stop = func() {
		dconn.Close()
		pconn.Close()
		s.Stop()
		kp.Close()
		ustop()
	}
	return direct, proxied, stop, nil
}
