package kserve

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/encounter"
	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/prompt"
)

// Default tensor names (those of Triton's vLLM and TensorRT-LLM backends).
const (
	DefaultInput  = "text_input"
	DefaultOutput = "text_output"
	// SamplingInput is the tensor that carries Config.SamplingParameters.
	SamplingInput = "sampling_parameters"
)

// Config configures a Backend.
type Config struct {
	// Addr is the server's gRPC address, host:port.
	Addr string
	// Model is the model to run; a request's Model overrides it.
	Model string
	// Version is the model version; empty lets the server choose.
	Version string
	// Input and Output name the BYTES tensors; empty means DefaultInput
	// and DefaultOutput.
	Input, Output string
	// SamplingParameters, when set, is a JSON object sent as the BYTES
	// input "sampling_parameters" (Triton vLLM backend), e.g.
	// {"temperature":0,"max_tokens":1024}.
	SamplingParameters string
	// Stream uses ModelStreamInfer and concatenates the text of every
	// response of the stream (a decoupled model streams tokens).
	Stream bool
	// Timeout bounds one attempt; zero means 2 minutes.
	Timeout time.Duration
	// MaxRetries is how many times an attempt that failed with
	// Unavailable, ResourceExhausted, Aborted, Internal or Unknown, or
	// that timed out, is retried. Zero means 2; negative means none.
	MaxRetries int
	// Backoff is the first retry delay, doubled per retry up to
	// MaxBackoff, with full jitter. Zero means 500ms and 10s.
	Backoff, MaxBackoff time.Duration
	// TLS, when set, dials with TLS; else in plaintext.
	TLS *tls.Config
	// Conn, when set, is used instead of dialling Addr (and not closed).
	Conn grpc.ClientConnInterface
}

// MaxMessageBytes caps a reply message.
const MaxMessageBytes = 64 << 20

// Backend drafts notes with a model on a KServe v2 / Triton server. It is
// safe for concurrent use.
type Backend struct {
	cfg    Config
	client inferencepb.GRPCInferenceServiceClient
	conn   *grpc.ClientConn // owned, or nil

	mu struct {
		sync.Mutex
		version string // the version ModelMetadata reported, when Config.Version is empty
	}
}

// New returns a Backend. It does not connect until the first call.
func New(cfg Config) (*Backend, error) {
	if cfg.Model == "" {
		return nil, errors.New("kserve: a model is required")
	}
	if cfg.Input == "" {
		cfg.Input = DefaultInput
	}
	if cfg.Output == "" {
		cfg.Output = DefaultOutput
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
	b := &Backend{cfg: cfg}
	conn := cfg.Conn
	if conn == nil {
		if cfg.Addr == "" {
			return nil, errors.New("kserve: an address is required")
		}
		creds := insecure.NewCredentials()
		if cfg.TLS != nil {
			creds = credentials.NewTLS(cfg.TLS)
		}
		c, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes)))
		if err != nil {
			return nil, fmt.Errorf("kserve: %w", err)
		}
		b.conn, conn = c, c
	}
	b.client = inferencepb.NewGRPCInferenceServiceClient(conn)
	return b, nil
}

// Close closes the connection the Backend dialled.
func (b *Backend) Close() error {
	if b.conn != nil {
		return b.conn.Close()
	}
	return nil
}

// Check asks the server whether it is live and ready and whether the model
// is ready, and checks with ModelMetadata that the model has the input and
// output tensors the backend uses. It returns an error wrapping
// pipeline.ErrUnavailable or pipeline.ErrRejected.
func (b *Backend) Check(ctx context.Context) error {
	live, err := b.client.ServerLive(ctx, &inferencepb.ServerLiveRequest{})
	if err != nil {
		return callError("ServerLive", err)
	}
	if !live.GetLive() {
		return fmt.Errorf("%w: the server is not live", pipeline.ErrUnavailable)
	}
	ready, err := b.client.ServerReady(ctx, &inferencepb.ServerReadyRequest{})
	if err != nil {
		return callError("ServerReady", err)
	}
	if !ready.GetReady() {
		return fmt.Errorf("%w: the server is not ready", pipeline.ErrUnavailable)
	}
	mr, err := b.client.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: b.cfg.Model, Version: b.cfg.Version})
	if err != nil {
		return callError("ModelReady", err)
	}
	if !mr.GetReady() {
		return fmt.Errorf("%w: model %q is not ready", pipeline.ErrUnavailable, b.cfg.Model)
	}
	md, err := b.client.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: b.cfg.Model, Version: b.cfg.Version})
	if err != nil {
		return callError("ModelMetadata", err)
	}
	has := func(ts []*inferencepb.ModelMetadataResponse_TensorMetadata, name string) bool {
		for _, t := range ts {
			if t.GetName() == name && t.GetDatatype() == "BYTES" {
				return true
			}
		}
		return false
	}
	if !has(md.GetInputs(), b.cfg.Input) || !has(md.GetOutputs(), b.cfg.Output) {
		return fmt.Errorf("%w: model %q has no BYTES input %q and output %q", pipeline.ErrRejected, b.cfg.Model, b.cfg.Input, b.cfg.Output)
	}
	if b.cfg.Version == "" && len(md.GetVersions()) == 1 {
		b.mu.Lock()
		b.mu.version = md.GetVersions()[0]
		b.mu.Unlock()
	}
	return nil
}

// callError classifies a gRPC error. Only the code is kept: a server's
// message may echo request content.
func callError(method string, err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown, codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s: gRPC %s", pipeline.ErrUnavailable, method, st.Code())
	case codes.Canceled:
		return fmt.Errorf("%s: %w", method, context.Canceled)
	}
	return fmt.Errorf("%w: %s: gRPC %s", pipeline.ErrRejected, method, st.Code())
}

// Generate asks the model for a SOAP note (package prompt) with ModelInfer,
// or ModelStreamInfer when Config.Stream is set, and parses the reply. When
// the server returns the prompt in front of the completion, the prompt is
// removed first. Failures wrap pipeline.ErrUnavailable,
// pipeline.ErrRejected, pipeline.ErrBadReply or the context's error.
func (b *Backend) Generate(ctx context.Context, req pipeline.Request) (pipeline.Output, error) {
	model, version := b.cfg.Model, b.cfg.Version
	if req.Model != "" {
		model = req.Model
	}
	if version == "" && req.Model == "" {
		b.mu.Lock()
		version = b.mu.version
		b.mu.Unlock()
	}
	out := pipeline.Output{
		Model:        encounter.Model{Name: model, Version: version},
		PromptSHA256: prompt.TemplateSHA256,
		Parameters: map[string]string{
			"prompt_template": prompt.TemplateVersion,
			"input_tensor":    b.cfg.Input,
			"output_tensor":   b.cfg.Output,
			"stream":          strconv.FormatBool(b.cfg.Stream),
			"endpoint":        b.cfg.Addr,
		},
	}
	if b.cfg.SamplingParameters != "" {
		out.Parameters["sampling_parameters"] = b.cfg.SamplingParameters
	}
	text := prompt.Text(req.Segments)
	ir := &inferencepb.ModelInferRequest{
		ModelName:    model,
		ModelVersion: b.cfg.Version,
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			{Name: b.cfg.Input, Datatype: "BYTES", Shape: []int64{1}},
		},
		Outputs:          []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: b.cfg.Output}},
		RawInputContents: [][]byte{EncodeBytes([]byte(text))},
	}
	if b.cfg.SamplingParameters != "" {
		ir.Inputs = append(ir.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: SamplingInput, Datatype: "BYTES", Shape: []int64{1}})
		ir.RawInputContents = append(ir.RawInputContents, EncodeBytes([]byte(b.cfg.SamplingParameters)))
	}

	var reply string
	var gotVersion string
	var err error
	for attempt := 0; ; attempt++ {
		out.Parameters["attempts"] = strconv.Itoa(attempt + 1)
		reply, gotVersion, err = b.attempt(ctx, ir)
		if err == nil || !errors.Is(err, pipeline.ErrUnavailable) || attempt == b.cfg.MaxRetries || ctx.Err() != nil {
			break
		}
		if sleep(ctx, b.delay(attempt)) != nil {
			break
		}
	}
	if gotVersion != "" {
		out.Model.Version = gotVersion
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return out, err
	}
	reply = strings.TrimPrefix(reply, text)
	note, perr := prompt.Parse(reply)
	if perr != nil {
		return out, fmt.Errorf("%w: %w", pipeline.ErrBadReply, perr)
	}
	out.Note = note
	return out, nil
}

func (b *Backend) delay(attempt int) time.Duration {
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

// attempt makes one call and returns the reply text and model version.
func (b *Backend) attempt(ctx context.Context, ir *inferencepb.ModelInferRequest) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if !b.cfg.Stream {
		resp, err := b.client.ModelInfer(ctx, ir, grpc.MaxCallRecvMsgSize(MaxMessageBytes))
		if err != nil {
			return "", "", callError("ModelInfer", err)
		}
		text, err := b.text(resp)
		return text, resp.GetModelVersion(), err
	}
	stream, err := b.client.ModelStreamInfer(ctx, grpc.MaxCallRecvMsgSize(MaxMessageBytes))
	if err != nil {
		return "", "", callError("ModelStreamInfer", err)
	}
	if err := stream.Send(ir); err != nil && err != io.EOF {
		return "", "", callError("ModelStreamInfer", err)
	}
	if err := stream.CloseSend(); err != nil {
		return "", "", callError("ModelStreamInfer", err)
	}
	var text strings.Builder
	version := ""
	for n := 0; ; n++ {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", version, callError("ModelStreamInfer", err)
		}
		if m.GetErrorMessage() != "" {
			// The message is the model's; keep only that there was one.
			return "", version, fmt.Errorf("%w: ModelStreamInfer: response %d carries an error message", pipeline.ErrRejected, n)
		}
		r := m.GetInferResponse()
		if r.GetModelVersion() != "" {
			version = r.GetModelVersion()
		}
		t, err := b.text(r)
		if err != nil {
			if errors.Is(err, errNoOutput) {
				continue // e.g. an empty final response
			}
			return "", version, err
		}
		text.WriteString(t)
		if text.Len() > MaxMessageBytes {
			return "", version, fmt.Errorf("%w: the streamed reply exceeds %d bytes", pipeline.ErrBadReply, MaxMessageBytes)
		}
	}
	return text.String(), version, nil
}

var errNoOutput = errors.New("kserve: no output tensor")

func (b *Backend) text(resp *inferencepb.ModelInferResponse) (string, error) {
	elems, ok, err := OutputBytes(resp, b.cfg.Output)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %w", pipeline.ErrBadReply, err)
	case !ok:
		return "", fmt.Errorf("%w: %w %q", pipeline.ErrBadReply, errNoOutput, b.cfg.Output)
	case len(elems) == 0:
		return "", fmt.Errorf("%w: output %q is empty", pipeline.ErrBadReply, b.cfg.Output)
	}
	return string(bytes.Join(elems, nil)), nil
}
