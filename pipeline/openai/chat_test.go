package openai_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/pipeline/openai"
)

func TestReadEvents(t *testing.T) {
	in := ": comment\r\nevent: message\r\ndata: a\r\ndata:b\r\n\r\ndata: c\rid: 7\r\rdata: [DONE]"
	var got []string
	if err := openai.ReadEvents(strings.NewReader(in), func(d []byte) error { got = append(got, string(d)); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "a\nb|c|[DONE]" {
		t.Errorf("events %q", got)
	}
	long := "data: " + strings.Repeat("x", openai.MaxEventBytes+1) + "\n\n"
	if err := openai.ReadEvents(strings.NewReader(long), func([]byte) error { return nil }); !errors.Is(err, openai.ErrMalformed) {
		t.Errorf("long line: %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	stream := "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n" +
		"data: {\"id\":\"c1\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}},{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n" +
		"data: [DONE]\n\n"
	r, err := openai.ParseResponse("text/event-stream; charset=utf-8", []byte(stream))
	if err != nil {
		t.Fatal(err)
	}
	if r.Content != "Hello" || r.FinishReason != "stop" || r.Usage.PromptTokens != 3 || !r.Done || r.Chunks != 3 || r.Model != "m" {
		t.Errorf("%+v", r)
	}
	r, err = openai.ParseResponse("application/json", []byte(`{"error":{"message":"secret text","type":"invalid_request_error","code":"model_not_found"}}`))
	if err != nil || r.Error.Describe() != "type invalid_request_error, code model_not_found" {
		t.Errorf("%+v %v", r, err)
	}
	if _, err := openai.ParseResponse("application/json", []byte("<html>")); !errors.Is(err, openai.ErrMalformed) {
		t.Errorf("html: %v", err)
	}
}

func TestParseRequest(t *testing.T) {
	info, err := openai.ParseRequest([]byte(`{"model":"llama","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.2,"max_tokens":100,"user":"u1","tools":[{"type":"function"}],"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if info.Model != "llama" || !info.Stream || info.Messages != 1 || len(info.MessagesSHA256) != 64 {
		t.Errorf("%+v", info)
	}
	if info.Parameters["temperature"] != "0.2" || info.Parameters["max_tokens"] != "100" || info.Parameters["user"] != "u1" || len(info.Parameters) != 3 {
		t.Errorf("parameters %v", info.Parameters)
	}
	if _, err := openai.ParseRequest([]byte(`[1]`)); !errors.Is(err, openai.ErrMalformed) {
		t.Errorf("array: %v", err)
	}
}

func TestParseRequestCountsMessages(t *testing.T) {
	for body, want := range map[string]int{
		`{"messages":[]}`:                          0,
		`{"messages":[ ]}`:                         0,
		`{"messages":[{"content":"a, [b], {c}"}]}`: 1,
		`{"messages":[{"content":"quote \" , comma"},{"x":[1,2]}]}`: 2,
		`{"messages":"not a list"}`:                                 0,
		`{"messages":[1,[2,3],{"a":"\\"}]}`:                         3,
	} {
		info, err := openai.ParseRequest([]byte(body))
		if err != nil || info.Messages != want {
			t.Errorf("%s: %d messages (%v), want %d", body, info.Messages, err, want)
		}
	}
}
