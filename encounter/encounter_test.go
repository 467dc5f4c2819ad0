package encounter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

var ctx = context.Background()

var alice = Caller{Tenant: "clinic-a", Actor: "dr.alice"}

func newService(t *testing.T) (*Service, *ledger.Appender) {
	t.Helper()
	kv := memstore.New()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "encounter.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(kv, ledger.Options{Origin: "encounter.test/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return New(l.Log, l, blob.New(kv, nil)), l
}

// A short synthetic consultation.
var visit = []Segment{
	{ID: "s1", Role: RoleClinician, Text: "What brings you in today?", StartMS: 0, EndMS: 2000},
	{ID: "s2", Role: RolePatient, Text: "I've had a sore throat for three days and a bit of a temperature.", StartMS: 2100, EndMS: 6000},
	{ID: "s3", Role: RoleClinician, Text: "Any trouble swallowing?", StartMS: 6100, EndMS: 7500},
	{ID: "s4", Role: RolePatient, Text: "No.", StartMS: 7600, EndMS: 8000},
	{ID: "s5", Role: RoleClinician, Text: "I think this is a viral throat infection, so take paracetamol and drink plenty of fluids.", StartMS: 8100, EndMS: 14000},
}

var draft = &Draft{Sections: []DraftSection{
	{Name: "Subjective", Sentences: []DraftSentence{
		{ID: "S1", Text: "Sore throat for 3 days with a temperature."},
		{ID: "S2", Text: "No difficulty swallowing."},
	}},
	{Name: "Assessment", Sentences: []DraftSentence{
		{ID: "A1", Text: "Likely viral throat infection."},
		{ID: "A2", Text: "Patient owns a purple bicycle."},
	}},
	{Name: "Plan", Sentences: []DraftSentence{{ID: "P1", Text: "Paracetamol and fluids."}}},
}}

func newVisit(t *testing.T, svc *Service) string {
	t.Helper()
	info, _, err := svc.Create(ctx, alice, "Sore throat", "mrn-synthetic-1")
	if err != nil {
		t.Fatal(err)
	}
	segs := append([]Segment(nil), visit...)
	if _, err := svc.RecordSegments(ctx, alice, info.ID, segs); err != nil {
		t.Fatal(err)
	}
	return info.ID
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var ie *ledger.InvalidError
	if !errors.As(err, &ie) || ie.Field != field {
		t.Fatalf("error %v, want an invalid %q", err, field)
	}
}

func TestCreateGetList(t *testing.T) {
	svc, _ := newService(t)
	var ids []string
	for i := range 5 {
		info, a, err := svc.Create(ctx, alice, fmt.Sprintf("visit %d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		if a.Checkpoint.Size <= a.First {
			t.Fatal("receipt checkpoint does not cover the entry")
		}
		if len(info.ID) != 30 || info.Count != 1 {
			t.Fatalf("info %+v", info)
		}
		ids = append(ids, info.ID)
	}
	got, err := svc.Get(ctx, alice, ids[2])
	if err != nil || got.Title != "visit 2" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	// Another tenant sees nothing.
	if _, err := svc.Get(ctx, Caller{Tenant: "clinic-b", Actor: "x"}, ids[2]); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("cross-tenant Get: %v", err)
	}
	var listed []string
	after := ""
	for {
		page, more, err := svc.List(ctx, alice, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			listed = append(listed, p.ID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if len(listed) != 5 {
		t.Fatalf("listed %d encounters in pages, want 5", len(listed))
	}
}

func TestRecordSegmentsValidation(t *testing.T) {
	svc, l := newService(t)
	id := newVisit(t, svc)
	size := l.Size()
	ok := Segment{ID: "x1", Role: RolePatient, Text: "fine", StartMS: 10, EndMS: 20}
	with := func(f func(g *Segment)) []Segment { g := ok; f(&g); return []Segment{ok, g} }
	cases := map[string]struct {
		segs  []Segment
		field string
	}{
		"empty":          {nil, "segments"},
		"backwards":      {with(func(g *Segment) { g.ID = "x2"; g.EndMS = 5 }), "segments[1].end_ms"},
		"no id":          {with(func(g *Segment) { g.ID = "" }), "segments[1].segment_id"},
		"dup in request": {with(func(g *Segment) {}), "segments[1].segment_id"},
		"dup recorded":   {with(func(g *Segment) { g.ID = "s3" }), "segments[1].segment_id"},
		"no role":        {with(func(g *Segment) { g.ID = "x2"; g.Role = "" }), "segments[1].speaker_role"},
		"no text":        {with(func(g *Segment) { g.ID = "x2"; g.Text = " " }), "segments[1].text"},
		"bad word":       {with(func(g *Segment) { g.ID = "x2"; g.Words = []Word{{Text: "w", StartMS: 0, EndMS: 30}} }), "segments[1].words[0]"},
		"confidence":     {with(func(g *Segment) { g.ID = "x2"; g.Confidence = 2 }), "segments[1].confidence"},
		"too many":       {make([]Segment, MaxSegmentsPerRequest+1), "segments"},
	}
	for name, c := range cases {
		_, err := svc.RecordSegments(ctx, alice, id, c.segs)
		var ie *ledger.InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%s: %v, want invalid %q", name, err, c.field)
		}
	}
	if _, err := svc.RecordSegments(ctx, alice, "enc_nope", []Segment{ok}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("unknown encounter: %v", err)
	}
	if l.Size() != size {
		t.Fatalf("rejected requests appended %d entries", l.Size()-size)
	}
}

func sentence(t *testing.T, n *Note, id string) *NoteSentence {
	t.Helper()
	s := n.sentence(id)
	if s == nil {
		t.Fatalf("no sentence %s in the note", id)
	}
	return s
}

func TestModelOutputIsAlignedAndProjected(t *testing.T) {
	svc, l := newService(t)
	id := newVisit(t, svc)
	rec, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "test-model", Version: "1"}, Note: draft, LatencyMS: 12})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Alignment != rec.Change+1 || rec.Appended.Checkpoint.Size <= rec.Alignment {
		t.Fatalf("recorded %+v", rec)
	}
	n := rec.Note
	if n.ModelOutput != rec.Change || n.Model.Name != "test-model" {
		t.Fatalf("note drafted by %d %v", n.ModelOutput, n.Model)
	}
	s1 := sentence(t, n, "S1")
	if s1.Unsupported() || s1.Evidence[0].SegmentID != "s2" {
		t.Fatalf("S1 evidence %+v, want segment s2 first", s1.Evidence)
	}
	if s1.Evidence[0].Text == "" || s1.Evidence[0].StartMS < 2100 || s1.Evidence[0].EndMS > 6000 {
		t.Fatalf("S1 evidence span %+v", s1.Evidence[0])
	}
	// The question and its short answer both support the negation.
	var segs []string
	for _, e := range sentence(t, n, "S2").Evidence {
		segs = append(segs, e.SegmentID)
	}
	if !contains(segs, "s3") || !contains(segs, "s4") {
		t.Fatalf("S2 evidence segments %v, want s3 and s4", segs)
	}
	if a2 := sentence(t, n, "A2"); !a2.Unsupported() || !a2.Aligned {
		t.Fatalf("A2 should be aligned and unsupported: %+v", a2)
	}
	// The alignment entry is in the log, with the method version.
	p, e, err := l.Payload(rec.Alignment)
	if err != nil || e.Leaf.Kind != ledger.KindAlignment || !bytes.Contains(p, []byte(`"method":"align-`)) {
		t.Fatalf("alignment entry: %v %s", err, p)
	}
	// A fresh service (an empty view) projects the same note.
	again, err := New(l.Log, l, nil).Note(ctx, alice, id)
	if err != nil || again.Hash != n.Hash || again.Head != n.Head {
		t.Fatalf("rebuilt projection differs: %v", err)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestEditReplaceAddDelete(t *testing.T) {
	svc, l := newService(t)
	id := newVisit(t, svc)
	if _, err := svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionReplace, SentenceID: "S1", Text: "x"}); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("edit before any note: %v", err)
	}
	if _, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: draft}); err != nil {
		t.Fatal(err)
	}
	rec, err := svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionReplace, SentenceID: "A2", Text: "Patient has had a temperature.", Reason: "correct unsupported claim"})
	if err != nil {
		t.Fatal(err)
	}
	a2 := sentence(t, rec.Note, "A2")
	if len(a2.Versions) != 2 || a2.Versions[0].Text != "Patient owns a purple bicycle." || a2.Versions[1].Reason != "correct unsupported claim" || a2.Versions[1].Actor != "dr.alice" {
		t.Fatalf("versions %+v", a2.Versions)
	}
	if a2.Unsupported() {
		t.Fatal("the corrected sentence has no evidence")
	}
	// Re-alignment covers only the edited sentence.
	p, _, err := l.Payload(rec.Alignment)
	if err != nil {
		t.Fatal(err)
	}
	var al Alignment
	if err := decodePayload(p, &al, func() int { return al.V }); err != nil || len(al.Sentences) != 1 || al.Sentences[0].SentenceID != "A2" || al.Sentences[0].Version != rec.Change {
		t.Fatalf("re-alignment %+v, %v", al, err)
	}
	// Other sentences keep their evidence.
	if sentence(t, rec.Note, "S1").Unsupported() {
		t.Fatal("S1 lost its evidence")
	}

	add, err := svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionAdd, Section: "Plan", After: "P1", Text: "Return if unable to swallow.", Reason: "safety-netting"})
	if err != nil {
		t.Fatal(err)
	}
	plan := add.Note.Sections[2]
	if add.SentenceID != "added-1" || len(plan.Sentences) != 2 || plan.Sentences[1].ID != "added-1" {
		t.Fatalf("added %q, plan %+v", add.SentenceID, plan)
	}
	del, err := svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionDelete, SentenceID: "S2"})
	if err != nil {
		t.Fatal(err)
	}
	if del.Note.sentence("S2") != nil || del.Alignment != -1 {
		t.Fatal("deleted sentence still in the note, or it was re-aligned")
	}
	for name, r := range map[string]EditRequest{
		"unknown sentence": {Action: ActionReplace, SentenceID: "S2", Text: "y"},
		"unknown after":    {Action: ActionAdd, Section: "Plan", After: "Z9", Text: "y"},
	} {
		if _, err := svc.RecordEdit(ctx, alice, id, r); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err = svc.RecordEdit(ctx, alice, id, EditRequest{Action: "rewrite", SentenceID: "S1"})
	wantField(t, err, "action")
	_, err = svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionReplace, SentenceID: "S1"})
	wantField(t, err, "text")
}

func TestSignRequiresCurrentHashAndResolution(t *testing.T) {
	svc, l := newCheckedService(t, fakeChecker)
	id := newVisit(t, svc)
	d := &Draft{Sections: []DraftSection{
		{Name: "Subjective", Sentences: []DraftSentence{{ID: "S1", Text: "Sore throat for 3 days with a temperature."}}},
		{Name: "Assessment", Sentences: []DraftSentence{{ID: "A1", Text: "Likely viral throat infection."}, {ID: "A2", Text: "Amoxicillin for a week."}}},
		{Name: "Plan", Sentences: []DraftSentence{{ID: "P1", Text: "Paracetamol and fluids."}}},
	}}
	rec, err := svc.RecordModelOutput(ctx, alice, id, ModelOutput{Model: Model{Name: "m"}, Note: d})
	if err != nil {
		t.Fatal(err)
	}
	if v := sentence(t, rec.Note, "A2").Verdict; v != VerdictUnmentioned {
		t.Fatalf("precondition: A2 is %q, want unmentioned (fakeChecker)", v)
	}
	h := rec.Note.Hash
	stale := h
	stale[0] ^= 1
	size := l.Size()
	if _, err := svc.Sign(ctx, alice, id, stale[:], nil, ""); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("stale hash: %v", err)
	}
	// An acknowledgement no longer stands in for a resolution.
	_, err = svc.Sign(ctx, alice, id, h[:], []string{"A2"}, "")
	var unresolved *UnresolvedError
	if !errors.As(err, &unresolved) || !errors.Is(err, ErrPrecondition) || len(unresolved.Sentences) != 1 || unresolved.Sentences[0].ID != "A2" {
		t.Fatalf("unresolved flagged sentence: %v", err)
	}
	if !strings.Contains(err.Error(), "1 flagged sentence is unresolved") {
		t.Errorf("the refusal does not name the count: %v", err)
	}
	_, err = svc.Sign(ctx, alice, id, h[:], []string{"nope"}, "")
	wantField(t, err, "acknowledged_sentence_ids[0]")
	if l.Size() != size {
		t.Fatalf("refused sign-offs wrote %d entries", l.Size()-size)
	}
	res, err := svc.ResolveSentence(ctx, alice, id, ResolveRequest{SentenceID: "A2", Verdict: VerdictUnmentioned, Action: ResolveConfirmed, Reason: "Stated at the door, after the recording stopped."})
	if err != nil {
		t.Fatal(err)
	}
	if res.Note.Hash != h {
		t.Fatal("a confirmation changed the note's text")
	}
	signed, err := svc.Sign(ctx, alice, id, h[:], []string{"A2"}, "Reviewed.")
	if err != nil {
		t.Fatal(err)
	}
	if !signed.Note.Signed || !sentence(t, signed.Note, "A2").Acknowledged || !sentence(t, signed.Note, "A2").Resolved || signed.Note.Hash != h {
		t.Fatal("sign-off not reflected in the note")
	}
	ed, err := svc.RecordEdit(ctx, alice, id, EditRequest{Action: ActionReplace, SentenceID: "P1", Text: "Paracetamol."})
	if err != nil {
		t.Fatal(err)
	}
	if ed.Note.Signed {
		t.Fatal("an edited note still counts as signed")
	}
}

func TestAudioBlob(t *testing.T) {
	svc, _ := newService(t)
	id := newVisit(t, svc)
	audio := bytes.Repeat([]byte("synthetic audio "), 20_000) // spans several chunks
	a, meta, err := svc.RecordAudio(ctx, alice, id, Audio{MediaType: "audio/wav", Codec: "pcm_s16le", SampleRateHz: 16000, Channels: 1, DurationMS: 14000}, bytes.NewReader(audio))
	if err != nil {
		t.Fatal(err)
	}
	b, got, err := svc.AudioBlob(ctx, alice, id, a.First)
	if err != nil || got.BlobSHA256 != meta.BlobSHA256 || b.Size() != int64(len(audio)) {
		t.Fatalf("AudioBlob: %v %+v", err, got)
	}
	part := make([]byte, 1000)
	if _, err := b.ReadAt(part, blob.ChunkSize-500); err != nil || !bytes.Equal(part, audio[blob.ChunkSize-500:blob.ChunkSize+500]) {
		t.Fatalf("ReadAt across a chunk boundary: %v", err)
	}
	whole, _ := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if !bytes.Equal(whole, audio) || b.Verify() != nil {
		t.Fatal("blob content differs")
	}
	if _, _, err := svc.RecordAudio(ctx, alice, id, Audio{MediaType: "audio/wav"}, bytes.NewReader(nil)); err == nil {
		t.Fatal("empty audio accepted")
	}
	_, segs, _ := svc.Transcript(ctx, alice, id)
	if len(segs) != 1 {
		t.Fatalf("%d audio recordings", len(segs))
	}
}

func TestAdHocAlignRecordsNothing(t *testing.T) {
	svc, l := newService(t)
	id := newVisit(t, svc)
	size := l.Size()
	res, err := svc.Align(ctx, alice, id, []align.Sentence{{Text: "Three days of sore throat."}, {ID: "x", Text: "Fractured left femur."}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].ID != "0" || len(res[0].Evidence) == 0 || res[0].Evidence[0].SegmentID != "s2" {
		t.Fatalf("results %+v", res)
	}
	if len(res[1].Evidence) != 0 {
		t.Fatalf("unsupported sentence got evidence %+v", res[1].Evidence)
	}
	if l.Size() != size {
		t.Fatal("ad hoc alignment appended entries")
	}
	_, err = svc.Align(ctx, alice, id, nil)
	wantField(t, err, "sentences")
	_, err = svc.Align(ctx, alice, id, []align.Sentence{{Text: " "}})
	wantField(t, err, "sentences[0].text")
}
