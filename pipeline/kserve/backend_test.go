package kserve_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/evidenceledger/evidence/encounter"
	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/internal/testenv"
	"github.com/evidenceledger/evidence/pipeline/kserve"
	"github.com/evidenceledger/evidence/pipeline/prompt"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

var ctx = context.Background()

var segs = []encounter.Segment{{ID: "s1", Role: "patient", Text: "Cough for three days."}}

func serve(t *testing.T, k *upstreamtest.KServe) string {
	t.Helper()
	addr, stop, err := upstreamtest.ServeKServe(k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

func backend(t *testing.T, addr string, mod func(*kserve.Config)) *kserve.Backend {
	t.Helper()
	cfg := kserve.Config{Addr: addr, Model: "fake-llm", Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	b, err := kserve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBytesCodec(t *testing.T) {
	raw := kserve.EncodeBytes([]byte("ab"), nil, []byte("c"))
	if string(raw) != "\x02\x00\x00\x00ab\x00\x00\x00\x00\x01\x00\x00\x00c" {
		t.Fatalf("encoded %q", raw)
	}
	elems, err := kserve.DecodeBytes(raw)
	if err != nil || len(elems) != 3 || string(elems[0]) != "ab" || len(elems[1]) != 0 || string(elems[2]) != "c" {
		t.Fatalf("decoded %q, %v", elems, err)
	}
	for _, bad := range []string{"\x01\x00", "\x05\x00\x00\x00abc"} {
		if _, err := kserve.DecodeBytes([]byte(bad)); !errors.Is(err, kserve.ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Typed contents are read too.
	resp := &inferencepb.ModelInferResponse{Outputs: []*inferencepb.ModelInferResponse_InferOutputTensor{{Name: "text_output", Datatype: "BYTES",
		Contents: &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("x")}}}}}
	if e, ok, err := kserve.OutputBytes(resp, "text_output"); !ok || err != nil || string(e[0]) != "x" {
		t.Errorf("typed contents: %q %v %v", e, ok, err)
	}
}

func FuzzDecodeBytes(f *testing.F) {
	f.Add(kserve.EncodeBytes([]byte("hello"), []byte("world")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, raw []byte) {
		elems, err := kserve.DecodeBytes(raw)
		if err != nil {
			return
		}
		if string(kserve.EncodeBytes(elems...)) != string(raw) {
			t.Fatal("decode then encode changed the bytes")
		}
	})
}

func TestCheckAndGenerate(t *testing.T) {
	for _, stream := range []bool{false, true} {
		fake := &upstreamtest.KServe{Version: "7", EchoPrompt: true}
		b := backend(t, serve(t, fake), func(c *kserve.Config) { c.Stream = stream; c.SamplingParameters = `{"temperature":0}` })
		if err := b.Check(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := b.Generate(ctx, pipeline.Request{Segments: segs})
		if err != nil {
			t.Fatalf("stream=%v: %v", stream, err)
		}
		if out.Note == nil || len(out.Note.Sections) != 4 || out.Model.Name != "fake-llm" || out.Model.Version != "7" || out.PromptSHA256 != prompt.TemplateSHA256 {
			t.Errorf("stream=%v: %+v", stream, out)
		}
		if out.Parameters["input_tensor"] != "text_input" || out.Parameters["sampling_parameters"] != `{"temperature":0}` {
			t.Errorf("parameters %v", out.Parameters)
		}
	}
}

func TestCheckFindsMissingModel(t *testing.T) {
	b := backend(t, serve(t, &upstreamtest.KServe{}), func(c *kserve.Config) { c.Model = "other" })
	if err := b.Check(ctx); !errors.Is(err, pipeline.ErrUnavailable) {
		t.Errorf("Check: %v", err)
	}
}

func TestFailures(t *testing.T) {
	retry := &upstreamtest.KServe{FailFirst: 2}
	out, err := backend(t, serve(t, retry), nil).Generate(ctx, pipeline.Request{Segments: segs})
	if err != nil || retry.Calls() != 3 || out.Parameters["attempts"] != "3" {
		t.Errorf("retries: %v after %d calls", err, retry.Calls())
	}
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := lis.Addr().String()
	lis.Close()
	for _, tc := range []struct {
		name string
		fake *upstreamtest.KServe
		mod  func(*kserve.Config)
		want error
	}{
		{"invalid", &upstreamtest.KServe{Code: codes.InvalidArgument}, nil, pipeline.ErrRejected},
		{"unknown model", &upstreamtest.KServe{}, func(c *kserve.Config) { c.Model = "nope" }, pipeline.ErrRejected},
		{"stream error message", &upstreamtest.KServe{Code: codes.InvalidArgument}, func(c *kserve.Config) { c.Stream = true }, pipeline.ErrRejected},
		{"not a note", &upstreamtest.KServe{Text: "Sorry."}, nil, pipeline.ErrBadReply},
		{"wrong output name", &upstreamtest.KServe{}, func(c *kserve.Config) { c.Output = "logits" }, pipeline.ErrBadReply},
		{"unavailable", &upstreamtest.KServe{Code: codes.Unavailable}, nil, pipeline.ErrUnavailable},
		{"attempt timeout", &upstreamtest.KServe{Delay: time.Second}, func(c *kserve.Config) { c.Timeout = 20 * time.Millisecond; c.MaxRetries = -1 }, pipeline.ErrUnavailable},
	} {
		_, err := backend(t, serve(t, tc.fake), tc.mod).Generate(ctx, pipeline.Request{Segments: segs})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "synthetic") {
			t.Errorf("%s: error %q carries the server's message", tc.name, err)
		}
	}
	_, err = backend(t, dead, func(c *kserve.Config) { c.MaxRetries = -1 }).Generate(ctx, pipeline.Request{Segments: segs})
	if !errors.Is(err, pipeline.ErrUnavailable) {
		t.Errorf("unreachable: %v", err)
	}
}

func TestThroughPipeline(t *testing.T) {
	svc, l := testenv.New(t)
	id, segIdx := testenv.Visit(t, svc, testenv.Alice)
	b := backend(t, serve(t, &upstreamtest.KServe{Version: "3"}), func(c *kserve.Config) { c.Stream = true })
	p := pipeline.New(svc, map[string]pipeline.Generator{pipeline.BackendKServe: b}, pipeline.Options{})
	res, err := p.GenerateNote(ctx, testenv.Alice, id, pipeline.NoteRequest{Backend: pipeline.BackendKServe})
	if err != nil {
		t.Fatal(err)
	}
	outs := testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, id)
	o := outs[len(outs)-1]
	if o.Index != res.Recorded.Change || o.Model.Name != "fake-llm" || o.Model.Version != "3" || o.Backend != "kserve" || len(o.Inputs) != len(segIdx) || o.Note == nil {
		t.Fatalf("recorded %+v", o.ModelOutput)
	}
	testenv.VerifyIncluded(t, l.Log, o.Index)
}
