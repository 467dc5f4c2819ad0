package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// The tests run real evidence.v1 servers in process. Several servers over
// one ledger.Log stand for the nodes of a cluster, which serve one log;
// interceptors inject the faults a cluster shows (a node that dies after
// recording a write and before answering, a node that is down, a node
// that lags).

const origin = "evidence.test/log"

// testLog is a log with its encounter service.
type testLog struct {
	log *ledger.Appender
	enc *encounter.Service
}

// newTestLog opens a log in memory signed with the key kept in keyDir.
func newTestLog(t *testing.T, keyDir string) *testLog {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(keyDir, origin)
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &testLog{log: l, enc: encounter.New(l.Log, l, blob.New(store, nil))}
}

func pipelineAuth(context.Context, string) (auth.Identity, error) {
	return auth.Identity{Tenant: "clinic-a", Subject: "svc:test", Role: auth.RolePipeline}, nil
}

// node is one in-process server.
type node struct {
	addr string
	gs   *grpc.Server
	// ids are the request ids of the write calls this node received.
	mu  sync.Mutex
	ids []string
}

func (n *node) requestIDs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.ids)
}

// serve starts a server over tl; intercept, when set, runs around every
// unary call after the request id is recorded.
func serve(t *testing.T, tl *testLog, intercept grpc.UnaryServerInterceptor) *node {
	t.Helper()
	n := &node{}
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(RequestIDKey); len(v) > 0 {
			n.mu.Lock()
			n.ids = append(n.ids, v...)
			n.mu.Unlock()
		}
		if intercept != nil {
			return intercept(ctx, req, info, handler)
		}
		return handler(ctx, req)
	}
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: tl.log.Log, Encounters: tl.enc, Auth: pipelineAuth}, grpc.UnaryInterceptor(record))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	n.addr, n.gs = lis.Addr().String(), gs
	return n
}

// downAddr returns an address nothing listens on.
func downAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func dialCluster(t *testing.T, addrs ...string) *Cluster {
	t.Helper()
	c, err := DialCluster(addrs, Options{RetryTimeout: 10 * time.Second, AttemptTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func segments(prefix string, n int) []*pb.Segment {
	var segs []*pb.Segment
	for i := range n {
		segs = append(segs, &pb.Segment{SegmentId: fmt.Sprintf("%s-%d", prefix, i), SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN,
			Text: "Synthetic transcript line.", StartMs: int64(i * 1000), EndMs: int64(i*1000 + 900)})
	}
	return segs
}

func createEncounter(t *testing.T, c pb.EncounterServiceClient) string {
	t.Helper()
	resp, err := c.CreateEncounter(context.Background(), &pb.CreateEncounterRequest{Title: "synthetic visit"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEncounter().GetEncounterId()
}

// A refusal is not retried: another node would refuse it too.
func TestClusterDoesNotRetryRefusals(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	var calls atomic.Int64
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == "/evidence.v1.EncounterService/RecordSegments" {
			calls.Add(1)
		}
		return handler(ctx, req)
	}
	a, b := serve(t, tl, count), serve(t, tl, count)
	c := dialCluster(t, a.addr, b.addr)
	_, err := c.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: "no-such-encounter", Segments: segments("d", 1)})
	if code := status.Code(err); code == codes.OK || code == codes.Unavailable {
		t.Fatalf("write to a missing encounter: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d attempts, want 1", calls.Load())
	}
}

// With every node down the call gives up after RetryTimeout with
// Unavailable, and honours its context's deadline before that.
func TestClusterGivesUp(t *testing.T) {
	c, err := DialCluster([]string{downAddr(t), downAddr(t)}, Options{RetryTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Encounters.CreateEncounter(context.Background(), &pb.CreateEncounterRequest{Title: "synthetic"})
	if status.Code(err) != codes.Unavailable || time.Since(start) > 5*time.Second {
		t.Fatalf("all nodes down: %v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.retryTimeout = time.Minute
	start = time.Now()
	if _, err := c.Ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{}); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}
}

// A write moves on from a node that stopped, and stays on the node that
// answered.
func TestClusterWriterFailsOver(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	a, b := serve(t, tl, nil), serve(t, tl, nil)
	c := dialCluster(t, a.addr, b.addr)
	id := createEncounter(t, c.Encounters)
	a.gs.Stop()
	for i := range 3 {
		if _, err := c.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments(fmt.Sprint("e", i), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(b.requestIDs()); got != 3 {
		t.Fatalf("the surviving node saw %d writes, want 3", got)
	}
}

// laggingLedger serves a log as a node that stopped at checkpoint cp
// would: entries and proofs up to its size, nothing after.
type laggingLedger struct {
	pb.UnimplementedLedgerServiceServer
	real pb.LedgerServiceClient
	cp   *pb.SignedCheckpoint
}

func (l *laggingLedger) GetLogInfo(ctx context.Context, req *pb.GetLogInfoRequest) (*pb.GetLogInfoResponse, error) {
	info, err := l.real.GetLogInfo(ctx, req)
	if err != nil {
		return nil, err
	}
	info.TreeSize, info.RootHash = l.cp.GetTreeSize(), l.cp.GetRootHash()
	return info, nil
}

func (l *laggingLedger) GetCheckpoint(context.Context, *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	return &pb.GetCheckpointResponse{Checkpoint: l.cp}, nil
}

func (l *laggingLedger) GetEntry(ctx context.Context, req *pb.GetEntryRequest) (*pb.GetEntryResponse, error) {
	size := l.cp.GetTreeSize()
	if req.GetLeafIndex() >= size {
		return nil, status.Errorf(codes.NotFound, "entry %d is past this node's size %d", req.GetLeafIndex(), size)
	}
	e, err := l.real.GetEntry(ctx, &pb.GetEntryRequest{LeafIndex: req.GetLeafIndex()})
	if err != nil {
		return nil, err
	}
	p, err := l.real.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{LeafIndex: req.GetLeafIndex(), TreeSize: size})
	if err != nil {
		return nil, err
	}
	return &pb.GetEntryResponse{Entry: e.GetEntry(), Proof: p.GetProof(), Checkpoint: l.cp}, nil
}

func (l *laggingLedger) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	if req.GetToTreeSize() > l.cp.GetTreeSize() {
		return nil, status.Errorf(codes.InvalidArgument, "tree size %d is past this node's size %d", req.GetToTreeSize(), l.cp.GetTreeSize())
	}
	return l.real.GetConsistencyProof(ctx, req)
}

func serveLedger(t *testing.T, srv pb.LedgerServiceServer) string {
	t.Helper()
	gs := grpc.NewServer()
	pb.RegisterLedgerServiceServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// fill appends n writes of two segments to tl through a single-node client.
func fill(t *testing.T, addr string, n int) {
	t.Helper()
	c := dialCluster(t, addr)
	id := createEncounter(t, c.Encounters)
	for i := range n {
		if _, err := c.Encounters.RecordSegments(context.Background(), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments(fmt.Sprint("f", i), 2)}); err != nil {
			t.Fatal(err)
		}
	}
}

func checkpointOf(t *testing.T, addr string) *pb.SignedCheckpoint {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := pb.NewLedgerServiceClient(conn).GetCheckpoint(context.Background(), &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCheckpoint()
}

// Reads from a node behind the trusted checkpoint verify at that node's
// size, whichever node was read first; the trust state is shared.
func TestClusterLaggingNodeVerifies(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	n := serve(t, tl, nil)
	fill(t, n.addr, 3)
	old := checkpointOf(t, n.addr)
	fill(t, n.addr, 3)
	conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lag := serveLedger(t, &laggingLedger{real: pb.NewLedgerServiceClient(conn), cp: old})
	ctx := context.Background()

	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		t.Run(fmt.Sprint("first node ", order[0]), func(t *testing.T) {
			c := dialCluster(t, n.addr, lag)
			nodes := c.Nodes()
			for _, i := range order {
				if _, err := nodes[i].LatestCheckpoint(ctx); err != nil {
					t.Fatalf("node %d: %v", i, err)
				}
			}
			if got := c.Trusted().TreeSize; got != tl.log.Size() {
				t.Fatalf("trusted size %d, want the newest %d", got, tl.log.Size())
			}
			// Entries below the lagging size verify on both nodes, at
			// each node's own size.
			for i := range old.GetTreeSize() {
				for j, nd := range nodes {
					e, err := nd.Entry(ctx, i)
					if err != nil {
						t.Fatalf("entry %d from node %d: %v", i, j, err)
					}
					if want := []int64{tl.log.Size(), old.GetTreeSize()}[j]; e.Checkpoint.TreeSize != want {
						t.Fatalf("entry %d from node %d proved at size %d, want %d", i, j, e.Checkpoint.TreeSize, want)
					}
				}
			}
			// The cluster's reads go to either node.
			for range 4 {
				if _, err := c.LatestCheckpoint(ctx); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// A node that serves another history under the log's key, or a log of
// another key, fails verification, and the cluster does not try another
// node to hide it.
func TestClusterForkIsDetected(t *testing.T) {
	keyDir := t.TempDir()
	good := newTestLog(t, keyDir)
	forked := newTestLog(t, keyDir) // the same key, another history
	other := newTestLog(t, t.TempDir())
	g, f, o := serve(t, good, nil), serve(t, forked, nil), serve(t, other, nil)
	fill(t, g.addr, 3)
	fill(t, f.addr, 2)
	fill(t, o.addr, 3)
	ctx := context.Background()

	for name, bad := range map[string]string{"forked": f.addr, "other key": o.addr} {
		t.Run(name, func(t *testing.T) {
			c := dialCluster(t, g.addr, bad)
			if _, err := c.Nodes()[0].LatestCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			var ve *VerificationError
			if _, err := c.Nodes()[1].LatestCheckpoint(ctx); !errors.As(err, &ve) {
				t.Fatalf("bad node's checkpoint: %v, want a VerificationError", err)
			}
			if _, err := c.Nodes()[1].Entry(ctx, 0); !errors.As(err, &ve) {
				t.Fatalf("bad node's entry: %v, want a VerificationError", err)
			}
			// Round robin reaches the bad node within two reads.
			var failed bool
			for range 2 {
				if _, err := c.LatestCheckpoint(ctx); errors.As(err, &ve) {
					failed = true
				}
			}
			if !failed {
				t.Fatal("the cluster's reads passed over the bad node")
			}
		})
	}
}

// Writes and verified reads from many goroutines share the cluster's
// state safely (run with -race).
func TestClusterConcurrentUse(t *testing.T) {
	tl := newTestLog(t, t.TempDir())
	a, b := serve(t, tl, nil), serve(t, tl, nil)
	c := dialCluster(t, a.addr, b.addr)
	id := createEncounter(t, c.Encounters)
	size := tl.log.Size()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for g := range 6 {
		wg.Go(func() {
			for i := range 5 {
				resp, err := c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: segments(fmt.Sprintf("g%d-%d", g, i), 1)})
				if err == nil {
					_, err = c.Entry(ctx, resp.GetReceipt().GetLeafIndexes()[0])
				}
				if err == nil {
					_, err = c.LatestCheckpoint(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := tl.log.Size(); got != size+30 {
		t.Fatalf("size %d, want %d", got, size+30)
	}
	if got := c.Trusted().TreeSize; got != size+30 {
		t.Fatalf("trusted size %d, want %d", got, size+30)
	}
}
