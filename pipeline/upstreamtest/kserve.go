package upstreamtest

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inferencepb "github.com/evidenceledger/evidence/grpcapi/gen/inference"
	"github.com/evidenceledger/evidence/pipeline/kserve"
)

// KServe is a GRPCInferenceService with one text model: it reads the
// BYTES input "text_input" and answers with the BYTES output
// "text_output". ModelInfer sets the response header x-upstream-header
// and the trailer x-upstream-trailer. ModelStreamInfer answers each
// request with the reply split over StreamPieces responses, the last
// marked with the parameter triton_final_response. Configure it before
// serving; it is safe for concurrent calls.
type KServe struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer

	// Text is the reply; empty means Note.
	Text string
	// Model and Version name the model; empty means "fake-llm" and "1".
	Model, Version string
	// Code, when not OK, fails every inference with that status.
	Code codes.Code
	// FailFirst fails the first FailFirst inferences with Unavailable.
	FailFirst int
	// EchoPrompt puts the prompt in front of the reply, as servers do
	// when exclude_input_in_output is false.
	EchoPrompt bool
	// StreamPieces is how many responses a streamed reply takes; zero
	// means 4.
	StreamPieces int
	// Delay is waited before answering.
	Delay time.Duration

	mu struct {
		sync.Mutex
		calls int
		md    metadata.MD
	}
}

// LastMetadata returns the metadata of the last inference.
func (k *KServe) LastMetadata() metadata.MD {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.mu.md
}

// Calls returns how many inferences the server has received.
func (k *KServe) Calls() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.mu.calls
}

func (k *KServe) model() (string, string) {
	m, v := k.Model, k.Version
	if m == "" {
		m = "fake-llm"
	}
	if v == "" {
		v = "1"
	}
	return m, v
}

func (k *KServe) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (k *KServe) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: true}, nil
}

func (k *KServe) ModelReady(_ context.Context, r *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	m, _ := k.model()
	return &inferencepb.ModelReadyResponse{Ready: r.GetName() == m}, nil
}

func (k *KServe) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: "upstreamtest", Version: "1", Extensions: []string{"model_stream_infer"}}, nil
}

func (k *KServe) ModelMetadata(_ context.Context, r *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	m, v := k.model()
	if r.GetName() != m {
		return nil, status.Errorf(codes.NotFound, "no model %q", r.GetName())
	}
	return &inferencepb.ModelMetadataResponse{Name: m, Versions: []string{v}, Platform: "python",
		Inputs:  []*inferencepb.ModelMetadataResponse_TensorMetadata{{Name: kserve.DefaultInput, Datatype: "BYTES", Shape: []int64{1}}},
		Outputs: []*inferencepb.ModelMetadataResponse_TensorMetadata{{Name: kserve.DefaultOutput, Datatype: "BYTES", Shape: []int64{-1}}}}, nil
}

// infer checks a request and returns the reply text.
func (k *KServe) infer(ctx context.Context, r *inferencepb.ModelInferRequest) (string, error) {
	k.mu.Lock()
	k.mu.calls++
	n := k.mu.calls
	k.mu.md, _ = metadata.FromIncomingContext(ctx)
	k.mu.Unlock()
	if k.Delay > 0 {
		select {
		case <-time.After(k.Delay):
		case <-ctx.Done():
			return "", status.FromContextError(ctx.Err()).Err()
		}
	}
	switch {
	case k.Code != codes.OK:
		return "", status.Error(k.Code, "synthetic failure")
	case n <= k.FailFirst:
		return "", status.Error(codes.Unavailable, "synthetic overload")
	}
	m, _ := k.model()
	if r.GetModelName() != m {
		return "", status.Errorf(codes.NotFound, "no model %q", r.GetModelName())
	}
	in, ok, err := kserve.InputBytes(r, kserve.DefaultInput)
	if err != nil || !ok || len(in) != 1 {
		return "", status.Error(codes.InvalidArgument, "text_input must be one BYTES element")
	}
	text := k.Text
	if text == "" {
		text = Note
	}
	if k.EchoPrompt {
		text = string(in[0]) + text
	}
	return text, nil
}

func (k *KServe) response(r *inferencepb.ModelInferRequest, text string, params map[string]*inferencepb.InferParameter) *inferencepb.ModelInferResponse {
	m, v := k.model()
	return &inferencepb.ModelInferResponse{ModelName: m, ModelVersion: v, Id: r.GetId(), Parameters: params,
		Outputs:           []*inferencepb.ModelInferResponse_InferOutputTensor{{Name: kserve.DefaultOutput, Datatype: "BYTES", Shape: []int64{1}}},
		RawOutputContents: [][]byte{kserve.EncodeBytes([]byte(text))}}
}

func (k *KServe) ModelInfer(ctx context.Context, r *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	grpc.SetHeader(ctx, metadata.Pairs("x-upstream-header", "h"))
	grpc.SetTrailer(ctx, metadata.Pairs("x-upstream-trailer", "t"))
	text, err := k.infer(ctx, r)
	if err != nil {
		return nil, err
	}
	return k.response(r, text, nil), nil
}

func (k *KServe) ModelStreamInfer(s grpc.BidiStreamingServer[inferencepb.ModelInferRequest, inferencepb.ModelStreamInferResponse]) error {
	s.SetTrailer(metadata.Pairs("x-upstream-trailer", "t"))
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		text, err := k.infer(s.Context(), r)
		if err != nil {
			if st, _ := status.FromError(err); st.Code() == codes.InvalidArgument || st.Code() == codes.NotFound {
				// Triton reports per-request errors in the stream.
				if err := s.Send(&inferencepb.ModelStreamInferResponse{ErrorMessage: st.Message()}); err != nil {
					return err
				}
				continue
			}
			return err
		}
		pieces := k.StreamPieces
		if pieces <= 0 {
			pieces = 4
		}
		step := (len(text) + pieces - 1) / pieces
		for i := 0; i < pieces; i++ {
			part := text[min(i*step, len(text)):min((i+1)*step, len(text))]
			var params map[string]*inferencepb.InferParameter
			if i == pieces-1 {
				params = map[string]*inferencepb.InferParameter{"triton_final_response": {ParameterChoice: &inferencepb.InferParameter_BoolParam{BoolParam: true}}}
			}
			if err := s.Send(&inferencepb.ModelStreamInferResponse{InferResponse: k.response(r, part, params)}); err != nil {
				return err
			}
		}
	}
}

// ServeKServe serves k on a new loopback listener. It returns the address
// and a function that stops the server.
func ServeKServe(k *KServe, opts ...grpc.ServerOption) (addr string, stop func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := grpc.NewServer(opts...)
	inferencepb.RegisterGRPCInferenceServiceServer(s, k)
	go s.Serve(lis)
	return lis.Addr().String(), s.Stop, nil
}
