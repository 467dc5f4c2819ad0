package main

import (
	"fmt"
	"log/slog"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// setupEncryption opens the keyring (keyringPath, or <dataDir>/keyring.json
// when empty), creating it with mode 0600 on first start, and returns the
// envelope sealer for everything the server stores: pass it as
// ledger.Options.Sealer and to blob.New, and make its Keys
// (envelope.NewKeys) for the encounter service and shredding. A keyring that group or others can
// read is refused. It must be in place from the first start: payloads
// stored before without it are not encrypted and will not open.
func setupEncryption(dataDir, keyringPath string, store storage.Store, logger *slog.Logger) (*envelope.Sealer, error) {
	if keyringPath == "" {
		keyringPath = envelope.DefaultKeyringPath(dataDir)
	}
	sealer, kr, err := envelope.OpenLocal(store, keyringPath, true)
	if err != nil {
		return nil, err
	}
	_, purges := store.(storage.Purger)
	logger.Info("encryption at rest", "keyring", keyringPath, "tenant_keys", len(kr.Keys()), "physical_key_erasure", purges)
	return sealer, nil
}

// newCompliance returns the ComplianceService backend: provenance reports,
// the access trail and crypto-shredding. idx may be nil (no search index);
// otherwise shredding removes the encounter's documents from it.
func newCompliance(log *ledger.Log, svc *encounter.Service, blobs *blob.Store, keys compliance.KeyShredder, idx compliance.IndexEraser) (*compliance.Service, error) {
	if !svc.AccessTrail() {
		return nil, fmt.Errorf("the encounter service must record accesses: create it with encounter.WithAccessTrail()")
	}
	cfg := compliance.Config{Log: log, Encounters: svc, Blobs: blobs, Keys: keys}
	if idx != nil {
		cfg.Index = idx
	}
	return compliance.New(cfg)
}
