package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// The end-to-end tests build the real binaries and run them on loopback.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "evidence-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, cmd := range []string{"evidenced", "evidencectl"} {
		out, err := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, cmd), "../"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", cmd, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running evidenced process.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	logs     *syncBuffer
	done     chan struct{}
	// tokens are bearer tokens of the demo tenant by role, and of an
	// operator auditor ("operator"): made with evidencectl token create
	// before the server starts, or the server's demo tokens with --demo.
	tokens map[string]string
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// e2eTokens are the tokens minted per data directory, kept across
// restarts of the server on it.
var e2eTokens = map[string]map[string]string{}

// mintTokens makes a token per role for the demo tenant, and an operator
// auditor's, with evidencectl token create, as an operator would.
func mintTokens(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	if m, ok := e2eTokens[dataDir]; ok {
		return m
	}
	m := map[string]string{}
	for _, who := range [][3]string{
		{"pipeline", "demo", "svc:e2e"}, {"clinician", "demo", "dr.e2e"}, {"auditor", "demo", "auditor.e2e"},
		{"admin", "demo", "admin.e2e"}, {"operator", "*", "ops.e2e"},
	} {
		role := who[0]
		if role == "operator" {
			role = "auditor"
		}
		cmd := exec.Command(filepath.Join(binDir, "evidencectl"), "token", "create", "--data-dir", dataDir, "--tenant", who[1], "--role", role, "--subject", who[2])
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("token create: %v", err)
		}
		m[who[0]] = strings.TrimSpace(string(out))
	}
	e2eTokens[dataDir] = m
	return m
}

func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	var tokens map[string]string
	if !slices.Contains(extra, "--demo") {
		tokens = mintTokens(t, dataDir)
	}
	args := append([]string{"--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "debug"}, extra...)
	cmd := exec.Command(filepath.Join(binDir, "evidenced"), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: new(syncBuffer), done: make(chan struct{}), tokens: tokens}
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			var m struct {
				Msg      string `json:"msg"`
				GRPCAddr string `json:"grpc_addr"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "serving" {
				s.grpcAddr, s.httpAddr = m.GRPCAddr, m.HTTPAddr
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start:\n%s", s.logs)
	}
	t.Cleanup(func() { s.stop() })
	if s.tokens == nil {
		b, err := os.ReadFile(filepath.Join(dataDir, "demo-tokens.json"))
		if err != nil {
			t.Fatalf("--demo wrote no demo-tokens.json: %v", err)
		}
		if err := json.Unmarshal(b, &s.tokens); err != nil || len(s.tokens) != 4 {
			t.Fatalf("demo-tokens.json: %v %s", err, b)
		}
		if fi, err := os.Stat(filepath.Join(dataDir, "demo-tokens.json")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("demo-tokens.json mode %v", fi.Mode())
		}
	}
	return s
}

// stop sends SIGTERM and waits for a graceful exit.
func (s *server) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.done
	if err := s.cmd.Wait(); err != nil {
		s.t.Errorf("server exited with %v:\n%s", err, s.logs)
	}
}

// client dials s as the given role (a key of s.tokens).
func (s *server) client(t *testing.T, state, role string) *client.Client {
	t.Helper()
	c, err := client.Dial(s.grpcAddr, client.Options{StatePath: state, Token: s.tokens[role]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ctl runs evidencectl against s as the demo tenant's auditor and
// returns stdout and the exit code.
func (s *server) ctl(t *testing.T, state string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "evidencectl"), append([]string{"--server", s.grpcAddr, "--state", state, "--token", s.tokens["auditor"]}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Logf("evidencectl %v: exit %d: %s", args, code, errb.String())
	}
	return out.String(), code
}

var ctx = context.Background()

// recordVisit writes a small synthetic visit through the API.
func recordVisit(t *testing.T, c *client.Client) string {
	t.Helper()
	enc, err := c.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "synthetic visit"})
	if err != nil {
		t.Fatal(err)
	}
	id := enc.GetEncounter().GetEncounterId()
	var segs []*pb.Segment
	for i, txt := range []string{"Any chest pain?", "No, but I've been short of breath for two days.", "Take the inhaler twice a day."} {
		role := pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN
		if i == 1 {
			role = pb.SpeakerRole_SPEAKER_ROLE_PATIENT
		}
		segs = append(segs, &pb.Segment{SegmentId: fmt.Sprintf("g%d", i), SpeakerRole: role, Text: txt, StartMs: int64(i * 3000), EndMs: int64(i*3000 + 2500)})
	}
	rs, err := c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: segs, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rs.GetReceipt()
	if len(r.GetLeafIndexes()) != 3 || len(r.GetProofs()) != 3 {
		t.Fatalf("receipt %v", r)
	}
	// A verified write: each proof checks against the receipt's checkpoint.
	for _, p := range r.GetProofs() {
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.GetLeafIndex()), uint64(p.GetTreeSize()), p.GetLeafHash(), p.GetHashes(), r.GetCheckpoint().GetRootHash()); err != nil {
			t.Fatalf("receipt proof: %v", err)
		}
	}
	_, err = c.Encounters.RecordModelOutput(ctx, &pb.RecordModelOutputRequest{EncounterId: id, Model: &pb.ModelRef{Name: "test", Version: "1"},
		Note: &pb.DraftNote{Sections: []*pb.DraftSection{{Name: "Subjective", Sentences: []*pb.DraftSentence{
			{SentenceId: "S1", Text: "Short of breath for 2 days."}, {SentenceId: "S2", Text: "Denies chest pain."}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestServerEndToEnd(t *testing.T) {
	data := t.TempDir()
	state := filepath.Join(t.TempDir(), "state.json")
	s := startServer(t, data)
	c := s.client(t, state, "pipeline")
	reader := s.client(t, "", "clinician")
	auditor := s.client(t, "", "auditor")
	id := recordVisit(t, c)

	t.Run("reflection and health", func(t *testing.T) {
		conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health: %v %v", h, err)
		}
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, svc := range resp.GetListServicesResponse().GetService() {
			names = append(names, svc.GetName())
		}
		for _, want := range []string{"evidence.v1.LedgerService", "evidence.v1.EncounterService", "grpc.health.v1.Health"} {
			if !strings.Contains(strings.Join(names, " "), want) {
				t.Errorf("reflection lists %v, missing %s", names, want)
			}
		}
	})

	t.Run("tlog client verifies every leaf from tiles", func(t *testing.T) {
		verifyTiles(t, s, c)
	})

	t.Run("roles", func(t *testing.T) {
		// The pipeline records but does not read PHI; nobody gets in
		// without a token the server issued.
		if _, err := c.Encounters.GetNote(ctx, &pb.GetNoteRequest{EncounterId: id}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("pipeline reads a note: %v", err)
		}
		anon := s.client(t, "", "nobody")
		if _, err := anon.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("no token: %v", err)
		}
		if _, err := anon.Ledger.GetLogInfo(client.WithMetadata(ctx, "x-evidence-tenant", "demo"), &pb.GetLogInfoRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("development headers are still believed: %v", err)
		}
	})

	t.Run("cli proofs verify independently", func(t *testing.T) {
		out, code := s.ctl(t, state, "log", "info", "--json")
		if code != 0 {
			t.Fatalf("log info exit %d", code)
		}
		var info struct {
			Origin, VerifierKey string
			TreeSize            int64  `json:"tree_size"`
			RootHash            string `json:"root_hash"`
		}
		json.Unmarshal([]byte(out), &info)
		root, _ := base64.StdEncoding.DecodeString(info.RootHash)
		if info.TreeSize < 5 || len(root) != 32 {
			t.Fatalf("log info %s", out)
		}
		for i := int64(0); i < info.TreeSize; i++ {
			out, code := s.ctl(t, state, "log", "proof", "--index", fmt.Sprint(i), "--size", fmt.Sprint(info.TreeSize), "--json")
			if code != 0 {
				t.Fatalf("log proof exit %d", code)
			}
			var p struct {
				Index    int64    `json:"index"`
				TreeSize int64    `json:"tree_size"`
				LeafHash string   `json:"leaf_hash"`
				Hashes   []string `json:"hashes"`
			}
			json.Unmarshal([]byte(out), &p)
			lh, _ := base64.StdEncoding.DecodeString(p.LeafHash)
			var hs [][]byte
			for _, h := range p.Hashes {
				b, _ := base64.StdEncoding.DecodeString(h)
				hs = append(hs, b)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(info.TreeSize), lh, hs, root); err != nil {
				t.Fatalf("CLI proof for %d does not verify: %v", i, err)
			}
			// The leaf data from the CLI hashes to the proved leaf hash.
			out, code = s.ctl(t, state, "log", "entry", "--index", fmt.Sprint(i), "--json")
			var e struct {
				LeafData string `json:"leaf_data"`
			}
			json.Unmarshal([]byte(out), &e)
			data, _ := base64.StdEncoding.DecodeString(e.LeafData)
			if code != 0 || !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(data), lh) {
				t.Fatalf("entry %d leaf data does not match its proof", i)
			}
		}
		out, code = s.ctl(t, state, "log", "consistency", "--from", "2", "--to", fmt.Sprint(info.TreeSize), "--json")
		if code != 0 {
			t.Fatal("consistency exit", code)
		}
		var cons struct {
			Hashes []string `json:"hashes"`
		}
		json.Unmarshal([]byte(out), &cons)
		var hs [][]byte
		for _, h := range cons.Hashes {
			b, _ := base64.StdEncoding.DecodeString(h)
			hs = append(hs, b)
		}
		root2, err := c.Ledger.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{LeafIndex: 0, TreeSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		// Root of size 2 from its two leaves.
		e1, _ := c.Entry(ctx, 1)
		old := rfc6962.DefaultHasher.HashChildren(root2.GetProof().GetLeafHash(), e1.Entry.GetLeafHash())
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 2, uint64(info.TreeSize), hs, old, root); err != nil {
			t.Fatalf("CLI consistency proof: %v", err)
		}
		if out, code := s.ctl(t, state, "note", "show", "--encounter", id, "--json"); code != 0 || !strings.Contains(out, `"sentence_id":"S1"`) {
			t.Fatalf("note show: exit %d %s", code, out)
		}
		if out, code := s.ctl(t, state, "encounter", "list", "--json"); code != 0 || !strings.Contains(out, id) {
			t.Fatalf("encounter list: exit %d %s", code, out)
		}
	})

	t.Run("cli fails loudly on a forked log", func(t *testing.T) {
		// A state file claiming another history at the same origin.
		forged := filepath.Join(t.TempDir(), "forged.json")
		b, _ := os.ReadFile(state)
		var st client.State
		json.Unmarshal(b, &st)
		st.RootHash = bytes.Repeat([]byte{7}, 32)
		b, _ = json.Marshal(st)
		os.WriteFile(forged, b, 0o600)
		if _, code := s.ctl(t, forged, "log", "info"); code != exitVerifyCode {
			t.Fatalf("forked history: exit %d, want %d", code, exitVerifyCode)
		}
		// A pinned key of another log.
		_, vkey, _ := note.GenerateKey(nil, "evidence.localhost/log")
		if _, code := s.ctl(t, filepath.Join(t.TempDir(), "s.json"), "--verifier-key", vkey, "log", "info"); code != exitVerifyCode {
			t.Fatalf("wrong verifier key: exit %d", code)
		}
	})

	t.Run("json gateway", func(t *testing.T) {
		base := "http://" + s.httpAddr + "/api/v1"
		clin := s.tokens["clinician"]
		b, err := getAs(base+"/encounters/"+id+"/note", clin)
		if err != nil {
			t.Fatal(err)
		}
		var n struct {
			Note struct {
				EncounterID string `json:"encounter_id"`
				Sections    []struct {
					Sentences []struct {
						SentenceID string `json:"sentence_id"`
						Evidence   []struct {
							SegmentID  string `json:"segment_id"`
							Utf16Start int    `json:"utf16_start"`
						} `json:"evidence"`
					} `json:"sentences"`
				} `json:"sections"`
			} `json:"note"`
		}
		if err := json.Unmarshal(b, &n); err != nil || n.Note.EncounterID != id || n.Note.Sections[0].Sentences[0].SentenceID != "S1" || len(n.Note.Sections[0].Sentences[0].Evidence) == 0 {
			t.Fatalf("note over JSON: %v %s", err, b)
		}
		resp, err := do("GET", base+"/entries/abc", clin, "")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"field":"index"`) {
			t.Fatalf("bad index: %d %s", resp.StatusCode, body)
		}
		resp, err = do("POST", base+"/encounters/"+id+"/edits", clin, `{"action":"EDIT_ACTION_REPLACE","sentence_id":"S2","text":"Denies chest pain today.","reason":"clarify"}`)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"edit_index"`) {
			t.Fatalf("edit over JSON: %d %s", resp.StatusCode, body)
		}
		resp, err = do("POST", base+"/encounters/"+id+"/align", clin, `{"sentences":[{"text":"Breathless for two days."}]}`)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"segment_id":"g1"`) || !strings.Contains(string(body), `"method":"align-`) {
			t.Fatalf("ad hoc align over JSON: %d %s", resp.StatusCode, body)
		}
		// Search, once the index has caught up with the log.
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, err := getAs(base+"/search?q=breath&encounter="+id, clin)
			if err == nil && strings.Contains(string(b), `"segment_id":"g1"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("search over JSON: %v %s", err, b)
			}
			time.Sleep(200 * time.Millisecond)
		}
		resp, err = do("POST", base+"/encounters/"+id+"/edits", clin, `{"action":`)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("malformed JSON body: %d", resp.StatusCode)
		}
	})

	t.Run("rejected requests write nothing", func(t *testing.T) {
		before, _ := c.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
		_, err := c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
			{SegmentId: "ok1", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "fine", StartMs: 1, EndMs: 2},
			{SegmentId: "bad", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: "backwards", StartMs: 5, EndMs: 2}}})
		wantViolation(t, err, codes.InvalidArgument, "segments[1].end_ms")
		_, err = c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{{SegmentId: "x", Text: "no role"}}})
		wantViolation(t, err, codes.InvalidArgument, "segments[0].speaker_role")
		_, err = c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: "enc_missing", Segments: []*pb.Segment{{SegmentId: "x", SpeakerRole: 1, Text: "t", EndMs: 1}}})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("unknown encounter: %v", err)
		}
		_, err = c.Ledger.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{LeafIndex: 0, TreeSize: 1 << 40})
		if status.Code(err) != codes.OutOfRange {
			t.Fatalf("proof beyond the tree: %v", err)
		}
		_, err = c.Ledger.GetEntry(ctx, &pb.GetEntryRequest{LeafIndex: -1})
		wantViolation(t, err, codes.InvalidArgument, "leaf_index")
		big := make([]*pb.Segment, 1001)
		_, err = c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: big})
		wantViolation(t, err, codes.ResourceExhausted, "segments")
		_, err = reader.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{PageToken: "!!"})
		wantViolation(t, err, codes.InvalidArgument, "page_token")
		after, _ := c.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
		if after.GetTreeSize() != before.GetTreeSize() {
			t.Fatalf("rejected requests grew the log from %d to %d", before.GetTreeSize(), after.GetTreeSize())
		}
	})

	t.Run("entry feed follows new entries", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		info, _ := c.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
		stream, err := auditor.Ledger.StreamEntries(cctx, &pb.StreamEntriesRequest{StartIndex: info.GetTreeSize() - 1, Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil || first.GetEntry().GetLeafIndex() != info.GetTreeSize()-1 {
			t.Fatalf("first streamed entry: %v %v", first, err)
		}
		go c.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "followed"})
		next, err := stream.Recv()
		if err != nil || next.GetEntry().GetLeafIndex() != info.GetTreeSize() || next.GetEntry().GetKind() != pb.EntryKind_ENTRY_KIND_ENCOUNTER {
			t.Fatalf("followed entry: %v %v", next, err)
		}
	})

	// Restart: everything is kept.
	note1, _ := reader.Encounters.GetNote(ctx, &pb.GetNoteRequest{EncounterId: id})
	info1, _ := c.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	s.stop()
	s2 := startServer(t, data)
	c2 := s2.client(t, state, "clinician")
	info2, err := c2.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil || info2.GetTreeSize() != info1.GetTreeSize() || !bytes.Equal(info2.GetRootHash(), info1.GetRootHash()) || info2.GetVerifierKey() != info1.GetVerifierKey() {
		t.Fatalf("after restart %v, before %v (%v)", info2, info1, err)
	}
	note2, err := c2.Encounters.GetNote(ctx, &pb.GetNoteRequest{EncounterId: id})
	if err != nil || !bytes.Equal(note2.GetNote().GetNoteHash(), note1.GetNote().GetNoteHash()) {
		t.Fatalf("note after restart differs: %v", err)
	}
	if _, err := c2.LatestCheckpoint(ctx); err != nil {
		t.Fatalf("checkpoint after restart is not consistent with the trusted one: %v", err)
	}

	// Offline verification of the stopped server's data directory.
	s2.stop()
	if out, code := s2.ctl(t, state, "verify", "--data-dir", data); code != 0 || !strings.Contains(out, "INTACT") {
		t.Fatalf("verify intact log: exit %d\n%s", code, out)
	}
	st, err := pebblestore.Open(filepath.Join(data, "pebble"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64([]byte{'l'}, 2)
	leaf, err := st.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf[len(leaf)-1] ^= 1
	var b storage.Batch
	b.Set(key, leaf)
	if err := st.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, code := s2.ctl(t, state, "verify", "--data-dir", data, "--json")
	if code != exitVerifyCode || !strings.Contains(out, `"check":"payload","index":2`) {
		t.Fatalf("verify tampered log: exit %d\n%s", code, out)
	}
}

const exitVerifyCode = 3

func wantViolation(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("got %v, want %v on %s", err, code, field)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Fatalf("%v: no field violation for %q", err, field)
}

// httpTiles is a tlog.TileReader over the server's C2SP tile API.
type httpTiles struct {
	base string
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		// Go's sumdb paths carry the height; C2SP's do not.
		path := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		b, err := get(h.base + "/" + path)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func get(url string) ([]byte, error) { return getAs(url, "") }

// do sends a request with a bearer token (none if empty) and a JSON body
// (none if empty).
func do(method, url, token, body string) (*http.Response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return http.DefaultClient.Do(req)
}

func getAs(url, token string) ([]byte, error) {
	resp, err := do("GET", url, token, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// verifyTiles checks every leaf's inclusion using only the HTTP tlog-tiles
// API and Go's sumdb/tlog, against the signed checkpoint.
func verifyTiles(t *testing.T, s *server, c *client.Client) {
	base := "http://" + s.httpAddr
	signed, err := get(base + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := c.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	v, err := note.NewVerifier(info.GetVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	var size int64
	fmt.Sscan(lines[1], &size)
	rootb, _ := base64.StdEncoding.DecodeString(lines[2])
	var root tlog.Hash
	copy(root[:], rootb)
	thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, httpTiles{base})
	for bundle := int64(0); bundle*256 < size; bundle++ {
		w := min(256, size-bundle*256)
		path := fmt.Sprintf("%s/tile/entries/%03d", base, bundle)
		if w < 256 {
			path += fmt.Sprintf(".p/%d", w)
		}
		data, err := getAs(path, s.tokens["auditor"])
		if err != nil {
			t.Fatal(err)
		}
		for i := bundle * 256; len(data) > 0; i++ {
			l := int(binary.BigEndian.Uint16(data))
			leaf := data[2 : 2+l]
			data = data[2+l:]
			p, err := tlog.ProveRecord(size, i, thr)
			if err != nil {
				t.Fatalf("prove %d from tiles: %v", i, err)
			}
			if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(leaf)); err != nil {
				t.Fatalf("leaf %d: %v", i, err)
			}
		}
	}
}

func TestDemoLoadsOnceAndSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "--demo", "--storage", "badger")
	c := s.client(t, "", "clinician")
	dctx := ctx
	var list *pb.ListEncountersResponse
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		list, err = c.Encounters.ListEncounters(dctx, &pb.ListEncountersRequest{})
		if err == nil && len(list.GetEncounters()) == 1 && strings.Contains(s.logs.String(), "demo ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not loaded: %v\n%s", err, s.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	id := list.GetEncounters()[0].GetEncounterId()
	// The demo leaves its note unsigned, with the fixture draft's two
	// errors flagged for the clinician.
	n, err := c.Encounters.GetNote(dctx, &pb.GetNoteRequest{EncounterId: id})
	if err != nil || n.GetNote().GetSigned() || len(n.GetNote().GetSections()) != 4 {
		t.Fatalf("demo note: %v", err)
	}
	flags := map[pb.Verdict]int{}
	for _, sec := range n.GetNote().GetSections() {
		for _, s := range sec.GetSentences() {
			flags[s.GetVerdict()]++
		}
	}
	if flags[pb.Verdict_VERDICT_CONTRADICTED] < 1 || flags[pb.Verdict_VERDICT_UNMENTIONED] < 1 {
		t.Errorf("the demo note's verdicts: %v; want a contradicted and an unmentioned sentence", flags)
	}
	tr, err := c.Encounters.GetTranscript(dctx, &pb.GetTranscriptRequest{EncounterId: id})
	if err != nil || len(tr.GetAudio()) != 1 || len(tr.GetSegments()) < 50 {
		t.Fatalf("demo transcript: %v", err)
	}
	verifyTiles(t, s, c)
	s.stop()
	s2 := startServer(t, data, "--demo", "--storage", "badger")
	if s2.tokens["clinician"] != s.tokens["clinician"] {
		t.Fatal("the demo tokens changed on restart")
	}
	c2 := s2.client(t, "", "clinician")
	time.Sleep(time.Second)
	list2, err := c2.Encounters.ListEncounters(dctx, &pb.ListEncountersRequest{})
	if err != nil || len(list2.GetEncounters()) != 1 {
		t.Fatalf("after restart: %d encounters, %v", len(list2.GetEncounters()), err)
	}
	if !strings.Contains(s2.logs.String(), id) {
		t.Fatalf("restart did not report the existing demo encounter")
	}
}
