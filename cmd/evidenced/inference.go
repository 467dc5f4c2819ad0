package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/kserve"
	"github.com/evidenceledger/evidence/pipeline/openai"
	"github.com/evidenceledger/evidence/pipeline/proxy"
)

// inferenceConfig configures the inference pipeline's backends and the
// recording proxies (docs/pipeline.md). Every field is a flag, an
// EVIDENCE_* environment variable and a key of the config file's
// "inference" object, except the API key, which the file does not hold.
type inferenceConfig struct {
	// The OpenAI-compatible backend of GenerateNote.
	OpenAIBaseURL string   `json:"openai_base_url"`
	OpenAIModel   string   `json:"openai_model"`
	OpenAIAPIKey  string   `json:"-"`
	OpenAIStream  bool     `json:"openai_stream"`
	OpenAITimeout duration `json:"openai_timeout"`
	OpenAIRetries int      `json:"openai_retries"`
	// The KServe v2 / Triton backend of GenerateNote.
	KServeAddr     string   `json:"kserve_addr"`
	KServeModel    string   `json:"kserve_model"`
	KServeVersion  string   `json:"kserve_version"`
	KServeStream   bool     `json:"kserve_stream"`
	KServeSampling string   `json:"kserve_sampling_parameters"`
	KServeTimeout  duration `json:"kserve_timeout"`
	// InferenceTimeout bounds one GenerateNote model call, retries included.
	InferenceTimeout duration `json:"inference_timeout"`
	// The recording proxies.
	OpenAIUpstream      string `json:"openai_upstream"`
	KServeUpstream      string `json:"kserve_upstream"`
	ProxyDefaultTitle   string `json:"proxy_default_encounter"`
	ProxyRecord         string `json:"proxy_record"`
	ProxyQueue          int    `json:"proxy_queue"`
	ProxyMaxRequestSize int64  `json:"proxy_max_request_bytes"`
}

func defaultInference() inferenceConfig {
	return inferenceConfig{
		OpenAIStream:      true,
		OpenAITimeout:     duration(2 * time.Minute),
		OpenAIRetries:     2,
		KServeTimeout:     duration(2 * time.Minute),
		InferenceTimeout:  duration(5 * time.Minute),
		ProxyDefaultTitle: proxy.DefaultTitle,
		ProxyRecord:       "async",
		ProxyQueue:        4096,
	}
}

// duration is a time.Duration that is a flag and reads JSON strings such
// as "90s".
type duration time.Duration

func (d *duration) String() string { return time.Duration(*d).String() }
func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}
func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"90s\": %w", err)
	}
	return d.Set(s)
}

// addInferenceFlags defines the inference flags on fs, with c's values as
// defaults. The environment variable of each is EVIDENCE_ and its name in
// capitals with underscores (EVIDENCE_OPENAI_API_KEY, ...).
func addInferenceFlags(fs *flag.FlagSet, c *inferenceConfig) {
	fs.StringVar(&c.OpenAIBaseURL, "openai-base-url", c.OpenAIBaseURL, "OpenAI-compatible API root for the openai backend of GenerateNote, e.g. http://127.0.0.1:8000/v1 (vLLM), http://127.0.0.1:11434/v1 (Ollama)")
	fs.StringVar(&c.OpenAIModel, "openai-model", c.OpenAIModel, "model the openai backend asks for")
	fs.StringVar(&c.OpenAIAPIKey, "openai-api-key", c.OpenAIAPIKey, "API key of the openai backend; prefer EVIDENCE_OPENAI_API_KEY, which ps does not show")
	fs.BoolVar(&c.OpenAIStream, "openai-stream", c.OpenAIStream, "read the openai backend's reply as an SSE stream")
	fs.Var(&c.OpenAITimeout, "openai-timeout", "timeout of one openai backend attempt")
	fs.IntVar(&c.OpenAIRetries, "openai-retries", c.OpenAIRetries, "retries of a failed openai backend attempt (network, 408, 429, 5xx); -1 for none")
	fs.StringVar(&c.KServeAddr, "kserve-addr", c.KServeAddr, "KServe v2 / Triton gRPC address (host:port) for the kserve backend of GenerateNote")
	fs.StringVar(&c.KServeModel, "kserve-model", c.KServeModel, "model the kserve backend runs (BYTES text_input -> text_output)")
	fs.StringVar(&c.KServeVersion, "kserve-version", c.KServeVersion, "model version for the kserve backend; empty lets the server choose")
	fs.BoolVar(&c.KServeStream, "kserve-stream", c.KServeStream, "use ModelStreamInfer for the kserve backend")
	fs.StringVar(&c.KServeSampling, "kserve-sampling-parameters", c.KServeSampling, `JSON sent as the BYTES input sampling_parameters (Triton vLLM), e.g. {"temperature":0,"max_tokens":1024}`)
	fs.Var(&c.KServeTimeout, "kserve-timeout", "timeout of one kserve backend attempt")
	fs.Var(&c.InferenceTimeout, "inference-timeout", "timeout of one GenerateNote model call, retries included")
	fs.StringVar(&c.OpenAIUpstream, "openai-upstream", c.OpenAIUpstream, "serve POST /v1/chat/completions on the HTTP port as a recording proxy to this server root, e.g. http://127.0.0.1:8000")
	fs.StringVar(&c.KServeUpstream, "kserve-upstream", c.KServeUpstream, "serve inference.GRPCInferenceService on the gRPC port as a recording proxy to this host:port")
	fs.StringVar(&c.ProxyDefaultTitle, "proxy-default-encounter", c.ProxyDefaultTitle, "title of each tenant's encounter for proxied calls without x-evidence-encounter (created when missing)")
	fs.StringVar(&c.ProxyRecord, "proxy-record", c.ProxyRecord, "async: responses do not wait for the ledger (spooled, see docs/pipeline.md); sync: each response waits until its call is durable")
	fs.IntVar(&c.ProxyQueue, "proxy-queue", c.ProxyQueue, "proxied calls admitted but not yet recorded; beyond it the proxies answer 503/Unavailable")
	fs.Int64Var(&c.ProxyMaxRequestSize, "proxy-max-request-bytes", c.ProxyMaxRequestSize, "largest request body the HTTP proxy forwards (0: 32 MiB)")
}

// applyInferenceFromFile copies the setting of flag name from the config
// file's values, and reports whether name is an inference flag.
func applyInferenceFromFile(c, file *inferenceConfig, name string) bool {
	switch name {
	case "openai-base-url":
		c.OpenAIBaseURL = file.OpenAIBaseURL
	case "openai-model":
		c.OpenAIModel = file.OpenAIModel
	case "openai-api-key":
		// Never from the file.
	case "openai-stream":
		c.OpenAIStream = file.OpenAIStream
	case "openai-timeout":
		c.OpenAITimeout = file.OpenAITimeout
	case "openai-retries":
		c.OpenAIRetries = file.OpenAIRetries
	case "kserve-addr":
		c.KServeAddr = file.KServeAddr
	case "kserve-model":
		c.KServeModel = file.KServeModel
	case "kserve-version":
		c.KServeVersion = file.KServeVersion
	case "kserve-stream":
		c.KServeStream = file.KServeStream
	case "kserve-sampling-parameters":
		c.KServeSampling = file.KServeSampling
	case "kserve-timeout":
		c.KServeTimeout = file.KServeTimeout
	case "inference-timeout":
		c.InferenceTimeout = file.InferenceTimeout
	case "openai-upstream":
		c.OpenAIUpstream = file.OpenAIUpstream
	case "kserve-upstream":
		c.KServeUpstream = file.KServeUpstream
	case "proxy-default-encounter":
		c.ProxyDefaultTitle = file.ProxyDefaultTitle
	case "proxy-record":
		c.ProxyRecord = file.ProxyRecord
	case "proxy-queue":
		c.ProxyQueue = file.ProxyQueue
	case "proxy-max-request-bytes":
		c.ProxyMaxRequestSize = file.ProxyMaxRequestSize
	default:
		return false
	}
	return true
}

// validate checks the settings that can be checked without a network.
func (c inferenceConfig) validate() error {
	var errs []error
	if (c.OpenAIBaseURL == "") != (c.OpenAIModel == "") {
		errs = append(errs, errors.New("--openai-base-url and --openai-model go together"))
	}
	if (c.KServeAddr == "") != (c.KServeModel == "") {
		errs = append(errs, errors.New("--kserve-addr and --kserve-model go together"))
	}
	if c.KServeSampling != "" && !json.Valid([]byte(c.KServeSampling)) {
		errs = append(errs, errors.New("--kserve-sampling-parameters must be JSON"))
	}
	if c.ProxyRecord != "async" && c.ProxyRecord != "sync" {
		errs = append(errs, fmt.Errorf("--proxy-record must be async or sync, not %q", c.ProxyRecord))
	}
	if c.ProxyQueue < 1 {
		errs = append(errs, errors.New("--proxy-queue must be at least 1"))
	}
	if strings.TrimSpace(c.ProxyDefaultTitle) == "" || len(c.ProxyDefaultTitle) > encounter.MaxTitleBytes {
		errs = append(errs, fmt.Errorf("--proxy-default-encounter must be 1 to %d bytes", encounter.MaxTitleBytes))
	}
	return errors.Join(errs...)
}

// inference is what the server serves for the inference wrapper.
type inference struct {
	// Pipeline serves InferenceService: grpcapi.Config.Inference.
	Pipeline grpcapi.NoteGenerator
	// KServeProxy is the gRPC recording proxy, or nil without
	// --kserve-upstream: grpcapi.Config.KServeProxy.
	KServeProxy grpcapi.Registrar
	// ChatProxy is the HTTP recording proxy, or nil without
	// --openai-upstream: mux.Handle("POST /v1/chat/completions", ...).
	ChatProxy http.Handler
	// Close drains the proxies' recording queue into the ledger and closes
	// the backends' connections. Call it after the gRPC and HTTP servers
	// have stopped and before the log closes.
	Close func(ctx context.Context) error
}

// setupInference builds the pipeline (the embedded generator, plus the
// openai and kserve backends when configured) and the recording proxies
// (when an upstream is configured). The proxies' spool is
// <dataDir>/proxy-spool, sealed by spoolSealer (the server's envelope
// sealer; nil only in tests); calls it holds from an earlier run are
// recorded in the background.
func setupInference(cfg inferenceConfig, dataDir string, l *ledger.Log, svc *encounter.Service, spoolSealer proxy.Sealer, reg prometheus.Registerer, logger *slog.Logger) (*inference, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	backends := map[string]pipeline.Generator{}
	if cfg.OpenAIBaseURL != "" {
		b, err := openai.New(openai.Config{BaseURL: cfg.OpenAIBaseURL, Model: cfg.OpenAIModel, APIKey: cfg.OpenAIAPIKey,
			Stream: cfg.OpenAIStream, Timeout: time.Duration(cfg.OpenAITimeout), MaxRetries: cfg.OpenAIRetries})
		if err != nil {
			return nil, err
		}
		backends[pipeline.BackendOpenAI] = b
	}
	if cfg.KServeAddr != "" {
		b, err := kserve.New(kserve.Config{Addr: cfg.KServeAddr, Model: cfg.KServeModel, Version: cfg.KServeVersion,
			Stream: cfg.KServeStream, SamplingParameters: cfg.KServeSampling, Timeout: time.Duration(cfg.KServeTimeout)})
		if err != nil {
			return nil, err
		}
		closers = append(closers, b.Close)
		backends[pipeline.BackendKServe] = b
		go func() {
			// A model server that is down at start is not fatal: calls fail,
			// and are recorded, until it is up.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Check(ctx); err != nil {
				logger.Warn("kserve backend not ready", "addr", cfg.KServeAddr, "model", cfg.KServeModel, "error", err.Error())
			}
		}()
	}
	in := &inference{Pipeline: pipeline.New(svc, backends, pipeline.Options{Timeout: time.Duration(cfg.InferenceTimeout)})}
	in.Close = func(context.Context) error { closeAll(); return nil }
	if cfg.OpenAIUpstream == "" && cfg.KServeUpstream == "" {
		return in, nil
	}

	rec, err := proxy.NewRecorder(svc, l, proxy.Options{Dir: filepath.Join(dataDir, "proxy-spool"), QueueSize: cfg.ProxyQueue,
		Sync: cfg.ProxyRecord == "sync", DefaultTitle: cfg.ProxyDefaultTitle, Sealer: spoolSealer, Logger: logger.With("component", "proxy"), Registry: reg})
	if err != nil {
		closeAll()
		return nil, err
	}
	if cfg.OpenAIUpstream != "" {
		h, err := proxy.NewHTTP(rec, proxy.HTTPConfig{Upstream: cfg.OpenAIUpstream, Identify: httpCaller, MaxRequestBytes: cfg.ProxyMaxRequestSize})
		if err != nil {
			rec.Close(context.Background())
			closeAll()
			return nil, err
		}
		in.ChatProxy = h
	}
	if cfg.KServeUpstream != "" {
		kp, err := proxy.NewKServe(rec, proxy.KServeConfig{Upstream: cfg.KServeUpstream})
		if err != nil {
			rec.Close(context.Background())
			closeAll()
			return nil, err
		}
		closers = append(closers, kp.Close)
		in.KServeProxy = kp
	}
	in.Close = func(ctx context.Context) error {
		err := rec.Close(ctx)
		closeAll()
		return err
	}
	return in, nil
}
