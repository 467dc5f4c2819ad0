// Package openai is the OpenAI-compatible chat-completions backend of the
// inference wrapper (vLLM, llama.cpp server, Ollama and others that serve
// POST /v1/chat/completions), and the parsers of that wire format that the
// recording proxy uses.
//
// It follows the chat-completions API as those servers implement it: a JSON
// request with "model" and "messages"; a JSON response with "choices",
// "usage", "model" and "system_fingerprint"; or, with "stream": true, a
// text/event-stream of "chat.completion.chunk" objects in "data:" fields
// ending with "data: [DONE]" (the Server-Sent Events format of the WHATWG
// HTML standard). Usage in a stream comes from the last chunk when the
// request sets "stream_options": {"include_usage": true}.
package openai

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"sort"
	"strconv"
	"strings"
)

// Usage is the token accounting of a call.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// APIError is the error object of an error response or stream event.
type APIError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    any    `json:"code"`
}

// Reply is what a chat-completions response says, JSON or streamed.
type Reply struct {
	ID                string
	Model             string
	SystemFingerprint string
	// Content is the first choice's message content; for a stream, its
	// deltas concatenated.
	Content      string
	FinishReason string
	Usage        *Usage
	// Error is set when the response (or a stream event) is an error
	// object.
	Error *APIError
	// Chunks counts the data events of a stream; 0 for a JSON response.
	Chunks int
	// Done is true when a stream ended with "data: [DONE]".
	Done bool
}

// ErrMalformed is returned by the parsers for bytes that are not the wire
// format. Errors name positions, never content.
var ErrMalformed = errors.New("openai: malformed chat-completions message")

type choice struct {
	Index   int `json:"index"`
	Message *struct {
		Content *string `json:"content"`
	} `json:"message"`
	Delta *struct {
		Content *string `json:"content"`
	} `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type object struct {
	ID                string    `json:"id"`
	Model             string    `json:"model"`
	SystemFingerprint string    `json:"system_fingerprint"`
	Choices           []choice  `json:"choices"`
	Usage             *Usage    `json:"usage"`
	Error             *APIError `json:"error"`
}

// IsEventStream reports whether a Content-Type is text/event-stream.
func IsEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}

// ParseResponse parses a whole response body: a text/event-stream when
// contentType says so, else a JSON object.
func ParseResponse(contentType string, body []byte) (Reply, error) {
	if IsEventStream(contentType) {
		var r Reply
		err := ReadEvents(bytes.NewReader(body), func(data []byte) error { return r.addChunk(data) })
		return r, err
	}
	var o object
	if err := json.Unmarshal(body, &o); err != nil {
		return Reply{}, fmt.Errorf("%w: the body is not a JSON object", ErrMalformed)
	}
	r := Reply{ID: o.ID, Model: o.Model, SystemFingerprint: o.SystemFingerprint, Usage: o.Usage, Error: o.Error}
	for _, c := range o.Choices {
		if c.Index != 0 {
			continue
		}
		if c.Message != nil && c.Message.Content != nil {
			r.Content = *c.Message.Content
		}
		if c.FinishReason != nil {
			r.FinishReason = *c.FinishReason
		}
	}
	return r, nil
}

// addChunk applies one data event of a stream.
func (r *Reply) addChunk(data []byte) error {
	if string(bytes.TrimSpace(data)) == "[DONE]" {
		r.Done = true
		return nil
	}
	r.Chunks++
	var o object
	if err := json.Unmarshal(data, &o); err != nil {
		return fmt.Errorf("%w: stream event %d is not a JSON object", ErrMalformed, r.Chunks)
	}
	if o.Error != nil {
		r.Error = o.Error
	}
	if o.ID != "" {
		r.ID = o.ID
	}
	if o.Model != "" {
		r.Model = o.Model
	}
	if o.SystemFingerprint != "" {
		r.SystemFingerprint = o.SystemFingerprint
	}
	if o.Usage != nil {
		r.Usage = o.Usage
	}
	for _, c := range o.Choices {
		if c.Index != 0 {
			continue
		}
		if c.Delta != nil && c.Delta.Content != nil {
			r.Content += *c.Delta.Content
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			r.FinishReason = *c.FinishReason
		}
	}
	return nil
}

// MaxEventBytes caps one line of an event stream.
const MaxEventBytes = 1 << 20

// ReadEvents reads a text/event-stream and calls fn with the data of each
// event: its "data:" lines joined by newlines. Comments, other fields and
// events without data are skipped. Lines end with LF, CRLF or CR. An event
// not closed by a blank line at the end of the stream is still delivered
// (servers that omit the last blank line exist). It stops at fn's first
// error. fn must not keep data after it returns.
func ReadEvents(r io.Reader, fn func(data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), MaxEventBytes)
	sc.Split(scanLines)
	var data []byte
	has := false
	dispatch := func() error {
		if !has {
			return nil
		}
		d := data
		data, has = data[:0], false
		return fn(d)
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if err := dispatch(); err != nil {
				return err
			}
			continue
		}
		field(line, &data, &has)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: a stream line is longer than %d bytes", ErrMalformed, MaxEventBytes)
		}
		return err
	}
	return dispatch()
}

// scanLines splits at LF, CRLF or a lone CR, as the event-stream format
// defines lines.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		switch c {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if atEOF {
				return i + 1, data[:i], nil
			}
			return 0, nil, nil // a CR at the end: wait to see whether LF follows
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// field applies one non-empty line of an event.
func field(line []byte, data *[]byte, has *bool) {
	if line[0] == ':' {
		return
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	if string(name) == "data" {
		if *has {
			*data = append(*data, '\n')
		}
		*data = append(*data, value...)
		*has = true
	}
}

// RequestInfo is what a chat-completions request says, as far as the
// ledger records it.
type RequestInfo struct {
	Model  string
	Stream bool
	// Parameters are the request's scalar top-level fields other than
	// "model", "messages" and "stream" (temperature, max_tokens, seed,
	// ...), as JSON text, at most MaxParameters of them in key order.
	Parameters map[string]string
	// MessagesSHA256 is the hex SHA-256 of the "messages" value exactly as
	// sent.
	MessagesSHA256 string
	Messages       int
}

// MaxParameters caps RequestInfo.Parameters.
const MaxParameters = 32

// ParseRequest parses a chat-completions request body.
func ParseRequest(body []byte) (RequestInfo, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return RequestInfo{}, fmt.Errorf("%w: the request is not a JSON object", ErrMalformed)
	}
	var info RequestInfo
	if m, ok := raw["model"]; ok {
		if err := json.Unmarshal(m, &info.Model); err != nil {
			return info, fmt.Errorf("%w: model is not a string", ErrMalformed)
		}
	}
	if s, ok := raw["stream"]; ok {
		json.Unmarshal(s, &info.Stream)
	}
	if m, ok := raw["messages"]; ok {
		h := sha256.Sum256(m)
		info.MessagesSHA256 = hex.EncodeToString(h[:])
		info.Messages = arrayLen(m)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	info.Parameters = map[string]string{}
	for _, k := range keys {
		switch k {
		case "model", "messages", "stream":
			continue
		}
		v := bytes.TrimSpace(raw[k])
		if len(v) == 0 || v[0] == '{' || v[0] == '[' || len(v) > 256 || len(k) > 64 {
			continue // objects, lists (tools, stop lists) and long values are not recorded
		}
		if len(info.Parameters) == MaxParameters {
			break
		}
		if v[0] == '"' {
			var s string
			if json.Unmarshal(v, &s) == nil {
				info.Parameters[k] = s
				continue
			}
		}
		info.Parameters[k] = string(v)
	}
	return info, nil
}

// arrayLen counts the elements of a valid JSON array without decoding
// them, or returns 0 for another value.
func arrayLen(v json.RawMessage) int {
	v = bytes.TrimSpace(v)
	if len(v) < 2 || v[0] != '[' {
		return 0
	}
	n, depth, inString, escaped, empty := 0, 0, false, false, true
	for _, c := range v[1 : len(v)-1] {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			n++
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			empty = false
		}
	}
	if empty {
		return 0
	}
	return n + 1
}

// Describe summarises an API error for the ledger: the type and code, not
// the message, which may echo the request.
func (e *APIError) Describe() string {
	if e == nil {
		return ""
	}
	parts := []string{}
	if e.Type != "" {
		parts = append(parts, "type "+e.Type)
	}
	switch c := e.Code.(type) {
	case string:
		if c != "" {
			parts = append(parts, "code "+c)
		}
	case float64:
		parts = append(parts, "code "+strconv.FormatFloat(c, 'f', -1, 64))
	}
	if len(parts) == 0 {
		return "error object"
	}
	return strings.Join(parts, ", ")
}
