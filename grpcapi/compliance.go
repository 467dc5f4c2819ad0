package grpcapi

import (
	"context"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
)

// complianceServer implements ComplianceService on a *compliance.Service.
type complianceServer struct {
	pb.UnimplementedComplianceServiceServer
	svc *compliance.Service
}

var reportFormats = map[pb.ReportFormat]string{
	pb.ReportFormat_REPORT_FORMAT_JSON: compliance.FormatJSON,
	pb.ReportFormat_REPORT_FORMAT_HTML: compliance.FormatHTML,
	pb.ReportFormat_REPORT_FORMAT_FHIR: compliance.FormatFHIR,
}

func (s *complianceServer) ExportProvenance(ctx context.Context, req *pb.ExportProvenanceRequest) (*pb.ExportProvenanceResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	format, ok := reportFormats[req.GetFormat()]
	if !ok {
		return nil, invalidArg("format", "must be JSON, HTML or FHIR")
	}
	b, ct, err := s.svc.Export(ctx, c, req.GetEncounterId(), format)
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.ExportProvenanceResponse{ContentType: ct, Content: b}, nil
}

func (s *complianceServer) ListAccessEvents(req *pb.ListAccessEventsRequest, stream pb.ComplianceService_ListAccessEventsServer) error {
	ctx := stream.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	q := compliance.AccessQuery{Encounter: req.GetEncounterId(), Actor: req.GetActor()}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return invalidArg("start_time", "not a valid timestamp")
		}
		q.From = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return invalidArg("end_time", "not a valid timestamp")
		}
		q.To = t.AsTime()
	}
	err = s.svc.Accesses(ctx, c, q, func(ev compliance.AccessEvent) error {
		return stream.Send(&pb.ListAccessEventsResponse{Event: &pb.AccessEvent{
			LeafIndex: ev.Leaf, RecordTime: timestamppb.New(ev.Time), Tenant: ev.Tenant, EncounterId: ev.Encounter, Actor: ev.Actor,
			Role: ev.Role, Action: ev.Action, Channel: ev.Channel, RemoteAddr: ev.Remote, ForwardedFor: ev.ForwardedFor,
			HeadIndex: ev.Head, LeafIndexes: ev.Leaves, EncounterIds: ev.Encounters, Count: int64(ev.Count), Format: ev.Format}})
	})
	return statusOf(err)
}

func (s *complianceServer) ShredEncounter(ctx context.Context, req *pb.ShredEncounterRequest) (*pb.ShredEncounterResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.Shred(ctx, c, req.GetEncounterId(), req.GetReason())
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.ShredEncounterResponse{
		Receipt:           &pb.WriteReceipt{LeafIndexes: appendedIndexes(res.Redaction), Checkpoint: checkpointPB(res.Redaction.Checkpoint)},
		PayloadsDestroyed: int64(res.Payloads), RecordingsDestroyed: int64(res.Blobs),
		KeyPurged: res.KeyPurged, IndexCleared: res.IndexCleared, AlreadyShredded: res.Already,
	}, nil
}

// origin says where a request came from, for the access trail: the
// caller's role, the method, the network peer and the client address a
// gateway reported in x-forwarded-for.
func origin(ctx context.Context, method string) encounter.Origin {
	o := encounter.Origin{Channel: method}
	if id, ok := auth.FromContext(ctx); ok {
		o.Role = id.Role
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		o.Remote = p.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-forwarded-for"); len(v) > 0 && len(v[0]) <= 256 {
			o.ForwardedFor = v[0]
		}
	}
	return o
}

// accessUnary puts the request's origin in its context for the access
// trail, and records searches, which disclose text of the encounters they
// return, in the tenant's audit chain before the results are returned.
// Encounter reads are recorded by the encounter service itself.
func accessUnary(svc *encounter.Service) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if public(info.FullMethod) {
			return handler(ctx, req)
		}
		ctx = encounter.WithOrigin(ctx, origin(ctx, info.FullMethod))
		resp, err := handler(ctx, req)
		if err != nil || svc == nil || !svc.AccessTrail() {
			return resp, err
		}
		if sr, ok := resp.(*pb.SearchResponse); ok {
			if err := recordSearch(ctx, svc, sr); err != nil {
				return nil, err
			}
		}
		return resp, nil
	}
}

func recordSearch(ctx context.Context, svc *encounter.Service, sr *pb.SearchResponse) error {
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	var encs []string
	seen := map[string]bool{}
	for _, h := range sr.GetHits() {
		if id := h.GetEncounterId(); !seen[id] {
			seen[id] = true
			encs = append(encs, id)
		}
	}
	if len(sr.GetHits()) == 0 {
		return nil // nothing disclosed
	}
	_, err = svc.RecordAccess(ctx, c, "", encounter.Access{Action: encounter.AccessSearch, Head: -1, Encounters: encs, Count: len(sr.GetHits())})
	return statusOf(err)
}

// accessStream puts the request's origin in a stream's context.
func accessStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if public(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx := encounter.WithOrigin(ss.Context(), origin(ss.Context(), info.FullMethod))
		return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
}

// ListCheckpoints implements LedgerService.ListCheckpoints.
func (s *ledgerServer) ListCheckpoints(req *pb.ListCheckpointsRequest, stream pb.LedgerService_ListCheckpointsServer) error {
	from := req.GetStartTreeSize()
	if from < 0 {
		return invalidArg("start_tree_size", "must not be negative")
	}
	ctx := stream.Context()
	v, err := note.NewVerifier(s.log.VerifierKey())
	if err != nil {
		return statusOf(err)
	}
	err = s.log.Checkpoints(func(size int64, signed []byte) error {
		if size < from {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		out := &pb.SignedCheckpoint{Origin: s.log.Origin(), TreeSize: size, Note: signed}
		// A stored checkpoint that does not verify is sent without its
		// root: the client verifies every signature itself and reports it.
		if cp, err := ledger.OpenCheckpoint(signed, s.log.Origin(), v); err == nil && cp.Size == size {
			out.RootHash = cp.Root[:]
		}
		return stream.Send(&pb.ListCheckpointsResponse{Checkpoint: out})
	})
	return statusOf(err)
}
