package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func b64s(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b64(b)
	}
	return out
}

func logCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "log", Short: "Read and verify the log: info, entries, proofs"}
	c.AddCommand(logInfoCmd(g), logEntryCmd(g), logProofCmd(g), logConsistencyCmd(g), logCheckpointCmd(g))
	return c
}

func logInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the log's origin, verifier key, size and root (verified)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := g.ctx(cmd.Context())
			cp, err := c.LatestCheckpoint(ctx)
			if err != nil {
				return err
			}
			info, err := c.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
			if err != nil {
				return err
			}
			out := struct {
				Origin      string `json:"origin"`
				VerifierKey string `json:"verifier_key"`
				TreeSize    int64  `json:"tree_size"`
				RootHash    string `json:"root_hash"`
			}{cp.Origin, info.GetVerifierKey(), cp.TreeSize, b64(cp.RootHash)}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "origin\t%s\nverifier key\t%s\ntree size\t%d\nroot hash\t%s\nverified\tyes\n", out.Origin, out.VerifierKey, out.TreeSize, out.RootHash)
			})
		},
	}
}

func logCheckpointCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the latest signed checkpoint note (verified)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			cp, err := c.LatestCheckpoint(g.ctx(cmd.Context()))
			if err != nil {
				return err
			}
			if g.json {
				return g.print(map[string]any{"origin": cp.Origin, "tree_size": cp.TreeSize, "root_hash": b64(cp.RootHash), "note": string(cp.Note)}, nil)
			}
			_, err = g.stdout.Write(cp.Note)
			return err
		},
	}
}

func logEntryCmd(g *globals) *cobra.Command {
	var index int64
	c := &cobra.Command{
		Use:   "entry --index I",
		Short: "Show one entry, verified by an inclusion proof",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.Entry(g.ctx(cmd.Context()), index)
			if err != nil {
				return err
			}
			e := v.Entry
			out := map[string]any{
				"index":              e.GetLeafIndex(),
				"leaf_data":          b64(e.GetLeafData()),
				"leaf_hash":          b64(e.GetLeafHash()),
				"kind":               kindName(e.GetKind()),
				"tenant":             e.GetTenant(),
				"encounter_id":       e.GetEncounterId(),
				"actor":              e.GetActor(),
				"record_time":        e.GetRecordTime().AsTime(),
				"chain_seq":          e.GetChainSeq(),
				"prev_leaf_hash":     b64(e.GetPrevLeafHash()),
				"payload_commitment": b64(e.GetPayloadCommitment()),
				"proof":              b64s(v.Proof),
				"tree_size":          v.Checkpoint.TreeSize,
				"verified":           true,
			}
			return g.print(out, func(w *tabwriter.Writer) {
				for _, k := range []string{"index", "kind", "tenant", "encounter_id", "actor", "record_time", "chain_seq", "leaf_hash", "prev_leaf_hash", "payload_commitment", "tree_size", "verified"} {
					fmt.Fprintf(w, "%s\t%v\n", k, out[k])
				}
			})
		},
	}
	c.Flags().Int64Var(&index, "index", 0, "leaf index")
	c.MarkFlagRequired("index")
	return c
}

func kindName(k pb.EntryKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "ENTRY_KIND_"))
}

func logProofCmd(g *globals) *cobra.Command {
	var index, size int64
	c := &cobra.Command{
		Use:   "proof --index I [--size N]",
		Short: "Print the inclusion proof of an entry in the tree of size N (default: latest)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			p, verified, err := c.InclusionProof(g.ctx(cmd.Context()), index, size)
			if err != nil {
				return err
			}
			out := struct {
				Index    int64    `json:"index"`
				TreeSize int64    `json:"tree_size"`
				LeafHash string   `json:"leaf_hash"`
				Hashes   []string `json:"hashes"`
				Verified bool     `json:"verified"`
			}{p.GetLeafIndex(), p.GetTreeSize(), b64(p.GetLeafHash()), b64s(p.GetHashes()), verified}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "index\t%d\ntree size\t%d\nleaf hash\t%s\nverified\t%v\n", out.Index, out.TreeSize, out.LeafHash, verified)
				for i, h := range out.Hashes {
					fmt.Fprintf(w, "hash %d\t%s\n", i, h)
				}
			})
		},
	}
	c.Flags().Int64Var(&index, "index", 0, "leaf index")
	c.Flags().Int64Var(&size, "size", 0, "tree size (0: the latest)")
	c.MarkFlagRequired("index")
	return c
}

func logConsistencyCmd(g *globals) *cobra.Command {
	var from, to int64
	c := &cobra.Command{
		Use:   "consistency --from M [--to N]",
		Short: "Print the consistency proof between tree sizes M and N (default: latest)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			p, err := c.ConsistencyProof(g.ctx(cmd.Context()), from, to)
			if err != nil {
				return err
			}
			out := struct {
				From   int64    `json:"from"`
				To     int64    `json:"to"`
				Hashes []string `json:"hashes"`
			}{p.GetFromTreeSize(), p.GetToTreeSize(), b64s(p.GetHashes())}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "from\t%d\nto\t%d\n", out.From, out.To)
				for i, h := range out.Hashes {
					fmt.Fprintf(w, "hash %d\t%s\n", i, h)
				}
			})
		},
	}
	c.Flags().Int64Var(&from, "from", 0, "the smaller tree size")
	c.Flags().Int64Var(&to, "to", 0, "the larger tree size (0: the latest)")
	c.MarkFlagRequired("from")
	return c
}
