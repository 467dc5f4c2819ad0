package client

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// statusTimeout bounds one GetClusterStatus call of findLeader.
const statusTimeout = time.Second

// findLeader asks the nodes in turn, from the current writer on, which
// node leads, and points writes at it when it is one of the Cluster's
// addresses. It changes nothing when no node knows a leader (an election
// is under way) or none answers. GetClusterStatus is an operator's call:
// once a node refuses it (PermissionDenied, Unauthenticated), or answers
// that it is no cluster member (FailedPrecondition, Unimplemented), the
// Cluster stops asking and relies on followers forwarding writes.
func (c *Cluster) findLeader(ctx context.Context) {
	if c.noStatus.Load() {
		return
	}
	c.mu.Lock()
	from := c.mu.writer
	c.mu.Unlock()
	for k := range c.nodes {
		n := c.nodes[(from+k)%len(c.nodes)]
		// Not under the write's request id: status is no write.
		sctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, nil), statusTimeout)
		resp, err := pb.NewClusterServiceClient(n.conn).GetClusterStatus(sctx, &pb.GetClusterStatusRequest{})
		cancel()
		switch status.Code(err) {
		case codes.OK:
		case codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition, codes.Unimplemented:
			c.noStatus.Store(true)
			return
		default:
			continue
		}
		addr := resp.GetLeaderApiAddr()
		if addr == "" {
			continue
		}
		for i, l := range c.nodes {
			if l.conn.Target() == addr {
				c.mu.Lock()
				c.mu.writer = i
				c.mu.Unlock()
				return
			}
		}
		return
	}
}
