package grpcapi

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/cluster"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// Cluster is the raft member a server runs on (*cluster.Node).
type Cluster interface {
	// ID returns this node's id.
	ID() string
	// ClusterStatus gathers every member's report about itself.
	ClusterStatus(ctx context.Context) []cluster.NodeStatus
	// Status is this node's own report, with the raft configuration.
	Status() cluster.NodeStatus
	// RemoveServer takes a member out of the raft configuration.
	RemoveServer(ctx context.Context, id string) error
}

// clusterServer implements ClusterService; c is nil on a single node.
type clusterServer struct {
	pb.UnimplementedClusterServiceServer
	c Cluster
}

// GetClusterStatus implements ClusterService.GetClusterStatus.
func (s *clusterServer) GetClusterStatus(ctx context.Context, _ *pb.GetClusterStatusRequest) (*pb.GetClusterStatusResponse, error) {
	if s.c == nil {
		return nil, status.Error(codes.FailedPrecondition, "not running as a cluster: this server is a single node (start evidenced with --node-id to run a cluster member)")
	}
	return clusterStatusPB(s.c.ID(), s.c.ClusterStatus(ctx)), nil
}

// RemoveMember implements ClusterService.RemoveMember.
func (s *clusterServer) RemoveMember(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.RemoveMemberResponse, error) {
	if s.c == nil {
		return nil, status.Error(codes.FailedPrecondition, "not running as a cluster: this server is a single node")
	}
	id := req.GetNodeId()
	if id == "" {
		return nil, invalidArg("node_id", "required")
	}
	if !slices.ContainsFunc(s.c.Status().Members, func(m cluster.Member) bool { return m.ID == id }) {
		return nil, status.Errorf(codes.NotFound, "no member has node_id %q", id)
	}
	if err := s.c.RemoveServer(ctx, id); err != nil {
		return nil, statusOf(err)
	}
	// The leader committed the change; the node asked may be the one
	// removed, which need not hear of it, so it is left out here.
	resp := &pb.RemoveMemberResponse{}
	for _, m := range s.c.Status().Members {
		if m.ID != id {
			resp.MemberIds = append(resp.MemberIds, m.ID)
		}
	}
	return resp, nil
}

// clusterStatusPB turns the members' reports, this node's first, into the
// response: the voter flags come from this node's raft configuration, the
// leader is the one this node knows (or the member reporting itself
// leader), and lag is measured against the leader's applied index.
func clusterStatusPB(self string, sts []cluster.NodeStatus) *pb.GetClusterStatusResponse {
	resp := &pb.GetClusterStatusResponse{NodeId: self}
	if len(sts) == 0 {
		return resp
	}
	voter := map[string]bool{}
	for _, m := range sts[0].Members {
		voter[m.ID] = m.Voter
	}
	leader := sts[0].Leader
	if leader == "" {
		for _, st := range sts {
			if st.State == "Leader" {
				leader = st.ID
			}
		}
	}
	var leaderApplied uint64
	for _, st := range sts {
		if st.ID == leader && st.State != "Unreachable" {
			leaderApplied = st.Applied
			resp.LeaderId, resp.LeaderApiAddr = st.ID, st.APIAddr
		}
	}
	if resp.LeaderId == "" {
		resp.LeaderId = leader
	}
	for _, st := range sts {
		m := &pb.ClusterMember{NodeId: st.ID, RaftAddr: st.RaftAddr, ApiAddr: st.APIAddr, State: st.State, Voter: voter[st.ID],
			Leader: st.ID == leader, LastIndex: st.LastIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.Applied,
			TreeSize: st.TreeSize, Term: st.Term}
		if st.State != "Unreachable" {
			m.RootHash = st.RootHash[:]
			if leaderApplied > st.Applied {
				m.Lag = leaderApplied - st.Applied
			}
		}
		resp.Members = append(resp.Members, m)
	}
	slices.SortFunc(resp.Members, func(a, b *pb.ClusterMember) int { return strings.Compare(a.GetNodeId(), b.GetNodeId()) })
	return resp
}
