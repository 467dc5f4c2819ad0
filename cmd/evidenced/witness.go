package main

import (
	"context"
	"flag"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/witness"
)

// witnessConfig names the log's witnesses (C2SP tlog-witness).
type witnessConfig struct {
	Witnesses []string      `json:"witnesses"` // each VKEY=URL
	Quorum    int           `json:"witness_quorum"`
	Interval  time.Duration `json:"witness_interval"`
}

type stringList struct{ l *[]string }

func (s stringList) String() string {
	if s.l == nil {
		return ""
	}
	return strings.Join(*s.l, ",")
}

func (s stringList) Set(v string) error { *s.l = append(*s.l, v); return nil }

func addWitnessFlags(fs *flag.FlagSet, c *witnessConfig) {
	fs.Var(stringList{&c.Witnesses}, "witness", "a C2SP tlog-witness to submit checkpoints to, as VKEY=URL (its cosignature verifier key and URL prefix); repeatable")
	fs.IntVar(&c.Quorum, "witness-quorum", 0, "cosignatures a checkpoint needs to be served as witnessed (0: every --witness)")
	fs.DurationVar(&c.Interval, "witness-interval", c.Interval, "least time between two submissions to the witnesses")
}

// startWitnessing submits the log's checkpoints to the configured
// witnesses until ctx ends; it returns nil without witnesses. The latest
// witnessed checkpoint is kept in <data-dir>/witnessed.checkpoint.
func startWitnessing(ctx context.Context, c witnessConfig, dataDir string, l *ledger.Log, logger *slog.Logger) (*witness.Submitter, error) {
	if len(c.Witnesses) == 0 {
		return nil, nil
	}
	var ws []witness.Witness
	for _, s := range c.Witnesses {
		w, err := witness.Parse(s)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	sub, err := witness.NewSubmitter(l, ws, witness.SubmitterOptions{Quorum: c.Quorum, Interval: c.Interval,
		Path: filepath.Join(dataDir, witness.WitnessedFileName), Logger: logger.With("component", "witness")})
	if err != nil {
		return nil, err
	}
	go sub.Run(ctx)
	logger.Info("witnessing", "witnesses", len(ws), "quorum", max(c.Quorum, 0))
	return sub, nil
}
