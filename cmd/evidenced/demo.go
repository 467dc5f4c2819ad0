package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/grpcapi/client"
)

// demoMarker records, in the data directory, that the demo was loaded.
const demoMarker = "demo.json"

// loadDemo loads the demo visit through the public gRPC API at grpcAddr
// (plaintext), once: see loadDemoOn.
func loadDemo(ctx context.Context, dataDir, grpcAddr string, logger *slog.Logger) (string, error) {
	c, err := client.Dial(grpcAddr, client.Options{})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return loadDemoOn(ctx, dataDir, c.Conn(), logger)
}

// loadDemoOn loads the demo visit through the public gRPC API on conn,
// once: on a restart it finds the marker and returns the encounter it
// loaded before. It calls as the demo tenant's pipeline (recording) and
// clinician (edits, sign-off), with their tokens from
// <dataDir>/demo-tokens.json; without that file (a server without
// authentication, in tests) it sends the development identity metadata.
func loadDemoOn(ctx context.Context, dataDir string, conn grpc.ClientConnInterface, logger *slog.Logger) (string, error) {
	marker := filepath.Join(dataDir, demoMarker)
	if b, err := os.ReadFile(marker); err == nil {
		var m struct {
			EncounterID string `json:"encounter_id"`
		}
		if json.Unmarshal(b, &m) == nil && m.EncounterID != "" {
			return m.EncounterID, nil
		}
	}
	tokens := readDemoTokens(dataDir)
	as := func(actor string) context.Context {
		role := auth.RolePipeline
		if !strings.HasPrefix(actor, "svc:") {
			role = auth.RoleClinician
		}
		if tok := tokens[role]; tok != "" {
			return client.WithMetadata(ctx, "authorization", "Bearer "+tok)
		}
		return client.WithMetadata(ctx, "x-evidence-tenant", "demo", "x-evidence-actor", actor)
	}
	id, err := demo.Record(conn, as, logger)
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(map[string]string{"encounter_id": id})
	if err := os.WriteFile(marker, b, 0o600); err != nil {
		return "", err
	}
	return id, nil
}
