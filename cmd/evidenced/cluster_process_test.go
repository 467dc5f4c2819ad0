package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// TestClusterProcesses runs a three-node cluster of real evidenced
// processes on loopback and SIGKILLs the leader again and again under a
// continuous write load through the cluster client, then checks that no
// acknowledged write was lost or recorded twice, that every node holds
// the same log, and that every checkpoint any node served during the run
// is consistent with every other.
func TestClusterProcesses(t *testing.T) {
	const (
		kills   = 5
		writers = 4
		tenant  = "demo"
	)
	bin := buildProcBinary(t)
	var nodes []*procMember
	for i := range 3 {
		nodes = append(nodes, &procMember{t: t, bin: bin, id: fmt.Sprintf("n%d", i), dataDir: t.TempDir(), raftAddr: procAddr(t), grpcAddr: procAddr(t)})
	}
	t.Cleanup(func() {
		for _, m := range nodes {
			m.stop()
		}
	})

	// The operator prepares the first node's data directory: tokens and
	// the tenant's key-encryption key (a joining node's keyring must hold
	// every tenant's KEK, so it is made before the copy).
	n0 := nodes[0]
	tokensPath := filepath.Join(n0.dataDir, auth.TokensFileName)
	pipeline, _, err := auth.CreateToken(tokensPath, auth.Identity{Tenant: tenant, Role: auth.RolePipeline, Subject: "svc:cluster-test"}, auth.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	operator, _, err := auth.CreateToken(tokensPath, auth.Identity{Tenant: "*", Role: auth.RoleAuditor, Subject: "ops.cluster-test"}, auth.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := envelope.OpenKeyring(envelope.DefaultKeyringPath(n0.dataDir), envelope.KeyringOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(tenant); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	n0.start("--bootstrap")
	n0.waitStatus(operator, func(s *pb.GetClusterStatusResponse) bool { return s.GetLeaderId() == n0.id })
	t.Logf("bootstrap node %s leads after %v", n0.id, time.Since(start).Round(time.Millisecond))
	for _, m := range nodes[1:] {
		copyMemberFiles(t, n0.dataDir, m.dataDir)
		m.start("--join", n0.raftAddr)
	}
	procConverged(t, nodes, operator, 60*time.Second)
	t.Logf("three members after %v", time.Since(start).Round(time.Millisecond))

	var addrs []string
	for _, m := range nodes {
		addrs = append(addrs, m.grpcAddr)
	}
	writeC, err := client.DialCluster(addrs, client.Options{Token: pipeline, RetryTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer writeC.Close()
	readC, err := client.DialCluster(addrs, client.Options{Token: operator})
	if err != nil {
		t.Fatal(err)
	}
	defer readC.Close()
	info, err := readC.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(info.GetVerifierKey())
	if err != nil {
		t.Fatal(err)
	}

	// The load: writers append transcript segments, each to its own
	// encounter, until stopped.
	cps := newProcCheckpoints()
	load := &procLoad{cps: cps}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range writers {
		enc, err := writeC.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "synthetic cluster visit"})
		if err != nil {
			t.Fatal(err)
		}
		id := enc.GetEncounter().GetEncounterId()
		wg.Go(func() { load.write(loadCtx, writeC.Encounters, id, w) })
	}
	// The watcher polls every node's checkpoint, and the read cluster's
	// shared trust state verifies one from any node, throughout.
	var watchErr error
	wg.Go(func() { watchErr = procWatch(loadCtx, nodes, operator, readC, cps) })

	time.Sleep(2 * time.Second)
	var failovers, gaps []time.Duration
	for k := range kills {
		leader := procLeader(t, nodes, operator)
		before := load.acked()
		killedAt := time.Now()
		leader.kill()
		first, gap, err := load.firstAckAfter(killedAt, 60*time.Second)
		if err != nil {
			t.Fatalf("kill %d (%s): %v\n%s", k+1, leader.id, err, procTails(nodes))
		}
		failovers, gaps = append(failovers, first), append(gaps, gap)
		restart := time.Now()
		leader.start()
		serving := time.Since(restart)
		leaderSize := procMaxSize(nodes, operator)
		leader.waitSize(operator, leaderSize, 60*time.Second)
		t.Logf("kill %d: leader %s after %d acknowledged writes; kill -> first acknowledged write sent after the kill %v; longest gap between acknowledgements %v; %d writes in flight at the kill acknowledged after it; restarted, it serves after %v and reaches the others' size %d after %v",
			k+1, leader.id, before, first.Round(time.Millisecond), gap.Round(time.Millisecond), load.spanning(killedAt), serving.Round(time.Millisecond), leaderSize, time.Since(restart).Round(time.Millisecond))
		time.Sleep(1500 * time.Millisecond)
	}
	stopLoad()
	wg.Wait()
	if err := load.err(); err != nil {
		t.Fatalf("a write failed after retries: %v", err)
	}
	if watchErr != nil {
		t.Fatalf("the read cluster refused a node's checkpoint: %v", watchErr)
	}
	t.Logf("failover times (kill -> first acknowledged write sent after the kill): %v", procRound(failovers))
	t.Logf("longest gaps between acknowledged writes around each kill: %v", procRound(gaps))

	// Every node converges on one log.
	final := procConverged(t, nodes, operator, 60*time.Second)
	acks := load.all()
	t.Logf("%d writes acknowledged (%d entries), final tree size %d, %d distinct checkpoints seen", load.writes(), len(acks), final.GetTreeSize(), cps.len())

	// Every acknowledged entry is on every node with the same leaf hash,
	// and the log holds each acknowledged segment once.
	for _, m := range nodes {
		leaves := m.leafHashes(operator)
		if int64(len(leaves)) != final.GetTreeSize() {
			t.Fatalf("%s streams %d entries, its checkpoint has %d", m.id, len(leaves), final.GetTreeSize())
		}
		segments := 0
		for _, l := range leaves {
			if l.kind == pb.EntryKind_ENTRY_KIND_SEGMENT {
				segments++
			}
		}
		for _, a := range acks {
			if a.index >= int64(len(leaves)) || !bytes.Equal(leaves[a.index].hash, a.leafHash) {
				t.Fatalf("%s: acknowledged entry %d is missing or differs", m.id, a.index)
			}
		}
		if segments != len(acks) {
			t.Fatalf("%s holds %d segment entries, %d were acknowledged: a retried write was recorded twice or an unacknowledged one recorded", m.id, segments, len(acks))
		}
	}
	seen := map[int64]bool{}
	for _, a := range acks {
		if seen[a.index] {
			t.Fatalf("two acknowledgements name entry %d", a.index)
		}
		seen[a.index] = true
	}

	// Every checkpoint seen (polled from every node, and in every
	// receipt) is signed by the log's key and consistent with every other:
	// consecutive sizes are proved consistent by a node, so all are.
	cps.add(final.GetNote())
	all := cps.sorted(t, verifier)
	var prev *log.Checkpoint
	for _, cp := range all {
		if prev != nil {
			if prev.Size == cp.Size {
				if !bytes.Equal(prev.Hash, cp.Hash) {
					t.Fatalf("two roots for tree size %d", cp.Size)
				}
				continue
			}
			resp, err := readC.Ledger.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromTreeSize: int64(prev.Size), ToTreeSize: int64(cp.Size)})
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, cp.Size, resp.GetHashes(), prev.Hash, cp.Hash); err != nil {
				t.Fatalf("checkpoints %d and %d are not consistent: %v", prev.Size, cp.Size, err)
			}
		}
		prev = cp
	}
	if prev == nil || prev.Size != uint64(final.GetTreeSize()) || !bytes.Equal(prev.Hash, final.GetRootHash()) {
		t.Fatal("the largest checkpoint seen is not the final one")
	}
	if tr := readC.Trusted(); tr == nil || tr.TreeSize > final.GetTreeSize() {
		t.Fatalf("the read client's trusted state %v is past the final checkpoint", tr)
	}
	t.Logf("%d checkpoints verified mutually consistent; total %v", len(all), time.Since(start).Round(time.Millisecond))
}

// buildProcBinary builds the server without the race detector: three race
// builds under load are too slow for two cores, and the processes are
// the system under test here, not the test's own code.
func buildProcBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "evidenced")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func procAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// procMember is one cluster member's process, restarted on the same data
// directory and addresses.
type procMember struct {
	t                  *testing.T
	bin, id, dataDir   string
	raftAddr, grpcAddr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan struct{}
	starts int
	conn   *client.Client
}

// start runs the member; extra are the first start's --bootstrap or
// --join flags. A restart has state and takes neither.
func (m *procMember) start(extra ...string) {
	t := m.t
	t.Helper()
	args := append([]string{"--data-dir", m.dataDir, "--grpc-addr", m.grpcAddr, "--http-addr", "127.0.0.1:0",
		"--node-id", m.id, "--raft-addr", m.raftAddr, "--storage", "pebble", "--search=false", "--rate-limit", "0", "--log-level", "info"}, extra...)
	cmd := exec.Command(m.bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs, done, ready := new(syncBuffer), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.OnceFunc(func() { close(ready) })
		for sc.Scan() {
			line := sc.Text()
			logs.WriteString(line + "\n")
			var l struct {
				Msg string `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" {
				once()
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	m.mu.Lock()
	m.cmd, m.logs, m.done = cmd, logs, done
	m.starts++
	m.mu.Unlock()
	select {
	case <-ready:
	case <-done:
		cmd.Wait()
		t.Fatalf("%s exited at start:\n%s", m.id, logs)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not start:\n%s", m.id, logs)
	}
}

// kill SIGKILLs the member and reaps it.
func (m *procMember) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	cmd.Process.Kill()
	<-done
	cmd.Wait()
}

// stop ends the member with SIGTERM, if it runs.
func (m *procMember) stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	cmd.Wait()
}

// client returns a client of this member alone, dialed with token on
// first use. It is a one-node Cluster's node for its reconnection
// backoff: a restarted member is reached again within a second.
func (m *procMember) client(token string) *client.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil {
		c, err := client.DialCluster([]string{m.grpcAddr}, client.Options{Token: token})
		if err != nil {
			m.t.Fatal(err)
		}
		m.conn = c.Nodes()[0]
		m.t.Cleanup(func() { c.Close() })
	}
	return m.conn
}

func (m *procMember) status(token string) (*pb.GetClusterStatusResponse, error) {
	c := m.client(token)
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return pb.NewClusterServiceClient(c.Conn()).GetClusterStatus(cctx, &pb.GetClusterStatusRequest{})
}

func (m *procMember) checkpoint(token string) (*pb.SignedCheckpoint, error) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := m.client(token).Ledger.GetCheckpoint(cctx, &pb.GetCheckpointRequest{})
	return resp.GetCheckpoint(), err
}

// waitStatus polls the member's cluster status until ok holds.
func (m *procMember) waitStatus(token string, ok func(*pb.GetClusterStatusResponse) bool) *pb.GetClusterStatusResponse {
	m.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		s, err := m.status(token)
		if err == nil && ok(s) {
			return s
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("%s: cluster status never as expected (last error %v):\n%s", m.id, last, m.logs)
	return nil
}

// waitSize waits until the member's checkpoint covers size entries and
// returns how long that took.
func (m *procMember) waitSize(token string, size int64, limit time.Duration) time.Duration {
	m.t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cp, err := m.checkpoint(token); err == nil && cp.GetTreeSize() >= size {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Fatalf("%s did not reach tree size %d in %v:\n%s", m.id, size, limit, m.logs)
	return 0
}

type procLeaf struct {
	hash []byte
	kind pb.EntryKind
}

// leafHashes streams the member's whole log.
func (m *procMember) leafHashes(token string) []procLeaf {
	m.t.Helper()
	st, err := m.client(token).Ledger.StreamEntries(ctx, &pb.StreamEntriesRequest{})
	if err != nil {
		m.t.Fatal(err)
	}
	var out []procLeaf
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			m.t.Fatalf("%s: stream entries: %v", m.id, err)
		}
		e := r.GetEntry()
		if e.GetLeafIndex() != int64(len(out)) {
			m.t.Fatalf("%s streamed entry %d at position %d", m.id, e.GetLeafIndex(), len(out))
		}
		if !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(e.GetLeafData()), e.GetLeafHash()) {
			m.t.Fatalf("%s: entry %d's leaf hash does not match its data", m.id, e.GetLeafIndex())
		}
		out = append(out, procLeaf{hash: e.GetLeafHash(), kind: e.GetKind()})
	}
}

// procLeader returns the member the live members name as leader.
func procLeader(t *testing.T, nodes []*procMember, token string) *procMember {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range nodes {
			s, err := m.status(token)
			if err != nil || s.GetLeaderId() == "" {
				continue
			}
			for _, l := range nodes {
				if l.id == s.GetLeaderId() {
					return l
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no leader:\n%s", procTails(nodes))
	return nil
}

// procMaxSize is the largest tree size a live member serves.
func procMaxSize(nodes []*procMember, token string) int64 {
	var n int64
	for _, m := range nodes {
		if cp, err := m.checkpoint(token); err == nil {
			n = max(n, cp.GetTreeSize())
		}
	}
	return n
}

// procConverged waits until every member reports three voters and serves
// the same checkpoint, and returns it.
func procConverged(t *testing.T, nodes []*procMember, token string, limit time.Duration) *pb.SignedCheckpoint {
	t.Helper()
	deadline := time.Now().Add(limit)
	var why string
	for time.Now().Before(deadline) {
		why = ""
		var cps []*pb.SignedCheckpoint
		for _, m := range nodes {
			s, err := m.status(token)
			if err != nil {
				why = fmt.Sprintf("%s: %v", m.id, err)
				break
			}
			voters := 0
			for _, mem := range s.GetMembers() {
				if mem.GetVoter() {
					voters++
				}
			}
			if voters != len(nodes) || s.GetLeaderId() == "" {
				why = fmt.Sprintf("%s: %d voters, leader %q", m.id, voters, s.GetLeaderId())
				break
			}
			cp, err := m.checkpoint(token)
			if err != nil {
				why = fmt.Sprintf("%s: %v", m.id, err)
				break
			}
			cps = append(cps, cp)
		}
		if why == "" {
			same := true
			for _, cp := range cps[1:] {
				same = same && cp.GetTreeSize() == cps[0].GetTreeSize() && bytes.Equal(cp.GetRootHash(), cps[0].GetRootHash())
			}
			if same {
				return cps[0]
			}
			why = "checkpoints differ"
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the cluster did not converge in %v (%s):\n%s", limit, why, procTails(nodes))
	return nil
}

// procTails returns the last lines of every member's log, for failures.
func procTails(nodes []*procMember) string {
	var b strings.Builder
	for _, m := range nodes {
		m.mu.Lock()
		s := ""
		if m.logs != nil {
			s = m.logs.String()
		}
		m.mu.Unlock()
		lines := strings.Split(strings.TrimSpace(s), "\n")
		fmt.Fprintf(&b, "--- %s (%d starts), last lines:\n%s\n", m.id, m.starts, strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
	return b.String()
}

// procAck is one acknowledged entry.
type procAck struct {
	index    int64
	leafHash []byte
}

// procLoad keeps the writers' acknowledgements.
type procLoad struct {
	mu struct {
		sync.Mutex
		acks   []procAck
		writes int
		// ackTimes and sentTimes are per acknowledged write.
		ackTimes, sentTimes []time.Time
		err                 error
	}
	cps *procCheckpoints
}

// write appends two synthetic segments at a time to encounter id until ctx
// ends. Each call is one logical write: the client draws its request id
// and keeps it across retries.
func (l *procLoad) write(ctx context.Context, enc pb.EncounterServiceClient, id string, w int) {
	for i := 0; ctx.Err() == nil; i++ {
		segs := []*pb.Segment{
			{SegmentId: fmt.Sprintf("w%d-%d-a", w, i), SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN, Text: "Synthetic question about the visit.", StartMs: int64(i * 2000), EndMs: int64(i*2000 + 900)},
			{SegmentId: fmt.Sprintf("w%d-%d-b", w, i), SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "Synthetic answer.", StartMs: int64(i*2000 + 1000), EndMs: int64(i*2000 + 1900)},
		}
		sent := time.Now()
		// The write is not cancelled by the end of the load: an
		// abandoned write would leave its outcome unknown.
		resp, err := enc.RecordSegments(context.WithoutCancel(ctx), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segs, Verify: true})
		now := time.Now()
		l.mu.Lock()
		if err != nil {
			l.mu.err = cmp.Or(l.mu.err, fmt.Errorf("writer %d, write %d: %w", w, i, err))
			l.mu.Unlock()
			return
		}
		r := resp.GetReceipt()
		var bad error
		for _, p := range r.GetProofs() {
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.GetLeafIndex()), uint64(p.GetTreeSize()), p.GetLeafHash(), p.GetHashes(), r.GetCheckpoint().GetRootHash()); err != nil {
				bad = fmt.Errorf("writer %d, write %d: receipt proof: %v", w, i, err)
			}
			l.mu.acks = append(l.mu.acks, procAck{index: p.GetLeafIndex(), leafHash: p.GetLeafHash()})
		}
		if len(r.GetProofs()) != len(segs) || !slices.Equal(r.GetLeafIndexes(), []int64{r.GetProofs()[0].GetLeafIndex(), r.GetProofs()[len(r.GetProofs())-1].GetLeafIndex()}) {
			bad = cmp.Or(bad, fmt.Errorf("writer %d, write %d: receipt %v", w, i, r.GetLeafIndexes()))
		}
		l.mu.writes++
		l.mu.ackTimes = append(l.mu.ackTimes, now)
		l.mu.sentTimes = append(l.mu.sentTimes, sent)
		l.mu.err = cmp.Or(l.mu.err, bad)
		cps := l.cps
		l.mu.Unlock()
		if cps != nil {
			cps.add(r.GetCheckpoint().GetNote())
		}
		if bad != nil {
			return
		}
	}
}

// spanning counts the acknowledged writes sent before t and acknowledged
// after it: the writes the client retried across a kill at t.
func (l *procLoad) spanning(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i, sent := range l.mu.sentTimes {
		if sent.Before(t) && l.mu.ackTimes[i].After(t) {
			n++
		}
	}
	return n
}

func (l *procLoad) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.writes
}

func (l *procLoad) writes() int { return l.acked() }

func (l *procLoad) all() []procAck {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mu.acks)
}

func (l *procLoad) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.err
}

// firstAckAfter waits for the first acknowledgement of a write sent after
// t0 (a write the killed leader cannot have committed) and returns how
// long after t0 it came, with the longest gap between consecutive
// acknowledgements from the last one before t0 to that one.
func (l *procLoad) firstAckAfter(t0 time.Time, limit time.Duration) (time.Duration, time.Duration, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		if l.mu.err != nil {
			err := l.mu.err
			l.mu.Unlock()
			return 0, 0, err
		}
		for i, sent := range l.mu.sentTimes {
			if sent.After(t0) {
				first := l.mu.ackTimes[i]
				var gap time.Duration
				prev := time.Time{}
				for _, a := range l.mu.ackTimes {
					if a.After(first) {
						break
					}
					if !prev.IsZero() && a.After(t0.Add(-time.Second)) {
						gap = max(gap, a.Sub(prev))
					}
					prev = a
				}
				l.mu.Unlock()
				return first.Sub(t0), gap, nil
			}
		}
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("no write acknowledged within %v of the kill", limit)
}

func procRound(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// procCheckpoints keeps the distinct signed checkpoints seen.
type procCheckpoints struct {
	mu    sync.Mutex
	notes map[string]bool
}

func newProcCheckpoints() *procCheckpoints { return &procCheckpoints{notes: map[string]bool{}} }

func (s *procCheckpoints) add(n []byte) {
	if len(n) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes[string(n)] = true
}

func (s *procCheckpoints) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.notes)
}

// sorted verifies every checkpoint's signature and returns them by size.
func (s *procCheckpoints) sorted(t *testing.T, v note.Verifier) []*log.Checkpoint {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*log.Checkpoint
	for n := range s.notes {
		cp, _, _, err := log.ParseCheckpoint([]byte(n), v.Name(), v)
		if err != nil {
			t.Fatalf("a checkpoint seen does not verify: %v", err)
		}
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b *log.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	return out
}

// procWatch polls every member's checkpoint into cps until ctx
// ends, and has the read cluster verify the latest checkpoint of any node
// against its shared trust state. It returns the first verification
// failure; a node down is not one.
func procWatch(ctx context.Context, nodes []*procMember, token string, readC *client.Cluster, cps *procCheckpoints) error {
	for ctx.Err() == nil {
		for _, m := range nodes {
			if cp, err := m.checkpoint(token); err == nil {
				cps.add(cp.GetNote())
			}
		}
		cp, err := readC.LatestCheckpoint(ctx)
		var ve *client.VerificationError
		switch {
		case errors.As(err, &ve):
			return err
		case err == nil:
			cps.add(cp.Note)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
