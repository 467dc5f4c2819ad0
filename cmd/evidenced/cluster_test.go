package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/auth/authtest"
	"github.com/evidenceledger/evidence/envelope"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

func TestClusterConfig(t *testing.T) {
	none := func(string) string { return "" }
	c, err := loadConfig([]string{"--node-id", "n1", "--raft-addr", "127.0.0.1:7000", "--bootstrap"}, none)
	if err != nil || !c.Cluster.enabled() || !c.Cluster.Bootstrap || c.Cluster.RaftAddr != "127.0.0.1:7000" {
		t.Fatalf("cluster flags: %+v %v", c.Cluster, err)
	}
	env := map[string]string{"EVIDENCE_NODE_ID": "n2", "EVIDENCE_RAFT_ADDR": "127.0.0.1:7001", "EVIDENCE_JOIN": "127.0.0.1:7000"}
	if c, err = loadConfig(nil, func(k string) string { return env[k] }); err != nil || c.Cluster.NodeID != "n2" || c.Cluster.Join != "127.0.0.1:7000" {
		t.Fatalf("cluster environment: %+v %v", c.Cluster, err)
	}
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"cluster":{"node_id":"n3","raft_addr":"127.0.0.1:7002","raft_advertise":"10.0.0.3:7002","join":"10.0.0.1:7000"}}`), 0o600)
	if c, err = loadConfig([]string{"--config", file}, none); err != nil || c.Cluster.NodeID != "n3" || c.Cluster.RaftAdvertise != "10.0.0.3:7002" {
		t.Fatalf("cluster config file: %+v %v", c.Cluster, err)
	}
	if c, err = loadConfig(nil, none); err != nil || c.Cluster.enabled() {
		t.Fatalf("default: %+v %v", c.Cluster, err)
	}
	for args, want := range map[string]string{
		"--node-id n1":               "--node-id needs --raft-addr",
		"--raft-addr 127.0.0.1:7000": "--raft-addr needs --node-id",
		"--join 127.0.0.1:7000":      "--join needs --node-id",
		"--bootstrap":                "--bootstrap needs --node-id",
		"--node-id n1 --raft-addr 127.0.0.1:7000 --bootstrap --join 127.0.0.1:7001": "--bootstrap and --join are exclusive",
		"--node-id n1 --raft-addr 127.0.0.1":                                        "--raft-addr",
		"--node-id n1 --raft-addr :7000":                                            "--raft-advertise",
		"--node-id n1 --raft-addr 127.0.0.1:7000 --join nowhere":                    "--join",
	} {
		_, err := loadConfig(strings.Fields(args), none)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", args, err, want)
		}
	}
}

// clusterNode is one evidenced running in this process via run().
type clusterNode struct {
	id, dir            string
	grpcAddr, raftAddr string
	cancel             context.CancelFunc
	done               chan error
	logs               *lockedBuffer
	conn               *grpc.ClientConn
}

// servingWriter collects a server's JSON log and reports its "serving"
// line's addresses.
type servingWriter struct {
	buf   *lockedBuffer
	once  sync.Once
	ready chan map[string]any
}

func (w *servingWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	var m map[string]any
	if json.Unmarshal(p, &m) == nil && m["msg"] == "serving" {
		w.once.Do(func() { w.ready <- m })
	}
	return len(p), nil
}

func startClusterNode(t *testing.T, id, dir string, cc clusterConfig) *clusterNode {
	t.Helper()
	return startClusterNodeTLS(t, id, dir, cc, defaultSecurity(), insecure.NewCredentials(), true)
}

// startClusterNodeTLS starts a node with the security of sec, dialed with
// creds, with or without the search index.
func startClusterNodeTLS(t *testing.T, id, dir string, cc clusterConfig, sec securityConfig, creds credentials.TransportCredentials, search bool) *clusterNode {
	t.Helper()
	cfg := defaults()
	cfg.DataDir, cfg.GRPCAddr, cfg.HTTPAddr, cfg.Search, cfg.LogLevel = dir, "127.0.0.1:0", "127.0.0.1:0", search, "info"
	cfg.Security = sec
	cfg.Security.RateLimit = 0
	cc.NodeID, cc.RaftAddr, cc.fast = id, "127.0.0.1:0", true
	cfg.Cluster = cc
	n := &clusterNode{id: id, dir: dir, done: make(chan error, 1), logs: new(lockedBuffer)}
	w := &servingWriter{buf: n.logs, ready: make(chan map[string]any, 1)}
	logger := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- run(ctx, cfg, logger) }()
	select {
	case m := <-w.ready:
		n.grpcAddr, n.raftAddr = m["grpc_addr"].(string), m["raft_addr"].(string)
	case err := <-n.done:
		t.Fatalf("%s stopped at start: %v\n%s", id, err, n.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start:\n%s", id, n.logs)
	}
	conn, err := grpc.NewClient(n.grpcAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	n.conn = conn
	t.Cleanup(n.stop)
	return n
}

func (n *clusterNode) stop() {
	if n.cancel == nil {
		return
	}
	n.conn.Close()
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			panic(fmt.Sprintf("%s: run: %v", n.id, err))
		}
	case <-time.After(30 * time.Second):
		panic(n.id + " did not stop")
	}
}

func bearerCtx(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// copyMemberFiles copies the files every cluster member shares from the
// bootstrap node's data directory, as an operator does.
func copyMemberFiles(t *testing.T, from string, to ...string) {
	t.Helper()
	for _, name := range []string{"log.key", "log.pub", envelope.KeyringFile, auth.TokensFileName} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range to {
			if err := os.WriteFile(filepath.Join(d, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCluster runs three evidenced in this process as a raft cluster on
// loopback: the bootstrap node and two that join it, with the log key,
// keyring and tokens copied from the bootstrap node's data directory as
// an operator would. Writes through a follower and the leader get
// checkpoints, are read back on every node, and every node ends at the
// same signed checkpoint; ClusterService and evidencectl cluster status
// report three members with one leader.
func TestCluster(t *testing.T) {
	start := time.Now()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	tokensPath := filepath.Join(dirs[0], auth.TokensFileName)
	tok := map[string]string{}
	for name, id := range map[string]auth.Identity{
		"pipeline":  {Tenant: "clinic-a", Role: auth.RolePipeline, Subject: "svc:cluster"},
		"clinician": {Tenant: "clinic-a", Role: auth.RoleClinician, Subject: "dr.cluster"},
		"operator":  {Tenant: auth.OperatorTenant, Role: auth.RoleAuditor, Subject: "ops.cluster"},
		"admin":     {Tenant: auth.OperatorTenant, Role: auth.RoleAdmin, Subject: "admin.cluster"},
	} {
		tk, _, err := auth.CreateToken(tokensPath, id, auth.TokenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tok[name] = tk
	}
	// The tenant's key-encryption key is made before the keyring is
	// copied: cluster members never make one on their own.
	kr, err := envelope.OpenKeyring(envelope.DefaultKeyringPath(dirs[0]), envelope.KeyringOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate("clinic-a"); err != nil {
		t.Fatal(err)
	}

	// A joining node without the cluster's log key refuses to start.
	if err := run(context.Background(), clusterCfg(dirs[1], "n1", "127.0.0.1:1"), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "log.key") {
		t.Fatalf("join without log.key: %v", err)
	}

	n0 := startClusterNode(t, "n0", dirs[0], clusterConfig{Bootstrap: true})
	op := bearerCtx(context.Background(), tok["operator"])
	waitFor(t, "the bootstrap node to lead", func() bool {
		st, err := pb.NewClusterServiceClient(n0.conn).GetClusterStatus(op, &pb.GetClusterStatusRequest{})
		return err == nil && st.GetLeaderId() == "n0"
	})
	copyMemberFiles(t, dirs[0], dirs[1:]...)
	n1 := startClusterNode(t, "n1", dirs[1], clusterConfig{Join: n0.raftAddr})
	n2 := startClusterNode(t, "n2", dirs[2], clusterConfig{Join: n0.raftAddr})
	nodes := []*clusterNode{n0, n1, n2}
	var st *pb.GetClusterStatusResponse
	waitFor(t, "three members", func() bool {
		st, err = pb.NewClusterServiceClient(n1.conn).GetClusterStatus(op, &pb.GetClusterStatusRequest{})
		if err != nil || len(st.GetMembers()) != 3 {
			return false
		}
		for _, m := range st.GetMembers() {
			if m.GetState() == "Unreachable" || m.GetState() == "Candidate" {
				return false
			}
		}
		return true
	})
	t.Logf("three members after %v", time.Since(start).Round(time.Millisecond))
	leaders := 0
	for _, m := range st.GetMembers() {
		if m.GetLeader() {
			leaders++
		}
		if !m.GetVoter() || m.GetApiAddr() == "" {
			t.Errorf("member %v", m)
		}
	}
	if leaders != 1 || st.GetLeaderId() != "n0" || st.GetLeaderApiAddr() != n0.grpcAddr || st.GetNodeId() != "n1" {
		t.Fatalf("status %v", st)
	}

	// Writes through a follower and through the leader.
	pipe := bearerCtx(context.Background(), tok["pipeline"])
	enc := func(n *clusterNode) pb.EncounterServiceClient { return pb.NewEncounterServiceClient(n.conn) }
	created, err := enc(n1).CreateEncounter(metadata.AppendToOutgoingContext(pipe, "x-evidence-request-id", "create-1"), &pb.CreateEncounterRequest{Title: "synthetic", Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if cp := created.GetReceipt().GetCheckpoint(); cp.GetTreeSize() <= created.GetReceipt().GetLeafIndexes()[0] || len(cp.GetNote()) == 0 {
		t.Fatalf("a write through a follower got %v", created.GetReceipt())
	}
	id := created.GetEncounter().GetEncounterId()
	// The same request retried through another node is the same write.
	again, err := enc(n2).CreateEncounter(metadata.AppendToOutgoingContext(pipe, "x-evidence-request-id", "create-1"), &pb.CreateEncounterRequest{Title: "synthetic"})
	if err != nil || again.GetEncounter().GetEncounterId() != id || !slices.Equal(again.GetReceipt().GetLeafIndexes(), created.GetReceipt().GetLeafIndexes()) {
		t.Fatalf("retry through another node: %v %v", again, err)
	}
	segs, err := enc(n2).RecordSegments(pipe, &pb.RecordSegmentsRequest{EncounterId: id, Verify: true, Segments: []*pb.Segment{
		{SegmentId: "g1", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "Synthetic words one.", StartMs: 0, EndMs: 1000},
		{SegmentId: "g2", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, Text: "Synthetic words two.", StartMs: 1000, EndMs: 2000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	more, err := enc(n0).RecordSegments(pipe, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
		{SegmentId: "g3", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "Synthetic words three.", StartMs: 2000, EndMs: 3000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(segs.GetReceipt().GetProofs()) != 2 {
		t.Fatalf("follower receipt %v", segs.GetReceipt())
	}

	// Every node reads every write, waiting for its own size to reach the
	// last receipt's.
	size := more.GetReceipt().GetCheckpoint().GetTreeSize()
	for _, n := range nodes {
		ctx := metadata.AppendToOutgoingContext(bearerCtx(context.Background(), tok["clinician"]), "x-evidence-min-tree-size", strconv.FormatInt(size, 10))
		tr, err := enc(n).GetTranscript(ctx, &pb.GetTranscriptRequest{EncounterId: id})
		if err != nil || len(tr.GetSegments()) != 3 {
			t.Fatalf("%s: transcript %v %v", n.id, tr, err)
		}
	}
	// Each node builds its own search index from its own log: every node
	// finds the three segments, wherever they were written.
	for _, n := range nodes {
		ctx := bearerCtx(context.Background(), tok["clinician"])
		waitFor(t, n.id+"'s search index", func() bool {
			res, err := pb.NewSearchServiceClient(n.conn).Search(ctx, &pb.SearchRequest{Query: "synthetic words", EncounterId: id, Kinds: []pb.EntryKind{pb.EntryKind_ENTRY_KIND_SEGMENT}})
			return err == nil && res.GetTotalSize() == 3
		})
	}

	// A size the log has not reached: Unavailable, naming the header.
	ahead := metadata.AppendToOutgoingContext(op, "x-evidence-min-tree-size", strconv.FormatInt(size+1000, 10))
	ctx, cancel := context.WithTimeout(ahead, 500*time.Millisecond)
	_, err = pb.NewLedgerServiceClient(n2.conn).GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	cancel()
	if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Fatalf("unreached size: %v", err)
	}

	// One log: the same signed checkpoint on every node.
	var notes [][]byte
	waitFor(t, "the same checkpoint on every node", func() bool {
		notes = notes[:0]
		for _, n := range nodes {
			cp, err := pb.NewLedgerServiceClient(n.conn).GetCheckpoint(op, &pb.GetCheckpointRequest{})
			if err != nil {
				return false
			}
			notes = append(notes, cp.GetCheckpoint().GetNote())
		}
		return bytes.Equal(notes[0], notes[1]) && bytes.Equal(notes[0], notes[2])
	})
	waitFor(t, "no lag", func() bool {
		st, err = pb.NewClusterServiceClient(n2.conn).GetClusterStatus(op, &pb.GetClusterStatusRequest{})
		if err != nil {
			return false
		}
		for _, m := range st.GetMembers() {
			if m.GetLag() != 0 || !bytes.Equal(m.GetRootHash(), st.GetMembers()[0].GetRootHash()) || m.GetTreeSize() != st.GetMembers()[0].GetTreeSize() {
				return false
			}
		}
		return true
	})

	// Each node keeps its own encounter summaries from its own log: every
	// node lists the same visit, field for field.
	var lists []*pb.ListEncountersResponse
	for _, n := range nodes {
		ctx := metadata.AppendToOutgoingContext(bearerCtx(context.Background(), tok["clinician"]), "x-evidence-min-tree-size", strconv.FormatInt(st.GetMembers()[0].GetTreeSize(), 10))
		l, err := enc(n).ListEncounters(ctx, &pb.ListEncountersRequest{})
		if err != nil || len(l.GetEncounters()) != 1 || l.GetEncounters()[0].GetEncounterId() != id || l.GetEncounters()[0].GetTitle() != "synthetic" {
			t.Fatalf("%s lists %v, %v", n.id, l, err)
		}
		lists = append(lists, l)
	}
	for i, l := range lists[1:] {
		if !proto.Equal(l.GetEncounters()[0], lists[0].GetEncounters()[0]) {
			t.Fatalf("%s lists %v, %s lists %v", nodes[i+1].id, l.GetEncounters()[0], nodes[0].id, lists[0].GetEncounters()[0])
		}
	}

	// A tenant's identity may not ask for the cluster's status.
	if _, err := pb.NewClusterServiceClient(n0.conn).GetClusterStatus(bearerCtx(context.Background(), tok["clinician"]), &pb.GetClusterStatusRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("clinician asks for the cluster status: %v", err)
	}

	// evidencectl cluster status, as a table and as JSON.
	ctlAs := func(token string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(binDir, "evidencectl"), append([]string{"--server", n2.grpcAddr, "--token", token, "--state", filepath.Join(t.TempDir(), "s.json")}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("evidencectl %v: %v: %s", args, err, errb.String())
		}
		return out.String(), nil
	}
	ctl := func(args ...string) string {
		out, err := ctlAs(tok["operator"], args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var js struct {
		LeaderID string `json:"leader_id"`
		Members  []struct {
			NodeID       string `json:"node_id"`
			Leader       bool   `json:"leader"`
			AppliedIndex uint64 `json:"applied_index"`
			TreeSize     int64  `json:"tree_size"`
			Lag          uint64 `json:"lag"`
		} `json:"members"`
	}
	// n0 bootstrapped the cluster, but on a loaded machine another member may have won an
	// election since: the table names whichever leads, with its API address.
	apiAddr := map[string]string{"n0": n0.grpcAddr, "n1": n1.grpcAddr, "n2": n2.grpcAddr}
	if err := json.Unmarshal([]byte(ctl("cluster", "status", "--json")), &js); err != nil || apiAddr[js.LeaderID] == "" || len(js.Members) != 3 {
		t.Fatalf("cluster status --json: %+v %v", js, err)
	}
	table := ctl("cluster", "status")
	for _, want := range []string{"leader", js.LeaderID + " at " + apiAddr[js.LeaderID], "n0", "n1", "n2", "Leader", "Follower", "LAG"} {
		if !strings.Contains(table, want) {
			t.Errorf("cluster status table lacks %q:\n%s", want, table)
		}
	}
	for _, m := range js.Members {
		if m.AppliedIndex == 0 || m.TreeSize < size {
			t.Errorf("member %+v", m)
		}
	}

	// Shrinking: only an operator admin removes members, named by a
	// known node id; the rest keep serving writes.
	cl := pb.NewClusterServiceClient(n1.conn)
	admin := bearerCtx(context.Background(), tok["admin"])
	if _, err := cl.RemoveMember(op, &pb.RemoveMemberRequest{NodeId: "n2"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("an auditor removes a member: %v", err)
	}
	if _, err := cl.RemoveMember(admin, &pb.RemoveMemberRequest{}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node_id") {
		t.Fatalf("remove without a node id: %v", err)
	}
	if _, err := cl.RemoveMember(admin, &pb.RemoveMemberRequest{NodeId: "n9"}); status.Code(err) != codes.NotFound {
		t.Fatalf("remove an unknown member: %v", err)
	}
	if _, err := ctlAs(tok["admin"], "cluster", "remove"); err == nil || !strings.Contains(err.Error(), "--node-id is required") {
		t.Fatalf("evidencectl cluster remove without --node-id: %v", err)
	}
	removed, err := ctlAs(tok["admin"], "cluster", "remove", "--node-id", "n2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rm struct {
		Removed string   `json:"removed"`
		Members []string `json:"members"`
	}
	if err := json.Unmarshal([]byte(removed), &rm); err != nil || rm.Removed != "n2" || !slices.Equal(rm.Members, []string{"n0", "n1"}) {
		t.Fatalf("evidencectl cluster remove --json: %s %v", removed, err)
	}
	n2.stop()
	if _, err := enc(n1).RecordSegments(pipe, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
		{SegmentId: "g4", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "Synthetic words four.", StartMs: 3000, EndMs: 4000},
	}}); err != nil {
		t.Fatalf("a write after shrinking to two members: %v", err)
	}
	waitFor(t, "two members after the removal", func() bool {
		st, err := cl.GetClusterStatus(op, &pb.GetClusterStatusRequest{})
		return err == nil && len(st.GetMembers()) == 2
	})
	for _, n := range []*clusterNode{n1, n0} {
		n.stop()
	}
	t.Logf("cluster test took %v", time.Since(start).Round(time.Millisecond))
}

// TestClusterTLS: with TLS on, raft and the node RPCs speak TLS with the
// servers' certificates, verified both ways against --raft-ca; a node
// whose certificate another CA signed cannot join.
func TestClusterTLS(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ca, other := authtest.NewCA(t, "cluster CA"), authtest.NewCA(t, "another CA")
	caFile := ca.WriteFile(t, dirs[0], "ca")
	sec := func(i int, ca *authtest.CA) securityConfig {
		s := defaultSecurity()
		s.TLSCert, s.TLSKey = ca.Server(t).WriteFiles(t, dirs[i], "server")
		return s
	}
	tokensPath := filepath.Join(dirs[0], auth.TokensFileName)
	opTok, _, err := auth.CreateToken(tokensPath, auth.Identity{Tenant: auth.OperatorTenant, Role: auth.RoleAuditor, Subject: "ops.cluster"}, auth.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
	n0 := startClusterNodeTLS(t, "n0", dirs[0], clusterConfig{Bootstrap: true, RaftCA: caFile}, sec(0, ca), creds, false)
	op := bearerCtx(context.Background(), opTok)
	waitFor(t, "the bootstrap node to lead", func() bool {
		st, err := pb.NewClusterServiceClient(n0.conn).GetClusterStatus(op, &pb.GetClusterStatusRequest{})
		return err == nil && st.GetLeaderId() == "n0"
	})
	copyMemberFiles(t, dirs[0], dirs[1:]...)
	startClusterNodeTLS(t, "n1", dirs[1], clusterConfig{Join: n0.raftAddr, RaftCA: caFile}, sec(1, ca), creds, false)
	stranger := startClusterNodeTLS(t, "n2", dirs[2], clusterConfig{Join: n0.raftAddr, RaftCA: caFile}, sec(2, other),
		credentials.NewTLS(&tls.Config{RootCAs: other.Pool(), MinVersion: tls.VersionTLS12}), false)
	waitFor(t, "two members", func() bool {
		st, err := pb.NewClusterServiceClient(n0.conn).GetClusterStatus(op, &pb.GetClusterStatusRequest{})
		if err != nil || len(st.GetMembers()) != 2 {
			return false
		}
		for _, m := range st.GetMembers() {
			if m.GetState() != "Leader" && m.GetState() != "Follower" {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second)
	st, err := pb.NewClusterServiceClient(n0.conn).GetClusterStatus(op, &pb.GetClusterStatusRequest{})
	if err != nil || len(st.GetMembers()) != 2 {
		t.Fatalf("a node with another CA's certificate joined: %v %v", st, err)
	}
	if !strings.Contains(stranger.logs.String(), "join failed") {
		t.Errorf("the stranger's log does not say its join failed:\n%.2000s", stranger.logs)
	}
}

func clusterCfg(dir, id, join string) config {
	cfg := defaults()
	cfg.DataDir, cfg.GRPCAddr, cfg.HTTPAddr, cfg.Search = dir, "127.0.0.1:0", "127.0.0.1:0", false
	cfg.Cluster = clusterConfig{NodeID: id, RaftAddr: "127.0.0.1:0", Join: join, fast: true}
	return cfg
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
