// Package upstreamtest provides in-process model servers that speak the
// real protocols, for tests and benchmarks of the inference backends and
// the recording proxies, and for the demo's fixture draft (package demo): Chat, an OpenAI-compatible chat-completions
// server with SSE streaming, and KServe, a KServe v2 / Triton
// GRPCInferenceService. Their replies are deterministic, contain only
// synthetic text, and need no network beyond the loopback interface.
package upstreamtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Note is the default reply: a SOAP note in the JSON form of package
// prompt, about a synthetic consultation.
const Note = `{"sections":[{"name":"Subjective","sentences":["Cough for three days.","No fever."]},{"name":"Objective","sentences":["Chest clear."]},{"name":"Assessment","sentences":["Viral upper respiratory tract infection."]},{"name":"Plan","sentences":["Rest and fluids.","Return if breathless."]}]}`

// Chat is an OpenAI-compatible chat-completions handler. It answers POST
// requests with a chat.completion object, or with a text/event-stream of
// chat.completion.chunk events ending in "data: [DONE]" when the request
// sets "stream": true. Configure it before serving; it is safe for
// concurrent requests.
type Chat struct {
	// Content is the assistant's reply; empty means Note.
	Content string
	// Model is reported as the model; empty means the request's.
	Model string
	// Fingerprint is reported as system_fingerprint.
	Fingerprint string
	// Status, when set and not 200, answers every request with that
	// status and an OpenAI error object.
	Status int
	// FailFirst answers the first FailFirst requests with 503.
	FailFirst int
	// ChunkBytes is how many bytes of content each stream event carries;
	// zero means 16.
	ChunkBytes int
	// Trailer, when set, is sent as the HTTP trailer X-Upstream-Trailer.
	Trailer string
	// Delay is waited before answering.
	Delay time.Duration

	mu struct {
		sync.Mutex
		requests int
		request  []byte
		header   http.Header
		response []byte
	}
}

// LastHeader returns the headers of the last request.
func (c *Chat) LastHeader() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.header
}

// Requests returns how many requests the server has received.
func (c *Chat) Requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.requests
}

// LastRequest returns the body of the last request.
func (c *Chat) LastRequest() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.request
}

// LastResponse returns the body bytes of the last response, exactly as
// written.
func (c *Chat) LastResponse() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.response
}

type chatReq struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (c *Chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.mu.requests++
	n := c.mu.requests
	c.mu.request = body
	c.mu.header = r.Header.Clone()
	c.mu.Unlock()
	if c.Delay > 0 {
		select {
		case <-time.After(c.Delay):
		case <-r.Context().Done():
			return
		}
	}
	var req chatReq
	if r.Method != http.MethodPost || json.Unmarshal(body, &req) != nil {
		c.fail(w, http.StatusBadRequest, "invalid_request_error")
		return
	}
	switch {
	case c.Status != 0 && c.Status != http.StatusOK:
		c.fail(w, c.Status, "upstream_error")
		return
	case n <= c.FailFirst:
		w.Header().Set("Retry-After", "0")
		c.fail(w, http.StatusServiceUnavailable, "overloaded")
		return
	}
	model := c.Model
	if model == "" {
		model = req.Model
	}
	content := c.Content
	if content == "" {
		content = Note
	}
	id := fmt.Sprintf("chatcmpl-fake-%d", n)
	usage := map[string]int{"prompt_tokens": 100 + n%7, "completion_tokens": len(strings.Fields(content)), "total_tokens": 100 + n%7 + len(strings.Fields(content))}
	if c.Trailer != "" {
		w.Header().Set("Trailer", "X-Upstream-Trailer")
	}
	var out []byte
	if !req.Stream {
		out, _ = json.Marshal(map[string]any{
			"id": id, "object": "chat.completion", "created": 1700000000, "model": model, "system_fingerprint": c.Fingerprint,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop"}},
			"usage":   usage,
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	} else {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		send := func(v any) {
			b, _ := json.Marshal(v)
			ev := "data: " + string(b) + "\n\n"
			out = append(out, ev...)
			io.WriteString(w, ev)
			if fl != nil {
				fl.Flush()
			}
		}
		chunk := func(delta map[string]any, finish any) map[string]any {
			return map[string]any{"id": id, "object": "chat.completion.chunk", "created": 1700000000, "model": model, "system_fingerprint": c.Fingerprint,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
		}
		send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
		size := c.ChunkBytes
		if size <= 0 {
			size = 16
		}
		for i := 0; i < len(content); i += size {
			send(chunk(map[string]any{"content": content[i:min(i+size, len(content))]}, nil))
		}
		send(chunk(map[string]any{}, "stop"))
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": []any{}, "usage": usage})
		}
		ev := "data: [DONE]\n\n"
		out = append(out, ev...)
		io.WriteString(w, ev)
	}
	if c.Trailer != "" {
		w.Header().Set("X-Upstream-Trailer", c.Trailer)
	}
	c.mu.Lock()
	c.mu.response = out
	c.mu.Unlock()
}

func (c *Chat) fail(w http.ResponseWriter, status int, typ string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": "synthetic failure", "type": typ, "code": status}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
	c.mu.Lock()
	c.mu.response = b
	c.mu.Unlock()
}
