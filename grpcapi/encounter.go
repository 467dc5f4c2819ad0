package grpcapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
)

// encounterServer implements EncounterService on an *encounter.Service.
type encounterServer struct {
	pb.UnimplementedEncounterServiceServer
	svc *encounter.Service
	log *ledger.Log
}

// caller is who makes a call, as authentication established it.
func caller(ctx context.Context) (encounter.Caller, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return encounter.Caller{}, status.Error(codes.Unauthenticated, "no credentials")
	}
	return encounter.Caller{Tenant: id.Tenant, Actor: id.Subject, Role: id.Role}, nil
}

// receipt builds a WriteReceipt for the given leaves, with inclusion
// proofs against the checkpoint of a (the write's last append, which
// covers them all) when verify is set. It answers from what the commit
// reported (ledger.Appended): nothing the write appended is read back.
func receipt(a *ledger.Appended, indexes []int64, verify bool) (*pb.WriteReceipt, error) {
	cp := a.Checkpoint
	r := &pb.WriteReceipt{LeafIndexes: indexes, Checkpoint: checkpointPB(cp)}
	if !verify {
		return r, nil
	}
	for _, x := range indexes {
		leaf, p, err := a.InclusionProof(x)
		if err != nil {
			return nil, statusOf(err)
		}
		r.Proofs = append(r.Proofs, &pb.InclusionProof{LeafIndex: x, TreeSize: cp.Size, LeafHash: leaf[:], Hashes: hashes(p)})
	}
	return r, nil
}

func appendedIndexes(a *ledger.Appended) []int64 {
	out := make([]int64, len(a.Leaves))
	for i := range out {
		out[i] = a.First + int64(i)
	}
	return out
}

func encounterPB(i encounter.Info) *pb.Encounter {
	return &pb.Encounter{EncounterId: i.ID, Title: i.Title, PatientRef: i.PatientRef,
		CreateTime: timestamppb.New(i.Created.Time), EntryCount: int64(i.Count), HeadIndex: i.Head,
		UpdateTime: timestamppb.New(i.Updated), NoteStatus: pb.NoteStatus(i.Status),
		FlaggedSentences: int32(i.Flagged), UnresolvedSentences: int32(i.Unresolved), Redacted: i.Redacted}
}

func (s *encounterServer) CreateEncounter(ctx context.Context, req *pb.CreateEncounterRequest) (*pb.CreateEncounterResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	info, a, err := s.svc.Create(ctx, c, req.GetTitle(), req.GetPatientRef())
	if err != nil {
		return nil, statusOf(err)
	}
	r, err := receipt(a, appendedIndexes(a), req.GetVerify())
	if err != nil {
		return nil, err
	}
	return &pb.CreateEncounterResponse{Encounter: encounterPB(info), Receipt: r}, nil
}

func (s *encounterServer) ListEncounters(ctx context.Context, req *pb.ListEncountersRequest) (*pb.ListEncountersResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	q := encounter.ListQuery{PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	q.Status = encounter.NoteStatus(req.GetNoteStatus())
	q.Unresolved, q.PatientRef = req.GetHasUnresolvedFlags(), req.GetPatientRef()
	for _, t := range []struct {
		field string
		ts    *timestamppb.Timestamp
		into  *time.Time
	}{{"update_time_start", req.GetUpdateTimeStart(), &q.UpdatedFrom}, {"update_time_end", req.GetUpdateTimeEnd(), &q.UpdatedTo}} {
		if t.ts == nil {
			continue
		}
		if err := t.ts.CheckValid(); err != nil {
			return nil, invalidArg(t.field, "is not a valid timestamp")
		}
		*t.into = t.ts.AsTime()
	}
	page, err := s.svc.Find(ctx, c, q)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &pb.ListEncountersResponse{NextPageToken: page.NextPageToken, TreeSize: page.TreeSize}
	for _, i := range page.Encounters {
		resp.Encounters = append(resp.Encounters, encounterPB(i))
	}
	return resp, nil
}

func (s *encounterServer) GetEncounter(ctx context.Context, req *pb.GetEncounterRequest) (*pb.GetEncounterResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.svc.Get(ctx, c, req.GetEncounterId())
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.GetEncounterResponse{Encounter: encounterPB(info)}, nil
}

var roleNames = map[pb.SpeakerRole]string{
	pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN: encounter.RoleClinician,
	pb.SpeakerRole_SPEAKER_ROLE_PATIENT:   encounter.RolePatient,
	pb.SpeakerRole_SPEAKER_ROLE_OTHER:     encounter.RoleOther,
}

func rolePB(role string) pb.SpeakerRole {
	for k, v := range roleNames {
		if v == role {
			return k
		}
	}
	return pb.SpeakerRole_SPEAKER_ROLE_UNSPECIFIED
}

func (s *encounterServer) RecordSegments(ctx context.Context, req *pb.RecordSegmentsRequest) (*pb.RecordSegmentsResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.GetSegments()) > encounter.MaxSegmentsPerRequest {
		return nil, withField(codes.ResourceExhausted, "segments", fmt.Sprintf("at most %d segments per request", encounter.MaxSegmentsPerRequest), "too many segments")
	}
	segs := make([]encounter.Segment, len(req.GetSegments()))
	for i, g := range req.GetSegments() {
		role, ok := roleNames[g.GetSpeakerRole()]
		if !ok {
			return nil, invalidArg(fmt.Sprintf("segments[%d].speaker_role", i), "must be CLINICIAN, PATIENT or OTHER")
		}
		if g.GetLeafIndex() != 0 || g.GetRecordTime() != nil {
			return nil, invalidArg(fmt.Sprintf("segments[%d].leaf_index", i), "is output only; leave it unset")
		}
		segs[i] = encounter.Segment{ID: g.GetSegmentId(), Role: role, SpeakerLabel: g.GetSpeakerLabel(), Text: g.GetText(),
			StartMS: g.GetStartMs(), EndMS: g.GetEndMs(), ASRModel: g.GetAsrModel(), Confidence: g.GetConfidence()}
		for _, w := range g.GetWords() {
			segs[i].Words = append(segs[i].Words, encounter.Word{Text: w.GetText(), StartMS: w.GetStartMs(), EndMS: w.GetEndMs()})
		}
	}
	a, err := s.svc.RecordSegments(ctx, c, req.GetEncounterId(), segs)
	if err != nil {
		return nil, statusOf(err)
	}
	r, err := receipt(a, appendedIndexes(a), req.GetVerify())
	if err != nil {
		return nil, err
	}
	return &pb.RecordSegmentsResponse{Receipt: r}, nil
}

// audioReader reads the chunks of a RecordAudio stream after its header.
type audioReader struct {
	stream pb.EncounterService_RecordAudioServer
	buf    []byte
	err    error
}

func (r *audioReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		msg, err := r.stream.Recv()
		if err != nil {
			r.err = err
			continue
		}
		if msg.GetHeader() != nil {
			r.err = invalidArg("header", "only the first message may be a header")
			continue
		}
		r.buf = msg.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (s *encounterServer) RecordAudio(stream pb.EncounterService_RecordAudioServer) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return invalidArg("header", "the first message must be the header")
	}
	meta := encounter.Audio{MediaType: h.GetMediaType(), Codec: h.GetCodec(), SampleRateHz: h.GetSampleRateHz(),
		Channels: h.GetChannels(), DurationMS: h.GetDurationMs(), StartMS: h.GetStartMs()}
	a, meta, err := s.svc.RecordAudio(ctx, c, h.GetEncounterId(), meta, &audioReader{stream: stream})
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = invalidArg("chunk", "the stream ended early")
		}
		return statusOf(err)
	}
	r, err := receipt(a, appendedIndexes(a), h.GetVerify())
	if err != nil {
		return err
	}
	return stream.SendAndClose(&pb.RecordAudioResponse{BlobSha256: meta.BlobSHA256, SizeBytes: meta.SizeBytes, Receipt: r})
}

func (s *encounterServer) RecordModelOutput(ctx context.Context, req *pb.RecordModelOutputRequest) (*pb.RecordModelOutputResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	o := encounter.ModelOutput{
		Model:            encounter.Model{Name: req.GetModel().GetName(), Version: req.GetModel().GetVersion()},
		PromptSHA256:     req.GetPromptSha256(),
		Parameters:       req.GetParameters(),
		Inputs:           req.GetInputIndexes(),
		LatencyMS:        req.GetLatencyMs(),
		PromptTokens:     req.GetUsage().GetPromptTokens(),
		CompletionTokens: req.GetUsage().GetCompletionTokens(),
		Error:            req.GetError(),
	}
	if n := req.GetNote(); n != nil {
		o.Note = &encounter.Draft{}
		for _, sec := range n.GetSections() {
			ds := encounter.DraftSection{Name: sec.GetName()}
			for _, t := range sec.GetSentences() {
				ds.Sentences = append(ds.Sentences, encounter.DraftSentence{ID: t.GetSentenceId(), Text: t.GetText()})
			}
			o.Note.Sections = append(o.Note.Sections, ds)
		}
	}
	rec, err := s.svc.RecordModelOutput(ctx, c, req.GetEncounterId(), o)
	if err != nil {
		return nil, statusOf(err)
	}
	r, err := receipt(rec.Appended, rec.Indexes, req.GetVerify())
	if err != nil {
		return nil, err
	}
	return &pb.RecordModelOutputResponse{Receipt: r, ModelOutputIndex: rec.Change, AlignmentIndex: max(rec.Alignment, 0), Note: NotePB(rec.Note)}, nil
}

var editActions = map[pb.EditAction]string{
	pb.EditAction_EDIT_ACTION_REPLACE: encounter.ActionReplace,
	pb.EditAction_EDIT_ACTION_ADD:     encounter.ActionAdd,
	pb.EditAction_EDIT_ACTION_DELETE:  encounter.ActionDelete,
}

func (s *encounterServer) RecordEdit(ctx context.Context, req *pb.RecordEditRequest) (*pb.RecordEditResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	action, ok := editActions[req.GetAction()]
	if !ok {
		return nil, invalidArg("action", "must be REPLACE, ADD or DELETE")
	}
	rec, err := s.svc.RecordEdit(ctx, c, req.GetEncounterId(), encounter.EditRequest{Action: action, SentenceID: req.GetSentenceId(),
		Section: req.GetSection(), After: req.GetAfterSentenceId(), Text: req.GetText(), Reason: req.GetReason()})
	if err != nil {
		return nil, statusOf(err)
	}
	r, err := receipt(rec.Appended, rec.Indexes, req.GetVerify())
	if err != nil {
		return nil, err
	}
	return &pb.RecordEditResponse{Receipt: r, SentenceId: rec.SentenceID, EditIndex: rec.Change, AlignmentIndex: max(rec.Alignment, 0), Note: NotePB(rec.Note)}, nil
}

var resolutionActions = map[pb.ResolutionAction]string{
	pb.ResolutionAction_RESOLUTION_ACTION_CONFIRM: encounter.ResolveConfirmed,
	pb.ResolutionAction_RESOLUTION_ACTION_EDIT:    encounter.ResolveEdited,
}

var verdicts = map[pb.Verdict]string{
	pb.Verdict_VERDICT_SUPPORTED:    encounter.VerdictSupported,
	pb.Verdict_VERDICT_INFERRED:     encounter.VerdictInferred,
	pb.Verdict_VERDICT_CONTRADICTED: encounter.VerdictContradicted,
	pb.Verdict_VERDICT_UNMENTIONED:  encounter.VerdictUnmentioned,
}

var severities = map[pb.Severity]string{
	pb.Severity_SEVERITY_MAJOR:   encounter.SeverityMajor,
	pb.Severity_SEVERITY_MINOR:   encounter.SeverityMinor,
	pb.Severity_SEVERITY_MINIMAL: encounter.SeverityMinimal,
}

var conflictKinds = map[pb.ConflictKind]string{
	pb.ConflictKind_CONFLICT_KIND_NEGATION:         string(align.ConflictNegation),
	pb.ConflictKind_CONFLICT_KIND_NUMBER:           string(align.ConflictNumber),
	pb.ConflictKind_CONFLICT_KIND_DURATION_ONSET:   string(align.ConflictDuration),
	pb.ConflictKind_CONFLICT_KIND_MEDICATION:       string(align.ConflictMedication),
	pb.ConflictKind_CONFLICT_KIND_DOSE_FREQUENCY:   string(align.ConflictDose),
	pb.ConflictKind_CONFLICT_KIND_LATERALITY_SITE:  string(align.ConflictSite),
	pb.ConflictKind_CONFLICT_KIND_CONDITION:        string(align.ConflictCondition),
	pb.ConflictKind_CONFLICT_KIND_ATTRIBUTION:      string(align.ConflictAttribution),
	pb.ConflictKind_CONFLICT_KIND_SEVERITY_QUALITY: string(align.ConflictQuality),
}

// enumOf returns the key of m whose value is v, or the zero key.
func enumOf[K comparable](m map[K]string, v string) K {
	for k, name := range m {
		if name == v {
			return k
		}
	}
	var zero K
	return zero
}

func (s *encounterServer) ResolveSentence(ctx context.Context, req *pb.ResolveSentenceRequest) (*pb.ResolveSentenceResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	action, ok := resolutionActions[req.GetAction()]
	if !ok {
		return nil, invalidArg("action", "must be CONFIRM or EDIT")
	}
	verdict, ok := verdicts[req.GetVerdict()]
	if !ok {
		return nil, invalidArg("verdict", "must be the verdict the clinician saw: CONTRADICTED or UNMENTIONED")
	}
	rec, err := s.svc.ResolveSentence(ctx, c, req.GetEncounterId(), encounter.ResolveRequest{SentenceID: req.GetSentenceId(), Verdict: verdict,
		Alignment: req.GetAlignmentIndex(), Action: action, Reason: req.GetReason(), Text: req.GetText()})
	if err != nil {
		return nil, statusOf(err)
	}
	r, err := receipt(rec.Appended, rec.Indexes, req.GetVerify())
	if err != nil {
		return nil, err
	}
	return &pb.ResolveSentenceResponse{Receipt: r, ResolutionIndex: rec.Resolution, EditIndex: max(rec.Change, 0),
		AlignmentIndex: max(rec.Alignment, 0), Note: NotePB(rec.Note)}, nil
}

func (s *encounterServer) SignNote(ctx context.Context, req *pb.SignNoteRequest) (*pb.SignNoteResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := s.svc.Sign(ctx, c, req.GetEncounterId(), req.GetNoteHash(), req.GetAcknowledgedSentenceIds(), req.GetStatement())
	if err != nil {
		return nil, statusOf(err)
	}
	r, err := receipt(rec.Appended, rec.Indexes, req.GetVerify())
	if err != nil {
		return nil, err
	}
	return &pb.SignNoteResponse{Receipt: r, Note: NotePB(rec.Note)}, nil
}

func (s *encounterServer) GetTranscript(ctx context.Context, req *pb.GetTranscriptRequest) (*pb.GetTranscriptResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	segs, audio, err := s.svc.Transcript(ctx, c, req.GetEncounterId())
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &pb.GetTranscriptResponse{}
	for _, g := range segs {
		sp := &pb.Segment{SegmentId: g.ID, SpeakerRole: rolePB(g.Role), SpeakerLabel: g.SpeakerLabel, Text: g.Text,
			StartMs: g.StartMS, EndMs: g.EndMS, AsrModel: g.ASRModel, Confidence: g.Confidence,
			LeafIndex: g.Index, RecordTime: timestamppb.New(g.Time)}
		for _, w := range g.Words {
			sp.Words = append(sp.Words, &pb.Word{Text: w.Text, StartMs: w.StartMS, EndMs: w.EndMS})
		}
		resp.Segments = append(resp.Segments, sp)
	}
	for _, a := range audio {
		resp.Audio = append(resp.Audio, &pb.Audio{LeafIndex: a.Index, BlobSha256: a.BlobSHA256, SizeBytes: a.SizeBytes, MediaType: a.MediaType,
			Codec: a.Codec, SampleRateHz: a.SampleRateHz, Channels: a.Channels, DurationMs: a.DurationMS, StartMs: a.StartMS})
	}
	return resp, nil
}

func (s *encounterServer) GetNote(ctx context.Context, req *pb.GetNoteRequest) (*pb.GetNoteResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.svc.Note(ctx, c, req.GetEncounterId())
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.GetNoteResponse{Note: NotePB(n)}, nil
}

// NotePB translates a note projection to its API form.
func NotePB(n *encounter.Note) *pb.Note {
	out := &pb.Note{EncounterId: n.Encounter, NoteHash: n.Hash[:], HeadIndex: n.Head, ModelOutputIndex: max(n.ModelOutput, 0),
		Model: &pb.ModelRef{Name: n.Model.Name, Version: n.Model.Version}, Signed: n.Signed}
	for _, sec := range n.Sections {
		ps := &pb.Section{Name: sec.Name}
		for _, t := range sec.Sentences {
			st := &pb.Sentence{SentenceId: t.ID, Text: t.Text, Unsupported: t.Unsupported(), Acknowledged: t.Acknowledged,
				Provenance: &pb.Provenance{AlignmentIndex: t.AlignmentIndex, AlignmentMethod: t.AlignmentMethod}}
			for _, e := range t.Evidence {
				st.Evidence = append(st.Evidence, evidencePB(e))
			}
			st.Verdict, st.Severity, st.Conflicts, st.UnsupportedRanges = verdictPB(t.Verdict, t.Severity, t.Conflicts, t.UnsupportedRanges)
			st.Resolved = t.Resolved
			for _, r := range t.Resolutions {
				st.Resolutions = append(st.Resolutions, &pb.Resolution{LeafIndex: r.Index, Actor: r.Actor, RecordTime: timestamppb.New(r.Time),
					VersionIndex: r.Version, AlignmentIndex: r.Alignment, Verdict: enumOf(verdicts, r.Verdict), Severity: enumOf(severities, r.Severity),
					Action: enumOf(resolutionActions, r.Action), Reason: r.Reason, EditIndex: r.Edit, RealignedIndex: r.Realigned,
					NewVerdict: enumOf(verdicts, r.NewVerdict)})
			}
			for _, v := range t.Versions {
				pv := &pb.SentenceVersion{LeafIndex: v.Index, Kind: pb.EntryKind(v.Kind), Text: v.Text, Actor: v.Actor,
					RecordTime: timestamppb.New(v.Time), Reason: v.Reason}
				for k, a := range editActions {
					if a == v.Action {
						pv.Action = k
					}
				}
				if v.Model != nil {
					pv.Model = &pb.ModelRef{Name: v.Model.Name, Version: v.Model.Version}
				}
				st.Provenance.Versions = append(st.Provenance.Versions, pv)
			}
			ps.Sentences = append(ps.Sentences, st)
		}
		out.Sections = append(out.Sections, ps)
	}
	for _, g := range n.Signoffs {
		h, _ := hex.DecodeString(g.NoteHash)
		out.Signoffs = append(out.Signoffs, &pb.Signoff{LeafIndex: g.Index, Actor: g.Actor, RecordTime: timestamppb.New(g.Time),
			NoteHash: h, Statement: g.Statement, AcknowledgedSentenceIds: g.Acknowledged})
	}
	return out
}

// verdictPB translates a sentence's verdict and its details.
func verdictPB(verdict, severity string, conflicts []encounter.ConflictEvidence, unsupported []encounter.SentenceRange) (pb.Verdict, pb.Severity, []*pb.Conflict, []*pb.TextRange) {
	var cs []*pb.Conflict
	for _, c := range conflicts {
		cs = append(cs, &pb.Conflict{Kind: enumOf(conflictKinds, c.Kind), Claim: textRangePB(c.ClaimRange), SegmentId: c.SegmentID,
			SegmentIndex: c.SegmentIndex, CharStart: int32(c.CharStart), CharEnd: int32(c.CharEnd), Utf16Start: int32(c.UTF16Start),
			Utf16End: int32(c.UTF16End), StartMs: c.StartMS, EndMs: c.EndMS, Words: c.Words, SpeakerRole: rolePB(c.Role)})
	}
	var rs []*pb.TextRange
	for _, r := range unsupported {
		rs = append(rs, textRangePB(r))
	}
	return enumOf(verdicts, verdict), enumOf(severities, severity), cs, rs
}

func textRangePB(r encounter.SentenceRange) *pb.TextRange {
	return &pb.TextRange{CharStart: int32(r.Start), CharEnd: int32(r.End), Utf16Start: int32(r.UTF16Start), Utf16End: int32(r.UTF16End)}
}

func evidencePB(e encounter.Evidence) *pb.EvidenceSpan {
	return &pb.EvidenceSpan{SegmentId: e.SegmentID, SegmentIndex: e.SegmentIndex,
		CharStart: int32(e.CharStart), CharEnd: int32(e.CharEnd), Utf16Start: int32(e.UTF16Start), Utf16End: int32(e.UTF16End),
		StartMs: e.StartMS, EndMs: e.EndMS, Score: e.Score, SpeakerRole: rolePB(e.Role), Text: e.Text}
}
