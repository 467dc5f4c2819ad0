package main

import (
	"encoding/hex"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

var backendFlags = map[string]pb.InferenceBackend{
	"embedded": pb.InferenceBackend_INFERENCE_BACKEND_EMBEDDED,
	"openai":   pb.InferenceBackend_INFERENCE_BACKEND_OPENAI,
	"kserve":   pb.InferenceBackend_INFERENCE_BACKEND_KSERVE,
}

// noteGenerateCmd is "note generate": InferenceService.GenerateNote, then
// a verified read of the model_output and alignment entries it recorded.
func noteGenerateCmd(g *globals) *cobra.Command {
	var id, backend, model string
	c := &cobra.Command{
		Use:   "generate --encounter E [--backend embedded|openai|kserve] [--model M]",
		Short: "Draft the note with a model, record the call and its alignment, and show the note with evidence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, ok := backendFlags[backend]
			if !ok {
				return usageError{"--backend must be embedded, openai or kserve"}
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := g.ctx(cmd.Context())
			resp, err := pb.NewInferenceServiceClient(c.Conn()).GenerateNote(ctx, &pb.GenerateNoteRequest{EncounterId: id, Backend: b, Model: model})
			if err != nil {
				return err
			}
			// The recorded entries are read back and proved included in a
			// checkpoint consistent with the one this CLI trusts.
			for _, x := range []int64{resp.GetModelOutputIndex(), resp.GetAlignmentIndex()} {
				if _, err := c.Entry(ctx, x); err != nil {
					return err
				}
			}
			n := resp.GetNote()
			return g.printProto(resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "encounter\t%s\nbackend\t%s\nmodel\t%s\n", n.GetEncounterId(), resp.GetBackend(),
					strings.TrimSpace(resp.GetModel().GetName()+" "+resp.GetModel().GetVersion()))
				fmt.Fprintf(w, "latency\t%d ms\n", resp.GetLatencyMs())
				if u := resp.GetUsage(); u != nil {
					fmt.Fprintf(w, "tokens\t%d prompt, %d completion\n", u.GetPromptTokens(), u.GetCompletionTokens())
				}
				fmt.Fprintf(w, "recorded\tmodel_output %d, alignment %d (verified)\nnote hash\t%s\n\n",
					resp.GetModelOutputIndex(), resp.GetAlignmentIndex(), hex.EncodeToString(n.GetNoteHash()))
				fmt.Fprintln(w, "SECTION\tID\tEVIDENCE\tTEXT")
				for _, sec := range n.GetSections() {
					for _, s := range sec.GetSentences() {
						ev := "UNSUPPORTED"
						if len(s.GetEvidence()) > 0 {
							e := s.GetEvidence()[0]
							ev = fmt.Sprintf("%s %s-%s (%d)", e.GetSegmentId(), ms(e.GetStartMs()), ms(e.GetEndMs()), len(s.GetEvidence()))
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", sec.GetName(), s.GetSentenceId(), ev, s.GetText())
					}
				}
			})
		},
	}
	c.Flags().StringVar(&id, "encounter", "", "encounter id")
	c.Flags().StringVar(&backend, "backend", "embedded", "embedded, openai or kserve (the server's configuration decides which it has)")
	c.Flags().StringVar(&model, "model", "", "model to ask for; default: the backend's configured model")
	c.MarkFlagRequired("encounter")
	return c
}
