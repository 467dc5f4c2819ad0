// Package kserve is the KServe v2 / Triton backend of the inference
// wrapper: it asks a model on an inference server that speaks the KServe
// v2 (Open Inference Protocol) gRPC API, package "inference", for a SOAP
// note, through the stubs generated from the published grpc_service.proto
// (grpcapi/gen/inference). It also holds the BYTES tensor codec that the
// recording proxy uses.
//
// # Tensors
//
// The prompt goes in a BYTES input tensor of shape [1], by default named
// "text_input", and the reply is read from the BYTES output "text_output":
// the names the Triton vLLM and TensorRT-LLM backends use. With
// Config.SamplingParameters set, a BYTES input "sampling_parameters"
// carries that JSON, as the Triton vLLM backend reads it. Tensors travel as
// raw contents: each BYTES element is a 4-byte little-endian length and
// then its bytes (the protocol's raw_input_contents form); typed
// bytes_contents are accepted in replies too.
//
// The generated protobuf types appear in this package's API only in the
// codec functions, for the proxy; they never reach the ledger or the
// encounter service.
package kserve

import (
	"encoding/binary"
	"errors"
	"fmt"

	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
)

// ErrMalformed is returned for tensor contents that do not decode.
var ErrMalformed = errors.New("kserve: malformed tensor contents")

// EncodeBytes encodes BYTES tensor elements in the raw form: for each, a
// 4-byte little-endian length and the bytes.
func EncodeBytes(elems ...[]byte) []byte {
	n := 0
	for _, e := range elems {
		n += 4 + len(e)
	}
	out := make([]byte, 0, n)
	for _, e := range elems {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e)))
		out = append(out, e...)
	}
	return out
}

// DecodeBytes decodes the raw form of a BYTES tensor.
func DecodeBytes(raw []byte) ([][]byte, error) {
	var out [][]byte
	for len(raw) > 0 {
		if len(raw) < 4 {
			return nil, fmt.Errorf("%w: %d bytes left, less than a length prefix", ErrMalformed, len(raw))
		}
		n := binary.LittleEndian.Uint32(raw)
		raw = raw[4:]
		if uint64(n) > uint64(len(raw)) {
			return nil, fmt.Errorf("%w: element %d claims %d bytes, %d left", ErrMalformed, len(out), n, len(raw))
		}
		out = append(out, raw[:n])
		raw = raw[n:]
	}
	return out, nil
}

// OutputBytes returns the elements of the named BYTES output of a
// response, from raw_output_contents or typed contents, and whether the
// output is there.
func OutputBytes(resp *inferencepb.ModelInferResponse, name string) ([][]byte, bool, error) {
	for i, o := range resp.GetOutputs() {
		if o.GetName() != name {
			continue
		}
		if o.GetDatatype() != "BYTES" {
			return nil, true, fmt.Errorf("%w: output %q has type %s, not BYTES", ErrMalformed, name, o.GetDatatype())
		}
		if raw := resp.GetRawOutputContents(); len(raw) > 0 {
			if i >= len(raw) {
				return nil, true, fmt.Errorf("%w: output %d has no raw contents", ErrMalformed, i)
			}
			elems, err := DecodeBytes(raw[i])
			return elems, true, err
		}
		return o.GetContents().GetBytesContents(), true, nil
	}
	return nil, false, nil
}

// InputBytes returns the elements of the named BYTES input of a request,
// from raw_input_contents or typed contents, and whether the input is
// there.
func InputBytes(req *inferencepb.ModelInferRequest, name string) ([][]byte, bool, error) {
	for i, in := range req.GetInputs() {
		if in.GetName() != name {
			continue
		}
		if in.GetDatatype() != "BYTES" {
			return nil, true, fmt.Errorf("%w: input %q has type %s, not BYTES", ErrMalformed, name, in.GetDatatype())
		}
		if raw := req.GetRawInputContents(); len(raw) > 0 {
			if i >= len(raw) {
				return nil, true, fmt.Errorf("%w: input %d has no raw contents", ErrMalformed, i)
			}
			elems, err := DecodeBytes(raw[i])
			return elems, true, err
		}
		return in.GetContents().GetBytesContents(), true, nil
	}
	return nil, false, nil
}
