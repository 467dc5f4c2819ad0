package client

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

const recordSegments = "/evidence.v1.EncounterService/RecordSegments"

// loseAnswers makes the first n calls of method run and then fail as if
// the node had died before answering; got receives their replies.
func loseAnswers(method string, n int, got chan<- any) grpc.UnaryServerInterceptor {
	var left atomic.Int64
	left.Store(int64(n))
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if info.FullMethod == method && left.Add(-1) >= 0 {
			got <- resp
			return nil, status.Error(codes.Unavailable, "injected: the node died before answering")
		}
		return resp, err
	}
}

// A write whose answer is lost is retried on another node, past one that
// is down, under the same request id, and recorded once: the retry
// reports the first attempt's leaf indexes.
func TestClusterRetriedWriteIsRecordedOnce(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	lost := make(chan any, 1)
	lossy := serve(t, tl, loseAnswers(recordSegments, 1, lost))
	healthy := serve(t, tl, nil)
	c := dialCluster(t, lossy.addr, downAddr(t), healthy.addr)
	id := createEncounter(t, c.Encounters)

	size := tl.log.Size()
	resp, err := c.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments("a", 2), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	first := (<-lost).(*pb.RecordSegmentsResponse)
	if got, want := resp.GetReceipt().GetLeafIndexes(), first.GetReceipt().GetLeafIndexes(); !slices.Equal(got, want) || len(got) != 2 {
		t.Fatalf("the retry reports leaves %v, the lost answer had %v", got, want)
	}
	if got := tl.log.Size(); got != size+2 {
		t.Fatalf("the log grew by %d entries, want 2", got-size)
	}
	// One request id, drawn by the client, on both attempts.
	lossyIDs, healthyIDs := lossy.requestIDs(), healthy.requestIDs()
	if len(lossyIDs) != 2 || len(healthyIDs) != 1 || lossyIDs[1] != healthyIDs[0] {
		t.Fatalf("request ids: lossy node %v, healthy node %v", lossyIDs, healthyIDs)
	}
	// The receipt's proofs check out against its checkpoint.
	for _, p := range resp.GetReceipt().GetProofs() {
		e, err := c.Entry(context.Background(), p.GetLeafIndex())
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Entry.GetLeafHash()) != string(p.GetLeafHash()) {
			t.Fatalf("entry %d: leaf hash differs from the receipt's", p.GetLeafIndex())
		}
	}

	// The next write is another logical write: a new id, new entries.
	resp2, err := c.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments("b", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := tl.log.Size(); got != size+3 || resp2.GetReceipt().GetLeafIndexes()[0] != size+2 {
		t.Fatalf("second write: size %d, leaves %v", got, resp2.GetReceipt().GetLeafIndexes())
	}
	if ids := healthy.requestIDs(); len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("two logical writes share a request id: %v", ids)
	}
}

// A caller's own request id is kept: repeating the write under it records
// nothing new.
func TestClusterCallerRequestID(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	n := serve(t, tl, nil)
	c := dialCluster(t, n.addr)
	id := createEncounter(t, c.Encounters)
	ctx := WithRequestID(context.Background(), "visit-17-segments-3")
	req := &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments("c", 3)}
	r1, err := c.Encounters.RecordSegments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	size := tl.log.Size()
	r2, err := c.Encounters.RecordSegments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if tl.log.Size() != size || !slices.Equal(r1.GetReceipt().GetLeafIndexes(), r2.GetReceipt().GetLeafIndexes()) {
		t.Fatalf("the repeated write appended: size %d -> %d, leaves %v then %v", size, tl.log.Size(), r1.GetReceipt().GetLeafIndexes(), r2.GetReceipt().GetLeafIndexes())
	}
	if ids := n.requestIDs(); ids[len(ids)-1] != "visit-17-segments-3" || ids[len(ids)-2] != "visit-17-segments-3" {
		t.Fatalf("request ids sent: %v", ids)
	}
}
