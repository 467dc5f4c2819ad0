package compliance

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// MaxReasonBytes caps a shredding reason.
const MaxReasonBytes = 512

// ShredResult reports what Shred destroyed.
type ShredResult struct {
	// Redaction is the redaction entry appended to the encounter's chain.
	Redaction *ledger.Appended
	// Payloads and Blobs count the payload records and recordings
	// destroyed by this call (0 when a previous call already did).
	Payloads int
	Blobs    int
	// KeyPurged reports that the storage engine physically erased the
	// wrapped data key (storage.Purger), not only deleted it.
	KeyPurged bool
	// IndexCleared reports that the full-text index lost the encounter's
	// documents (false when no index is configured).
	IndexCleared bool
	// Already reports that the encounter's key had been shredded before.
	Already bool
}

// Shred crypto-shreds an encounter, in an order that is safe to repeat
// after a failure at any step:
//
//  1. its data key is destroyed (KeyShredder, envelope.Keys): from here on
//     nothing can be sealed for the encounter, and everything sealed under
//     the key, in any copy of any file, is unreadable;
//  2. the service's cached state of it is dropped;
//  3. its payload records, except access and redaction entries (sealed
//     under the tenant's audit key), become tombstones
//     (encounter.Service.DestroyPayloads);
//  4. its recordings are deleted;
//  5. its documents leave the full-text index;
//  6. a redaction entry (reason, counts; no PHI) is appended to its chain
//     (encounter.Service.RecordRedaction).
//
// Leaves, proofs and checkpoints are untouched: Verify still passes and
// counts the payloads as redacted. Reads of the encounter then fail with an
// error wrapping ledger.ErrRedacted. Role: admin.
func (s *Service) Shred(ctx context.Context, c encounter.Caller, encounterID, reason string) (*ShredResult, error) {
	if err := allow(c, "shredding an encounter", rolesShred...); err != nil {
		return nil, err
	}
	if err := ledger.CheckID("encounter_id", encounterID, ledger.MaxEncounterLen); err != nil {
		return nil, err
	}
	if encounterID == encounter.AuditChain {
		return nil, &ledger.InvalidError{Field: "encounter_id", Reason: "the audit chain holds no PHI and cannot be shredded"}
	}
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	if s.cfg.Keys == nil {
		return nil, fmt.Errorf("%w: shredding needs encryption at rest (a keyring)", ErrNotConfigured)
	}
	enc := s.cfg.Encounters
	idx, err := s.cfg.Log.EncounterIndexes(c.Tenant, encounterID)
	if err != nil {
		return nil, err
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("%w: encounter %s", ledger.ErrNotFound, encounterID)
	}
	kr, err := s.cfg.Keys.Shred(ctx, c.Tenant, encounterID)
	if err != nil {
		return nil, err
	}
	res := &ShredResult{KeyPurged: kr.Purged, Already: kr.Already}
	enc.Forget(c, encounterID)
	if res.Payloads, err = enc.DestroyPayloads(ctx, c, encounterID); err != nil {
		return nil, err
	}
	if res.Blobs, err = s.cfg.Blobs.DeleteScope(blob.Scope{Tenant: c.Tenant, Encounter: encounterID}); err != nil {
		return nil, err
	}
	if s.cfg.Index != nil {
		if err := s.cfg.Index.DeleteEncounter(c.Tenant, encounterID); err != nil {
			return nil, fmt.Errorf("compliance: remove the encounter from the index: %w", err)
		}
		res.IndexCleared = true
	}
	last := idx[len(idx)-1]
	res.Redaction, err = enc.RecordRedaction(ctx, c, encounterID, encounter.Redaction{Reason: reason, Payloads: res.Payloads, Blobs: res.Blobs,
		Through: last, KeyPurged: res.KeyPurged, IndexCleared: res.IndexCleared})
	if err != nil {
		return nil, err
	}
	// Entries appended between reading the chain and destroying the key
	// were sealed under it: they are unreadable, and tombstoned here too.
	if n, err := enc.DestroyPayloads(ctx, c, encounterID); err == nil {
		res.Payloads += n
	}
	return res, nil
}

func checkReason(reason string) error {
	switch {
	case strings.TrimSpace(reason) == "":
		return &ledger.InvalidError{Field: "reason", Reason: "must not be empty: say why the encounter is shredded (no PHI)"}
	case len(reason) > MaxReasonBytes:
		return &ledger.InvalidError{Field: "reason", Reason: fmt.Sprintf("longer than %d bytes", MaxReasonBytes)}
	case !utf8.ValidString(reason):
		return &ledger.InvalidError{Field: "reason", Reason: "is not valid UTF-8"}
	}
	for i, r := range reason {
		if r < ' ' || r == 0x7f {
			return &ledger.InvalidError{Field: "reason", Reason: fmt.Sprintf("has a control character at byte %d", i)}
		}
	}
	return nil
}
