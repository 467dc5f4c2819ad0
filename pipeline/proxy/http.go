package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline/openai"
	"github.com/evidenceledger/evidence/pipeline/prompt"
)

// EncounterHeader names the encounter of a proxied call, in HTTP headers
// and gRPC metadata. Headers starting with x-evidence- are the ledger's and
// are not forwarded.
const EncounterHeader = "X-Evidence-Encounter"

// Backend names recorded for proxied calls.
const (
	BackendHTTP   = "openai-proxy"
	BackendKServe = "kserve-proxy"
)

// HTTPConfig configures an HTTP proxy.
type HTTPConfig struct {
	// Upstream is the model server's root URL, such as
	// "http://127.0.0.1:8000". The request path is appended as received;
	// an upstream path ending in /v1 is not doubled.
	Upstream string
	// Identify says who the caller is; an error answers 401 without
	// forwarding.
	Identify func(*http.Request) (encounter.Caller, error)
	// Transport carries the forwarded requests; nil means one tuned for a
	// local model server. It must not decompress responses.
	Transport http.RoundTripper
	// MaxRequestBytes caps a request body; zero means 32 MiB. A larger
	// request is answered 413 without forwarding.
	MaxRequestBytes int64
}

// MaxCaptureBytes caps how much of a response the proxy keeps to parse;
// the digest always covers all of it.
const MaxCaptureBytes = 8 << 20

// HTTPProxy forwards POST /v1/chat/completions to an OpenAI-compatible
// server and records each call. It is an http.Handler and safe for
// concurrent use.
//
// It records, for each forwarded call: the requested model, the
// system_fingerprint as the model version, the SHA-256 of the request's
// "messages" as the prompt hash, the request's scalar parameters (as
// "param.<name>"), the status, the SHA-256 and size of the request and
// response bodies as sent, the response id, model and finish reason, the
// time to the first byte, the latency, the token counts, and the note when
// the reply parses as one (package prompt). docs/pipeline.md lists the
// parameter names.
type HTTPProxy struct {
	rec       *Recorder
	cfg       HTTPConfig
	upstream  *url.URL
	transport http.RoundTripper
}

// NewHTTP returns an HTTP proxy to cfg.Upstream that records with rec.
func NewHTTP(rec *Recorder, cfg HTTPConfig) (*HTTPProxy, error) {
	u, err := url.Parse(cfg.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("proxy: upstream %q must be an http or https URL without a query", cfg.Upstream)
	}
	if cfg.Identify == nil {
		return nil, errors.New("proxy: HTTPConfig.Identify is required")
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 32 << 20
	}
	t := cfg.Transport
	if t == nil {
		t = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			// Bodies go through as the upstream sent them.
			DisableCompression: true,
			ForceAttemptHTTP2:  true,
		}
	}
	return &HTTPProxy{rec: rec, cfg: cfg, upstream: u, transport: t}, nil
}

// hopHeaders are connection-level headers, never forwarded (RFC 9110
// section 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// copyHeader copies end-to-end headers: not hop-by-hop, not those the
// Connection header names, and not the ledger's own x-evidence-*.
func copyHeader(dst, src http.Header) {
	drop := map[string]bool{}
	for _, h := range hopHeaders {
		drop[h] = true
	}
	for _, v := range src["Connection"] {
		for _, f := range strings.Split(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, vs := range src {
		if drop[k] || strings.HasPrefix(k, "X-Evidence-") {
			continue
		}
		dst[k] = append(dst[k][:0:0], vs...)
	}
}

func (p *HTTPProxy) target(r *http.Request) *url.URL {
	u := *p.upstream
	base := strings.TrimSuffix(u.Path, "/")
	path := r.URL.Path
	if strings.HasSuffix(base, "/v1") && strings.HasPrefix(path, "/v1/") {
		path = strings.TrimPrefix(path, "/v1")
	}
	u.Path, u.RawPath = base+path, ""
	u.RawQuery = r.URL.RawQuery
	return &u
}

// proxyError answers a request the proxy did not forward, or could not,
// with an OpenAI-style error object.
func proxyError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Evidence-Proxy-Error", typ)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":%q,"code":%d}}`+"\n", msg, typ, status)
}

func (p *HTTPProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, err := p.cfg.Identify(r)
	if err != nil {
		proxyError(w, http.StatusUnauthorized, "evidence_unauthenticated", "missing or invalid ledger credentials")
		return
	}
	ticket, err := p.rec.Begin()
	if err != nil {
		proxyError(w, http.StatusServiceUnavailable, "evidence_overloaded", "the evidence ledger cannot record more calls right now; retry")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxRequestBytes+1))
	if err != nil {
		ticket.Abandon()
		proxyError(w, http.StatusBadRequest, "evidence_bad_request", "the request body could not be read")
		return
	}
	if int64(len(body)) > p.cfg.MaxRequestBytes {
		ticket.Abandon()
		proxyError(w, http.StatusRequestEntityTooLarge, "evidence_request_too_large", fmt.Sprintf("the request body exceeds %d bytes", p.cfg.MaxRequestBytes))
		return
	}
	x := &exchange{start: time.Now(), caller: caller, encounter: r.Header.Get(EncounterHeader), reqBody: body, method: r.Method, path: r.URL.Path}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target(r).String(), bytes.NewReader(body))
	if err != nil {
		ticket.Abandon()
		proxyError(w, http.StatusBadRequest, "evidence_bad_request", "the request cannot be forwarded")
		return
	}
	copyHeader(out.Header, r.Header)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = nil // do not add Go's
	}
	out.ContentLength = int64(len(body))

	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		status, typ := http.StatusBadGateway, "upstream_unreachable"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			status, typ = http.StatusGatewayTimeout, "upstream_timeout"
		}
		x.status = status
		x.err = fmt.Sprintf("upstream unreachable: %s", transportError(err))
		if r.Context().Err() != nil {
			x.err = "the client went away before the upstream answered"
		}
		p.finish(ticket, x)
		proxyError(w, status, typ, "the model server could not be reached")
		return
	}
	defer resp.Body.Close()
	x.ttfb = time.Since(x.start)
	x.status = resp.StatusCode
	x.contentType = resp.Header.Get("Content-Type")
	x.contentEncoding = resp.Header.Get("Content-Encoding")

	h := w.Header()
	copyHeader(h, resp.Header)
	announced := map[string]bool{}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
		announced[k] = true
	}
	w.WriteHeader(resp.StatusCode)

	rc := http.NewResponseController(w)
	streaming := resp.ContentLength < 0 || openai.IsEventStream(x.contentType)
	digest := sha256.New()
	// With Options.Sync, the last chunk of a body of known length waits
	// until the call is durable; otherwise nothing waits.
	hold := p.rec.Sync() && !streaming
	var held []byte
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var readErr, writeErr error
	write := func(b []byte) {
		if writeErr != nil || len(b) == 0 {
			return
		}
		if _, err := w.Write(b); err != nil {
			writeErr = err
			return
		}
		if streaming {
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				writeErr = err
			}
		}
	}
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			digest.Write(chunk)
			x.respBytes += int64(n)
			if len(x.capture)+n <= MaxCaptureBytes {
				x.capture = append(x.capture, chunk...)
			} else {
				x.truncated = true
			}
			if !hold {
				write(chunk)
			} else {
				write(held)
				held = append(held[:0], chunk...)
			}
			if writeErr != nil {
				break
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	x.respDigest = digest.Sum(nil)
	switch {
	case writeErr != nil:
		x.err = fmt.Sprintf("the client went away after %d of %d response bytes", x.respBytes-int64(len(held)), x.respBytes)
	case readErr != nil:
		x.err = fmt.Sprintf("the upstream response broke after %d bytes: %s", x.respBytes, transportError(readErr))
	}
	if hold {
		p.finish(ticket, x)
		write(held)
	}
	for k, vs := range resp.Trailer {
		if announced[k] {
			h[k] = vs
		} else {
			h[http.TrailerPrefix+k] = vs
		}
	}
	if !hold {
		p.finish(ticket, x)
	}
	if readErr != nil {
		// Break the client's connection, so that it cannot take the cut
		// response for a whole one.
		panic(http.ErrAbortHandler)
	}
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// exchange is what the proxy saw of one call.
type exchange struct {
	start           time.Time
	ttfb, latency   time.Duration
	caller          encounter.Caller
	encounter       string
	method, path    string
	reqBody         []byte
	status          int
	contentType     string
	contentEncoding string
	respBytes       int64
	respDigest      []byte
	capture         []byte
	truncated       bool
	err             string
}

// finish hands the call to the recorder, which builds its model_output
// (output) off the response path.
func (p *HTTPProxy) finish(t *Ticket, x *exchange) {
	x.latency = time.Since(x.start)
	t.Finish(Call{Caller: x.caller, Encounter: x.encounter, Build: func() encounter.ModelOutput { return p.output(x) }})
}

// output builds the model_output of a call from what the proxy saw.
func (p *HTTPProxy) output(x *exchange) encounter.ModelOutput {
	o := encounter.ModelOutput{Backend: BackendHTTP, LatencyMS: x.latency.Milliseconds()}
	reqSum := sha256.Sum256(x.reqBody)
	params := map[string]string{
		"proxy":          "openai",
		"upstream":       p.upstream.Host,
		"path":           x.path,
		"http_status":    strconv.Itoa(x.status),
		"request_sha256": hex.EncodeToString(reqSum[:]),
		"request_bytes":  strconv.Itoa(len(x.reqBody)),
	}
	if info, err := openai.ParseRequest(x.reqBody); err == nil {
		o.Model.Name = info.Model
		o.PromptSHA256 = info.MessagesSHA256
		params["stream"] = strconv.FormatBool(info.Stream)
		params["messages"] = strconv.Itoa(info.Messages)
		for k, v := range info.Parameters {
			params["param."+k] = v
		}
	} else {
		params["request_parse"] = "not a chat-completions request"
	}
	if x.respDigest != nil {
		params["response_sha256"] = hex.EncodeToString(x.respDigest)
		params["response_bytes"] = strconv.FormatInt(x.respBytes, 10)
		params["ttfb_ms"] = strconv.FormatInt(x.ttfb.Milliseconds(), 10)
		if x.contentType != "" {
			params["response_content_type"] = x.contentType
		}
	}
	reply, parsed := p.parseReply(x)
	if parsed {
		if reply.Model != "" {
			params["response_model"] = reply.Model
			if o.Model.Name == "" {
				o.Model.Name = reply.Model
			}
		}
		o.Model.Version = reply.SystemFingerprint
		if reply.ID != "" {
			params["response_id"] = reply.ID
		}
		if reply.FinishReason != "" {
			params["finish_reason"] = reply.FinishReason
		}
		if reply.Usage != nil {
			o.PromptTokens, o.CompletionTokens = max(reply.Usage.PromptTokens, 0), max(reply.Usage.CompletionTokens, 0)
		}
	}
	switch {
	case x.err != "":
		o.Error = x.err
	case x.status >= 400:
		o.Error = fmt.Sprintf("upstream HTTP %d", x.status)
		if parsed && reply.Error != nil {
			o.Error += " (" + reply.Error.Describe() + ")"
		}
	case parsed && reply.Error != nil:
		o.Error = "the reply is an error object (" + reply.Error.Describe() + ")"
	case parsed:
		if n, err := prompt.Parse(reply.Content); err == nil {
			o.Note = n
			params["note"] = "parsed"
		} else {
			params["note"] = "none"
		}
	}
	o.Parameters = params
	return o
}

// parseReply parses the captured response, decompressing gzip.
func (p *HTTPProxy) parseReply(x *exchange) (openai.Reply, bool) {
	if x.truncated || len(x.capture) == 0 {
		return openai.Reply{}, false
	}
	body := x.capture
	switch strings.ToLower(strings.TrimSpace(x.contentEncoding)) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return openai.Reply{}, false
		}
		body, err = io.ReadAll(io.LimitReader(zr, MaxCaptureBytes))
		if err != nil {
			return openai.Reply{}, false
		}
	default:
		return openai.Reply{}, false
	}
	r, err := openai.ParseResponse(x.contentType, body)
	return r, err == nil
}

// transportError describes a network error without request content.
func transportError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}
