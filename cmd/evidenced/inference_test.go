package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/pipeline/proxy"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

func TestInferenceFlags(t *testing.T) {
	c := defaultInference()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	addInferenceFlags(fs, &c)
	err := fs.Parse([]string{"--openai-base-url", "http://h:8000/v1", "--openai-model", "llama", "--openai-timeout", "90s",
		"--kserve-upstream", "h:8001", "--proxy-record", "sync"})
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenAIModel != "llama" || time.Duration(c.OpenAITimeout) != 90*time.Second || c.KServeUpstream != "h:8001" || c.ProxyRecord != "sync" || !c.OpenAIStream {
		t.Errorf("%+v", c)
	}
	if err := c.validate(); err != nil {
		t.Error(err)
	}
	var file inferenceConfig
	if err := file.OpenAITimeout.UnmarshalJSON([]byte(`"3m"`)); err != nil || time.Duration(file.OpenAITimeout) != 3*time.Minute {
		t.Errorf("duration from JSON: %v", err)
	}
	file.OpenAIAPIKey = "from-file"
	if !applyInferenceFromFile(&c, &file, "openai-api-key") || c.OpenAIAPIKey == "from-file" {
		t.Error("the API key was taken from the config file")
	}
	if applyInferenceFromFile(&c, &file, "data-dir") {
		t.Error("data-dir is not an inference flag")
	}
	for _, bad := range []inferenceConfig{
		{OpenAIBaseURL: "http://h/v1", ProxyRecord: "async", ProxyQueue: 1, ProxyDefaultTitle: "x"},
		{ProxyRecord: "later", ProxyQueue: 1, ProxyDefaultTitle: "x"},
		{ProxyRecord: "async", ProxyQueue: 1, ProxyDefaultTitle: "x", KServeSampling: "{"},
	} {
		if bad.validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func newLedger(t *testing.T) (*ledger.Appender, *encounter.Service) {
	t.Helper()
	kv := memstore.New()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidenced.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(kv, ledger.Options{Origin: "evidenced.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, encounter.New(l.Log, l, blob.New(kv, nil))
}

// TestSetupInferenceServesEverything wires setupInference as main does and
// drives the demo loader, the HTTP proxy and the KServe proxy through it.
func TestSetupInferenceServesEverything(t *testing.T) {
	chat := httptest.NewServer(&upstreamtest.Chat{})
	defer chat.Close()
	kaddr, stop, err := upstreamtest.ServeKServe(&upstreamtest.KServe{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	l, svc := newLedger(t)
	cfg := defaultInference()
	cfg.OpenAIBaseURL, cfg.OpenAIModel = chat.URL+"/v1", "fake-model"
	cfg.KServeAddr, cfg.KServeModel = kaddr, "fake-llm"
	cfg.OpenAIUpstream, cfg.KServeUpstream = chat.URL, kaddr
	data := t.TempDir()
	in, err := setupInference(cfg, data, l.Log, svc, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: svc, Auth: devAuthenticator, Inference: in.Pipeline, KServeProxy: in.KServeProxy})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()
	mux := http.NewServeMux()
	// The server's Guard puts the caller in the context; here, the demo
	// tenant's pipeline.
	mux.Handle("POST /v1/chat/completions", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := auth.Identity{Tenant: "demo", Role: auth.RolePipeline, Subject: "svc:test"}
		in.ChatProxy.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), id)))
	}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	// The demo drafts its note through InferenceService.
	id, err := loadDemo(context.Background(), data, lis.Addr().String(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	dctx := client.WithMetadata(context.Background(), "x-evidence-tenant", "demo")
	c, err := client.Dial(lis.Addr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Then a second draft through the OpenAI-compatible backend, from the
	// demo's fixture reply.
	n, err := c.Encounters.GetNote(dctx, &pb.GetNoteRequest{EncounterId: id})
	if err != nil || n.GetNote().GetSigned() || n.GetNote().GetModel().GetName() != demo.LLMModel {
		t.Fatalf("demo note: %v %v", n.GetNote().GetModel(), err)
	}
	// All three backends.
	for _, b := range []pb.InferenceBackend{pb.InferenceBackend_INFERENCE_BACKEND_EMBEDDED, pb.InferenceBackend_INFERENCE_BACKEND_OPENAI, pb.InferenceBackend_INFERENCE_BACKEND_KSERVE} {
		if _, err := pb.NewInferenceServiceClient(c.Conn()).GenerateNote(dctx, &pb.GenerateNoteRequest{EncounterId: id, Backend: b}); err != nil {
			t.Errorf("%v: %v", b, err)
		}
	}
	// Both proxies forward.
	resp, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("chat proxy: %v", err)
	}
	resp.Body.Close()
	live, err := inferencepb.NewGRPCInferenceServiceClient(c.Conn()).ServerLive(metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", "demo"), &inferencepb.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Fatalf("kserve proxy: %v", err)
	}
	gs.Stop()
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The proxied chat call went to the demo tenant's default encounter.
	infos, _, err := svc.List(context.Background(), encounter.Caller{Tenant: "demo", Actor: "t"}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, i := range infos {
		found = found || i.Title == proxy.DefaultTitle
	}
	if !found {
		t.Error("no default encounter for the proxied call")
	}
}
