package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/prompt"
)

// Config configures a Backend.
type Config struct {
	// BaseURL is the API root that /chat/completions is appended to, such
	// as "http://127.0.0.1:8000/v1" (vLLM), "http://127.0.0.1:11434/v1"
	// (Ollama) or "http://127.0.0.1:8080/v1" (llama.cpp).
	BaseURL string
	// Model is the model to ask for; a request's Model overrides it.
	Model string
	// APIKey, when set, is sent as "Authorization: Bearer <key>".
	APIKey string
	// Timeout bounds one attempt, from sending the request to the end of
	// the reply. Zero means 2 minutes.
	Timeout time.Duration
	// MaxRetries is how many times a failed attempt is retried (network
	// errors, 408, 429 and 5xx responses, broken streams). Zero means 2;
	// negative means none.
	MaxRetries int
	// Backoff is the first retry delay; each retry doubles it, up to
	// MaxBackoff, with full jitter. A Retry-After header of up to
	// MaxBackoff seconds is honoured instead. Zero means 500ms and 10s.
	Backoff, MaxBackoff time.Duration
	// Stream asks for an SSE stream ("stream": true) and reads the reply
	// as it arrives.
	Stream bool
	// Temperature is sent as is; 0 asks for the most deterministic reply.
	Temperature float64
	// MaxTokens, when positive, is sent as "max_tokens".
	MaxTokens int
	// Client is the HTTP client; nil means a client of its own.
	Client *http.Client
}

// MaxResponseBytes caps a response body.
const MaxResponseBytes = 8 << 20

// Backend drafts notes with a chat-completions model. It is safe for
// concurrent use.
type Backend struct {
	cfg      Config
	endpoint string
}

// New returns a Backend, or an error for a bad configuration.
func New(cfg Config) (*Backend, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai: base URL %q must be an http or https URL", cfg.BaseURL)
	}
	if cfg.Model == "" {
		return nil, errors.New("openai: a model is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 2
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	return &Backend{cfg: cfg, endpoint: strings.TrimSuffix(cfg.BaseURL, "/") + "/chat/completions"}, nil
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model         string         `json:"model"`
	Messages      []message      `json:"messages"`
	Temperature   float64        `json:"temperature"`
	MaxTokens     int            `json:"max_tokens,omitempty"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions map[string]any `json:"stream_options,omitempty"`
}

// Generate asks the model for a SOAP note (package prompt) and parses the
// reply. Failures wrap pipeline.ErrUnavailable (unreachable, 408, 429, 5xx
// or a broken stream, after retries), pipeline.ErrRejected (other 4xx, or
// an error object in the reply), pipeline.ErrBadReply (a reply that is not
// a note) or the context's error.
func (b *Backend) Generate(ctx context.Context, req pipeline.Request) (pipeline.Output, error) {
	model := b.cfg.Model
	if req.Model != "" {
		model = req.Model
	}
	out := pipeline.Output{
		Model:        encounter.Model{Name: model},
		PromptSHA256: prompt.TemplateSHA256,
		Parameters: map[string]string{
			"prompt_template": prompt.TemplateVersion,
			"temperature":     strconv.FormatFloat(b.cfg.Temperature, 'g', -1, 64),
			"stream":          strconv.FormatBool(b.cfg.Stream),
			"endpoint":        b.endpoint,
		},
	}
	if b.cfg.MaxTokens > 0 {
		out.Parameters["max_tokens"] = strconv.Itoa(b.cfg.MaxTokens)
	}
	system, user := prompt.Build(req.Segments)
	cr := chatRequest{Model: model, Messages: []message{{"system", system}, {"user", user}},
		Temperature: b.cfg.Temperature, MaxTokens: b.cfg.MaxTokens, Stream: b.cfg.Stream}
	if b.cfg.Stream {
		cr.StreamOptions = map[string]any{"include_usage": true}
	}
	body, err := json.Marshal(cr)
	if err != nil {
		return out, err
	}

	var reply Reply
	for attempt := 0; ; attempt++ {
		out.Parameters["attempts"] = strconv.Itoa(attempt + 1)
		var retryAfter time.Duration
		reply, retryAfter, err = b.attempt(ctx, body)
		if err == nil || !errors.Is(err, pipeline.ErrUnavailable) || attempt == b.cfg.MaxRetries || ctx.Err() != nil {
			break
		}
		if err := sleep(ctx, b.delay(attempt, retryAfter)); err != nil {
			break
		}
	}
	if reply.Usage != nil {
		out.PromptTokens, out.CompletionTokens = reply.Usage.PromptTokens, reply.Usage.CompletionTokens
	}
	if reply.Model != "" && reply.Model != model {
		out.Model.Name = reply.Model
		out.Parameters["requested_model"] = model
	}
	out.Model.Version = reply.SystemFingerprint
	if reply.FinishReason != "" {
		out.Parameters["finish_reason"] = reply.FinishReason
	}
	if reply.ID != "" && len(reply.ID) <= 128 {
		out.Parameters["response_id"] = reply.ID
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return out, err
	}
	note, perr := prompt.Parse(reply.Content)
	if perr != nil {
		if reply.FinishReason == "length" {
			return out, fmt.Errorf("%w: %w (the reply was cut off at max_tokens)", pipeline.ErrBadReply, perr)
		}
		return out, fmt.Errorf("%w: %w", pipeline.ErrBadReply, perr)
	}
	out.Note = note
	return out, nil
}

func (b *Backend) delay(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 && retryAfter <= b.cfg.MaxBackoff {
		return retryAfter
	}
	d := b.cfg.Backoff << attempt
	if d > b.cfg.MaxBackoff || d <= 0 {
		d = b.cfg.MaxBackoff
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt makes one HTTP call. It returns the Retry-After delay of a 429
// or 503 response.
func (b *Backend) attempt(ctx context.Context, body []byte) (Reply, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint, bytes.NewReader(body))
	if err != nil {
		return Reply{}, 0, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if b.cfg.Stream {
		hr.Header.Set("Accept", "text/event-stream")
	} else {
		hr.Header.Set("Accept", "application/json")
	}
	if b.cfg.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+b.cfg.APIKey)
	}
	resp, err := b.cfg.Client.Do(hr)
	if err != nil {
		return Reply{}, 0, fmt.Errorf("%w: %s", pipeline.ErrUnavailable, transportError(err))
	}
	defer resp.Body.Close()
	lim := io.LimitReader(resp.Body, MaxResponseBytes+1)
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(lim)
		r, _ := ParseResponse(resp.Header.Get("Content-Type"), data)
		desc := fmt.Sprintf("HTTP %d", resp.StatusCode)
		if r.Error != nil {
			desc += " (" + r.Error.Describe() + ")"
		}
		switch {
		case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return r, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("%w: %s", pipeline.ErrUnavailable, desc)
		}
		return r, 0, fmt.Errorf("%w: %s", pipeline.ErrRejected, desc)
	}
	var reply Reply
	if IsEventStream(resp.Header.Get("Content-Type")) {
		err = ReadEvents(lim, func(data []byte) error { return reply.addChunk(data) })
		if err != nil && !errors.Is(err, ErrMalformed) {
			return reply, 0, fmt.Errorf("%w: the stream broke after %d events: %s", pipeline.ErrUnavailable, reply.Chunks, transportError(err))
		}
	} else {
		data, rerr := io.ReadAll(lim)
		if rerr != nil {
			return reply, 0, fmt.Errorf("%w: reading the reply: %s", pipeline.ErrUnavailable, transportError(rerr))
		}
		if len(data) > MaxResponseBytes {
			return reply, 0, fmt.Errorf("%w: the reply is longer than %d bytes", pipeline.ErrBadReply, MaxResponseBytes)
		}
		reply, err = ParseResponse(resp.Header.Get("Content-Type"), data)
	}
	if err != nil {
		return reply, 0, fmt.Errorf("%w: %w", pipeline.ErrBadReply, err)
	}
	if reply.Error != nil {
		return reply, 0, fmt.Errorf("%w: the reply is an error object (%s)", pipeline.ErrRejected, reply.Error.Describe())
	}
	return reply, 0, nil
}

func retryAfter(h string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// transportError describes a network error without request content: the
// operation and the cause, such as "connection refused" or "timeout".
func transportError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
