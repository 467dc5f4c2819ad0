package web_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/gateway"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/ledger/tlogtiles"
	"github.com/evidenceledger/evidence/pipeline/soapgen"
	"github.com/evidenceledger/evidence/web"
)

// stack is the server as cmd/evidenced assembles it, in process: the log on
// memory storage, the gRPC services on loopback, the JSON gateway calling
// them, the tlog tiles and the web handler, on one HTTP server.
type stack struct {
	URL  string
	Log  *ledger.Log
	Svc  *encounter.Service
	API  pb.EncounterServiceClient
	Mux  *http.ServeMux
	HTTP *httptest.Server
}

// devAuth is cmd/evidenced's development authenticator: everyone is
// admitted; the tenant and actor come from metadata.
func devAuth(ctx context.Context, _ string) (auth.Identity, error) {
	id := auth.Identity{Tenant: "demo", Subject: "anonymous", Role: auth.RoleAdmin}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-evidence-tenant"); len(v) == 1 && v[0] != "" {
		id.Tenant = v[0]
	}
	if v := md.Get("x-evidence-actor"); len(v) == 1 && v[0] != "" {
		id.Subject = v[0]
	}
	return id, nil
}

// newStack starts a server. front, when set, wraps the server's handler,
// to put test-only routes in front of its own.
func newStack(t testing.TB, front func(http.Handler) http.Handler) *stack {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.localhost/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	svc := encounter.New(l, blob.New(store, nil))
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l, Encounters: svc, Auth: devAuth})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	gateway.New(conn).Register(mux)
	(&tlogtiles.Handler{Log: l}).Register(mux)
	web.New(web.Options{Audio: svc}).Register(mux)
	var h http.Handler = mux
	if front != nil {
		h = front(mux)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		conn.Close()
		gs.Stop()
		l.Close()
		store.Close()
	})
	return &stack{URL: hs.URL, Log: l, Svc: svc, API: pb.NewEncounterServiceClient(conn), Mux: mux, HTTP: hs}
}

// as returns a context that calls the API as actor of the demo tenant.
func as(actor string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", "demo", "x-evidence-actor", actor)
}

// loadDemo records the demo visit through the public gRPC API the way
// `evidenced --demo` does: audio, segments, a note from the embedded
// generator, the clinician's edits and a sign-off acknowledging what is
// unsupported. It returns the encounter id.
func loadDemo(t testing.TB, s *stack) string {
	t.Helper()
	v, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.API.CreateEncounter(as("svc:intake"), &pb.CreateEncounterRequest{Title: v.Title, PatientRef: "demo-" + v.EncounterID})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetEncounter().GetEncounterId()
	stream, err := s.API.RecordAudio(as("svc:recorder"))
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Header{Header: &pb.AudioHeader{EncounterId: id,
		MediaType: demo.MediaType, Codec: v.Audio.Codec, SampleRateHz: int32(v.Audio.SampleRateHz), Channels: int32(v.Audio.Channels), DurationMs: v.Audio.DurationMS}}})
	for off := 0; err == nil && off < len(v.Audio.Data); off += 32 << 10 {
		err = stream.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Chunk{Chunk: v.Audio.Data[off:min(off+32<<10, len(v.Audio.Data))]}})
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	var segs []*pb.Segment
	var gen []soapgen.Segment
	for _, g := range v.Segments {
		role := pb.SpeakerRole_SPEAKER_ROLE_PATIENT
		if g.Speaker == demo.Clinician {
			role = pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN
		}
		segs = append(segs, &pb.Segment{SegmentId: g.ID, SpeakerRole: role, Text: g.Text, StartMs: g.StartMS, EndMs: g.EndMS, AsrModel: "manual-transcript"})
		gen = append(gen, soapgen.Segment{ID: g.ID, Speaker: string(g.Speaker), StartMS: g.StartMS, EndMS: g.EndMS, Text: g.Text})
	}
	rs, err := s.API.RecordSegments(as("svc:asr"), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segs})
	if err != nil {
		t.Fatal(err)
	}
	note, err := soapgen.Generate(gen, soapgen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	draft := &pb.DraftNote{}
	for _, sec := range note.Sections {
		ds := &pb.DraftSection{Name: sec.Name}
		for _, x := range sec.Sentences {
			ds.Sentences = append(ds.Sentences, &pb.DraftSentence{SentenceId: x.ID, Text: x.Text})
		}
		draft.Sections = append(draft.Sections, ds)
	}
	mo, err := s.API.RecordModelOutput(as("svc:scribe"), &pb.RecordModelOutputRequest{EncounterId: id,
		Model: &pb.ModelRef{Name: soapgen.Name, Version: soapgen.Version}, InputIndexes: rs.GetReceipt().GetLeafIndexes(), Note: draft, LatencyMs: 12})
	if err != nil {
		t.Fatal(err)
	}
	current := mo.GetNote()
	for _, e := range v.Edits {
		req := &pb.RecordEditRequest{EncounterId: id, Text: e.Text, Reason: e.Reason, Section: string(e.Section), Action: pb.EditAction_EDIT_ACTION_ADD}
		if e.Action == demo.Replace {
			if target := findSentence(current, string(e.Section), e.Match); target != "" {
				req.Action, req.SentenceId, req.Section = pb.EditAction_EDIT_ACTION_REPLACE, target, ""
			}
		}
		if req.Action == pb.EditAction_EDIT_ACTION_ADD {
			req.AfterSentenceId = lastSentence(current, string(e.Section))
		}
		resp, err := s.API.RecordEdit(as("dr.demo"), req)
		if err != nil {
			t.Fatal(err)
		}
		current = resp.GetNote()
	}
	var ack []string
	for _, sec := range current.GetSections() {
		for _, x := range sec.GetSentences() {
			if x.GetUnsupported() {
				ack = append(ack, x.GetSentenceId())
			}
		}
	}
	if _, err := s.API.SignNote(as("dr.demo"), &pb.SignNoteRequest{EncounterId: id, NoteHash: current.GetNoteHash(),
		AcknowledgedSentenceIds: ack, Statement: "Reviewed and signed (demo)."}); err != nil {
		t.Fatal(err)
	}
	return id
}

func findSentence(n *pb.Note, section, match string) string {
	for _, sec := range n.GetSections() {
		if sec.GetName() != section {
			continue
		}
		for _, x := range sec.GetSentences() {
			if strings.Contains(strings.ToLower(x.GetText()), strings.ToLower(match)) {
				return x.GetSentenceId()
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

// note reads the current note through the API.
func (s *stack) note(t testing.TB, id string) *pb.Note {
	t.Helper()
	r, err := s.API.GetNote(as("test"), &pb.GetNoteRequest{EncounterId: id})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetNote()
}
