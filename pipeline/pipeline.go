// Package pipeline is the inference wrapper of Evidence Ledger: it runs a
// note generator on an encounter's transcript and records the call in the
// ledger, so that every note a model drafted can be traced to the model,
// its parameters and prompt, and the transcript entries it read.
//
// A Generator is one backend: the embedded rule-based generator (Embedded,
// the default, deterministic and offline), an OpenAI-compatible
// chat-completions server (package pipeline/openai) or a KServe v2 / Triton
// inference server (package pipeline/kserve). Pipeline.GenerateNote reads
// the transcript, calls the generator and records a model_output entry
// through the encounter service (DESIGN.md, "Inference wrapper"): the input
// segments by leaf index, the model name and version, the parameters, the
// SHA-256 of the prompt template, the note, the latency and the token
// counts. A call that fails or times out is recorded too, with its error
// and no note. The encounter service then aligns the note to the
// transcript and records the alignment.
//
// The transparent proxies, which record calls that existing clients make
// to their own model servers, are in package pipeline/proxy.
//
// # Privacy
//
// Transcripts, prompts and notes are PHI. Nothing in this package or its
// backends logs them or puts them in an error: errors carry status codes,
// field names, sizes and error classes only.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// Backend names, as recorded in model_output entries and accepted by
// GenerateNote.
const (
	BackendEmbedded = "embedded"
	BackendOpenAI   = "openai"
	BackendKServe   = "kserve"
)

// Request is one generation request.
type Request struct {
	// Segments is the transcript in time order, as the encounter recorded
	// it.
	Segments []encounter.Segment
	// Model overrides the backend's configured model; empty keeps it.
	Model string
}

// Output is what a generator reports about one call. On error a generator
// still fills in what it knows (the model, the parameters, the prompt hash
// and any token counts) so that the failure is recorded with them.
type Output struct {
	Model encounter.Model
	// PromptSHA256 is the hex SHA-256 of the prompt template, or empty for
	// a generator without a prompt.
	PromptSHA256 string
	// Parameters are the generation parameters sent to the model.
	Parameters map[string]string
	// Note is the drafted note; nil on error.
	Note                           *encounter.Draft
	PromptTokens, CompletionTokens int64
}

// Generator drafts a note from a transcript: one model call per Generate.
// Implementations are safe for concurrent use.
//
// Generate returns an error wrapping *ledger.InvalidError when it rejects
// the request before calling any model (for example, a model name it does
// not serve); nothing is recorded for such a request. Any other error is a
// failed call and is recorded. Backends wrap ErrUnavailable, ErrRejected or
// ErrBadReply, or a context error, so that callers can tell failures apart.
type Generator interface {
	Generate(ctx context.Context, req Request) (Output, error)
}

// Errors of model calls. A failed call is reported as a *CallError that
// wraps one of them (or context.DeadlineExceeded for a timeout).
var (
	// ErrUnavailable: the backend could not be reached, or answered with a
	// server error or overload, after any retries.
	ErrUnavailable = errors.New("pipeline: backend unavailable")
	// ErrRejected: the backend refused the call (a client error such as an
	// unknown model or bad credentials, or input the generator cannot
	// take). Retrying will not help; the configuration or input must change.
	ErrRejected = errors.New("pipeline: backend rejected the call")
	// ErrBadReply: the backend answered, but the answer is not a note in
	// the expected format (docs/pipeline.md, "Reply format").
	ErrBadReply = errors.New("pipeline: backend reply is not a note")
	// ErrNotConfigured: the backend named in the request is known but this
	// server has no configuration for it.
	ErrNotConfigured = errors.New("pipeline: backend not configured")
)

// CallError is a failed model call. The failure was recorded as the
// model_output entry at Index, unless Index is negative, in which case
// recording failed too and RecordErr says why.
type CallError struct {
	Backend   string
	Index     int64
	Err       error
	RecordErr error
}

func (e *CallError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("the %s backend failed and the failure could not be recorded (%v): %v", e.Backend, e.RecordErr, e.Err)
	}
	return fmt.Sprintf("the %s backend failed (recorded as leaf %d): %v", e.Backend, e.Index, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

// Encounters is what the pipeline needs of the encounter service
// (*encounter.Service).
type Encounters interface {
	Transcript(ctx context.Context, c encounter.Caller, id string) ([]encounter.StoredSegment, []encounter.AudioRecording, error)
	RecordModelOutput(ctx context.Context, c encounter.Caller, id string, o encounter.ModelOutput) (*encounter.Recorded, error)
}

// Options configure a Pipeline. The zero value is ready to use.
type Options struct {
	// Timeout bounds one generator call, retries included. Zero means
	// DefaultTimeout. The caller's context can shorten it.
	Timeout time.Duration
	// RecordTimeout bounds recording the call. Recording does not use the
	// caller's context, so that a call that timed out or was cancelled is
	// still recorded. Zero means DefaultRecordTimeout.
	RecordTimeout time.Duration
}

// Defaults for Options.
const (
	DefaultTimeout       = 5 * time.Minute
	DefaultRecordTimeout = 30 * time.Second
)

// Pipeline runs generators and records their calls. It is safe for
// concurrent use.
type Pipeline struct {
	enc      Encounters
	backends map[string]Generator
	opts     Options
}

// New returns a Pipeline over the named backends. Names are those of the
// Backend constants; BackendEmbedded is the default and, when absent from
// backends, is served by Embedded{}.
func New(enc Encounters, backends map[string]Generator, opts Options) *Pipeline {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RecordTimeout <= 0 {
		opts.RecordTimeout = DefaultRecordTimeout
	}
	b := map[string]Generator{BackendEmbedded: Embedded{}}
	for name, g := range backends {
		if g != nil {
			b[name] = g
		}
	}
	return &Pipeline{enc: enc, backends: b, opts: opts}
}

// NoteRequest selects the backend and model for GenerateNote.
type NoteRequest struct {
	// Backend is one of the Backend constants; empty means BackendEmbedded.
	Backend string
	// Model overrides the backend's configured model; empty keeps it.
	Model string
}

// Result is a recorded, successful call.
type Result struct {
	// Recorded holds the model_output and alignment entries and the
	// current note.
	Recorded  *encounter.Recorded
	Backend   string
	Output    Output
	LatencyMS int64
}

// MaxModelBytes caps NoteRequest.Model.
const MaxModelBytes = 128

func invalid(field, reason string) error {
	return &ledger.InvalidError{Field: field, Reason: reason}
}

// GenerateNote drafts a note for an encounter with the requested backend
// and records the call. It returns:
//   - a *ledger.InvalidError for a bad request, and an error wrapping
//     ErrNotConfigured for a backend this server does not have; nothing is
//     recorded;
//   - an error wrapping encounter.ErrPrecondition when the encounter has no
//     transcript segments, and the encounter service's errors (such as
//     ledger.ErrNotFound); nothing is recorded;
//   - a *CallError when the model call failed; the failure is recorded;
//   - otherwise the recorded call, its alignment and the current note.
func (p *Pipeline) GenerateNote(ctx context.Context, c encounter.Caller, encounterID string, r NoteRequest) (*Result, error) {
	name := r.Backend
	if name == "" {
		name = BackendEmbedded
	}
	gen, ok := p.backends[name]
	if !ok {
		switch name {
		case BackendOpenAI, BackendKServe:
			return nil, fmt.Errorf("%w: %s (start the server with its flags; docs/pipeline.md)", ErrNotConfigured, name)
		}
		return nil, invalid("backend", "must be embedded, openai or kserve")
	}
	if err := checkModel(r.Model); err != nil {
		return nil, err
	}
	stored, _, err := p.enc.Transcript(ctx, c, encounterID)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return nil, fmt.Errorf("%w: the encounter has no transcript segments to draft a note from", encounter.ErrPrecondition)
	}
	segs, inputs := transcript(stored)

	start := time.Now()
	callCtx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	out, genErr := gen.Generate(callCtx, Request{Segments: segs, Model: r.Model})
	latency := time.Since(start).Milliseconds()
	cancel()
	if genErr != nil {
		if errors.As(genErr, new(*ledger.InvalidError)) {
			return nil, genErr
		}
		if ctx.Err() == nil && errors.Is(genErr, context.DeadlineExceeded) {
			genErr = fmt.Errorf("the call took longer than %v: %w", p.opts.Timeout, genErr)
		}
	}

	o := encounter.ModelOutput{
		Model:            out.Model,
		Backend:          name,
		PromptSHA256:     out.PromptSHA256,
		Parameters:       out.Parameters,
		Inputs:           inputs,
		Note:             out.Note,
		LatencyMS:        latency,
		PromptTokens:     out.PromptTokens,
		CompletionTokens: out.CompletionTokens,
	}
	if o.Model.Name == "" {
		o.Model.Name = cmp(r.Model, name)
	}
	if genErr != nil {
		o.Note, o.Error = nil, errorText(genErr)
	}
	// Record even when the caller has gone or its deadline passed: a
	// timed-out call must be in the ledger.
	recCtx, recCancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.RecordTimeout)
	defer recCancel()
	rec, recErr := p.enc.RecordModelOutput(recCtx, c, encounterID, o)
	var inv *ledger.InvalidError
	if recErr != nil && genErr == nil && errors.As(recErr, &inv) {
		// The model's note does not meet the ledger's limits (too many
		// sentences, a sentence too long): record the call as failed.
		genErr = fmt.Errorf("%w: %s: %s", ErrBadReply, inv.Field, inv.Reason)
		o.Note, o.Error = nil, errorText(genErr)
		rec, recErr = p.enc.RecordModelOutput(recCtx, c, encounterID, o)
	}
	if genErr != nil {
		ce := &CallError{Backend: name, Index: -1, Err: genErr, RecordErr: recErr}
		if recErr == nil {
			ce.Index = rec.Change
		}
		return nil, ce
	}
	if recErr != nil {
		return nil, recErr
	}
	return &Result{Recorded: rec, Backend: name, Output: out, LatencyMS: latency}, nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func checkModel(m string) error {
	switch {
	case len(m) > MaxModelBytes:
		return invalid("model", fmt.Sprintf("longer than %d bytes", MaxModelBytes))
	case !utf8.ValidString(m):
		return invalid("model", "is not valid UTF-8")
	case strings.ContainsFunc(m, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return invalid("model", "has a control character")
	}
	return nil
}

// transcript returns the segments in time order (ties keep chain order)
// and their leaf indexes in chain order.
func transcript(stored []encounter.StoredSegment) ([]encounter.Segment, []int64) {
	segs := make([]encounter.Segment, len(stored))
	inputs := make([]int64, len(stored))
	for i, g := range stored {
		segs[i] = g.Segment
		inputs[i] = g.Index
	}
	slices.SortStableFunc(segs, func(a, b encounter.Segment) int {
		switch {
		case a.StartMS < b.StartMS:
			return -1
		case a.StartMS > b.StartMS:
			return 1
		}
		return 0
	})
	return segs, inputs
}

// MaxErrorBytes caps the error text recorded for a failed call.
const MaxErrorBytes = 4096

// errorText is the recorded form of a call's error. Backends keep PHI out
// of their errors; this only bounds the length and fixes the encoding.
func errorText(err error) string {
	s := strings.ToValidUTF8(err.Error(), "?")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > MaxErrorBytes {
		s = strings.ToValidUTF8(s[:MaxErrorBytes], "")
	}
	return s
}
