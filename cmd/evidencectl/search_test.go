package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// searchServer is a server in this process with SearchService, on a
// pebble data directory laid out as evidenced lays it out.
type searchServer struct {
	dataDir, addr string
	stop          func()
}

func startSearchServer(t *testing.T) *searchServer {
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
	l, err := ledger.Open(store, ledger.Options{Origin: ctlOrigin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	svc := encounter.New(l.Log, l, blob.New(store, nil))
	ctx := context.Background()
	c := encounter.Caller{Tenant: "clinic-a", Actor: "svc:asr"}
	info, _, err := svc.Create(ctx, c, "Chest pain", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RecordSegments(ctx, c, info.ID, []encounter.Segment{
		{ID: "s1", Role: encounter.RoleClinician, Text: "Any chest pain?", EndMS: 2000},
		{ID: "s2", Role: encounter.RolePatient, Text: "Yes, chest pain when I climb the stairs.", StartMS: 2000, EndMS: 6500},
		{ID: "s3", Role: encounter.RolePatient, Text: "No fever.", StartMS: 6500, EndMS: 7000},
	}); err != nil {
		t.Fatal(err)
	}
	x, err := index.Open(filepath.Join(dir, "index"), l, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	authn := func(ctx context.Context, _ string) (auth.Identity, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		id := auth.Identity{Tenant: "clinic-a", Subject: "cli", Role: auth.RoleAdmin}
		if v := md.Get("x-evidence-tenant"); len(v) == 1 {
			id.Tenant = v[0]
		}
		return id, nil
	}
	gs, _ := grpcapi.NewServer(grpcapi.Config{Log: l.Log, Encounters: svc, Auth: authn, Search: x})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	s := &searchServer{dataDir: dir, addr: lis.Addr().String()}
	stopped := false
	s.stop = func() {
		if !stopped {
			stopped = true
			gs.Stop()
			x.Close()
			l.Close()
			store.Close()
		}
	}
	t.Cleanup(s.stop)
	return s
}

// ctl runs evidencectl with args and returns its exit status and output.
func ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"--state", filepath.Join(t.TempDir(), "state.json")}, args...)
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSearchCommand(t *testing.T) {
	s := startSearchServer(t)
	code, out, errs := ctl(t, "--server", s.addr, "search", "chest pain", "--speaker", "patient", "--facets")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"[chest] [pain] when I climb the stairs", "patient", "0:02-0:06", "1 of 1 hits", "speaker:", "patient 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = ctl(t, "--server", s.addr, "--json", "search", "", "--order", "oldest", "--page-size", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Hits []struct {
			LeafIndex string `json:"leaf_index"`
			Text      string `json:"text"`
		} `json:"hits"`
		NextPageToken string `json:"next_page_token"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(res.Hits) != 2 || res.Hits[0].Text != "Any chest pain?" || res.NextPageToken == "" {
		t.Fatalf("page 1: %s", out)
	}
	code, out, _ = ctl(t, "--server", s.addr, "--json", "search", "", "--order", "oldest", "--page-size", "2", "--page-token", res.NextPageToken)
	if code != 0 || !strings.Contains(out, "No fever.") || strings.Contains(out, "next_page_token") {
		t.Fatalf("page 2 (exit %d): %s", code, out)
	}
	// Another tenant sees nothing.
	code, out, _ = ctl(t, "--server", s.addr, "--tenant", "clinic-b", "search", "chest")
	if code != 0 || !strings.Contains(out, "0 of 0 hits") {
		t.Fatalf("clinic-b (exit %d): %s", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"search"}, exitUsage, "one QUERY"},
		{[]string{"search", "a", "b"}, exitUsage, "one QUERY"},
		{[]string{"search", "chest", "--speaker", "doctor"}, exitUsage, "--speaker"},
		{[]string{"search", "chest", "--kind", "audio"}, exitUsage, "--kind"},
		{[]string{"search", "chest", "--from", "yesterday"}, exitUsage, "--from"},
		{[]string{"search", "chest", "--order", "best"}, exitUsage, "--order"},
		{[]string{"search", `"chest`}, exitError, "InvalidArgument"},
		{[]string{"search", "chest", "--page-token", "nope"}, exitError, "page_token"},
	} {
		code, _, errs := ctl(t, append([]string{"--server", s.addr}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}

func TestIndexRebuildCommand(t *testing.T) {
	s := startSearchServer(t)
	// The storage engine's lock refuses a rebuild while the server runs.
	if code, _, errs := ctl(t, "index", "rebuild", "--data-dir", s.dataDir); code != exitError || !strings.Contains(errs, "server still running") {
		t.Fatalf("rebuild with the server up: exit %d, %q", code, errs)
	}
	s.stop()
	code, out, errs := ctl(t, "--json", "index", "rebuild", "--data-dir", s.dataDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Entries   int64 `json:"entries"`
		Documents int64 `json:"documents"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Entries != 4 || res.Documents != 3 {
		t.Fatalf("%s (%v)", out, err)
	}
	if !strings.Contains(errs, "100% 4/4 entries") {
		t.Errorf("no progress bar on stderr: %q", errs)
	}
	// The rebuilt index is in place and answers.
	store, err := pebblestore.Open(filepath.Join(s.dataDir, "pebble"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, _ := ledger.LoadOrCreateKey(s.dataDir, ctlOrigin)
	l, err := ledger.Open(store, ledger.Options{Origin: ctlOrigin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	x, err := index.Open(filepath.Join(s.dataDir, "index"), l, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	r, err := x.Search(context.Background(), index.Request{Tenant: "clinic-a", Query: "stairs"})
	if err != nil || r.Total != 1 || x.Applied() != 4 {
		t.Fatalf("after the rebuild: %+v, %v (applied %d)", r, err, x.Applied())
	}
	if code, _, errs := ctl(t, "index", "rebuild", "--data-dir", t.TempDir()); code != exitError || !strings.Contains(errs, "no log in") {
		t.Fatalf("rebuild of an empty directory: exit %d, %q", code, errs)
	}
}

func TestSummariesRebuildCommand(t *testing.T) {
	s := startSearchServer(t)
	if code, _, errs := ctl(t, "summaries", "rebuild", "--data-dir", s.dataDir); code != exitError || !strings.Contains(errs, "server still running") {
		t.Fatalf("rebuild with the server up: exit %d, %q", code, errs)
	}
	s.stop()
	code, out, errs := ctl(t, "--json", "summaries", "rebuild", "--data-dir", s.dataDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Entries int64 `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Entries != 4 {
		t.Fatalf("%s (%v)", out, err)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "summaries")); err != nil {
		t.Fatalf("no rebuilt summaries: %v", err)
	}
	if code, _, errs := ctl(t, "summaries", "rebuild", "--data-dir", t.TempDir()); code != exitError || !strings.Contains(errs, "no log in") {
		t.Fatalf("rebuild of an empty directory: exit %d, %q", code, errs)
	}
}
