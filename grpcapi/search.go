package grpcapi

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
)

// searchServer implements SearchService on an *index.Index. The tenant is
// always the caller's: no request field can name another.
type searchServer struct {
	pb.UnimplementedSearchServiceServer
	idx *index.Index
}

var searchOrders = map[pb.SearchOrder]index.Order{
	pb.SearchOrder_SEARCH_ORDER_UNSPECIFIED: index.OrderRelevance,
	pb.SearchOrder_SEARCH_ORDER_RELEVANCE:   index.OrderRelevance,
	pb.SearchOrder_SEARCH_ORDER_OLDEST:      index.OrderOldest,
	pb.SearchOrder_SEARCH_ORDER_NEWEST:      index.OrderNewest,
}

func (s *searchServer) Search(ctx context.Context, req *pb.SearchRequest) (*pb.SearchResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r := index.Request{
		Tenant:      c.Tenant,
		Query:       req.GetQuery(),
		Encounter:   req.GetEncounterId(),
		CurrentOnly: req.GetCurrentOnly(),
		Facets:      req.GetIncludeFacets(),
		PageSize:    int(req.GetPageSize()),
		PageToken:   req.GetPageToken(),
	}
	if sr := req.GetSpeakerRole(); sr != pb.SpeakerRole_SPEAKER_ROLE_UNSPECIFIED {
		role, ok := roleNames[sr]
		if !ok {
			return nil, invalidArg("speaker_role", "must be CLINICIAN, PATIENT or OTHER")
		}
		r.Speaker = role
	}
	for i, k := range req.GetKinds() {
		if k < 0 || k > 255 || !ledger.Kind(k).Valid() {
			return nil, invalidArg(fmt.Sprintf("kinds[%d]", i), "unknown kind")
		}
		r.Kinds = append(r.Kinds, ledger.Kind(k))
	}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalidArg("start_time", "not a valid timestamp")
		}
		r.From = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalidArg("end_time", "not a valid timestamp")
		}
		r.To = t.AsTime()
	}
	order, ok := searchOrders[req.GetOrder()]
	if !ok {
		return nil, invalidArg("order", "unknown order")
	}
	r.Order = order
	if len(r.PageToken) > index.MaxPageTokenLen {
		return nil, invalidArg("page_token", "too long")
	}

	res, err := s.idx.Search(ctx, r)
	if err != nil {
		return nil, statusOf(err)
	}
	out := &pb.SearchResponse{TotalSize: int64(res.Total), NextPageToken: res.NextPageToken, TreeSize: res.TreeSize}
	for _, h := range res.Hits {
		out.Hits = append(out.Hits, searchHitPB(h))
	}
	if f := res.Facets; f != nil {
		out.Facets = &pb.SearchFacets{SpeakerRoles: facetsPB(f.Speakers), Kinds: facetsPB(f.Kinds),
			Encounters: facetsPB(f.Encounters), OtherEncounters: int64(f.OtherEncounters)}
	}
	return out, nil
}

func searchHitPB(h index.Hit) *pb.SearchHit {
	out := &pb.SearchHit{
		LeafIndex:   h.Leaf,
		EncounterId: h.Encounter,
		Kind:        pb.EntryKind(h.Kind),
		RecordTime:  timestamppb.New(h.Time),
		Score:       h.Score,
		Text:        h.Text,
		SegmentId:   h.SegmentID,
		StartMs:     h.StartMS,
		EndMs:       h.EndMS,
		SentenceId:  h.SentenceID,
		Section:     h.Section,
		Superseded:  h.Superseded,
	}
	if h.Speaker != "" {
		out.SpeakerRole = rolePB(h.Speaker)
	}
	if h.Model.Name != "" {
		out.Model = &pb.ModelRef{Name: h.Model.Name, Version: h.Model.Version}
	}
	for _, hl := range h.Highlights {
		out.Highlights = append(out.Highlights, &pb.Highlight{ByteStart: int32(hl.Start), ByteEnd: int32(hl.End),
			Utf16Start: int32(hl.UTF16Start), Utf16End: int32(hl.UTF16End)})
	}
	return out
}

func facetsPB(fs []index.FacetCount) []*pb.FacetCount {
	out := make([]*pb.FacetCount, len(fs))
	for i, f := range fs {
		out[i] = &pb.FacetCount{Value: f.Value, Count: int64(f.Count)}
	}
	return out
}
