package grpcapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/pipeline"
)

// NoteGenerator runs the inference pipeline: *pipeline.Pipeline.
type NoteGenerator interface {
	GenerateNote(ctx context.Context, c encounter.Caller, encounterID string, r pipeline.NoteRequest) (*pipeline.Result, error)
}

// Registrar registers a service of its own on a gRPC server, such as the
// KServe recording proxy (*proxy.KServeProxy).
type Registrar interface {
	Register(s grpc.ServiceRegistrar)
}

// inferenceServer implements InferenceService on a NoteGenerator.
type inferenceServer struct {
	pb.UnimplementedInferenceServiceServer
	gen NoteGenerator
}

var backendNames = map[pb.InferenceBackend]string{
	pb.InferenceBackend_INFERENCE_BACKEND_UNSPECIFIED: pipeline.BackendEmbedded,
	pb.InferenceBackend_INFERENCE_BACKEND_EMBEDDED:    pipeline.BackendEmbedded,
	pb.InferenceBackend_INFERENCE_BACKEND_OPENAI:      pipeline.BackendOpenAI,
	pb.InferenceBackend_INFERENCE_BACKEND_KSERVE:      pipeline.BackendKServe,
}

func (s *inferenceServer) GenerateNote(ctx context.Context, req *pb.GenerateNoteRequest) (*pb.GenerateNoteResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	backend, ok := backendNames[req.GetBackend()]
	if !ok {
		return nil, invalidArg("backend", "must be EMBEDDED, OPENAI or KSERVE")
	}
	if req.GetEncounterId() == "" {
		return nil, invalidArg("encounter_id", "must not be empty")
	}
	res, err := s.gen.GenerateNote(ctx, c, req.GetEncounterId(), pipeline.NoteRequest{Backend: backend, Model: req.GetModel()})
	if err != nil {
		return nil, statusOf(err)
	}
	rec := res.Recorded
	r, err := receipt(rec.Appended, rec.Indexes, req.GetVerify())
	if err != nil {
		return nil, err
	}
	out := &pb.GenerateNoteResponse{Receipt: r, ModelOutputIndex: rec.Change, AlignmentIndex: max(rec.Alignment, 0), Note: NotePB(rec.Note),
		Model: &pb.ModelRef{Name: res.Output.Model.Name, Version: res.Output.Model.Version}, Backend: res.Backend, LatencyMs: res.LatencyMS}
	if res.Output.PromptTokens > 0 || res.Output.CompletionTokens > 0 {
		out.Usage = &pb.TokenUsage{PromptTokens: res.Output.PromptTokens, CompletionTokens: res.Output.CompletionTokens}
	}
	return out, nil
}
