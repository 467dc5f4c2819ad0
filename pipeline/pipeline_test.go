package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/pipeline"
	"github.com/evidenceledger/evidence/pipeline/internal/testenv"
	"github.com/evidenceledger/evidence/pipeline/soapgen"
)

var ctx = context.Background()

func TestEmbeddedRecordsCallAndAlignment(t *testing.T) {
	svc, l := testenv.New(t)
	id, segs := testenv.Visit(t, svc, testenv.Alice)
	p := pipeline.New(svc, nil, pipeline.Options{})
	res, err := p.GenerateNote(ctx, testenv.Alice, id, pipeline.NoteRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backend != pipeline.BackendEmbedded || res.Recorded.Alignment < 0 {
		t.Fatalf("backend %q, alignment %d", res.Backend, res.Recorded.Alignment)
	}
	outs := testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, id)
	if len(outs) != 1 {
		t.Fatalf("%d model outputs", len(outs))
	}
	o := outs[0]
	if o.Index != res.Recorded.Change || o.Model.Name != soapgen.Name || o.Model.Version != soapgen.Version || o.Backend != "embedded" {
		t.Errorf("recorded %+v", o.ModelOutput)
	}
	if fmt.Sprint(o.Inputs) != fmt.Sprint(segs) {
		t.Errorf("inputs %v, want the segment leaves %v", o.Inputs, segs)
	}
	if o.Note == nil || o.Error != "" || o.Leaf.Actor != testenv.Alice.Actor {
		t.Errorf("note %v, error %q, actor %q", o.Note, o.Error, o.Leaf.Actor)
	}
	for _, x := range res.Recorded.Indexes {
		testenv.VerifyIncluded(t, l.Log, x)
	}
	supported := 0
	for _, sec := range res.Recorded.Note.Sections {
		for _, s := range sec.Sentences {
			if !s.Unsupported() {
				supported++
			}
		}
	}
	if supported == 0 || res.Recorded.Note.ModelOutput != o.Index {
		t.Errorf("%d supported sentences; note drafted by %d", supported, res.Recorded.Note.ModelOutput)
	}

	// Deterministic: a second call drafts the same note.
	res2, err := p.GenerateNote(ctx, testenv.Alice, id, pipeline.NoteRequest{Backend: pipeline.BackendEmbedded, Model: soapgen.Name})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Recorded.Note.Hash != res.Recorded.Note.Hash {
		t.Error("the embedded generator drafted a different note from the same transcript")
	}
}

// stub is a Generator that returns what it is told, or blocks.
type stub struct {
	out   pipeline.Output
	err   error
	block bool
}

func (s stub) Generate(ctx context.Context, _ pipeline.Request) (pipeline.Output, error) {
	if s.block {
		<-ctx.Done()
		return s.out, ctx.Err()
	}
	return s.out, s.err
}

func TestFailedCallIsRecorded(t *testing.T) {
	svc, l := testenv.New(t)
	id, _ := testenv.Visit(t, svc, testenv.Alice)
	before, _ := svc.Note(ctx, testenv.Alice, id)
	gen := stub{out: pipeline.Output{Model: encounter.Model{Name: "llama-3"}, Parameters: map[string]string{"temperature": "0"}},
		err: fmt.Errorf("%w: HTTP 503", pipeline.ErrUnavailable)}
	p := pipeline.New(svc, map[string]pipeline.Generator{pipeline.BackendOpenAI: gen}, pipeline.Options{})
	_, err := p.GenerateNote(ctx, testenv.Alice, id, pipeline.NoteRequest{Backend: pipeline.BackendOpenAI})
	var ce *pipeline.CallError
	if !errors.As(err, &ce) || !errors.Is(err, pipeline.ErrUnavailable) || ce.Index < 0 {
		t.Fatalf("err %v", err)
	}
	outs := testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, id)
	if len(outs) != 1 || outs[0].Index != ce.Index {
		t.Fatalf("recorded %d outputs", len(outs))
	}
	o := outs[0]
	if o.Note != nil || !strings.Contains(o.Error, "HTTP 503") || o.Model.Name != "llama-3" || o.Parameters["temperature"] != "0" || o.Backend != "openai" {
		t.Errorf("recorded %+v", o.ModelOutput)
	}
	testenv.VerifyIncluded(t, l.Log, o.Index)
	after, _ := svc.Note(ctx, testenv.Alice, id)
	if after.Hash != before.Hash || after.ModelOutput != -1 {
		t.Error("a failed call changed the note")
	}
}

func TestTimedOutAndCancelledCallsAreRecorded(t *testing.T) {
	svc, l := testenv.New(t)
	id, _ := testenv.Visit(t, svc, testenv.Alice)
	p := pipeline.New(svc, map[string]pipeline.Generator{pipeline.BackendKServe: stub{block: true}}, pipeline.Options{Timeout: 30 * time.Millisecond})
	_, err := p.GenerateNote(ctx, testenv.Alice, id, pipeline.NoteRequest{Backend: pipeline.BackendKServe, Model: "m"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err = pipeline.New(svc, map[string]pipeline.Generator{pipeline.BackendKServe: stub{block: true}}, pipeline.Options{}).
		GenerateNote(cctx, testenv.Alice, id, pipeline.NoteRequest{Backend: pipeline.BackendKServe})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	outs := testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, id)
	if len(outs) != 2 {
		t.Fatalf("%d outputs recorded, want 2", len(outs))
	}
	if !strings.Contains(outs[0].Error, "took longer than") || outs[0].Model.Name != "m" || outs[0].LatencyMS < 25 {
		t.Errorf("timed-out call recorded as %+v", outs[0].ModelOutput)
	}
	if !strings.Contains(outs[1].Error, "canceled") || outs[1].Model.Name != "kserve" {
		t.Errorf("cancelled call recorded as %+v", outs[1].ModelOutput)
	}
}

func TestRejectedRequestsRecordNothing(t *testing.T) {
	svc, l := testenv.New(t)
	id, _ := testenv.Visit(t, svc, testenv.Alice)
	empty, _, err := svc.Create(ctx, testenv.Alice, "No transcript yet", "")
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline.New(svc, nil, pipeline.Options{})
	size := l.Size()
	for _, tc := range []struct {
		enc     string
		req     pipeline.NoteRequest
		field   string
		wantErr error
	}{
		{id, pipeline.NoteRequest{Backend: "gpt"}, "backend", nil},
		{id, pipeline.NoteRequest{Model: "bad\nname"}, "model", nil},
		{id, pipeline.NoteRequest{Model: "gpt-4o"}, "model", nil}, // the embedded backend serves only soapgen
		{id, pipeline.NoteRequest{Backend: pipeline.BackendOpenAI}, "", pipeline.ErrNotConfigured},
		{empty.ID, pipeline.NoteRequest{}, "", encounter.ErrPrecondition},
		{"enc_missing", pipeline.NoteRequest{}, "", ledger.ErrNotFound},
	} {
		_, err := p.GenerateNote(ctx, testenv.Alice, tc.enc, tc.req)
		var inv *ledger.InvalidError
		switch {
		case tc.field != "" && (!errors.As(err, &inv) || inv.Field != tc.field):
			t.Errorf("%+v: err %v, want invalid %s", tc.req, err, tc.field)
		case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
			t.Errorf("%+v: err %v, want %v", tc.req, err, tc.wantErr)
		}
	}
	// Another tenant cannot generate for alice's encounter.
	if _, err := p.GenerateNote(ctx, encounter.Caller{Tenant: "clinic-b", Actor: "x"}, id, pipeline.NoteRequest{}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("other tenant: %v", err)
	}
	if l.Size() != size {
		t.Errorf("rejected requests wrote %d entries", l.Size()-size)
	}
}

func TestNoteOverLimitsIsRecordedAsBadReply(t *testing.T) {
	svc, l := testenv.New(t)
	id, _ := testenv.Visit(t, svc, testenv.Alice)
	dup := &encounter.Draft{Sections: []encounter.DraftSection{{Name: "Plan", Sentences: []encounter.DraftSentence{{ID: "P1", Text: "a"}, {ID: "P1", Text: "b"}}}}}
	p := pipeline.New(svc, map[string]pipeline.Generator{pipeline.BackendOpenAI: stub{out: pipeline.Output{Model: encounter.Model{Name: "m"}, Note: dup}}}, pipeline.Options{})
	_, err := p.GenerateNote(ctx, testenv.Alice, id, pipeline.NoteRequest{Backend: pipeline.BackendOpenAI})
	if !errors.Is(err, pipeline.ErrBadReply) {
		t.Fatalf("err %v", err)
	}
	outs := testenv.ModelOutputs(t, l.Log, testenv.Alice.Tenant, id)
	if len(outs) != 1 || outs[0].Note != nil || !strings.Contains(outs[0].Error, "sentence_id") {
		t.Fatalf("recorded %+v", outs)
	}
}
