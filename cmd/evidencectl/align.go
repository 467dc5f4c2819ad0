package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/evidenceledger/evidence/align/batch"
)

func alignCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "align", Short: "Align note sentences to transcript spans"}
	var segments, sentences string
	b := &cobra.Command{
		Use:   "batch --segments S.jsonl --sentences T.jsonl > predictions.jsonl",
		Short: "Align offline, in the alignscore batch format (no server needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sf, err := os.Open(segments)
			if err != nil {
				return err
			}
			defer sf.Close()
			tf, err := os.Open(sentences)
			if err != nil {
				return err
			}
			defer tf.Close()
			return batch.Run(cmd.Context(), sf, tf, g.stdout, batch.Options{SegmentsName: segments, SentencesName: sentences})
		},
	}
	b.Flags().StringVar(&segments, "segments", "", "segments.jsonl")
	b.Flags().StringVar(&sentences, "sentences", "", "sentences.jsonl")
	b.MarkFlagRequired("segments")
	b.MarkFlagRequired("sentences")
	c.AddCommand(b)
	return c
}
