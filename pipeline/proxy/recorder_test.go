package proxy

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/pipeline/internal/testenv"
)

var ctx = context.Background()

func id(b byte) [16]byte { return [16]byte{b} }

func TestSpoolReopen(t *testing.T) {
	dir := t.TempDir()
	s, pending, err := openSpool(dir)
	if err != nil || len(pending) != 0 {
		t.Fatal(pending, err)
	}
	var segs []uint64
	for i := byte(1); i <= 3; i++ {
		seg, err := s.add(frameCall, id(i), []byte(`{"n":`+string('0'+i)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, seg)
	}
	if err := s.ack(segs[1], id(2)); err != nil {
		t.Fatal(err)
	}
	if s.pending() != 2 {
		t.Fatalf("pending %d", s.pending())
	}
	s.close()
	// A torn frame at the end, as a crash mid-write leaves it.
	f, _ := os.OpenFile(filepath.Join(dir, segmentName(segs[0])), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0, 0, 0, 40, 1, 2, 3})
	f.Close()

	s, pending, err = openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].id != id(1) || pending[1].id != id(3) || string(pending[1].body) != `{"n":3}` {
		t.Fatalf("pending %+v", pending)
	}
	// Acknowledging them lets the old segment go.
	for _, p := range pending {
		s.ack(p.seg, p.id)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	if len(files) != 1 {
		t.Errorf("%d segments left, want only the active one", len(files))
	}
	s.close()
	_, pending, _ = openSpool(dir)
	if len(pending) != 0 {
		t.Errorf("%d pending after all were acknowledged", len(pending))
	}
}

func TestSpoolStopsAtCorruption(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := openSpool(dir)
	s.add(frameCall, id(1), []byte("{}"))
	s.add(frameCall, id(2), []byte("{}"))
	seg := s.mu.active
	s.close()
	path := filepath.Join(dir, segmentName(seg))
	data, _ := os.ReadFile(path)
	data[len(data)-1] ^= 0xff // the second frame's last byte
	os.WriteFile(path, data, 0o600)
	_, pending, _ := openSpool(dir)
	if len(pending) != 1 || pending[0].id != id(1) {
		t.Errorf("pending %+v", pending)
	}
}

// ledgerOn opens a log and an encounter service on kv.
func ledgerOn(t *testing.T, kv *memstore.Store, keyDir string, opts ...encounter.Option) (*encounter.Service, *ledger.Appender) {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(keyDir, testenv.Origin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(kv, ledger.Options{Origin: testenv.Origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return encounter.New(l.Log, l, blob.New(kv, nil), opts...), l
}

func call(enc string, note bool) Call {
	o := encounter.ModelOutput{Model: encounter.Model{Name: "m"}, Backend: BackendHTTP, Parameters: map[string]string{"http_status": "200"}}
	if note {
		o.Note = &encounter.Draft{Sections: []encounter.DraftSection{{Name: "Plan", Sentences: []encounter.DraftSentence{{ID: "P1", Text: "Rest and fluids."}}}}}
	}
	return Call{Caller: testenv.Alice, Encounter: enc, Output: o}
}

func outputs(t *testing.T, l *ledger.Appender, enc string) []testenv.Output {
	return testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, enc)
}

// TestCrashedCallsAreRecordedAtRestart: calls the ledger could not take
// stay in the spool and are recorded, once, by the next recorder.
func TestCrashedCallsAreRecordedAtRestart(t *testing.T) {
	kv, keyDir, dir := memstore.New(), t.TempDir(), t.TempDir()
	svc, l := ledgerOn(t, kv, keyDir)
	visit, _ := testenv.Visit(t, svc, testenv.Alice)
	l.Close() // the ledger fails under the recorder

	r, err := NewRecorder(svc, l.Log, Options{Dir: dir, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Call{call(visit, false), call(visit, true), call("", false)} {
		tk, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		tk.Finish(c)
	}
	r.Close(ctx)
	if got := testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, visit); len(got) != 0 {
		t.Fatalf("%d recorded into a closed log", len(got))
	}

	svc2, l2 := ledgerOn(t, kv, keyDir)
	defer l2.Close()
	r2, err := NewRecorder(svc2, l2.Log, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	outs := outputs(t, l2, visit)
	if len(outs) != 2 || outs[0].Note != nil || outs[1].Note == nil {
		t.Fatalf("after restart: %+v", outs)
	}
	for _, o := range outs {
		testenv.VerifyIncluded(t, l2.Log, o.Index)
	}
	// A third start finds nothing left.
	r3, _ := NewRecorder(svc2, l2.Log, Options{Dir: dir})
	r3.Close(ctx)
	if n := len(outputs(t, l2, visit)); n != 2 {
		t.Errorf("%d outputs after a third start", n)
	}
}

// TestReplayDoesNotDuplicate: a call whose append was durable but whose
// acknowledgement was lost is not appended again.
// TestReplayDoesNotDuplicate: a call in the spool whose append was durable
// although it was reported failed (the outcome of a cluster write that
// timed out, say) is found by its call id at the next start and not
// recorded again.
func TestReplayDoesNotDuplicate(t *testing.T) {
	svc, l := testenv.New(t)
	visit, _ := testenv.Visit(t, svc, testenv.Alice)
	dir := t.TempDir()
	r, _ := NewRecorder(svc, l.Log, Options{Dir: dir})
	for _, c := range []Call{call(visit, false), call(visit, true)} {
		tk, _ := r.Begin()
		tk.Finish(c)
	}
	r.Close(ctx)
	outs := outputs(t, l, visit)
	if len(outs) != 2 {
		t.Fatalf("%d outputs", len(outs))
	}
	if _, pending, _ := openSpool(dir); len(pending) != 0 {
		t.Fatalf("%d recorded calls left in the spool", len(pending))
	}
	// Spool both calls as failed ones, as if their appends had been
	// reported failed.
	s, _, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		var cid [16]byte
		if _, err := hex.Decode(cid[:], []byte(o.Parameters[paramCallID])); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(spooledCall{Tenant: testenv.Alice.Tenant, Actor: testenv.Alice.Actor, Encounter: visit, From: 0, Output: *o.ModelOutput})
		if _, err := s.add(frameCall, cid, body); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	r2, _ := NewRecorder(svc, l.Log, Options{Dir: dir})
	r2.Close(ctx)
	outs = outputs(t, l, visit)
	if len(outs) != 2 {
		t.Fatalf("%d outputs after replay, want 2", len(outs))
	}
	if outs[0].Parameters[paramCallID] == outs[1].Parameters[paramCallID] {
		t.Error("call ids repeat")
	}
	// The replayed calls were settled, not left failing in the spool.
	if _, pending, _ := openSpool(dir); len(pending) != 0 {
		t.Errorf("%d calls still pending", len(pending))
	}
}

func TestPrepareMakesAnyOutputRecordable(t *testing.T) {
	svc, l := testenv.New(t)
	visit, _ := testenv.Visit(t, svc, testenv.Alice)
	o := encounter.ModelOutput{Model: encounter.Model{Name: "bad\x00name\n" + string(make([]byte, 300)), Version: "\xff"},
		Parameters: map[string]string{"": "x", "k\x01": string(make([]byte, 5000))}, Error: "e\ne", LatencyMS: -4}
	for i := range 100 {
		o.Parameters[hex.EncodeToString([]byte{byte(i)})] = "v"
	}
	r, _ := NewRecorder(svc, l.Log, Options{})
	tk, _ := r.Begin()
	tk.Finish(Call{Caller: testenv.Alice, Encounter: visit, Output: o})
	r.Close(ctx)
	outs := outputs(t, l, visit)
	if len(outs) != 1 {
		t.Fatal("not recorded")
	}
	// The service itself accepts it too (what the direct append bypasses).
	got := *outs[0].ModelOutput
	got.Error = "x"
	if _, err := svc.RecordModelOutput(ctx, testenv.Alice, visit, got); err != nil {
		t.Errorf("the encounter service rejects the prepared output: %v", err)
	}
}

// TestSpoolIsSealed: with a Sealer, no byte of a spooled call's content is
// in the spool's files, and the calls are still recorded after a restart;
// a spool whose calls do not open (another keyring) keeps them.
func TestSpoolIsSealed(t *testing.T) {
	kv, keyDir, dir := memstore.New(), t.TempDir(), t.TempDir()
	sealer, _, err := envelope.OpenLocal(kv, filepath.Join(keyDir, "keyring.json"), true)
	if err != nil {
		t.Fatal(err)
	}
	keys := encounter.WithKeys(envelope.NewKeys(sealer, kv))
	svc, l := ledgerOn(t, kv, keyDir, keys)
	visit, _ := testenv.Visit(t, svc, testenv.Alice)
	l.Close() // the calls stay in the spool

	r, err := NewRecorder(svc, l.Log, Options{Dir: dir, Retries: 1, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Synthetic marker sentence nine three seven."
	c := call(visit, true)
	c.Output.Note.Sections[0].Sentences[0].Text = secret
	tk, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tk.Finish(c)
	r.Close(ctx)
	files, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	found := false
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("Synthetic marker")) || bytes.Contains(b, []byte(`"output"`)) {
			t.Fatalf("%s holds the call in plaintext", f)
		}
		frames, _ := readSegment(f)
		for _, fr := range frames {
			found = found || fr.kind == frameSealedCall
		}
	}
	if !found {
		t.Fatal("no sealed call in the spool")
	}

	// Without the right key, the call does not open and stays spooled.
	other, _, _ := envelope.OpenLocal(memstore.New(), filepath.Join(t.TempDir(), "keyring.json"), true)
	svc2, l2 := ledgerOn(t, kv, keyDir, keys)
	defer l2.Close()
	r2, _ := NewRecorder(svc2, l2.Log, Options{Dir: dir, Sealer: other})
	r2.Close(ctx)
	if n := len(outputs(t, l2, visit)); n != 0 {
		t.Fatalf("%d outputs recorded from calls sealed under another key", n)
	}
	r3, _ := NewRecorder(svc2, l2.Log, Options{Dir: dir, Sealer: sealer})
	r3.Close(ctx)
	outs := outputs(t, l2, visit)
	if len(outs) != 1 || outs[0].Note == nil {
		t.Fatalf("after restart with the keyring: %+v", outs)
	}
}
