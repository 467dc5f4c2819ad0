package demo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/openai"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

// The visit's second draft is what a chat-completions model answered, as
// far as the ledger can tell: visit/llm_reply.json, a reply in the form the
// prompt asks for (package pipeline/prompt). No model was run. The reply
// was written by hand for this demo, from the transcript, in the style of
// a language model's draft, with two errors of the kinds such drafts make:
// the pain's side swapped (the patient said left; the draft says right)
// and an allergy status nobody asked about ("No known drug allergies.").
// It is served by an OpenAI-compatible server on loopback
// (upstreamtest.Chat) for the length of one call, and drafted into a note
// by the real OpenAI-compatible backend (pipeline/openai), so the reply
// takes the path any model's reply takes. The recorded model name and
// fingerprint, and the "source" parameter, say what it is.
const (
	LLMModel       = "demo-fixture-llm"
	LLMFingerprint = "hand-written-2026-12"
	// LLMSource is recorded as the model output's "source" parameter.
	LLMSource = "demo fixture: a hand-written reply in the form of a language model's draft, with two deliberate errors; no model was run"
)

// llmDraft is the second draft and how it was made.
type llmDraft struct {
	pipeline.Output
	Latency time.Duration
}

// draftWithLLM asks the OpenAI-compatible backend for a note of v's
// transcript from a loopback server that answers with v.LLMReply.
func draftWithLLM(ctx context.Context, v *Visit) (*llmDraft, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: model server: %w", err)
	}
	srv := &http.Server{Handler: &upstreamtest.Chat{Content: v.LLMReply, Model: LLMModel, Fingerprint: LLMFingerprint}, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	defer func() {
		srv.Close()
		<-done
	}()
	b, err := openai.New(openai.Config{BaseURL: "http://" + lis.Addr().String() + "/v1", Model: LLMModel, Stream: true, MaxRetries: -1, Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	out, err := b.Generate(ctx, pipeline.Request{Segments: v.Segments})
	if err != nil {
		return nil, fmt.Errorf("demo: the fixture's draft: %w", err)
	}
	out.Parameters["source"] = LLMSource
	return &llmDraft{Output: out, Latency: time.Since(start)}, nil
}
