package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// demoMarker records, in the data directory, that the demo was loaded.
const demoMarker = "demo.json"

// loadDemo loads the demo visit through the public gRPC API at grpcAddr
// (plaintext), once: see loadDemoOn.
func loadDemo(ctx context.Context, dataDir, grpcAddr string, logger *slog.Logger) (string, error) {
	c, err := client.Dial(grpcAddr, client.Options{})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return loadDemoOn(ctx, dataDir, c.Conn(), logger)
}

// loadDemoOn loads the demo visit through the public gRPC API on conn,
// once: on a restart it finds the marker and returns the encounter it
// loaded before. It calls as the demo tenant's pipeline (recording) and
// clinician (edits, sign-off), with their tokens from
// <dataDir>/demo-tokens.json; without that file (a server without
// authentication, in tests) it sends the development identity metadata.
func loadDemoOn(ctx context.Context, dataDir string, conn grpc.ClientConnInterface, logger *slog.Logger) (string, error) {
	marker := filepath.Join(dataDir, demoMarker)
	if b, err := os.ReadFile(marker); err == nil {
		var m struct {
			EncounterID string `json:"encounter_id"`
		}
		if json.Unmarshal(b, &m) == nil && m.EncounterID != "" {
			return m.EncounterID, nil
		}
	}
	v, err := demo.Load()
	if err != nil {
		return "", err
	}
	tokens := readDemoTokens(dataDir)
	as := func(actor string) context.Context {
		role := auth.RolePipeline
		if !strings.HasPrefix(actor, "svc:") {
			role = auth.RoleClinician
		}
		if tok := tokens[role]; tok != "" {
			return client.WithMetadata(ctx, "authorization", "Bearer "+tok)
		}
		return client.WithMetadata(ctx, "x-evidence-tenant", "demo", "x-evidence-actor", actor)
	}
	api := pb.NewEncounterServiceClient(conn)

	created, err := api.CreateEncounter(as("svc:intake"), &pb.CreateEncounterRequest{Title: v.Title, PatientRef: "demo-" + v.EncounterID})
	if err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	id := created.GetEncounter().GetEncounterId()

	// The recording, streamed in chunks.
	stream, err := api.RecordAudio(as("svc:recorder"))
	if err != nil {
		return "", err
	}
	err = stream.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Header{Header: &pb.AudioHeader{EncounterId: id,
		MediaType: demo.MediaType, Codec: v.Audio.Codec, SampleRateHz: int32(v.Audio.SampleRateHz), Channels: int32(v.Audio.Channels), DurationMs: v.Audio.DurationMS}}})
	for off := 0; err == nil && off < len(v.Audio.Data); off += 32 << 10 {
		err = stream.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Chunk{Chunk: v.Audio.Data[off:min(off+32<<10, len(v.Audio.Data))]}})
	}
	if err != nil {
		return "", fmt.Errorf("audio: %w", err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return "", fmt.Errorf("audio: %w", err)
	}

	// The transcript, then a note drafted by the embedded generator through
	// the inference pipeline, which records the call and its alignment.
	var segs []*pb.Segment
	for _, s := range v.Segments {
		role := pb.SpeakerRole_SPEAKER_ROLE_PATIENT
		if s.Speaker == demo.Clinician {
			role = pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN
		}
		segs = append(segs, &pb.Segment{SegmentId: s.ID, SpeakerRole: role, Text: s.Text, StartMs: s.StartMS, EndMs: s.EndMS, AsrModel: "manual-transcript"})
	}
	if _, err := api.RecordSegments(as("svc:asr"), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segs}); err != nil {
		return "", fmt.Errorf("segments: %w", err)
	}
	mo, err := pb.NewInferenceServiceClient(conn).GenerateNote(as("svc:scribe"), &pb.GenerateNoteRequest{EncounterId: id,
		Backend: pb.InferenceBackend_INFERENCE_BACKEND_EMBEDDED})
	if err != nil {
		return "", fmt.Errorf("generate note: %w", err)
	}

	// The clinician's edits, taken from the real clinician note.
	current := mo.GetNote()
	for _, e := range v.Edits {
		req := &pb.RecordEditRequest{EncounterId: id, Text: e.Text, Reason: e.Reason, Section: string(e.Section)}
		if e.Action == demo.Replace {
			target := findSentence(current, string(e.Section), e.Match)
			if target == "" {
				logger.Warn("demo edit has no matching sentence; adding instead", "section", string(e.Section))
				req.Action = pb.EditAction_EDIT_ACTION_ADD
			} else {
				req.Action, req.SentenceId, req.Section = pb.EditAction_EDIT_ACTION_REPLACE, target, ""
			}
		} else {
			req.Action = pb.EditAction_EDIT_ACTION_ADD
			req.AfterSentenceId = lastSentence(current, string(e.Section))
		}
		resp, err := api.RecordEdit(as("dr.demo"), req)
		if err != nil {
			return "", fmt.Errorf("edit: %w", err)
		}
		current = resp.GetNote()
	}

	// Sign-off, acknowledging what the aligner could not support.
	var ack []string
	for _, sec := range current.GetSections() {
		for _, t := range sec.GetSentences() {
			if t.GetUnsupported() {
				ack = append(ack, t.GetSentenceId())
			}
		}
	}
	if _, err := api.SignNote(as("dr.demo"), &pb.SignNoteRequest{EncounterId: id, NoteHash: current.GetNoteHash(),
		AcknowledgedSentenceIds: ack, Statement: "Reviewed and signed (demo)."}); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	b, _ := json.Marshal(map[string]string{"encounter_id": id, "source": v.EncounterID})
	if err := os.WriteFile(marker, b, 0o600); err != nil {
		return "", err
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
