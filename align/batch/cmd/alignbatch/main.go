// Command alignbatch is a development driver for package align/batch: it aligns
// sentences.jsonl against segments.jsonl and writes predictions.jsonl to standard output.
// The product CLI is `evidencectl align batch`; this command exists for evaluation.
//
//	go run ./align/batch/cmd/alignbatch --segments S.jsonl --sentences T.jsonl [--baseline tfidf] > P.jsonl
//
// With --split it keeps one side of the align-dev split, or of a split file (--split-file,
// such as align/testdata/clinical/split.tsv), and with --gold and --gold-out writes the gold
// lines of the kept sentences; --gold-only keeps only encounters that have gold.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/align/baseline"
	"github.com/evidenceledger/evidence/align/batch"
	"github.com/evidenceledger/evidence/align/internal/devsplit"
)

func main() {
	segPath := flag.String("segments", "", "segments.jsonl")
	sentPath := flag.String("sentences", "", "sentences.jsonl")
	base := flag.String("baseline", "", `"tfidf" for the TF-IDF baseline instead of the engine`)
	split := flag.String("split", "", `"train" or "heldout" ("test" is the same): keep only sentences of that side of the align-dev split (see align/internal/devsplit), or of --split-file`)
	splitFile := flag.String("split-file", "", "with --split: a TSV of encounter_id, source, split (train or test), such as align/testdata/clinical/split.tsv, instead of the align-dev split")
	goldOnly := flag.Bool("gold-only", false, "with --split and --gold: keep only the encounters that have gold lines (whole notes)")
	goldIn := flag.String("gold", "", "with --split: gold.jsonl to filter")
	goldOut := flag.String("gold-out", "", "with --split: where to write the gold lines of the kept sentences")
	flag.Parse()
	if *split != "" {
		var err error
		*sentPath, err = filterSplit(*split, *splitFile, *goldOnly, *sentPath, *goldIn, *goldOut)
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

// filterSplit writes the sentences of one side of a split to a temporary file and, if
// asked, the matching gold lines to goldOut. It returns the temporary file's path.
func filterSplit(split, splitFile string, goldOnly bool, sentPath, goldIn, goldOut string) (string, error) {
	if split == "test" {
		split = "heldout"
	}
	if split != "train" && split != "heldout" {
		return "", fmt.Errorf("unknown split %q", split)
	}
	heldOut := devsplit.HeldOut
	if splitFile != "" {
		side, err := readSplitFile(splitFile)
		if err != nil {
			return "", err
		}
		heldOut = func(enc string) bool { return side[enc] == "test" }
	}
	var hasGold map[string]bool
	if goldOnly && goldIn != "" {
		ids := map[string]bool{}
		if err := eachJSON(goldIn, func(_ []byte, v map[string]any) error {
			id, _ := v["sentence_id"].(string)
			ids[id] = true
			return nil
		}); err != nil {
			return "", err
		}
		hasGold = map[string]bool{}
		if err := eachJSON(sentPath, func(_ []byte, v map[string]any) error {
			id, _ := v["sentence_id"].(string)
			enc, _ := v["encounter_id"].(string)
			if ids[id] {
				hasGold[enc] = true
			}
			return nil
		}); err != nil {
			return "", err
		}
	}
	keep := map[string]bool{}
	tmp, err := os.CreateTemp("", "sentences-*.jsonl")
	if err != nil {
		return "", err
	}
	defer tmp.Close()
	err = eachJSON(sentPath, func(line []byte, v map[string]any) error {
		enc, _ := v["encounter_id"].(string)
		if heldOut(enc) == (split == "heldout") && (hasGold == nil || hasGold[enc]) {
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

// readSplitFile reads a split TSV (encounter_id, source, split; "#" starts a comment line).
func readSplitFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	side := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || (f[2] != "train" && f[2] != "test") {
			return nil, fmt.Errorf("%s:%d: want encounter_id, source and train or test", path, n+1)
		}
		side[f[0]] = f[2]
	}
	return side, nil
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
