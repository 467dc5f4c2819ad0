package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/cluster"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

type plainStack struct {
	log     *ledger.Appender
	enc     pb.EncounterServiceClient
	ledger  pb.LedgerServiceClient
	cluster pb.ClusterServiceClient
}

// newPlainStack serves a single-node log on a memory store, with cfg's
// Cluster, if any.
func newPlainStack(t *testing.T, c Cluster) *plainStack {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.test/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	enc := encounter.New(l.Log, l, blob.New(store, nil), encounter.WithAccessTrail())
	gs, _ := NewServer(Config{Log: l.Log, Encounters: enc, Auth: roleAuth, Cluster: c})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		l.Close()
	})
	return &plainStack{log: l, enc: pb.NewEncounterServiceClient(conn), ledger: pb.NewLedgerServiceClient(conn), cluster: pb.NewClusterServiceClient(conn)}
}

func withRequestID(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, RequestIDKey, id)
}

// TestRequestID: a write retried with the same x-evidence-request-id
// appends nothing and reports the first attempt's leaves; another id
// appends anew; a malformed id is InvalidArgument naming the header.
func TestRequestID(t *testing.T) {
	s := newPlainStack(t, nil)
	pipe := as("svc:scribe", auth.RolePipeline)

	// Creating an encounter: the retry names the same encounter.
	created, err := s.enc.CreateEncounter(withRequestID(pipe, "create-1"), &pb.CreateEncounterRequest{Title: "synthetic"})
	if err != nil {
		t.Fatal(err)
	}
	size := s.log.Size()
	again, err := s.enc.CreateEncounter(withRequestID(pipe, "create-1"), &pb.CreateEncounterRequest{Title: "synthetic"})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetEncounter().GetEncounterId()
	if again.GetEncounter().GetEncounterId() != id || !slices.Equal(again.GetReceipt().GetLeafIndexes(), created.GetReceipt().GetLeafIndexes()) {
		t.Fatalf("retried create: %v, first %v", again, created)
	}
	if s.log.Size() != size {
		t.Fatalf("retried create appended: size %d -> %d", size, s.log.Size())
	}

	segs := &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
		seg("g1", pb.SpeakerRole_SPEAKER_ROLE_PATIENT, "synthetic words", 0),
		seg("g2", pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, "more synthetic words", 3000),
	}}
	first, err := s.enc.RecordSegments(withRequestID(pipe, "segs-1"), segs)
	if err != nil {
		t.Fatal(err)
	}
	size = s.log.Size()
	for range 2 {
		retry, err := s.enc.RecordSegments(withRequestID(pipe, "segs-1"), segs)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !slices.Equal(retry.GetReceipt().GetLeafIndexes(), first.GetReceipt().GetLeafIndexes()) {
			t.Fatalf("retry reports leaves %v, first %v", retry.GetReceipt().GetLeafIndexes(), first.GetReceipt().GetLeafIndexes())
		}
	}
	if s.log.Size() != size {
		t.Fatalf("retries appended: size %d -> %d", size, s.log.Size())
	}
	info, err := s.enc.GetEncounter(as("dr.a", auth.RoleClinician), &pb.GetEncounterRequest{EncounterId: id})
	if err != nil || info.GetEncounter().GetEntryCount() != 3 {
		t.Fatalf("encounter after retries: %v %v", info, err)
	}

	// A new id is a new request: the same segment ids are now refused,
	// which shows the request reached the service.
	if _, err := s.enc.RecordSegments(withRequestID(pipe, "segs-2"), segs); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("new request id with repeated segments: %v", err)
	}

	size = s.log.Size() // GetEncounter recorded an access
	for _, bad := range []string{"", "has space", strings.Repeat("a", 65)} {
		_, err := s.enc.RecordSegments(withRequestID(pipe, bad), segs)
		if status.Code(err) != codes.InvalidArgument || !containsField(err, RequestIDKey) {
			t.Errorf("request id %q: %v", bad, err)
		}
	}
	if _, err := s.enc.RecordSegments(metadata.AppendToOutgoingContext(pipe, RequestIDKey, "a", RequestIDKey, "b"), segs); status.Code(err) != codes.InvalidArgument {
		t.Errorf("two request ids: %v", err)
	}
	if s.log.Size() != size {
		t.Fatalf("refused requests appended: size %d -> %d", size, s.log.Size())
	}
}

// containsField reports whether err has a BadRequest violation of field.
func containsField(err error, field string) bool {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return true
				}
			}
		}
	}
	return false
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestMinTreeSize: a read carrying x-evidence-min-tree-size waits for the
// node to reach that size, and fails Unavailable when it does not within
// the call's deadline.
func TestMinTreeSize(t *testing.T) {
	s := newPlainStack(t, nil)
	pipe := as("svc:scribe", auth.RolePipeline)
	if _, err := s.enc.CreateEncounter(pipe, &pb.CreateEncounterRequest{Title: "synthetic"}); err != nil {
		t.Fatal(err)
	}
	size := s.log.Size()
	minSize := func(ctx context.Context, n int64) context.Context {
		return metadata.AppendToOutgoingContext(ctx, MinTreeSizeKey, strconv.FormatInt(n, 10))
	}
	reader := as("dr.a", auth.RoleClinician)

	// Reached already: served at once.
	if cp, err := s.ledger.GetCheckpoint(minSize(reader, size), &pb.GetCheckpointRequest{}); err != nil || cp.GetCheckpoint().GetTreeSize() != size {
		t.Fatalf("reached size: %v %v", cp, err)
	}

	// Not reached within the deadline: Unavailable, after waiting.
	ctx, cancel := context.WithTimeout(minSize(reader, size+1), 300*time.Millisecond)
	start := time.Now()
	_, err := s.ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	cancel()
	if status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("unreached size: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("gave up after %v", d)
	}
	// With a deadline beyond the server's cap, the server answers
	// Unavailable itself, naming the header.
	ctx, cancel = context.WithTimeout(minSize(reader, size+100), 20*time.Second)
	start = time.Now()
	_, err = s.ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	cancel()
	if status.Code(err) != codes.Unavailable || !contains(err.Error(), "not caught up") {
		t.Fatalf("unreached size with a long deadline: %v", err)
	}
	if d := time.Since(start); d < MaxCatchUpWait-time.Second || d > MaxCatchUpWait+2*time.Second {
		t.Fatalf("waited %v, want about %v", d, MaxCatchUpWait)
	}

	// Reached while waiting: served once the write lands.
	done := make(chan error, 1)
	go func() {
		cp, err := s.ledger.GetCheckpoint(minSize(reader, size+1), &pb.GetCheckpointRequest{})
		if err == nil && cp.GetCheckpoint().GetTreeSize() < size+1 {
			err = errors.New("served a checkpoint below the requested size")
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := s.enc.CreateEncounter(pipe, &pb.CreateEncounterRequest{Title: "synthetic"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("read waiting for a write: %v", err)
	}

	for _, bad := range []string{"-1", "ten", "1.5", ""} {
		_, err := s.ledger.GetCheckpoint(minSize(reader, 0), &pb.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.ledger.GetCheckpoint(metadata.AppendToOutgoingContext(reader, MinTreeSizeKey, bad), &pb.GetCheckpointRequest{})
		if status.Code(err) != codes.InvalidArgument || !containsField(err, MinTreeSizeKey) {
			t.Errorf("min tree size %q: %v", bad, err)
		}
	}
}

// TestClusterStatusService: a single node says it is not a cluster; a
// cluster member reports its members, the leader and each one's lag.
func TestClusterStatusService(t *testing.T) {
	single := newPlainStack(t, nil)
	op := metadata.AppendToOutgoingContext(context.Background(), "x-evidence-tenant", auth.OperatorTenant, "x-evidence-role", auth.RoleAuditor)
	if _, err := single.cluster.GetClusterStatus(op, &pb.GetClusterStatusRequest{}); status.Code(err) != codes.FailedPrecondition || !contains(err.Error(), "not running as a cluster") {
		t.Fatalf("single node: %v", err)
	}

	members := []cluster.Member{{ID: "n1", RaftAddr: "127.0.0.1:1", Voter: true}, {ID: "n2", RaftAddr: "127.0.0.1:2", Voter: true}, {ID: "n3", RaftAddr: "127.0.0.1:3", Voter: false}}
	fake := fakeCluster{id: "n2", sts: []cluster.NodeStatus{
		{ID: "n2", RaftAddr: "127.0.0.1:2", APIAddr: "127.0.0.1:12", State: "Follower", Leader: "n1", Applied: 7, TreeSize: 20, Members: members},
		{ID: "n1", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:11", State: "Leader", Leader: "n1", Applied: 10, TreeSize: 25, RootHash: ledger.Hash{1}},
		{ID: "n3", RaftAddr: "127.0.0.1:3", State: "Unreachable"},
	}}
	s := newPlainStack(t, fake)
	resp, err := s.cluster.GetClusterStatus(op, &pb.GetClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetLeaderId() != "n1" || resp.GetLeaderApiAddr() != "127.0.0.1:11" || resp.GetNodeId() != "n2" || len(resp.GetMembers()) != 3 {
		t.Fatalf("status %v", resp)
	}
	got := map[string]*pb.ClusterMember{}
	for _, m := range resp.GetMembers() {
		got[m.GetNodeId()] = m
	}
	if m := got["n1"]; !m.GetLeader() || !m.GetVoter() || m.GetLag() != 0 || m.GetAppliedIndex() != 10 || len(m.GetRootHash()) != 32 {
		t.Errorf("leader %v", m)
	}
	if m := got["n2"]; m.GetLeader() || m.GetLag() != 3 || m.GetTreeSize() != 20 {
		t.Errorf("follower %v", m)
	}
	if m := got["n3"]; m.GetVoter() || m.GetState() != "Unreachable" || m.GetLag() != 0 {
		t.Errorf("unreachable %v", m)
	}
	// Tenant identities may not ask.
	if _, err := s.cluster.GetClusterStatus(as("audit.bob", auth.RoleAuditor), &pb.GetClusterStatusRequest{}); err != nil {
		// Without a Policy the server authorizes nothing (package
		// tests); the policy table decides in evidenced.
		t.Fatalf("without a policy: %v", err)
	}
	if r, ok := auth.MethodRule("/evidence.v1.ClusterService/GetClusterStatus"); !ok || r.Scope != auth.ScopeOperator {
		t.Fatalf("GetClusterStatus declared as %+v", r)
	}
}

type fakeCluster struct {
	id  string
	sts []cluster.NodeStatus
}

func (f fakeCluster) ID() string { return f.id }
func (f fakeCluster) ClusterStatus(context.Context) []cluster.NodeStatus {
	return f.sts
}
func (f fakeCluster) Status() cluster.NodeStatus                 { return f.sts[0] }
func (f fakeCluster) RemoveServer(context.Context, string) error { return nil }

// TestClusterErrors: the cluster's errors map to retryable codes.
func TestClusterErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{fmt.Errorf("x: %w", cluster.ErrNoLeader), codes.Unavailable, "no leader"},
		{fmt.Errorf("x: %w", cluster.ErrUnknownOutcome), codes.Unavailable, "retry with the same " + RequestIDKey},
		{fmt.Errorf("x: %w", cluster.ErrConflict), codes.Aborted, "retry"},
		{fmt.Errorf("x: %w", ledger.ErrRequestReused), codes.FailedPrecondition, "use a new id"},
	} {
		err := statusOf(c.err)
		if status.Code(err) != c.code || !contains(err.Error(), c.msg) {
			t.Errorf("%v: %v", c.err, err)
		}
	}
}
