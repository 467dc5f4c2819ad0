package gateway

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/evidenceledger/evidence/auth"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// TestOutgoingIdentity: the identity the HTTP guard put in the request's
// context is passed on; a client's own x-evidence-identity header never
// is.
func TestOutgoingIdentity(t *testing.T) {
	r := httptest.NewRequest("GET", "/api/v1/encounters", nil)
	r.Header.Set("X-Evidence-Identity", "clinic-b/admin/mallory")
	r.Header.Set("X-Evidence-Encounter", "enc_1")
	md, _ := metadata.FromOutgoingContext(outgoing(r))
	if v := md.Get(auth.ForwardedIdentityKey); len(v) != 0 {
		t.Fatalf("a client's identity header was forwarded: %v", v)
	}
	if v := md.Get("x-evidence-encounter"); len(v) != 1 {
		t.Fatal("other x-evidence headers are dropped")
	}
	id := auth.Identity{Tenant: "clinic-a", Role: auth.RoleClinician, Subject: "dr.a"}
	md, _ = metadata.FromOutgoingContext(outgoing(r.WithContext(auth.NewContext(r.Context(), id))))
	if v := md.Get(auth.ForwardedIdentityKey); len(v) != 1 || v[0] != auth.FormatIdentity(id) {
		t.Fatalf("forwarded identity %v", v)
	}
}

// FuzzReadBody decodes arbitrary bodies into every request type the
// gateway reads: an error is InvalidArgument or ResourceExhausted, never
// a panic.
func FuzzReadBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"action":"EDIT_ACTION_REPLACE","sentence_id":"S1","text":"x","reason":"r"}`,
		`{"note_hash":"AAAA","acknowledged_sentence_ids":["S1"]}`, `{"sentences":[{"text":"chest pain"}]}`,
		`{"backend":"INFERENCE_BACKEND_OPENAI","verify":true}`, `{"action":`, `[]`, `null`, `{"text":"\ud800"}`, `{"a":1e999}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, m := range []proto.Message{&pb.RecordEditRequest{}, &pb.SignNoteRequest{}, &pb.AlignRequest{}, &pb.GenerateNoteRequest{}} {
			r := httptest.NewRequest("POST", "/x", bytes.NewReader(body))
			err := ReadBody(r, m)
			if c := status.Code(err); err != nil && c != codes.InvalidArgument && c != codes.ResourceExhausted {
				t.Fatalf("%T: %v", m, err)
			}
		}
	})
}

// FuzzRoutes serves arbitrary requests on the gateway's routes, with a
// backend that answers every call with an error: the gateway must answer
// each with JSON and a 4xx or 5xx status it maps, never panic.
func FuzzRoutes(f *testing.F) {
	mux := http.NewServeMux()
	New(refuse{}).Register(mux)
	for _, s := range []string{"/api/v1/entries/1?proof=1", "/api/v1/proofs/inclusion?index=-1&size=x", "/api/v1/encounters?page_size=99999999999",
		"/api/v1/search?q=a&page_size=-5", "/api/v1/encounters/enc_1/edits"} {
		f.Add("GET", s, []byte(nil))
		f.Add("POST", s, []byte(`{"text":"x"}`))
	}
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		r, err := http.NewRequest(method, "http://x"+target, bytes.NewReader(body))
		if err != nil || r.URL.Path == "" || r.URL.Path[0] != '/' {
			return
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			t.Fatalf("%s %s: 200 from a backend that refuses everything", method, target)
		}
	})
}

// refuse is a connection whose every call fails.
type refuse struct{}

func (refuse) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Error(codes.Unavailable, "refused")
}

func (refuse) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unavailable, "refused")
}

// recorder is a connection that records the request of each call and
// answers with an empty response.
type recorder struct{ req proto.Message }

func (r *recorder) Invoke(_ context.Context, _ string, args, _ any, _ ...grpc.CallOption) error {
	r.req = args.(proto.Message)
	return nil
}

func (*recorder) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "no streams")
}

// TestListParameters: the visit list's query parameters become the
// ListEncounters request; a bad status or time is a 400 naming it.
func TestListParameters(t *testing.T) {
	rec := &recorder{}
	mux := http.NewServeMux()
	New(rec).Register(mux)
	get := func(target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		return w
	}
	w := get("/api/v1/encounters?page_size=20&page_token=t1&note_status=signed&has_unresolved_flags=1&patient_ref=mrn-7&update_time_start=2026-03-01T00:00:00Z&update_time_end=2026-03-02T12:30:00.5Z")
	req, _ := rec.req.(*pb.ListEncountersRequest)
	if w.Code != http.StatusOK || req == nil {
		t.Fatalf("status %d, request %v", w.Code, rec.req)
	}
	if req.GetPageSize() != 20 || req.GetPageToken() != "t1" || req.GetNoteStatus() != pb.NoteStatus_NOTE_STATUS_SIGNED || !req.GetHasUnresolvedFlags() ||
		req.GetPatientRef() != "mrn-7" || req.GetUpdateTimeStart().AsTime().Format("2006-01-02") != "2026-03-01" || req.GetUpdateTimeEnd().AsTime().Nanosecond() != 5e8 {
		t.Fatalf("request %v", req)
	}
	rec.req = nil
	if get("/api/v1/encounters"); rec.req.(*pb.ListEncountersRequest).GetUpdateTimeStart() != nil {
		t.Fatal("an absent time became a bound")
	}
	for _, bad := range []string{"note_status=maybe", "update_time_start=yesterday", "update_time_end=2026-13-01T00:00:00Z"} {
		rec.req = nil
		if w := get("/api/v1/encounters?" + bad); w.Code != http.StatusBadRequest || rec.req != nil || !bytes.Contains(w.Body.Bytes(), []byte(bad[:bytes.IndexByte([]byte(bad), '=')])) {
			t.Errorf("%s: %d %s", bad, w.Code, w.Body)
		}
	}
}
