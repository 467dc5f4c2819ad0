package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/pipeline"
)

func TestNoteGenerate(t *testing.T) {
	kv := memstore.New()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "ctl.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(kv, ledger.Options{Origin: "ctl.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	svc := encounter.New(l.Log, l, blob.New(kv, nil))
	caller := encounter.Caller{Tenant: "clinic-a", Actor: "dr.a"}
	info, _, err := svc.Create(context.Background(), caller, "Cough", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RecordSegments(context.Background(), caller, info.ID, []encounter.Segment{
		{ID: "s1", Role: encounter.RolePatient, Text: "I've had a cough for three days.", EndMS: 3000},
		{ID: "s2", Role: encounter.RoleClinician, Text: "Your chest is clear. Rest and drink plenty of fluids.", StartMS: 3000, EndMS: 8000},
	}); err != nil {
		t.Fatal(err)
	}
	authn := func(ctx context.Context, _ string) (auth.Identity, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		return auth.Identity{Tenant: md.Get("x-evidence-tenant")[0], Subject: "cli", Role: auth.RoleAdmin}, nil
	}
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: svc, Auth: authn, Inference: pipeline.New(svc, nil, pipeline.Options{})})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()

	exec := func(args ...string) (string, error) {
		var out bytes.Buffer
		g := &globals{stdout: &out, server: lis.Addr().String(), tenant: "clinic-a", state: filepath.Join(t.TempDir(), "state.json")}
		c := noteGenerateCmd(g)
		c.SetArgs(args)
		c.SetOut(&out)
		c.SetErr(&out)
		if len(args) > 0 && args[0] == "--json" {
			g.json = true
			c.SetArgs(args[1:])
		}
		err := c.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := exec("--encounter", info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "backend    embedded") || !strings.Contains(out, "model      soapgen") || !strings.Contains(out, "(verified)") || !strings.Contains(out, "Subjective") {
		t.Errorf("table:\n%s", out)
	}
	out, err = exec("--json", "--encounter", info.ID, "--backend", "embedded", "--model", "soapgen")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		ModelOutputIndex string `json:"model_output_index"`
		Backend          string `json:"backend"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Backend != "embedded" || resp.ModelOutputIndex == "" {
		t.Errorf("json %s: %v", out, err)
	}
	if _, err := exec("--encounter", info.ID, "--backend", "gpt"); err == nil || !strings.Contains(err.Error(), "--backend") {
		t.Errorf("bad backend: %v", err)
	}
	if _, err := exec("--encounter", info.ID, "--backend", "openai"); err == nil || !strings.Contains(err.Error(), "FailedPrecondition") {
		t.Errorf("unconfigured backend: %v", err)
	}
}
