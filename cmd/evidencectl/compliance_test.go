package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/client"
	"github.com/evidenceledger/evidence/ledger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

const ctlOrigin = "ctl.test/log"

// ctlServer is an evidenced-like server in this process, on a pebble data
// directory with a keyring, the access trail and ComplianceService.
type ctlServer struct {
	dataDir string
	addr    string
	key     *ledger.Key
	svc     *encounter.Service
	stop    func()
}

func startCtlServer(t *testing.T) *ctlServer {
	t.Helper()
	dir := t.TempDir()
	key, err := ledger.LoadOrCreateKey(dir, ctlOrigin)
	if err != nil {
		t.Fatal(err)
	}
	store, err := pebblestore.Open(filepath.Join(dir, "pebble"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sealer, _, err := envelope.OpenLocal(store, envelope.DefaultKeyringPath(dir), true)
	if err != nil {
		t.Fatal(err)
	}
	// The high-water checkpoint, as the server keeps it: verify --data-dir
	// holds the store to it.
	l, err := ledger.Open(store, ledger.Options{Origin: ctlOrigin, Key: key, Sealer: sealer,
		HighWater: ledger.HighWaterFile(filepath.Join(dir, ledger.HighWaterFileName))})
	if err != nil {
		t.Fatal(err)
	}
	blobs := blob.New(store, sealer)
	keys := envelope.NewKeys(sealer, store)
	svc := encounter.New(l.Log, l, blobs, encounter.WithAccessTrail(), encounter.WithKeys(keys))
	cs, err := compliance.New(compliance.Config{Log: l.Log, Encounters: svc, Blobs: blobs, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	authn := func(ctx context.Context, _ string) (auth.Identity, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		id := auth.Identity{Tenant: "clinic-a", Subject: "cli", Role: auth.RoleAdmin}
		if v := md.Get("x-evidence-actor"); len(v) == 1 {
			id.Subject = v[0]
		}
		return id, nil
	}
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: svc, Auth: authn, Compliance: cs})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	s := &ctlServer{dataDir: dir, addr: lis.Addr().String(), key: key, svc: svc}
	stopped := false
	s.stop = func() {
		if !stopped {
			stopped = true
			gs.Stop()
			l.Close()
			store.Close()
		}
	}
	t.Cleanup(s.stop)
	return s
}

func (s *ctlServer) visit(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	c := encounter.Caller{Tenant: "clinic-a", Actor: "svc:scribe"}
	info, _, err := s.svc.Create(ctx, c, "Cough", "mrn-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.RecordSegments(ctx, c, info.ID, []encounter.Segment{
		{ID: "s1", Role: encounter.RolePatient, Text: "I've had a wheezy cough for three days.", EndMS: 3000},
		{ID: "s2", Role: encounter.RoleClinician, Text: "Your chest is clear, so rest and drink fluids.", StartMS: 3000, EndMS: 8000},
	}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.svc.RecordModelOutput(ctx, c, info.ID, encounter.ModelOutput{Model: encounter.Model{Name: "m", Version: "1"},
		Note: &encounter.Draft{Sections: []encounter.DraftSection{{Name: "S", Sentences: []encounter.DraftSentence{
			{ID: "a", Text: "Wheezy cough for 3 days."}, {ID: "b", Text: "Chest clear; rest and fluids."}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.Sign(ctx, encounter.Caller{Tenant: "clinic-a", Actor: "dr.alice"}, info.ID, rec.Note.Hash[:], nil, "ok"); err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// ctl runs one command built by mk with args, returning its output.
func (s *ctlServer) ctl(t *testing.T, state string, mk func(*globals) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globals{stdout: &out, server: s.addr, actor: "audit.bob", state: state}
	for len(args) > 0 && strings.HasPrefix(args[0], "-g:") {
		switch args[0] {
		case "-g:json":
			g.json = true
		case "-g:key":
			g.verifierKey = s.key.VerifierKey()
		case "-g:badkey":
			other, _ := ledger.LoadOrCreateKey(t.TempDir(), ctlOrigin)
			g.verifierKey = other.VerifierKey()
		}
		args = args[1:]
	}
	c := mk(g)
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errb)
	err := c.ExecuteContext(context.Background())
	return out.String() + errb.String(), err
}

func TestComplianceCommands(t *testing.T) {
	s := startCtlServer(t)
	id := s.visit(t)
	state := filepath.Join(t.TempDir(), "state.json")
	report := filepath.Join(t.TempDir(), "report.json")

	// provenance: the JSON report is verified on receipt and written 0600.
	out, err := s.ctl(t, state, provenanceCmd, "--encounter", id, "--out", report)
	if err != nil || !strings.Contains(out, "report verified") {
		t.Fatalf("provenance: %v\n%s", err, out)
	}
	if st, err := os.Stat(report); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("report file: %v %v", st, err)
	}
	for format, want := range map[string]string{"fhir": `"resourceType": "Bundle"`, "html": "<!doctype html>"} {
		out, err := s.ctl(t, state, provenanceCmd, "--encounter", id, "--format", format)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("provenance --format %s: %v", format, err)
		}
	}
	if _, err := s.ctl(t, state, provenanceCmd, "--encounter", id, "--format", "pdf"); !errors.As(err, new(usageError)) {
		t.Fatalf("--format pdf: %v", err)
	}

	// verify-report: offline, with the pinned key; a tampered copy fails.
	out, err = s.ctl(t, state, verifyReportCmd, "-g:key", report)
	if err != nil || !strings.Contains(out, "VERIFIED") {
		t.Fatalf("verify-report: %v\n%s", err, out)
	}
	if _, err := s.ctl(t, state, verifyReportCmd, report); !errors.As(err, new(usageError)) {
		t.Fatalf("verify-report without a key: %v", err)
	}
	if _, err := s.ctl(t, state, verifyReportCmd, "-g:badkey", report); !errors.As(err, new(verifyFailed)) {
		t.Fatalf("verify-report with another log's key: %v", err)
	}
	data, _ := os.ReadFile(report)
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	os.WriteFile(tampered, bytes.Replace(data, []byte("Wheezy cough for 3 days."), []byte("Wheezy cough for 5 days."), 1), 0o600)
	out, err = s.ctl(t, state, verifyReportCmd, "-g:key", tampered)
	if !errors.As(err, new(verifyFailed)) || !strings.Contains(out, "PROBLEMS") {
		t.Fatalf("tampered report: %v\n%s", err, out)
	}

	// access list: table, csv, jsonl; by encounter and by user.
	out, err = s.ctl(t, state, accessCmd, "list", "--encounter", id, "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) < 2 || strings.Join(rows[0], ",") != strings.Join(accessColumns, ",") {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	last := rows[len(rows)-1]
	if last[4] != "audit.bob" || last[6] != "export" {
		t.Fatalf("last csv row %v", last)
	}
	out, err = s.ctl(t, state, accessCmd, "list", "--user", "audit.bob", "--format", "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("jsonl: %d lines (3 exports by audit.bob)\n%s", len(lines), out)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil || ev["action"] != "export" || ev["format"] != "json" {
		t.Fatalf("jsonl line %s: %v", lines[0], err)
	}
	out, err = s.ctl(t, state, accessCmd, "list", "--from", "2000-01-01", "--to", "2100-01-01")
	if err != nil || !strings.Contains(out, "LEAF") || !strings.Contains(out, "export (fhir)") {
		t.Fatalf("table: %v\n%s", err, out)
	}
	if _, err := s.ctl(t, state, accessCmd, "list", "--from", "yesterday"); !errors.As(err, new(usageError)) {
		t.Fatalf("--from yesterday: %v", err)
	}

	// verify --server: the whole log through the API.
	out, err = s.ctl(t, state, verifyCmd, "-g:key")
	if err != nil || !strings.Contains(out, "INTACT") || !strings.Contains(out, "payloads are not readable remotely") {
		t.Fatalf("verify --server: %v\n%s", err, out)
	}
	var rep compliance.LogReport
	out, err = s.ctl(t, state, verifyCmd, "-g:json", "-g:key")
	if err != nil || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep) != nil || rep.Leaves == 0 || len(rep.Problems) != 0 {
		t.Fatalf("verify --server --json: %v\n%s", err, out)
	}
	if _, err := s.ctl(t, filepath.Join(t.TempDir(), "s.json"), verifyCmd, "-g:badkey"); !errors.As(err, new(*client.VerificationError)) {
		t.Fatalf("verify --server with another log's key: %v", err)
	}

	// shred, then the note is gone and the trail is not.
	out, err = s.ctl(t, state, shredCmd, "--encounter", id, "--reason", "test erasure")
	if err != nil || !strings.Contains(out, "key erased from storage files  true") {
		t.Fatalf("shred: %v\n%s", err, out)
	}
	if _, err := s.ctl(t, state, provenanceCmd, "--encounter", id); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("provenance after shred: %v", err)
	}
	if out, err := s.ctl(t, state, accessCmd, "list", "--encounter", id); err != nil || !strings.Contains(out, "export") {
		t.Fatalf("the trail after shred: %v\n%s", err, out)
	}
	if _, err := s.ctl(t, state, verifyCmd, "-g:key"); err != nil {
		t.Fatalf("verify --server after shred: %v", err)
	}

	// verify --data-dir, server stopped: payloads opened with the keyring,
	// the shredded ones reported as redacted.
	s.stop()
	out, err = s.ctl(t, state, verifyCmd, "-g:json", "--data-dir", s.dataDir)
	if err != nil {
		t.Fatalf("verify --data-dir: %v\n%s", err, out)
	}
	var lrep ledger.VerifyReport
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &lrep); err != nil {
		t.Fatal(err)
	}
	if lrep.Redacted < 5 || lrep.Payloads == 0 || len(lrep.Problems) != 0 {
		t.Fatalf("verify --data-dir after shred: %+v", lrep)
	}
	// Without the keyring, the encrypted payloads do not check.
	os.Rename(envelope.DefaultKeyringPath(s.dataDir), filepath.Join(s.dataDir, "elsewhere.json"))
	if _, err := s.ctl(t, state, verifyCmd, "--data-dir", s.dataDir); !errors.As(err, new(verifyFailed)) {
		t.Fatalf("verify --data-dir without the keyring: %v", err)
	}
	if _, err := s.ctl(t, state, verifyCmd, "--data-dir", s.dataDir, "--keyring", filepath.Join(s.dataDir, "elsewhere.json")); err != nil {
		t.Fatalf("verify --data-dir --keyring: %v", err)
	}
}

// TestComplianceExitStatus runs the commands as the binary does: 0 when
// everything holds, 3 when verification fails, 2 for usage errors.
func TestComplianceExitStatus(t *testing.T) {
	s := startCtlServer(t)
	id := s.visit(t)
	state := filepath.Join(t.TempDir(), "state.json")
	report := filepath.Join(t.TempDir(), "report.json")
	key := s.key.VerifierKey()
	runCtl := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		return code, out.String() + errb.String()
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"provenance", "--server", s.addr, "--state", state, "--encounter", id, "--out", report}, 0},
		{[]string{"verify-report", report, "--verifier-key", key}, 0},
		{[]string{"verify-report", report}, exitUsage},
		{[]string{"verify", "--server", s.addr, "--state", state, "--verifier-key", key}, 0},
		{[]string{"access", "list", "--server", s.addr, "--state", state, "--format", "xml"}, exitUsage},
		{[]string{"shred", "--server", s.addr, "--state", state, "--encounter", id}, exitUsage},
	} {
		if code, out := runCtl(tc.args...); code != tc.want {
			t.Fatalf("%v: exit %d, want %d\n%s", tc.args, code, tc.want, out)
		}
	}
	data, _ := os.ReadFile(report)
	os.WriteFile(report, bytes.Replace(data, []byte(`"actor": "dr.alice"`), []byte(`"actor": "dr.eve"`), 1), 0o600)
	if code, out := runCtl("verify-report", report, "--verifier-key", key); code != exitVerify || !strings.Contains(out, "signoffs[0]") {
		t.Fatalf("tampered report: exit %d\n%s", code, out)
	}
}
