package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/internal/testenv"
	"github.com/evidenceledger/evidence/pipeline/openai"
	"github.com/evidenceledger/evidence/pipeline/prompt"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

var ctx = context.Background()

var segs = []encounter.Segment{{ID: "s1", Role: "patient", Text: "Cough for three days."}}

func backend(t *testing.T, url string, mod func(*openai.Config)) *openai.Backend {
	t.Helper()
	cfg := openai.Config{BaseURL: url + "/v1", Model: "fake-model", APIKey: "sk-test", Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	b, err := openai.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateJSONAndStream(t *testing.T) {
	for _, stream := range []bool{false, true} {
		fake := &upstreamtest.Chat{Fingerprint: "fp_1", ChunkBytes: 7}
		srv := httptest.NewServer(fake)
		defer srv.Close()
		b := backend(t, srv.URL, func(c *openai.Config) { c.Stream = stream; c.MaxTokens = 512 })
		out, err := b.Generate(ctx, pipeline.Request{Segments: segs})
		if err != nil {
			t.Fatalf("stream=%v: %v", stream, err)
		}
		if out.Note == nil || len(out.Note.Sections) != 4 || out.Note.Sections[0].Sentences[0].ID != "S1" {
			t.Fatalf("stream=%v: note %+v", stream, out.Note)
		}
		if out.Model.Name != "fake-model" || out.Model.Version != "fp_1" || out.PromptSHA256 != prompt.TemplateSHA256 {
			t.Errorf("model %+v, prompt %s", out.Model, out.PromptSHA256)
		}
		if out.PromptTokens == 0 || out.CompletionTokens == 0 {
			t.Errorf("stream=%v: no token counts", stream)
		}
		if out.Parameters["max_tokens"] != "512" || out.Parameters["finish_reason"] != "stop" || out.Parameters["attempts"] != "1" {
			t.Errorf("parameters %v", out.Parameters)
		}
		var req struct {
			Model    string `json:"model"`
			Stream   bool   `json:"stream"`
			Messages []struct{ Role, Content string }
		}
		if err := json.Unmarshal(fake.LastRequest(), &req); err != nil {
			t.Fatal(err)
		}
		if req.Stream != stream || len(req.Messages) != 2 || req.Messages[0].Content != prompt.System || !strings.Contains(req.Messages[1].Content, "Cough for three days.") {
			t.Errorf("request %+v", req)
		}
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	fake := &upstreamtest.Chat{FailFirst: 2}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	out, err := backend(t, srv.URL, nil).Generate(ctx, pipeline.Request{Segments: segs})
	if err != nil {
		t.Fatal(err)
	}
	if fake.Requests() != 3 || out.Parameters["attempts"] != "3" {
		t.Errorf("%d requests, attempts %s", fake.Requests(), out.Parameters["attempts"])
	}
	// More failures than retries: unavailable.
	fake2 := &upstreamtest.Chat{FailFirst: 10}
	srv2 := httptest.NewServer(fake2)
	defer srv2.Close()
	_, err = backend(t, srv2.URL, func(c *openai.Config) { c.MaxRetries = 1 }).Generate(ctx, pipeline.Request{Segments: segs})
	if !errors.Is(err, pipeline.ErrUnavailable) || fake2.Requests() != 2 {
		t.Errorf("err %v after %d requests", err, fake2.Requests())
	}
}

func TestFailures(t *testing.T) {
	rejected := httptest.NewServer(&upstreamtest.Chat{Status: http.StatusNotFound})
	defer rejected.Close()
	notNote := httptest.NewServer(&upstreamtest.Chat{Content: "I cannot help with that."})
	defer notNote.Close()
	slow := httptest.NewServer(&upstreamtest.Chat{Delay: time.Second})
	defer slow.Close()
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + lis.Addr().String()
	lis.Close()

	for _, tc := range []struct {
		name string
		url  string
		mod  func(*openai.Config)
		want error
	}{
		{"4xx", rejected.URL, nil, pipeline.ErrRejected},
		{"not a note", notNote.URL, nil, pipeline.ErrBadReply},
		{"unreachable", dead, nil, pipeline.ErrUnavailable},
		{"attempt timeout", slow.URL, func(c *openai.Config) { c.Timeout = 20 * time.Millisecond; c.MaxRetries = -1 }, pipeline.ErrUnavailable},
	} {
		out, err := backend(t, tc.url, tc.mod).Generate(ctx, pipeline.Request{Segments: segs})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if out.Model.Name != "fake-model" || out.Note != nil {
			t.Errorf("%s: output %+v", tc.name, out)
		}
		if strings.Contains(err.Error(), "synthetic failure") || strings.Contains(err.Error(), "cannot help") {
			t.Errorf("%s: error %q carries upstream text", tc.name, err)
		}
	}
	// The caller's deadline wins over retries.
	dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, err := backend(t, slow.URL, nil).Generate(dctx, pipeline.Request{Segments: segs})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
}

// TestThroughPipeline drafts a note with the backend and checks what the
// ledger recorded.
func TestThroughPipeline(t *testing.T) {
	fake := &upstreamtest.Chat{Fingerprint: "fp_2"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	svc, l := testenv.New(t)
	id, segIdx := testenv.Visit(t, svc, testenv.Alice)
	p := pipeline.New(svc, map[string]pipeline.Generator{pipeline.BackendOpenAI: backend(t, srv.URL, func(c *openai.Config) { c.Stream = true })}, pipeline.Options{})
	res, err := p.GenerateNote(ctx, testenv.Alice, id, pipeline.NoteRequest{Backend: pipeline.BackendOpenAI})
	if err != nil {
		t.Fatal(err)
	}
	outs := testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, id)
	o := outs[len(outs)-1]
	if o.Model.Name != "fake-model" || o.Model.Version != "fp_2" || o.PromptSHA256 != prompt.TemplateSHA256 || len(o.Inputs) != len(segIdx) ||
		o.PromptTokens == 0 || o.Parameters["stream"] != "true" || o.Note == nil || res.Recorded.Alignment < 0 {
		t.Fatalf("recorded %+v", o.ModelOutput)
	}
	testenv.VerifyIncluded(t, l.Log, o.Index)
	testenv.VerifyIncluded(t, l.Log, res.Recorded.Alignment)
	// The API key is never recorded.
	for k, v := range o.Parameters {
		if strings.Contains(v, "sk-test") {
			t.Errorf("parameter %s holds the API key", k)
		}
	}
}
