// Command alignbatch is a development driver for package align/batch: it aligns
// sentences.jsonl against segments.jsonl and writes predictions.jsonl to standard output.
// The product CLI is `evidencectl align batch`; this command exists for evaluation.
//
//	go run ./align/batch/cmd/alignbatch --segments S.jsonl --sentences T.jsonl [--baseline tfidf] > P.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/align/baseline"
	"github.com/evidenceledger/evidence/align/batch"
	"github.com/evidenceledger/evidence/align/internal/devsplit"
)

func main() {
	segPath := flag.String("segments", "", "segments.jsonl")
	sentPath := flag.String("sentences", "", "sentences.jsonl")
	base := flag.String("baseline", "", `"tfidf" for the TF-IDF baseline instead of the engine`)
	split := flag.String("split", "", `"train" or "heldout": keep only sentences of that side of the align-dev split (see align/internal/devsplit)`)
	goldIn := flag.String("gold", "", "with --split: gold.jsonl to filter")
	goldOut := flag.String("gold-out", "", "with --split: where to write the gold lines of the kept sentences")
	flag.Parse()
	if *split != "" {
		var err error
		*sentPath, err = filterSplit(*split, *sentPath, *goldIn, *goldOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, "alignbatch:", err)
			os.Exit(1)
		}
		defer os.Remove(*sentPath)
	}
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

// filterSplit writes the sentences of one side of the align-dev split to a temporary file
// and, if asked, the matching gold lines to goldOut. It returns the temporary file's path.
func filterSplit(split, sentPath, goldIn, goldOut string) (string, error) {
	if split != "train" && split != "heldout" {
		return "", fmt.Errorf("unknown split %q", split)
	}
	keep := map[string]bool{}
	tmp, err := os.CreateTemp("", "sentences-*.jsonl")
	if err != nil {
		return "", err
	}
	defer tmp.Close()
	err = eachJSON(sentPath, func(line []byte, v map[string]any) error {
		enc, _ := v["encounter_id"].(string)
		if devsplit.HeldOut(enc) == (split == "heldout") {
			id, _ := v["sentence_id"].(string)
			keep[id] = true
			_, err := tmp.Write(append(line, '\n'))
			return err
		}
		return nil
	})
	if err != nil || goldIn == "" || goldOut == "" {
		return tmp.Name(), err
	}
	g, err := os.Create(goldOut)
	if err != nil {
		return tmp.Name(), err
	}
	defer g.Close()
	return tmp.Name(), eachJSON(goldIn, func(line []byte, v map[string]any) error {
		if id, _ := v["sentence_id"].(string); keep[id] {
			_, err := g.Write(append(line, '\n'))
			return err
		}
		return nil
	})
}

func eachJSON(path string, fn func([]byte, map[string]any) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), batch.MaxLineBytes)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("%s:%d: invalid JSON", path, n)
		}
		if err := fn(append([]byte(nil), sc.Bytes()...), v); err != nil {
			return err
		}
	}
	return sc.Err()
}
