package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// A pipeline records segments through a three-node cluster. The write is
// retried on another node under one request id if a node dies, so it is
// recorded once; the entry is then read from any node and verified
// against the trust state all nodes share.
func ExampleDialCluster() {
	c, err := client.DialCluster([]string{"10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"},
		client.Options{Token: "a pipeline token", StatePath: "evidence-state.json"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := client.WithRequestID(context.Background(), "visit-1234-segments-7")
	resp, err := c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: "an encounter id", Segments: []*pb.Segment{
		{SegmentId: "s7", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, Text: "Synthetic words.", StartMs: 0, EndMs: 900},
	}})
	if err != nil {
		log.Fatal(err)
	}
	e, err := c.Entry(context.Background(), resp.GetReceipt().GetLeafIndexes()[0])
	if err != nil {
		log.Fatal(err) // a *client.VerificationError means a node lied
	}
	fmt.Printf("entry %d verified in the checkpoint of size %d\n", e.Entry.GetLeafIndex(), e.Checkpoint.TreeSize)
}
