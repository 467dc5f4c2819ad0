package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

func clusterCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Inspect the raft cluster that replicates the log (operator)"}
	c.AddCommand(clusterStatusCmd(g), clusterRemoveCmd(g))
	return c
}

// clusterMemberOut is one member in cluster status's output.
type clusterMemberOut struct {
	NodeID       string `json:"node_id"`
	RaftAddr     string `json:"raft_addr"`
	APIAddr      string `json:"api_addr"`
	State        string `json:"state"`
	Voter        bool   `json:"voter"`
	Leader       bool   `json:"leader"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	TreeSize     int64  `json:"tree_size"`
	RootHash     string `json:"root_hash"`
	Lag          uint64 `json:"lag"`
}

func clusterStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's members, its leader, each member's applied index, tree size and lag behind the leader",
		Long: "Asks the server (--server, any member) for every member's report. Needs an operator token (auditor or admin).\n" +
			"Lag is how many raft entries a member's ledger is behind the leader's.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := pb.NewClusterServiceClient(c.Conn()).GetClusterStatus(g.ctx(cmd.Context()), &pb.GetClusterStatusRequest{})
			if err != nil {
				return err
			}
			out := struct {
				NodeID        string             `json:"node_id"`
				LeaderID      string             `json:"leader_id"`
				LeaderAPIAddr string             `json:"leader_api_addr"`
				Members       []clusterMemberOut `json:"members"`
			}{resp.GetNodeId(), resp.GetLeaderId(), resp.GetLeaderApiAddr(), []clusterMemberOut{}}
			for _, m := range resp.GetMembers() {
				out.Members = append(out.Members, clusterMemberOut{NodeID: m.GetNodeId(), RaftAddr: m.GetRaftAddr(), APIAddr: m.GetApiAddr(),
					State: m.GetState(), Voter: m.GetVoter(), Leader: m.GetLeader(), Term: m.GetTerm(), LastIndex: m.GetLastIndex(),
					CommitIndex: m.GetCommitIndex(), AppliedIndex: m.GetAppliedIndex(), TreeSize: m.GetTreeSize(), RootHash: b64(m.GetRootHash()), Lag: m.GetLag()})
			}
			return g.print(out, func(w *tabwriter.Writer) {
				leader := out.LeaderID
				if leader == "" {
					leader = "(none: an election is under way, or no quorum)"
				} else if out.LeaderAPIAddr != "" {
					leader += " at " + out.LeaderAPIAddr
				}
				fmt.Fprintf(w, "leader\t%s\nasked\t%s\n\n", leader, out.NodeID)
				fmt.Fprintln(w, "NODE\tSTATE\tVOTER\tRAFT ADDR\tAPI ADDR\tAPPLIED\tCOMMIT\tTREE SIZE\tLAG\tROOT")
				for _, m := range out.Members {
					voter := "no"
					if m.Voter {
						voter = "yes"
					}
					root := m.RootHash
					if len(root) > 12 {
						root = root[:12] + "…"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", m.NodeID, m.State, voter, m.RaftAddr, m.APIAddr,
						m.AppliedIndex, m.CommitIndex, m.TreeSize, m.Lag, root)
				}
			})
		},
	}
}

func clusterRemoveCmd(g *globals) *cobra.Command {
	var id string
	c := &cobra.Command{
		Use:   "remove --node-id ID",
		Short: "Take a member out of the cluster (admin); then stop it and clear its data directory",
		Long: "Asks the server (--server, any member) to remove the member from the raft configuration; the change goes\n" +
			"through the leader. Needs an operator admin token. docs/operations.md says how to shrink and replace nodes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usageError{"--node-id is required"}
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := pb.NewClusterServiceClient(c.Conn()).RemoveMember(g.ctx(cmd.Context()), &pb.RemoveMemberRequest{NodeId: id})
			if err != nil {
				return err
			}
			out := struct {
				Removed string   `json:"removed"`
				Members []string `json:"members"`
			}{id, resp.GetMemberIds()}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "removed\t%s\nmembers\t%s\n", out.Removed, strings.Join(out.Members, ", "))
			})
		},
	}
	c.Flags().StringVar(&id, "node-id", "", "the member's node id")
	return c
}
