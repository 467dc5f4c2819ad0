package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

const getClusterStatus = "/evidence.v1.ClusterService/GetClusterStatus"

// statusSays answers GetClusterStatus as a cluster member whose leader
// serves the API at leader(), or refuses it with refuse when that is not
// OK; asked counts the calls.
func statusSays(leader func() string, refuse codes.Code, asked *atomic.Int64) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod != getClusterStatus {
			return handler(ctx, req)
		}
		asked.Add(1)
		if refuse != codes.OK {
			return nil, status.Error(refuse, "injected refusal")
		}
		return &pb.GetClusterStatusResponse{LeaderId: "leader", LeaderApiAddr: leader()}, nil
	}
}

// Writes go to the leader the cluster names, and after it fails, to the
// one named next.
func TestClusterFindsLeader(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	var leader atomic.Value
	var asked atomic.Int64
	says := statusSays(func() string { return leader.Load().(string) }, codes.OK, &asked)
	a, b, c := serve(t, tl, says), serve(t, tl, says), serve(t, tl, says)
	leader.Store(c.addr)
	cl := dialCluster(t, a.addr, b.addr, c.addr)
	id := createEncounter(t, cl.Encounters)
	for i := range 3 {
		if _, err := cl.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments(fmt.Sprint("l", i), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if na, nb, nc := len(a.requestIDs()), len(b.requestIDs()), len(c.requestIDs()); na != 0 || nb != 0 || nc != 4 {
		t.Fatalf("writes per node: %d %d %d, want all 4 on the leader", na, nb, nc)
	}
	if asked.Load() != 1 {
		t.Fatalf("status asked %d times; the leader, once found, is kept while it accepts writes", asked.Load())
	}

	leader.Store(b.addr)
	c.gs.Stop()
	if _, err := cl.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments("m", 1)}); err != nil {
		t.Fatal(err)
	}
	if na, nb := len(a.requestIDs()), len(b.requestIDs()); na != 0 || nb != 1 {
		t.Fatalf("after the leader failed: %d writes on a, %d on the new leader b", na, nb)
	}
}

// Without the right to ask for status (a pipeline token), the client asks
// once and then writes through whichever node answers.
func TestClusterWithoutStatusRight(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	var asked atomic.Int64
	refuse := statusSays(nil, codes.PermissionDenied, &asked)
	a, b := serve(t, tl, refuse), serve(t, tl, refuse)
	cl := dialCluster(t, a.addr, b.addr)
	id := createEncounter(t, cl.Encounters)
	a.gs.Stop()
	for i := range 3 {
		if _, err := cl.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments(fmt.Sprint("p", i), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if asked.Load() != 1 {
		t.Fatalf("status asked %d times, want 1", asked.Load())
	}
	if got := len(b.requestIDs()); got != 3 {
		t.Fatalf("%d writes reached the live node, want 3", got)
	}
}
