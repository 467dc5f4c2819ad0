package grpcapi

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/evidenceledger/evidence/auth"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
)

// ledgerServer implements LedgerService on a *ledger.Log.
type ledgerServer struct {
	pb.UnimplementedLedgerServiceServer
	log       *ledger.Log
	witnessed func() []byte // nil without witnesses
}

func checkpointPB(cp *ledger.Checkpoint) *pb.SignedCheckpoint {
	return &pb.SignedCheckpoint{Origin: cp.Origin, TreeSize: cp.Size, RootHash: cp.Root[:], Note: cp.Note}
}

func hashes(hs []ledger.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func entryPB(e *ledger.StoredEntry) *pb.Entry {
	out := &pb.Entry{
		LeafIndex:         e.Index,
		LeafData:          e.Data,
		LeafHash:          e.Hash[:],
		Kind:              pb.EntryKind(e.Leaf.Kind),
		Tenant:            e.Leaf.Tenant,
		EncounterId:       e.Leaf.Encounter,
		Actor:             e.Leaf.Actor,
		RecordTime:        timestamppb.New(e.Leaf.Time),
		ChainSeq:          e.Leaf.Seq,
		PayloadCommitment: e.Leaf.Commitment[:],
	}
	if e.Leaf.Seq > 0 {
		out.PrevLeafHash = e.Leaf.Prev[:]
	}
	return out
}

// visible reports whether the caller may see an entry's leaf metadata
// (auth.ScopeLeaves): a tenant identity sees its own tenant's leaves, an
// operator identity every leaf. A server without authentication (package
// tests) shows every leaf.
func visible(ctx context.Context, e *ledger.StoredEntry) bool {
	id, ok := auth.FromContext(ctx)
	return !ok || id.Operator() || id.Tenant == e.Leaf.Tenant
}

func (s *ledgerServer) GetLogInfo(ctx context.Context, _ *pb.GetLogInfoRequest) (*pb.GetLogInfoResponse, error) {
	cp := s.log.Checkpoint()
	return &pb.GetLogInfoResponse{Origin: s.log.Origin(), VerifierKey: s.log.VerifierKey(), TreeSize: cp.Size, RootHash: cp.Root[:]}, nil
}

func (s *ledgerServer) GetCheckpoint(ctx context.Context, req *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	if !req.GetWitnessed() {
		return &pb.GetCheckpointResponse{Checkpoint: checkpointPB(s.log.Checkpoint())}, nil
	}
	if s.witnessed == nil {
		return nil, status.Error(codes.FailedPrecondition, "this server has no witnesses (--witness)")
	}
	signed := s.witnessed()
	if signed == nil {
		return nil, status.Error(codes.FailedPrecondition, "no checkpoint has been cosigned by the witnesses yet")
	}
	cp, err := ledger.OpenCheckpoint(signed, s.log.Origin(), s.log.Key())
	if err != nil {
		return nil, status.Error(codes.Internal, "the witnessed checkpoint does not verify")
	}
	return &pb.GetCheckpointResponse{Checkpoint: checkpointPB(cp)}, nil
}

func (s *ledgerServer) GetEntry(ctx context.Context, req *pb.GetEntryRequest) (*pb.GetEntryResponse, error) {
	if req.GetLeafIndex() < 0 {
		return nil, invalidArg("leaf_index", "must not be negative")
	}
	cp := s.log.Checkpoint()
	if req.GetLeafIndex() >= cp.Size {
		return nil, statusOf(&ledger.InvalidError{Field: "leaf_index", Reason: "beyond the log", Err: ledger.ErrBeyondTree})
	}
	e, err := s.log.Entry(req.GetLeafIndex())
	if err != nil {
		return nil, statusOf(err)
	}
	if !visible(ctx, e) {
		return nil, statusOf(fmt.Errorf("%w: no entry of the caller's tenant at leaf_index %d", ledger.ErrNotFound, req.GetLeafIndex()))
	}
	resp := &pb.GetEntryResponse{Entry: entryPB(e)}
	if req.GetIncludeProof() {
		p, err := s.log.InclusionProof(e.Index, cp.Size)
		if err != nil {
			return nil, statusOf(err)
		}
		resp.Proof = &pb.InclusionProof{LeafIndex: e.Index, TreeSize: cp.Size, LeafHash: e.Hash[:], Hashes: hashes(p)}
		resp.Checkpoint = checkpointPB(cp)
	}
	return resp, nil
}

func (s *ledgerServer) GetInclusionProof(ctx context.Context, req *pb.GetInclusionProofRequest) (*pb.GetInclusionProofResponse, error) {
	size := req.GetTreeSize()
	if size < 0 {
		return nil, invalidArg("tree_size", "must not be negative")
	}
	if size == 0 {
		size = s.log.Size()
	}
	if req.GetLeafIndex() < 0 {
		return nil, invalidArg("leaf_index", "must not be negative")
	}
	if req.GetLeafIndex() >= size && size <= s.log.Size() {
		return nil, invalidArg("leaf_index", "must be less than tree_size")
	}
	p, err := s.log.InclusionProof(req.GetLeafIndex(), size)
	if err != nil {
		return nil, statusOf(err)
	}
	e, err := s.log.Entry(req.GetLeafIndex())
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.GetInclusionProofResponse{Proof: &pb.InclusionProof{LeafIndex: e.Index, TreeSize: size, LeafHash: e.Hash[:], Hashes: hashes(p)}}, nil
}

func (s *ledgerServer) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	from, to := req.GetFromTreeSize(), req.GetToTreeSize()
	if from < 0 {
		return nil, invalidArg("from_tree_size", "must not be negative")
	}
	if to < 0 {
		return nil, invalidArg("to_tree_size", "must not be negative")
	}
	if to == 0 {
		to = s.log.Size()
	}
	if from > to && to <= s.log.Size() {
		return nil, invalidArg("from_tree_size", "must not exceed to_tree_size")
	}
	p, err := s.log.ConsistencyProof(from, to)
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.GetConsistencyProofResponse{FromTreeSize: from, ToTreeSize: to, Hashes: hashes(p)}, nil
}

func (s *ledgerServer) StreamEntries(req *pb.StreamEntriesRequest, stream pb.LedgerService_StreamEntriesServer) error {
	next := req.GetStartIndex()
	if next < 0 {
		return invalidArg("start_index", "must not be negative")
	}
	ctx := stream.Context()
	for {
		size := s.log.Size()
		for ; next < size; next++ {
			e, err := s.log.Entry(next)
			if err != nil {
				return statusOf(err)
			}
			if !visible(ctx, e) {
				continue
			}
			if err := stream.Send(&pb.StreamEntriesResponse{Entry: entryPB(e)}); err != nil {
				return err
			}
		}
		if !req.GetFollow() {
			return nil
		}
		if _, err := s.log.Wait(ctx, size); err != nil {
			return statusOf(err)
		}
	}
}
