package grpcapi

import (
	"context"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/encounter"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// alignServer implements AlignService.
type alignServer struct {
	pb.UnimplementedAlignServiceServer
	svc *encounter.Service
}

func (s *alignServer) Align(ctx context.Context, req *pb.AlignRequest) (*pb.AlignResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	sents := make([]align.Sentence, len(req.GetSentences()))
	for i, t := range req.GetSentences() {
		sents[i] = align.Sentence{ID: t.GetSentenceId(), Section: t.GetSection(), Text: t.GetText()}
	}
	res, err := s.svc.Align(ctx, c, req.GetEncounterId(), sents)
	if err != nil {
		return nil, statusOf(err)
	}
	out := &pb.AlignResponse{Method: align.MethodVersion}
	for _, r := range res {
		se := &pb.SentenceEvidence{SentenceId: r.ID, Unsupported: len(r.Evidence) == 0}
		for _, e := range r.Evidence {
			se.Evidence = append(se.Evidence, evidencePB(e))
		}
		se.Verdict, se.Severity, se.Conflicts, se.UnsupportedRanges = verdictPB(r.Verdict, r.Severity, r.Conflicts, r.UnsupportedRanges)
		if r.Method != "" {
			out.Method = r.Method
		}
		out.Results = append(out.Results, se)
	}
	return out, nil
}
