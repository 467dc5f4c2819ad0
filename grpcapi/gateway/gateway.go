// Package gateway serves the evidence.v1 API as JSON over HTTP for the web
// page. Each route calls the gRPC service (over a client connection, so
// authentication and every check stay in one place) and writes the response
// with protojson: the JSON is generated from the same proto definitions, not
// written twice by hand. Errors carry the gRPC code mapped to an HTTP status
// and the field violations.
//
//	GET  /api/v1/log                                  LedgerService.GetLogInfo
//	GET  /api/v1/checkpoint                           LedgerService.GetCheckpoint
//	GET  /api/v1/entries/{index}[?proof=1]            LedgerService.GetEntry
//	GET  /api/v1/proofs/inclusion?index=I[&size=N]    LedgerService.GetInclusionProof
//	GET  /api/v1/proofs/consistency?from=M[&to=N]     LedgerService.GetConsistencyProof
//	GET  /api/v1/encounters[?page_size=&page_token=&note_status=&has_unresolved_flags=&patient_ref=&update_time_start=&update_time_end=]
//	                                                  EncounterService.ListEncounters
//	GET  /api/v1/encounters/{id}                      EncounterService.GetEncounter
//	GET  /api/v1/encounters/{id}/transcript           EncounterService.GetTranscript
//	GET  /api/v1/encounters/{id}/note                 EncounterService.GetNote
//	POST /api/v1/encounters/{id}/edits                EncounterService.RecordEdit (body: RecordEditRequest)
//	POST /api/v1/encounters/{id}/resolutions          EncounterService.ResolveSentence (body: ResolveSentenceRequest)
//	POST /api/v1/encounters/{id}/signoff              EncounterService.SignNote (body: SignNoteRequest)
//	POST /api/v1/encounters/{id}/align                AlignService.Align (body: AlignRequest)
//	POST /api/v1/encounters/{id}/generate             InferenceService.GenerateNote (body: GenerateNoteRequest)
//	GET  /api/v1/search?q=&encounter=&current_only=&facets=&page_size=&page_token=
//	                                                  SearchService.Search
package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/evidenceledger/evidence/auth"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// MaxBodyBytes caps a request body.
const MaxBodyBytes = 1 << 20

// Gateway translates HTTP JSON requests to gRPC calls.
type Gateway struct {
	ledger     pb.LedgerServiceClient
	encounters pb.EncounterServiceClient
	align      pb.AlignServiceClient
	search     pb.SearchServiceClient
	inference  pb.InferenceServiceClient
	extra      []route
}

type route struct {
	pattern string
	fn      func(ctx context.Context, r *http.Request) (proto.Message, error)
}

// New returns a gateway calling the services on conn.
func New(conn grpc.ClientConnInterface) *Gateway {
	return &Gateway{ledger: pb.NewLedgerServiceClient(conn), encounters: pb.NewEncounterServiceClient(conn), align: pb.NewAlignServiceClient(conn),
		search: pb.NewSearchServiceClient(conn), inference: pb.NewInferenceServiceClient(conn)}
}

// Handle adds a route served by fn, for services added by other packages.
func (g *Gateway) Handle(pattern string, fn func(ctx context.Context, r *http.Request) (proto.Message, error)) {
	g.extra = append(g.extra, route{pattern, fn})
}

// Register adds the routes to mux (an *http.ServeMux, or a wrapper that
// guards each route).
func (g *Gateway) Register(mux interface{ Handle(string, http.Handler) }) {
	for _, rt := range append(g.routes(), g.extra...) {
		mux.Handle(rt.pattern, g.serve(rt.fn))
	}
}

func (g *Gateway) routes() []route {
	return []route{
		{"GET /api/v1/log", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			return g.ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
		}},
		{"GET /api/v1/checkpoint", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			return g.ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		}},
		{"GET /api/v1/entries/{index}", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			i, err := intParam("index", r.PathValue("index"))
			if err != nil {
				return nil, err
			}
			return g.ledger.GetEntry(ctx, &pb.GetEntryRequest{LeafIndex: i, IncludeProof: r.URL.Query().Get("proof") == "1"})
		}},
		{"GET /api/v1/proofs/inclusion", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			i, err := intParam("index", r.URL.Query().Get("index"))
			if err != nil {
				return nil, err
			}
			n, err := optInt("size", r.URL.Query().Get("size"))
			if err != nil {
				return nil, err
			}
			return g.ledger.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{LeafIndex: i, TreeSize: n})
		}},
		{"GET /api/v1/proofs/consistency", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			from, err := intParam("from", r.URL.Query().Get("from"))
			if err != nil {
				return nil, err
			}
			to, err := optInt("to", r.URL.Query().Get("to"))
			if err != nil {
				return nil, err
			}
			return g.ledger.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromTreeSize: from, ToTreeSize: to})
		}},
		{"GET /api/v1/encounters", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			q := r.URL.Query()
			size, err := optInt("page_size", q.Get("page_size"))
			if err != nil {
				return nil, err
			}
			req := &pb.ListEncountersRequest{PageSize: int32(max(min(size, 1000), -1)), PageToken: q.Get("page_token"),
				HasUnresolvedFlags: q.Get("has_unresolved_flags") == "1", PatientRef: q.Get("patient_ref")}
			if v := q.Get("note_status"); v != "" {
				st, ok := noteStatuses[v]
				if !ok {
					return nil, fieldError("note_status", "must be none, drafted or signed")
				}
				req.NoteStatus = st
			}
			if req.UpdateTimeStart, err = optTime("update_time_start", q.Get("update_time_start")); err != nil {
				return nil, err
			}
			if req.UpdateTimeEnd, err = optTime("update_time_end", q.Get("update_time_end")); err != nil {
				return nil, err
			}
			return g.encounters.ListEncounters(ctx, req)
		}},
		{"GET /api/v1/encounters/{id}", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			return g.encounters.GetEncounter(ctx, &pb.GetEncounterRequest{EncounterId: r.PathValue("id")})
		}},
		{"GET /api/v1/encounters/{id}/transcript", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			return g.encounters.GetTranscript(ctx, &pb.GetTranscriptRequest{EncounterId: r.PathValue("id")})
		}},
		{"GET /api/v1/encounters/{id}/note", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			return g.encounters.GetNote(ctx, &pb.GetNoteRequest{EncounterId: r.PathValue("id")})
		}},
		{"POST /api/v1/encounters/{id}/edits", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			req := &pb.RecordEditRequest{}
			if err := ReadBody(r, req); err != nil {
				return nil, err
			}
			req.EncounterId = r.PathValue("id")
			return g.encounters.RecordEdit(ctx, req)
		}},
		{"POST /api/v1/encounters/{id}/resolutions", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			req := &pb.ResolveSentenceRequest{}
			if err := ReadBody(r, req); err != nil {
				return nil, err
			}
			req.EncounterId = r.PathValue("id")
			return g.encounters.ResolveSentence(ctx, req)
		}},
		{"POST /api/v1/encounters/{id}/signoff", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			req := &pb.SignNoteRequest{}
			if err := ReadBody(r, req); err != nil {
				return nil, err
			}
			req.EncounterId = r.PathValue("id")
			return g.encounters.SignNote(ctx, req)
		}},
		{"POST /api/v1/encounters/{id}/align", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			req := &pb.AlignRequest{}
			if err := ReadBody(r, req); err != nil {
				return nil, err
			}
			req.EncounterId = r.PathValue("id")
			return g.align.Align(ctx, req)
		}},
		{"POST /api/v1/encounters/{id}/generate", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			req := &pb.GenerateNoteRequest{}
			if err := ReadBody(r, req); err != nil {
				return nil, err
			}
			req.EncounterId = r.PathValue("id")
			return g.inference.GenerateNote(ctx, req)
		}},
		{"GET /api/v1/search", func(ctx context.Context, r *http.Request) (proto.Message, error) {
			q := r.URL.Query()
			size, err := optInt("page_size", q.Get("page_size"))
			if err != nil {
				return nil, err
			}
			return g.search.Search(ctx, &pb.SearchRequest{Query: q.Get("q"), EncounterId: q.Get("encounter"),
				CurrentOnly: q.Get("current_only") == "1", IncludeFacets: q.Get("facets") == "1",
				PageSize: int32(min(size, 1000)), PageToken: q.Get("page_token")})
		}},
	}
}

// ReadBody decodes a JSON request body into m, strictly.
func ReadBody(r *http.Request, m proto.Message) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return status.Error(codes.InvalidArgument, "cannot read the request body")
	}
	if len(b) > MaxBodyBytes {
		return status.Error(codes.ResourceExhausted, "request body too large")
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		return status.Error(codes.InvalidArgument, "malformed JSON body: "+err.Error())
	}
	return nil
}

func intParam(name, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fieldError(name, "must be an integer")
	}
	return n, nil
}

func optInt(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	return intParam(name, v)
}

var noteStatuses = map[string]pb.NoteStatus{"none": pb.NoteStatus_NOTE_STATUS_NONE, "drafted": pb.NoteStatus_NOTE_STATUS_DRAFTED, "signed": pb.NoteStatus_NOTE_STATUS_SIGNED}

// optTime parses an RFC 3339 time, or returns nil for "".
func optTime(name, v string) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fieldError(name, "must be an RFC 3339 time")
	}
	return timestamppb.New(t), nil
}

func fieldError(field, reason string) error {
	st := status.New(codes.InvalidArgument, "invalid "+field+": "+reason)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}}}); err == nil {
		st = d
	}
	return st.Err()
}

// Forwarded request headers become gRPC metadata: credentials and the
// x-evidence-* headers. The identity that an HTTP middleware established
// (in the request's context) is passed on as auth.ForwardedIdentityKey,
// which the server believes only on an in-process connection; a client's
// header of that name is never copied.
func outgoing(r *http.Request) context.Context {
	md := metadata.MD{}
	if a := r.Header.Get("Authorization"); a != "" {
		md.Set("authorization", a)
	}
	for k, v := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-evidence-") && lk != auth.ForwardedIdentityKey && len(v) > 0 {
			md.Set(lk, v[0])
		}
	}
	if id, ok := auth.FromContext(r.Context()); ok {
		md.Set(auth.ForwardedIdentityKey, auth.FormatIdentity(id))
	}
	md.Set("x-forwarded-for", r.RemoteAddr)
	return metadata.NewOutgoingContext(r.Context(), md)
}

var marshal = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

func (g *Gateway) serve(fn func(ctx context.Context, r *http.Request) (proto.Message, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := fn(outgoing(r), r)
		if err != nil {
			WriteError(w, err)
			return
		}
		b, err := marshal.Marshal(m)
		if err != nil {
			WriteError(w, status.Error(codes.Internal, "cannot encode the response"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	})
}

// httpStatus maps gRPC codes to HTTP statuses.
var httpStatus = map[codes.Code]int{
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.OutOfRange:         http.StatusBadRequest,
	codes.NotFound:           http.StatusNotFound,
	codes.FailedPrecondition: http.StatusConflict,
	codes.ResourceExhausted:  http.StatusRequestEntityTooLarge,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.DeadlineExceeded:   http.StatusGatewayTimeout,
	codes.Canceled:           499,
	codes.DataLoss:           http.StatusInternalServerError,
	codes.Unimplemented:      http.StatusNotImplemented,
}

// WriteError writes err as JSON: {"code","message","field_violations",
// "precondition_violations"}, the last two from the status's BadRequest and
// PreconditionFailure details.
func WriteError(w http.ResponseWriter, err error) {
	st, _ := status.FromError(err)
	code, ok := httpStatus[st.Code()]
	if !ok {
		code = http.StatusInternalServerError
	}
	type violation struct {
		Field       string `json:"field"`
		Description string `json:"description"`
	}
	type precondition struct {
		Type        string `json:"type"`
		Subject     string `json:"subject"`
		Description string `json:"description"`
	}
	var vs []violation
	var ps []precondition
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				vs = append(vs, violation{v.GetField(), v.GetDescription()})
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				ps = append(ps, precondition{v.GetType(), v.GetSubject(), v.GetDescription()})
			}
		}
	}
	body := map[string]any{"code": st.Code().String(), "message": st.Message(), "field_violations": vs}
	if len(ps) > 0 {
		body["precondition_violations"] = ps
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	writeJSON(w, body)
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
