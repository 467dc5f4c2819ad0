package proxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/pipeline/internal/testenv"
	"github.com/evidenceledger/evidence/pipeline/proxy"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

var ctx = context.Background()

// identify is the test's ledger authentication: the tenant and actor
// headers, as the development server takes them.
func identify(r *http.Request) (encounter.Caller, error) {
	c := encounter.Caller{Tenant: r.Header.Get("X-Evidence-Tenant"), Actor: "svc:client"}
	if c.Tenant == "" {
		c.Tenant = testenv.Alice.Tenant
	}
	if c.Tenant == "nobody" {
		return c, errors.New("unknown")
	}
	return c, nil
}

type httpEnv struct {
	svc      *encounter.Service
	log      *ledger.Appender
	rec      *proxy.Recorder
	chat     *upstreamtest.Chat
	upstream *httptest.Server
	proxy    *httptest.Server
	visit    string
}

func newHTTPEnv(t *testing.T, chat *upstreamtest.Chat, opts proxy.Options) *httpEnv {
	t.Helper()
	e := &httpEnv{chat: chat}
	e.svc, e.log = testenv.New(t)
	e.visit, _ = testenv.Visit(t, e.svc, testenv.Alice)
	e.upstream = httptest.NewServer(chat)
	t.Cleanup(e.upstream.Close)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	var err error
	e.rec, err = proxy.NewRecorder(e.svc, e.log.Log, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rec.Close(ctx) })
	h, err := proxy.NewHTTP(e.rec, proxy.HTTPConfig{Upstream: e.upstream.URL, Identify: identify})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/chat/completions", h)
	e.proxy = httptest.NewServer(mux)
	t.Cleanup(e.proxy.Close)
	return e
}

func (e *httpEnv) client(opts ...option.RequestOption) oai.Client {
	return oai.NewClient(append([]option.RequestOption{option.WithBaseURL(e.proxy.URL + "/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0)}, opts...)...)
}

// drain waits until the recorder has put every admitted call in the ledger.
func drain(t *testing.T, rec *proxy.Recorder) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rec.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still not recorded", rec.Pending())
		}
		time.Sleep(time.Millisecond)
	}
}

var params = oai.ChatCompletionNewParams{
	Model:       "fake-model",
	Messages:    []oai.ChatCompletionMessageParamUnion{oai.SystemMessage("Write a SOAP note."), oai.UserMessage("PATIENT: Cough for three days.")},
	Temperature: oai.Float(0.2),
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestHTTPProxyJSON(t *testing.T) {
	e := newHTTPEnv(t, &upstreamtest.Chat{Fingerprint: "fp_9"}, proxy.Options{})
	c := e.client(option.WithHeader("X-Evidence-Encounter", e.visit), option.WithHeader("X-Evidence-Tenant", testenv.Alice.Tenant))
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != upstreamtest.Note || resp.SystemFingerprint != "fp_9" {
		t.Fatalf("reply %+v", resp)
	}
	// The upstream got the client's request unchanged, without the
	// ledger's headers and with the client's API key.
	firstReq := e.chat.LastRequest()
	if h := e.chat.LastHeader(); h.Get("Authorization") != "Bearer sk-test" || h.Get("X-Evidence-Encounter") != "" || h.Get("X-Evidence-Tenant") != "" {
		t.Errorf("forwarded headers %v", h)
	}
	// Byte for byte: what the client reads is what the upstream wrote.
	var raw []byte
	if _, err := c.Chat.Completions.New(ctx, params, option.WithResponseBodyInto(&raw)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, e.chat.LastResponse()) {
		t.Errorf("response changed:\n%s\n%s", raw, e.chat.LastResponse())
	}
	drain(t, e.rec)

	outs := testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)
	if len(outs) != 2 {
		t.Fatalf("%d model outputs recorded, want 2", len(outs))
	}
	o := outs[0]
	p := o.Parameters
	if o.Backend != proxy.BackendHTTP || o.Model.Name != "fake-model" || o.Model.Version != "fp_9" || o.Error != "" || o.PromptTokens == 0 || o.CompletionTokens == 0 {
		t.Errorf("recorded %+v", o.ModelOutput)
	}
	if p["http_status"] != "200" || p["request_sha256"] != sha(firstReq) || p["param.temperature"] != "0.2" || p["stream"] != "false" ||
		p["response_id"] != "chatcmpl-fake-1" || p["note"] != "parsed" || len(p["call_id"]) != 32 || len(o.PromptSHA256) != 64 {
		t.Errorf("parameters %v", p)
	}
	if outs[1].Parameters["response_sha256"] != sha(raw) {
		t.Errorf("response digest %s, want %s", outs[1].Parameters["response_sha256"], sha(raw))
	}
	// The proxied note became the encounter's draft, aligned.
	n, err := e.svc.Note(ctx, testenv.Alice, e.visit)
	if err != nil {
		t.Fatal(err)
	}
	if n.ModelOutput != outs[1].Index || len(n.Sections) != 4 || !n.Sections[0].Sentences[0].Aligned {
		t.Errorf("note drafted by %d, %d sections", n.ModelOutput, len(n.Sections))
	}
	// ...and checked: the alignment entry records a verdict for every
	// sentence of the recorded draft.
	s0 := n.Sections[0].Sentences[0]
	raw0, _, err := e.log.Payload(s0.AlignmentIndex)
	if err != nil {
		t.Fatal(err)
	}
	v, err := encounter.DecodePayload(ledger.KindAlignment, raw0)
	if err != nil {
		t.Fatal(err)
	}
	recorded := v.(*encounter.Alignment)
	if recorded.Method != align.MethodVersion || len(recorded.Sentences) != 6 {
		t.Fatalf("alignment of the proxied draft: method %q, %d sentences", recorded.Method, len(recorded.Sentences))
	}
	for _, sa := range recorded.Sentences {
		switch sa.Verdict {
		case encounter.VerdictSupported, encounter.VerdictInferred:
		case encounter.VerdictContradicted, encounter.VerdictUnmentioned:
			if sa.Severity == "" {
				t.Errorf("flagged sentence %s recorded without a severity", sa.SentenceID)
			}
		default:
			t.Errorf("sentence %s of the proxied draft recorded without a verdict (%q)", sa.SentenceID, sa.Verdict)
		}
	}
	for _, o := range outs {
		testenv.VerifyIncluded(t, e.log.Log, o.Index)
	}
}

func TestHTTPProxyStream(t *testing.T) {
	e := newHTTPEnv(t, &upstreamtest.Chat{ChunkBytes: 5, Trailer: "done"}, proxy.Options{})
	c := e.client(option.WithHeader("X-Evidence-Encounter", e.visit))
	sp := params
	sp.StreamOptions = oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, sp)
	var acc oai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != upstreamtest.Note || chunks < 10 || acc.Usage.PromptTokens == 0 {
		t.Fatalf("%d chunks, content %q", chunks, acc.Choices[0].Message.Content)
	}

	// The raw stream, its trailer and its bytes.
	var hr *http.Response
	err := c.Post(ctx, "chat/completions", map[string]any{"model": "fake-model", "stream": true, "messages": []map[string]string{{"role": "user", "content": "hi"}}}, &hr)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(hr.Body)
	hr.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, e.chat.LastResponse()) || hr.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("stream changed (%d bytes, want %d)", len(body), len(e.chat.LastResponse()))
	}
	if hr.Trailer.Get("X-Upstream-Trailer") != "done" {
		t.Errorf("trailer %v", hr.Trailer)
	}
	drain(t, e.rec)
	outs := testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)
	if len(outs) != 2 {
		t.Fatalf("%d outputs", len(outs))
	}
	if p := outs[0].Parameters; p["stream"] != "true" || p["finish_reason"] != "stop" || outs[0].Note == nil || outs[0].PromptTokens == 0 {
		t.Errorf("recorded %+v", outs[0].ModelOutput)
	}
	if outs[1].Parameters["response_sha256"] != sha(body) {
		t.Error("the recorded digest is not the digest of the bytes the client read")
	}
}

func TestHTTPProxyDefaultEncounter(t *testing.T) {
	e := newHTTPEnv(t, &upstreamtest.Chat{Content: "Hello there."}, proxy.Options{})
	for _, tc := range []struct{ tenant, enc string }{{"clinic-a", ""}, {"clinic-a", "enc_doesnotexist"}, {"clinic-b", ""}, {"clinic-b", e.visit}} {
		opts := []option.RequestOption{option.WithHeader("X-Evidence-Tenant", tc.tenant)}
		if tc.enc != "" {
			opts = append(opts, option.WithHeader("X-Evidence-Encounter", tc.enc))
		}
		c := e.client(opts...)
		if _, err := c.Chat.Completions.New(ctx, params); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, e.rec)
	for tenant, want := range map[string]int{"clinic-a": 2, "clinic-b": 2} {
		c := encounter.Caller{Tenant: tenant, Actor: "x"}
		infos, _, err := e.svc.List(ctx, c, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var def []encounter.Info
		for _, i := range infos {
			if i.Title == proxy.DefaultTitle {
				def = append(def, i)
			}
		}
		if len(def) != 1 {
			t.Fatalf("%s has %d default encounters", tenant, len(def))
		}
		outs := testenv.ModelOutputs(t, e.log.Log, tenant, def[0].ID)
		if len(outs) != want {
			t.Fatalf("%s: %d calls in the default encounter, want %d", tenant, len(outs), want)
		}
		// A reply that is not a note is recorded without one. The two calls named different
		// encounters (none, and one the tenant does not have), so they may be recorded in
		// either order; the one that named an encounter notes it.
		var requested []string
		for _, o := range outs {
			if o.Note != nil || o.Parameters["note"] != "none" || o.Error != "" {
				t.Errorf("recorded %+v", o.ModelOutput)
			}
			if r := o.Parameters["requested_encounter"]; r != "" {
				requested = append(requested, r)
			}
		}
		if want := map[string]string{"clinic-a": "enc_doesnotexist", "clinic-b": e.visit}[tenant]; !slices.Equal(requested, []string{want}) {
			t.Errorf("%s: requested_encounter %q, want [%q]", tenant, requested, want)
		}
		for _, o := range outs {
			testenv.VerifyIncluded(t, e.log.Log, o.Index)
		}
	}
	// alice's visit got nothing from clinic-b.
	if n := len(testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)); n != 0 {
		t.Errorf("the visit has %d outputs", n)
	}
}

func TestHTTPProxyErrors(t *testing.T) {
	e := newHTTPEnv(t, &upstreamtest.Chat{Status: http.StatusNotFound}, proxy.Options{})
	c := e.client(option.WithHeader("X-Evidence-Encounter", e.visit))
	_, err := c.Chat.Completions.New(ctx, params)
	var apiErr *oai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Type != "upstream_error" {
		t.Fatalf("err %v", err)
	}
	// Unreachable upstream: 502, recorded.
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + lis.Addr().String()
	lis.Close()
	h, _ := proxy.NewHTTP(e.rec, proxy.HTTPConfig{Upstream: dead, Identify: identify})
	srv := httptest.NewServer(h)
	defer srv.Close()
	dc := oai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0),
		option.WithHeader("X-Evidence-Encounter", e.visit))
	_, err = dc.Chat.Completions.New(ctx, params)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway {
		t.Fatalf("unreachable: %v", err)
	}
	// Unauthenticated: 401, not forwarded, not recorded.
	before := e.chat.Requests()
	_, err = c.Chat.Completions.New(ctx, params, option.WithHeader("X-Evidence-Tenant", "nobody"))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || e.chat.Requests() != before {
		t.Fatalf("unauthenticated: %v", err)
	}
	drain(t, e.rec)
	outs := testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)
	if len(outs) != 2 {
		t.Fatalf("%d outputs", len(outs))
	}
	// Two proxies, two calls: no order between them.
	if outs[0].Parameters["http_status"] == "502" {
		outs[0], outs[1] = outs[1], outs[0]
	}
	if outs[0].Error != "upstream HTTP 404 (type upstream_error, code 404)" || outs[0].Parameters["http_status"] != "404" || outs[0].Note != nil {
		t.Errorf("4xx recorded as %+v", outs[0].ModelOutput)
	}
	if !strings.HasPrefix(outs[1].Error, "upstream unreachable: dial: ") || outs[1].Parameters["http_status"] != "502" {
		t.Errorf("unreachable recorded as %q %v", outs[1].Error, outs[1].Parameters)
	}
	for _, o := range outs {
		if strings.Contains(o.Error, "synthetic") {
			t.Errorf("error %q holds the upstream's message", o.Error)
		}
	}
}

func TestHTTPProxyOverloadIsNotForwarded(t *testing.T) {
	e := newHTTPEnv(t, &upstreamtest.Chat{Delay: 300 * time.Millisecond}, proxy.Options{QueueSize: 1})
	c := e.client(option.WithHeader("X-Evidence-Encounter", e.visit))
	done := make(chan error, 1)
	go func() { _, err := c.Chat.Completions.New(ctx, params); done <- err }()
	for e.chat.Requests() == 0 {
		time.Sleep(time.Millisecond)
	}
	_, err := c.Chat.Completions.New(ctx, params)
	var apiErr *oai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second call: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.chat.Requests() != 1 {
		t.Errorf("upstream saw %d requests, want 1", e.chat.Requests())
	}
	drain(t, e.rec)
	if n := len(testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)); n != 1 {
		t.Errorf("%d recorded", n)
	}
}

// TestHTTPProxyBrokenUpstream: an upstream that dies mid-body; the client
// must see a broken response, not a short one, and the call is recorded.
func TestHTTPProxyBrokenUpstream(t *testing.T) {
	e := newHTTPEnv(t, &upstreamtest.Chat{}, proxy.Options{})
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.Write([]byte(`{"id":"x","choices":[`))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer broken.Close()
	h, _ := proxy.NewHTTP(e.rec, proxy.HTTPConfig{Upstream: broken.URL, Identify: identify})
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
	req.Header.Set(proxy.EncounterHeader, e.visit)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("the client read a cut response as a whole one")
	}
	drain(t, e.rec)
	outs := testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)
	if len(outs) != 1 || !strings.HasPrefix(outs[0].Error, "the upstream response broke after 21 bytes") {
		t.Fatalf("recorded %+v", outs)
	}
}

// TestHTTPProxySync: with Options.Sync the call is in the ledger when the
// response ends.
func TestHTTPProxySync(t *testing.T) {
	e := newHTTPEnv(t, &upstreamtest.Chat{}, proxy.Options{Sync: true})
	c := e.client(option.WithHeader("X-Evidence-Encounter", e.visit))
	if _, err := c.Chat.Completions.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	if n := len(testenv.ModelOutputs(t, e.log.Log, testenv.Alice.Tenant, e.visit)); n != 1 {
		t.Fatalf("%d outputs in the ledger when the response ended", n)
	}
}
