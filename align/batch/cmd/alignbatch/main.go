// Command alignbatch is a development driver for package align/batch: it aligns
// sentences.jsonl against segments.jsonl and writes predictions.jsonl to standard output.
// The product CLI is `evidencectl align batch`; this command exists for evaluation.
//
//	go run ./align/batch/cmd/alignbatch --segments S.jsonl --sentences T.jsonl [--baseline tfidf] > P.jsonl
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/align/baseline"
	"github.com/evidenceledger/evidence/align/batch"
)

func main() {
	segPath := flag.String("segments", "", "segments.jsonl")
	sentPath := flag.String("sentences", "", "sentences.jsonl")
	base := flag.String("baseline", "", `"tfidf" for the TF-IDF baseline instead of the engine`)
	flag.Parse()
	if err := run(*segPath, *sentPath, *base); err != nil {
		fmt.Fprintln(os.Stderr, "alignbatch:", err)
		os.Exit(1)
	}
}

func run(segPath, sentPath, base string) error {
	if segPath == "" || sentPath == "" {
		return fmt.Errorf("--segments and --sentences are required")
	}
	seg, err := os.Open(segPath)
	if err != nil {
		return err
	}
	defer seg.Close()
	sent, err := os.Open(sentPath)
	if err != nil {
		return err
	}
	defer sent.Close()
	opts := batch.Options{SegmentsName: segPath, SentencesName: sentPath}
	switch base {
	case "":
	case "tfidf":
		opts.NewAligner = func(s []align.Segment) (batch.Aligner, error) { return baseline.NewTFIDF(s) }
	default:
		return fmt.Errorf("unknown baseline %q", base)
	}
	return batch.Run(context.Background(), seg, sent, os.Stdout, opts)
}
