package index

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

const testOrigin = "evidence.test/index"

// clock is a deterministic time source for the log: each call advances
// it by a minute.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
	return c.t
}

func testKey(t testing.TB) *ledger.Key {
	t.Helper()
	k, err := ledger.LoadOrCreateKey(t.TempDir(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openLog opens a log on store with a deterministic clock starting at
// 2025-03-01.
func openLog(t testing.TB, s storage.Store, k *ledger.Key) *ledger.Appender {
	t.Helper()
	c := &clock{t: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)}
	l, err := ledger.Open(s, ledger.Options{Origin: testOrigin, Key: k, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func memLog(t testing.TB) *ledger.Appender {
	return openLog(t, memstore.New(), testKey(t))
}

func openIndex(t testing.TB, dir string, src Source, opts Options) *Index {
	t.Helper()
	x, err := Open(dir, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func catchUp(t testing.TB, x *Index) {
	t.Helper()
	if _, err := x.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// writer appends encounter entries straight to a log, as the encounter
// service would record them.
type writer struct {
	t   testing.TB
	log *ledger.Appender
}

func (w writer) append(tenant, enc string, kind ledger.Kind, payloads ...[]byte) int64 {
	w.t.Helper()
	entries := make([]ledger.Entry, len(payloads))
	for i, p := range payloads {
		entries[i] = ledger.Entry{Kind: kind, Tenant: tenant, Encounter: enc, Actor: "test", Payload: p}
	}
	a, err := w.log.Append(context.Background(), entries)
	if err != nil {
		w.t.Fatal(err)
	}
	return a.First
}

func (w writer) open(tenant, enc string) int64 {
	return w.append(tenant, enc, ledger.KindEncounter, mustJSON(encounter.Opened{V: 1, Title: "visit"}))
}

// segs appends segments "role: text" with consecutive times and returns
// the first leaf.
func (w writer) segs(tenant, enc string, lines ...string) int64 {
	var ps [][]byte
	for i, ln := range lines {
		role, text, _ := strings.Cut(ln, ": ")
		ps = append(ps, mustJSON(encounter.Segment{V: 1, ID: fmt.Sprintf("s%d-%d", w.log.Size(), i), Role: role, Text: text,
			StartMS: int64(i) * 5000, EndMS: int64(i)*5000 + 4000}))
	}
	return w.append(tenant, enc, ledger.KindSegment, ps...)
}

// output appends a model output whose note has one section per element
// of sections: "Name|id=text|id=text".
func (w writer) output(tenant, enc string, sections ...string) int64 {
	d := &encounter.Draft{}
	for _, s := range sections {
		parts := strings.Split(s, "|")
		sec := encounter.DraftSection{Name: parts[0]}
		for _, p := range parts[1:] {
			id, text, _ := strings.Cut(p, "=")
			sec.Sentences = append(sec.Sentences, encounter.DraftSentence{ID: id, Text: text})
		}
		d.Sections = append(d.Sections, sec)
	}
	return w.append(tenant, enc, ledger.KindModelOutput, mustJSON(encounter.ModelOutput{V: 1, Model: encounter.Model{Name: "soapgen", Version: "1"}, Note: d, LatencyMS: 5}))
}

func (w writer) edit(tenant, enc string, e encounter.Edit) int64 {
	e.V = 1
	return w.append(tenant, enc, ledger.KindEdit, mustJSON(e))
}

// docState is what the index holds for one document.
type docState struct {
	superseded bool
}

// dump returns every document id in the index with its state.
func dump(t testing.TB, x *Index) map[string]docState {
	t.Helper()
	out := map[string]docState{}
	for _, name := range x.tenantNames() {
		for id, st := range dumpTenant(t, x, name) {
			if _, dup := out[id]; dup {
				t.Fatalf("document %s in two tenant indexes", id)
			}
			out[id] = st
		}
	}
	return out
}

// dumpTenant returns every document id in a tenant's index with its
// state.
func dumpTenant(t testing.TB, x *Index, tenant string) map[string]docState {
	t.Helper()
	out := map[string]docState{}
	if ti := x.tenant(tenant); ti != nil {
		after := ""
		for {
			req := bleve.NewSearchRequestOptions(query.NewMatchAllQuery(), 1000, 0, false)
			req.SortBy([]string{"_id"})
			req.Fields = []string{fieldSuperseded}
			if after != "" {
				req.SearchAfter = []string{after}
			}
			res, err := ti.bleve.Search(req)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range res.Hits {
				sup, _ := h.Fields[fieldSuperseded].(bool)
				out[h.ID] = docState{superseded: sup}
				after = h.ID
			}
			if len(res.Hits) < 1000 {
				break
			}
		}
	}
	return out
}

// reference computes, the slow and obvious way, the documents an index of
// l must hold: one per segment and per sentence version (model output
// sentences, replaced and added sentences), superseded unless the
// encounter service's projection of the note holds that exact version.
func reference(t testing.TB, l *ledger.Appender) map[string]docState {
	t.Helper()
	ctx := context.Background()
	svc := encounter.New(l.Log, l, blob.New(memstore.New(), nil))
	out := map[string]docState{}
	current := map[string]bool{}
	seen := map[[2]string]bool{}
	for i := range l.Size() {
		p, e, err := l.Payload(i)
		if err != nil {
			continue // redacted
		}
		k := e.Leaf.Kind
		if k != ledger.KindSegment && k != ledger.KindModelOutput && k != ledger.KindEdit {
			continue
		}
		key := [2]string{e.Leaf.Tenant, e.Leaf.Encounter}
		if k != ledger.KindSegment && !seen[key] {
			seen[key] = true
			n, err := svc.Note(ctx, encounter.Caller{Tenant: e.Leaf.Tenant, Actor: "test"}, e.Leaf.Encounter)
			if err != nil {
				t.Fatal(err)
			}
			for _, sec := range n.Sections {
				for _, s := range sec.Sentences {
					current[docID(s.Versions[len(s.Versions)-1].Index, s.ID)] = true
				}
			}
		}
		v, err := encounter.DecodePayload(k, p)
		if err != nil {
			continue
		}
		switch v := v.(type) {
		case *encounter.Segment:
			out[docID(i, "")] = docState{}
		case *encounter.ModelOutput:
			if v.Error != "" || v.Note == nil {
				continue
			}
			for _, sec := range v.Note.Sections {
				for _, s := range sec.Sentences {
					out[docID(i, s.ID)] = docState{}
				}
			}
		case *encounter.Edit:
			if v.Action == encounter.ActionReplace || v.Action == encounter.ActionAdd {
				out[docID(i, v.SentenceID)] = docState{}
			}
		}
	}
	for id := range out {
		if _, sid, _ := parseDocID(id); sid != "" {
			out[id] = docState{superseded: !current[id]}
		}
	}
	return out
}

func diffDocs(t testing.TB, got, want map[string]docState) {
	t.Helper()
	var problems []string
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			problems = append(problems, "missing "+id)
		case g != w:
			problems = append(problems, fmt.Sprintf("%s: superseded %v, want %v", id, g.superseded, w.superseded))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			problems = append(problems, "unexpected "+id)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... %d more", len(problems)-20))
		}
		t.Fatalf("index differs from the log (%d docs, want %d):\n%s", len(got), len(want), strings.Join(problems, "\n"))
	}
}

// Vocabulary for generated encounters.
var (
	patientLines = []string{
		"I've had chest pain for three days", "It's worse when I climb the stairs", "No, I haven't had any fever",
		"I get short of breath at night", "My tummy hurts after meals", "I take warfarin 5mg twice a day",
		"The cough keeps me awake", "I feel dizzy when I stand up", "No chest pain at rest", "café au lait spots 😀 on my arm",
	}
	clinicianLines = []string{
		"Any chest pain?", "How long have you had the cough?", "Do you take any blood thinners?",
		"Let's check your blood pressure", "Any shortness of breath?", "I'll refer you to cardiology",
		"Have you had diarrhoea or vomiting?", "Any history of heart attack?",
	}
	noteSentences = []string{
		"Patient reports chest pain for 3/7.", "SOB on exertion.", "Denies fever.", "On warfarin 5mg BD.",
		"Abdominal pain after meals.", "Dizziness on standing.", "Refer to cardiology.", "Hx of MI.",
		"Nocturnal cough.", "BP to be rechecked.",
	}
)

// scenario appends a random but valid history of encounters to l: opened
// encounters, segments, model outputs (some failed), replace, add and
// delete edits, and entries of kinds the index ignores.
func scenario(t testing.TB, l *ledger.Appender, rng *rand.Rand, steps int) {
	t.Helper()
	w := writer{t, l}
	type encState struct {
		tenant, id string
		sentences  []string // current sentence ids
		added      int
	}
	var encs []*encState
	for range steps {
		if len(encs) == 0 || rng.IntN(8) == 0 {
			e := &encState{tenant: []string{"tenant-a", "tenant-b"}[rng.IntN(2)], id: fmt.Sprintf("enc-%d", len(encs))}
			w.open(e.tenant, e.id)
			encs = append(encs, e)
			continue
		}
		e := encs[rng.IntN(len(encs))]
		switch r := rng.IntN(10); {
		case r < 5:
			var lines []string
			for range 1 + rng.IntN(4) {
				if rng.IntN(2) == 0 {
					lines = append(lines, "patient: "+patientLines[rng.IntN(len(patientLines))])
				} else {
					lines = append(lines, "clinician: "+clinicianLines[rng.IntN(len(clinicianLines))])
				}
			}
			w.segs(e.tenant, e.id, lines...)
		case r < 7:
			if rng.IntN(6) == 0 {
				w.append(e.tenant, e.id, ledger.KindModelOutput, mustJSON(encounter.ModelOutput{V: 1, Model: encounter.Model{Name: "soapgen"}, Error: "timeout"}))
				continue
			}
			var secs []string
			e.sentences = nil
			for si, name := range []string{"Subjective", "Plan"} {
				sec := name
				for j := range 1 + rng.IntN(3) {
					id := fmt.Sprintf("%c%d", 's'+si, j)
					sec += "|" + id + "=" + noteSentences[rng.IntN(len(noteSentences))]
					e.sentences = append(e.sentences, id)
				}
				secs = append(secs, sec)
			}
			w.output(e.tenant, e.id, secs...)
		case r < 9:
			if len(e.sentences) == 0 {
				continue
			}
			id := e.sentences[rng.IntN(len(e.sentences))]
			switch rng.IntN(3) {
			case 0:
				w.edit(e.tenant, e.id, encounter.Edit{Action: encounter.ActionReplace, SentenceID: id, Text: noteSentences[rng.IntN(len(noteSentences))] + " Edited."})
			case 1:
				e.added++
				nid := fmt.Sprintf("added-%d", e.added)
				w.edit(e.tenant, e.id, encounter.Edit{Action: encounter.ActionAdd, SentenceID: nid, Section: "Plan", Text: noteSentences[rng.IntN(len(noteSentences))]})
				e.sentences = append(e.sentences, nid)
			case 2:
				w.edit(e.tenant, e.id, encounter.Edit{Action: encounter.ActionDelete, SentenceID: id})
				e.sentences = slices.DeleteFunc(e.sentences, func(s string) bool { return s == id })
			}
		default:
			w.append(e.tenant, e.id, ledger.KindSignoff, mustJSON(encounter.Signoff{V: 1, NoteHash: "00", Head: l.Size() - 1}))
		}
	}
}

func tempIndexDir(t testing.TB) string { return filepath.Join(t.TempDir(), "index") }
