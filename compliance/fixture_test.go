package compliance

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

var ctx = context.Background()

const origin = "compliance.test/log"

var (
	admin     = encounter.Caller{Tenant: "clinic-a", Actor: "admin.ann", Role: "admin"}
	auditor   = encounter.Caller{Tenant: "clinic-a", Actor: "audit.bob", Role: "auditor"}
	clinician = encounter.Caller{Tenant: "clinic-a", Actor: "dr.alice", Role: "clinician"}
	scribe    = encounter.Caller{Tenant: "clinic-a", Actor: "svc:scribe"}
)

// fakeIndex records DeleteEncounter calls.
type fakeIndex struct {
	mu      sync.Mutex
	deleted []string
}

func (x *fakeIndex) DeleteEncounter(tenant, enc string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deleted = append(x.deleted, tenant+"/"+enc)
	return nil
}

type fixture struct {
	kv     storage.Store
	log    *ledger.Appender
	key    *ledger.Key
	keyDir string
	sealer *envelope.Sealer
	enc    *encounter.Service
	blobs  *blob.Store
	svc    *Service
	index  *fakeIndex
	id     string // the visit
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{kv: memstore.New(), index: &fakeIndex{}}
	dir := t.TempDir()
	f.keyDir = dir
	var err error
	if f.key, err = ledger.LoadOrCreateKey(dir, origin); err != nil {
		t.Fatal(err)
	}
	if f.sealer, _, err = envelope.OpenLocal(f.kv, filepath.Join(dir, envelope.KeyringFile), true); err != nil {
		t.Fatal(err)
	}
	if f.log, err = ledger.Open(f.kv, ledger.Options{Origin: origin, Key: f.key, Sealer: f.sealer}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	f.blobs = blob.New(f.kv, f.sealer)
	keys := envelope.NewKeys(f.sealer, f.kv)
	f.enc = encounter.New(f.log.Log, f.log, f.blobs, encounter.WithAccessTrail(), encounter.WithChecker(fixtureChecker), encounter.WithKeys(keys))
	if f.svc, err = New(Config{Log: f.log.Log, Encounters: f.enc, Blobs: f.blobs, Keys: keys, Index: f.index}); err != nil {
		t.Fatal(err)
	}
	f.id = f.visit(t)
	return f
}

// Distinctive texts, to look for after shredding.
const (
	complaint = "I have had a zorblat cough for nine days and my left knee aches."
	plan      = "Start quintaxin twice daily and rest the knee."
)

var segments = []encounter.Segment{
	{ID: "g1", Role: encounter.RoleClinician, Text: "What brings you in today?", StartMS: 0, EndMS: 2000},
	{ID: "g2", Role: encounter.RolePatient, Text: complaint, StartMS: 2100, EndMS: 7000},
	{ID: "g3", Role: encounter.RoleClinician, Text: "Any fever?", StartMS: 7100, EndMS: 8000},
	{ID: "g4", Role: encounter.RolePatient, Text: "No.", StartMS: 8100, EndMS: 8500},
	{ID: "g5", Role: encounter.RoleClinician, Text: plan, StartMS: 8600, EndMS: 12000},
}

var draft = &encounter.Draft{Sections: []encounter.DraftSection{
	{Name: "Subjective", Sentences: []encounter.DraftSentence{
		{ID: "S1", Text: "Zorblat cough for 9 days."},
		{ID: "S2", Text: "No fever."},
		{ID: "S3", Text: "Owns a purple <bicycle> & a kite."},
	}},
	{Name: "Plan", Sentences: []encounter.DraftSentence{{ID: "P1", Text: "Quintaxin twice daily."}}},
}}

// visit records a complete visit: audio, transcript, a model's draft, a
// replacement, an addition, a deletion and a sign-off, then two reads.
func (f *fixture) visit(t *testing.T) string {
	t.Helper()
	info, _, err := f.enc.Create(ctx, scribe, "Cough and knee pain", "mrn-test-42")
	if err != nil {
		t.Fatal(err)
	}
	id := info.ID
	if _, _, err := f.enc.RecordAudio(ctx, encounter.Caller{Tenant: "clinic-a", Actor: "svc:recorder"}, id,
		encounter.Audio{MediaType: "audio/wav", Codec: "pcm_s16le", SampleRateHz: 16000, Channels: 1, DurationMS: 12000},
		bytes.NewReader(bytes.Repeat([]byte("RIFFaudio"), 20000))); err != nil {
		t.Fatal(err)
	}
	segs, err := f.enc.RecordSegments(ctx, encounter.Caller{Tenant: "clinic-a", Actor: "svc:asr"}, id, append([]encounter.Segment(nil), segments...))
	if err != nil {
		t.Fatal(err)
	}
	var inputs []int64
	for i := range segs.Leaves {
		inputs = append(inputs, segs.First+int64(i))
	}
	if _, err := f.enc.RecordModelOutput(ctx, scribe, id, encounter.ModelOutput{Model: encounter.Model{Name: "soap-writer", Version: "2.1"},
		Backend: "embedded", PromptSHA256: "a3f1d2c4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80",
		Parameters: map[string]string{"temperature": "0.2", "max_tokens": "800"}, Inputs: inputs, Note: draft, LatencyMS: 812}); err != nil {
		t.Fatal(err)
	}
	dr := encounter.Caller{Tenant: "clinic-a", Actor: "dr.alice"}
	for _, e := range []encounter.EditRequest{
		{Action: encounter.ActionReplace, SentenceID: "P1", Text: "Start quintaxin twice daily; rest the knee.", Reason: "added the knee"},
		{Action: encounter.ActionAdd, Section: "Subjective", After: "S1", Text: "Left knee aches <worse> on stairs & at night.", Reason: "missed by the draft"},
		{Action: encounter.ActionDelete, SentenceID: "S3", Reason: "not relevant"},
	} {
		if _, err := f.enc.RecordEdit(ctx, dr, id, e); err != nil {
			t.Fatal(err)
		}
	}
	// Two flagged sentences: the first confirmed, the second edited (and
	// its new text confirmed if it is flagged too).
	for _, e := range []encounter.EditRequest{
		{Action: encounter.ActionAdd, Section: "Subjective", After: "S2", Text: fixtureContradicted},
		{Action: encounter.ActionAdd, Section: "Subjective", After: "added-2", Text: fixtureUnmentioned},
	} {
		if _, err := f.enc.RecordEdit(ctx, dr, id, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.enc.ResolveSentence(ctx, dr, id, encounter.ResolveRequest{SentenceID: "added-2", Verdict: encounter.VerdictContradicted,
		Action: encounter.ResolveConfirmed, Reason: "The patient corrected this <later> & by phone."}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.enc.ResolveSentence(ctx, dr, id, encounter.ResolveRequest{SentenceID: "added-3", Verdict: encounter.VerdictUnmentioned,
		Action: encounter.ResolveEdited, Text: "Allergies not asked about.", Reason: "Not discussed in the visit."}); err != nil {
		t.Fatal(err)
	}
	n, err := f.enc.Note(ctx, dr, id)
	if err != nil {
		t.Fatal(err)
	}
	var ack []string
	for _, sec := range n.Sections {
		for _, s := range sec.Sentences {
			if s.Unsupported() {
				ack = append(ack, s.ID)
			}
			if s.NeedsResolution() {
				if _, err := f.enc.ResolveSentence(ctx, dr, id, encounter.ResolveRequest{SentenceID: s.ID, Verdict: s.Verdict,
					Action: encounter.ResolveConfirmed, Reason: "Checked against the recording."}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if _, err := f.enc.Sign(ctx, dr, id, n.Hash[:], ack, "Reviewed and signed."); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.enc.Transcript(encounter.WithOrigin(ctx, encounter.Origin{Role: "clinician", Channel: "/evidence.v1.EncounterService/GetTranscript", Remote: "10.1.2.3:4000"}), dr, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// Sentences the fixture's checker flags, whatever align decides.
const (
	fixtureContradicted = "Fever for two days."     // the patient said "No." (g4) to "Any fever?"
	fixtureUnmentioned  = "Allergic to penicillin." // nobody mentioned allergies
)

// fixtureChecker is align.Align with the verdicts of the two sentences
// above fixed: contradicted (a negation conflict with g4's "No") and
// unmentioned (major, the drug's name unsupported). The plumbing under
// test records and reports whatever the engine says.
func fixtureChecker(segs []align.Segment, sents []align.Sentence) ([]align.Result, error) {
	res, err := align.Align(segs, sents)
	if err != nil {
		return nil, err
	}
	for i, t := range sents {
		switch t.Text {
		case fixtureContradicted:
			res[i].Verdict, res[i].Severity, res[i].Unsupported = align.Contradicted, align.Major, nil
			res[i].Conflicts = []align.Conflict{{Kind: align.ConflictNegation, Claim: align.Range{Start: 0, End: 5}, SegmentID: "g4",
				CharStart: 0, CharEnd: 2, StartMS: 8100, EndMS: 8500, Words: "No"}}
		case fixtureUnmentioned:
			res[i].Verdict, res[i].Severity, res[i].Conflicts = align.Unmentioned, align.Major, nil
			res[i].Unsupported = []align.Range{{Start: 12, End: 22}}
		}
	}
	return res, nil
}
