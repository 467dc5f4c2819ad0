package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// TestMountWeb mounts the page beside the gateway and the tlog tiles on
// the server's guarded mux, as run does (a conflicting pattern would
// panic), and serves the demo recording through it to a clinician.
func TestMountWeb(t *testing.T) {
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.localhost/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	svc := encounter.New(l.Log, l, blob.New(store, nil))
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	data := t.TempDir()
	tok, _, err := auth.CreateToken(filepath.Join(data, auth.TokensFileName), auth.Identity{Tenant: "demo", Role: auth.RoleClinician, Subject: "dr.test"}, auth.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := setupSecurity(data, defaultSecurity(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux, err := sec.httpHandler(httpServices{log: l.Log, encounter: svc, registry: prometheus.NewRegistry(), self: conn})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(mux)
	defer hs.Close()

	v, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	caller := encounter.Caller{Tenant: "demo", Actor: "test"}
	info, _, err := svc.Create(context.Background(), caller, v.Title, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.RecordAudio(context.Background(), caller, info.ID, encounter.Audio{MediaType: demo.MediaType, Codec: "opus"}, bytes.NewReader(v.Audio.Data)); err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequest("GET", hs.URL+"/api/v1/encounters/"+info.ID+"/audio", nil)
	req.Header.Set("Range", "bytes=0-3")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != "OggS" || resp.Header.Get("Content-Type") != demo.MediaType {
		t.Errorf("audio: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, path := range []string{"/", "/encounters/" + info.ID} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "Evidence Ledger") {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}
