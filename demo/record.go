package demo

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// Record records the demo visit through the public gRPC API on conn, as
// `evidenced --demo` does: the encounter, the recording (streamed in
// chunks), the transcript, a note drafted by the embedded generator
// through InferenceService (which records the call and its alignment),
// then a second draft through the OpenAI-compatible backend from the
// committed fixture reply (see LLMModel), recorded with RecordModelOutput
// and checked like any draft, and the clinician's edits, taken from the
// real clinician note, applied to it. The note is left unsigned: the
// fixture's two errors are flagged (one contradicted, one unmentioned) and
// wait for a clinician to resolve them before signing. as returns the
// context to call with as an actor: ids starting "svc:" are the
// pipeline's services, the others the clinician. It returns the new
// encounter's id.
func Record(conn grpc.ClientConnInterface, as func(actor string) context.Context, logger *slog.Logger) (string, error) {
	v, err := Load()
	if err != nil {
		return "", err
	}
	api := pb.NewEncounterServiceClient(conn)
	created, err := api.CreateEncounter(as("svc:intake"), &pb.CreateEncounterRequest{Title: v.Title, PatientRef: "demo-" + v.EncounterID})
	if err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	id := created.GetEncounter().GetEncounterId()

	stream, err := api.RecordAudio(as("svc:recorder"))
	if err != nil {
		return "", err
	}
	err = stream.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Header{Header: &pb.AudioHeader{EncounterId: id,
		MediaType: MediaType, Codec: v.Audio.Codec, SampleRateHz: int32(v.Audio.SampleRateHz), Channels: int32(v.Audio.Channels), DurationMs: v.Audio.DurationMS}}})
	for off := 0; err == nil && off < len(v.Audio.Data); off += 32 << 10 {
		err = stream.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Chunk{Chunk: v.Audio.Data[off:min(off+32<<10, len(v.Audio.Data))]}})
	}
	if err != nil {
		return "", fmt.Errorf("audio: %w", err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return "", fmt.Errorf("audio: %w", err)
	}

	var segs []*pb.Segment
	for _, s := range v.Segments {
		role := pb.SpeakerRole_SPEAKER_ROLE_PATIENT
		if s.Role == encounter.RoleClinician {
			role = pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN
		}
		segs = append(segs, &pb.Segment{SegmentId: s.ID, SpeakerRole: role, Text: s.Text, StartMs: s.StartMS, EndMs: s.EndMS, AsrModel: "manual-transcript"})
	}
	recorded, err := api.RecordSegments(as("svc:asr"), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segs})
	if err != nil {
		return "", fmt.Errorf("segments: %w", err)
	}
	if _, err := pb.NewInferenceServiceClient(conn).GenerateNote(as("svc:scribe"), &pb.GenerateNoteRequest{EncounterId: id,
		Backend: pb.InferenceBackend_INFERENCE_BACKEND_EMBEDDED}); err != nil {
		return "", fmt.Errorf("generate note: %w", err)
	}

	// The second draft, through the OpenAI-compatible backend.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := draftWithLLM(ctx, v)
	if err != nil {
		return "", err
	}
	req := &pb.RecordModelOutputRequest{EncounterId: id, Model: &pb.ModelRef{Name: d.Model.Name, Version: d.Model.Version},
		PromptSha256: d.PromptSHA256, Parameters: d.Parameters, InputIndexes: recorded.GetReceipt().GetLeafIndexes(),
		LatencyMs: d.Latency.Milliseconds(), Usage: &pb.TokenUsage{PromptTokens: d.PromptTokens, CompletionTokens: d.CompletionTokens},
		Note: &pb.DraftNote{}}
	for _, sec := range d.Note.Sections {
		ds := &pb.DraftSection{Name: sec.Name}
		for _, t := range sec.Sentences {
			ds.Sentences = append(ds.Sentences, &pb.DraftSentence{SentenceId: t.ID, Text: t.Text})
		}
		req.Note.Sections = append(req.Note.Sections, ds)
	}
	mo, err := api.RecordModelOutput(as("svc:scribe"), req)
	if err != nil {
		return "", fmt.Errorf("second draft: %w", err)
	}

	current := mo.GetNote()
	for _, e := range v.Edits {
		req := &pb.RecordEditRequest{EncounterId: id, Text: e.Text, Reason: e.Reason, Section: string(e.Section), Action: pb.EditAction_EDIT_ACTION_ADD}
		if e.Action == Replace {
			if target := findSentence(current, string(e.Section), e.Match); target != "" {
				req.Action, req.SentenceId, req.Section = pb.EditAction_EDIT_ACTION_REPLACE, target, ""
			} else {
				logger.Warn("demo edit has no matching sentence; adding instead", "section", string(e.Section))
			}
		}
		if req.Action == pb.EditAction_EDIT_ACTION_ADD {
			req.AfterSentenceId = lastSentence(current, string(e.Section))
		}
		resp, err := api.RecordEdit(as("dr.demo"), req)
		if err != nil {
			return "", fmt.Errorf("edit: %w", err)
		}
		current = resp.GetNote()
	}

	return id, nil
}

func findSentence(n *pb.Note, section, match string) string {
	for _, sec := range n.GetSections() {
		if sec.GetName() != section {
			continue
		}
		for _, t := range sec.GetSentences() {
			if strings.Contains(strings.ToLower(t.GetText()), strings.ToLower(match)) {
				return t.GetSentenceId()
			}
		}
	}
	return ""
}

func lastSentence(n *pb.Note, section string) string {
	for _, sec := range n.GetSections() {
		if sec.GetName() == section && len(sec.GetSentences()) > 0 {
			return sec.GetSentences()[len(sec.GetSentences())-1].GetSentenceId()
		}
	}
	return ""
}
