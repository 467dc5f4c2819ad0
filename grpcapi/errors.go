package grpcapi

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/cluster"
	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/pipeline"
)

// statusOf maps an error from the service layer to a gRPC status. It is the
// one table that decides status codes; docs/api.md lists it. Messages name
// fields, ids and sizes, never payload content.
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var invalid *ledger.InvalidError
	var badSearch *index.InvalidError
	var precondition *encounter.PreconditionError
	var unresolved *encounter.UnresolvedError
	switch {
	case errors.As(err, &precondition):
		return withField(codes.FailedPrecondition, precondition.Field, precondition.Reason, err.Error())
	case errors.As(err, &unresolved):
		// Each unresolved sentence, by id, for a client to take the
		// clinician to it.
		st := status.New(codes.FailedPrecondition, err.Error())
		pf := &errdetails.PreconditionFailure{}
		for _, t := range unresolved.Sentences {
			pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{Type: "UNRESOLVED_" + strings.ToUpper(t.Verdict),
				Subject: "sentences/" + t.ID, Description: "the " + t.Severity + " " + t.Verdict + " sentence must be resolved before signing"})
		}
		if d, derr := st.WithDetails(pf); derr == nil {
			st = d
		}
		return st.Err()
	case errors.As(err, new(*pipeline.CallError)):
		// A failed model call, recorded; the message names its leaf.
		code := codes.Unavailable // unreachable, overloaded or a reply that is not a note
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = codes.DeadlineExceeded
		case errors.Is(err, context.Canceled):
			code = codes.Canceled
		case errors.Is(err, pipeline.ErrRejected):
			code = codes.FailedPrecondition
		}
		return status.Error(code, err.Error())
	case errors.Is(err, pipeline.ErrNotConfigured):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.As(err, &invalid):
		code := codes.InvalidArgument
		if errors.Is(err, ledger.ErrTooLarge) {
			code = codes.ResourceExhausted
		}
		return withField(code, invalid.Field, invalid.Reason, err.Error())
	case errors.As(err, &badSearch):
		return withField(codes.InvalidArgument, badSearch.Field, badSearch.Reason, err.Error())
	case errors.Is(err, index.ErrBehind), errors.Is(err, encounter.ErrBehind):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ledger.ErrNotFound), errors.Is(err, blob.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ledger.ErrBeyondTree):
		return status.Error(codes.OutOfRange, err.Error())
	case errors.Is(err, encounter.ErrPrecondition), errors.Is(err, ledger.ErrRedacted), errors.Is(err, compliance.ErrNotConfigured):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, compliance.ErrForbidden), errors.Is(err, auth.ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, auth.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, auth.ErrRateLimited):
		return status.Error(codes.ResourceExhausted, err.Error())
	case ledger.IsCorruption(err):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, ledger.ErrRequestReused):
		return withField(codes.FailedPrecondition, RequestIDKey, "was used before for another request",
			RequestIDKey+" was used before for another request; use a new id for every new request")
	case errors.Is(err, cluster.ErrUnknownOutcome):
		// Maybe committed: only a retry with the same request id is safe.
		return status.Error(codes.Unavailable, "the cluster's leader changed with the write in flight; it may have been recorded: retry with the same "+RequestIDKey)
	case errors.Is(err, cluster.ErrNoLeader):
		return status.Error(codes.Unavailable, "the cluster has no leader now (an election is under way, or this node cannot reach a quorum); retry")
	case errors.Is(err, cluster.ErrConflict):
		return status.Error(codes.Aborted, "a concurrent write on another cluster node created the same key first; retry")
	case errors.Is(err, envelope.ErrUnknownKEK):
		return status.Error(codes.FailedPrecondition, "the tenant has no key-encryption key in this node's keyring; the operator must add it (in a cluster, on every node)")
	case errors.Is(err, ledger.ErrClosed):
		return status.Error(codes.Unavailable, "the server is shutting down")
	case errors.As(err, new(*ledger.FailedError)):
		return status.Error(codes.Unavailable, "the log cannot write; the operator must restart it")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, "internal error")
}

// withField returns a status with a BadRequest field violation.
func withField(code codes.Code, field, reason, msg string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}}}); err == nil {
		st = d
	}
	return st.Err()
}

// invalidArg is a request field that fails validation at the boundary.
func invalidArg(field, reason string) error {
	return withField(codes.InvalidArgument, field, reason, "invalid "+field+": "+reason)
}
