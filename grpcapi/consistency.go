package grpcapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/ledger"
)

// Request metadata that makes retries and reads consistent across the
// nodes of a cluster (docs/api.md). Both work on a single node too.
const (
	// RequestIDKey names a request: a call carrying it runs under
	// ledger.WithRequestID, so that a retry with the same id by the same
	// caller appends nothing new and reports the first attempt's
	// appends. 1 to 64 printable ASCII bytes without spaces. Ids are
	// scoped by caller (tenant, role and subject): two callers never
	// share one.
	RequestIDKey = "x-evidence-request-id"
	// MinTreeSizeKey asks a read to wait until this node's checkpoint
	// covers at least that many entries (the tree size of a write's
	// receipt, say), so that a client reads its own writes on any node.
	MinTreeSizeKey = "x-evidence-min-tree-size"
)

// MaxCatchUpWait bounds how long a call waits for MinTreeSizeKey when its
// deadline is later (or it has none).
const MaxCatchUpWait = 5 * time.Second

// consistency applies RequestIDKey and MinTreeSizeKey to a call's context.
// It runs after the guard, so only callers the policy admits can make a
// node wait.
func consistency(ctx context.Context, log *ledger.Log) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(RequestIDKey); len(v) > 0 {
		id := v[0]
		if len(v) > 1 || id == "" || ledger.CheckRequestID(id) != nil {
			return nil, withField(codes.InvalidArgument, RequestIDKey,
				fmt.Sprintf("must be one value of 1 to %d printable ASCII bytes without spaces", ledger.MaxRequestIDLen),
				"invalid "+RequestIDKey+" metadata: one value of 1 to 64 printable ASCII bytes without spaces")
		}
		ctx = ledger.WithRequestID(ctx, scopedRequestID(ctx, id))
	}
	if v := md.Get(MinTreeSizeKey); len(v) > 0 {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if len(v) > 1 || err != nil || n < 0 {
			return nil, withField(codes.InvalidArgument, MinTreeSizeKey, "must be one non-negative decimal integer",
				"invalid "+MinTreeSizeKey+" metadata: one non-negative decimal integer")
		}
		if err := waitTreeSize(ctx, log, n); err != nil {
			return nil, err
		}
	}
	return ctx, nil
}

// scopedRequestID is the ledger request id of a client's request id: a
// digest of the caller's identity and the id, so that callers cannot
// collide with (or learn of) each other's requests by choosing the same
// id. 33 printable bytes.
func scopedRequestID(ctx context.Context, id string) string {
	who, _ := auth.FromContext(ctx)
	h := sha256.New()
	for _, s := range []string{who.Tenant, who.Role, who.Subject, id} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "r" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:24])
}

// waitTreeSize waits until log's checkpoint covers n entries, for at most
// MaxCatchUpWait and the call's deadline.
func waitTreeSize(ctx context.Context, log *ledger.Log, n int64) error {
	if log == nil || n == 0 || log.Size() >= n {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, MaxCatchUpWait)
	defer cancel()
	cp, err := log.Wait(wctx, n-1)
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.Canceled):
		return status.Error(codes.Canceled, "canceled while waiting for this node to reach the requested tree size")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.Unavailable, "this node has not caught up: its tree size is %d, the request needs %d (%s); retry, or ask another node", cp.Size, n, MinTreeSizeKey)
	}
	return statusOf(err)
}

func consistencyUnary(log *ledger.Log) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if public(info.FullMethod) {
			return handler(ctx, req)
		}
		ctx, err := consistency(ctx, log)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func consistencyStream(log *ledger.Log) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if public(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx, err := consistency(ss.Context(), log)
		if err != nil {
			return err
		}
		return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
}
