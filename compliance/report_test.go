package compliance

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

func buildReport(t *testing.T, f *fixture) (*Report, []byte) {
	t.Helper()
	data, ct, err := f.svc.Export(ctx, clinician, f.id, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	r, err := ParseReport(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return r, data
}

func TestReportContent(t *testing.T) {
	f := newFixture(t)
	r, _ := buildReport(t, f)
	check := VerifyReport(r, f.key.VerifierKey())
	if len(check.Problems) != 0 {
		t.Fatalf("a fresh report has problems:\n%v", check.Problems)
	}
	if check.Sentences != 6 || check.Entries != len(r.Entries) || check.TreeSize != r.Log.Checkpoint.TreeSize || check.Flagged < 1 || check.Resolutions < 2 {
		t.Fatalf("check %+v", check)
	}
	if !r.Note.Signed || len(r.Note.Signoffs) != 1 || !r.Note.Signoffs[0].Current {
		t.Fatalf("note signed %v, signoffs %+v", r.Note.Signed, r.Note.Signoffs)
	}
	sent := map[string]ReportSentence{}
	for _, sec := range r.Note.Sections {
		for _, s := range sec.Sentences {
			sent[s.ID] = s
		}
	}
	if _, ok := sent["S3"]; ok {
		t.Fatal("a deleted sentence is in the report")
	}
	s1 := sent["S1"]
	if s1.Origin.Kind != OriginModel || s1.Origin.Model.Name != "soap-writer" || s1.Origin.Model.Version != "2.1" ||
		s1.Origin.ParametersSHA256 != ParametersSHA256(map[string]string{"max_tokens": "800", "temperature": "0.2"}) || s1.Origin.Actor != "svc:scribe" {
		t.Fatalf("S1 origin %+v", s1.Origin)
	}
	if len(s1.Evidence) == 0 || s1.Evidence[0].SegmentID != "g2" || !strings.Contains(complaint, s1.Evidence[0].Text) || s1.Evidence[0].Audio == nil {
		t.Fatalf("S1 evidence %+v", s1.Evidence)
	}
	if s1.Alignment == nil || s1.Alignment.Method == "" {
		t.Fatal("S1 has no alignment method")
	}
	p1 := sent["P1"]
	if len(p1.Edits) != 1 || p1.Edits[0].Before != "Quintaxin twice daily." || p1.Edits[0].Reason != "added the knee" || p1.Edits[0].Actor != "dr.alice" || p1.Text != p1.Edits[0].After {
		t.Fatalf("P1 edits %+v", p1.Edits)
	}
	added := sent["added-1"]
	if added.Origin.Kind != OriginClinician || added.Origin.Actor != "dr.alice" {
		t.Fatalf("added sentence origin %+v", added.Origin)
	}
	// Verdicts and resolutions (see fixtureChecker and fixture.visit).
	if v := s1.Verdict; v == nil || v.Verdict != "supported" || v.Severity != "" || len(v.Conflicts)+len(v.Unsupported) != 0 {
		t.Fatalf("S1 verdict %+v", v)
	}
	fever := sent["added-2"]
	if v := fever.Verdict; v == nil || v.Verdict != "contradicted" || v.Severity != "major" || len(v.Conflicts) != 1 {
		t.Fatalf("contradicted sentence verdict %+v", v)
	}
	c := fever.Verdict.Conflicts[0]
	if c.Kind != "negation" || c.Claim != (ReportRange{0, 5, "Fever"}) || c.SegmentID != "g4" || c.Words != "No" || c.SpeakerRole != "patient" || c.Audio == nil || c.Audio.StartMS != 8100 {
		t.Fatalf("conflict %+v", c)
	}
	if len(fever.Resolutions) != 1 || !fever.Resolved {
		t.Fatalf("contradicted sentence resolutions %+v", fever.Resolutions)
	}
	res := fever.Resolutions[0]
	if res.Action != "confirmed" || res.Verdict != "contradicted" || res.Severity != "major" || res.Actor != "dr.alice" || !res.Current ||
		res.Version != fever.Origin.Leaf || res.Alignment != fever.Alignment.Leaf || res.Reason != "The patient corrected this <later> & by phone." {
		t.Fatalf("confirmation %+v", res)
	}
	allergy := sent["added-3"]
	if len(allergy.Resolutions) < 1 || allergy.Resolutions[0].Action != "edited" || allergy.Resolutions[0].Current ||
		allergy.Resolutions[0].Verdict != "unmentioned" || allergy.Resolutions[0].Edit != allergy.Edits[0].Leaf || allergy.Text != "Allergies not asked about." {
		t.Fatalf("edited sentence %+v", allergy)
	}
	if u := allergy.Resolutions[0]; u.NewVerdict != allergy.Verdict.Verdict {
		t.Fatalf("the edit's new verdict %q, the sentence's %q", u.NewVerdict, allergy.Verdict.Verdict)
	}
	// The export's own access entry is in the report, covered by its checkpoint.
	last := r.Accesses[len(r.Accesses)-1]
	if last.Action != "export" || last.Format != FormatJSON || last.Actor != clinician.Actor || last.Leaf >= r.Log.Checkpoint.TreeSize {
		t.Fatalf("last access %+v", last)
	}
	if len(r.Accesses) < 3 {
		t.Fatalf("%d accesses, want the note read, the transcript read and the export", len(r.Accesses))
	}
}

// TestVerifyReportDetectsTampering applies one mutation at a time to a good
// report and checks that VerifyReport names the check that catches it.
func TestVerifyReportDetectsTampering(t *testing.T) {
	f := newFixture(t)
	_, good := buildReport(t, f)
	vkey := f.key.VerifierKey()
	other, err := ledger.LoadOrCreateKey(t.TempDir(), origin)
	if err != nil {
		t.Fatal(err)
	}
	sentence := func(r *Report, id string) *ReportSentence {
		for i := range r.Note.Sections {
			for j := range r.Note.Sections[i].Sentences {
				if s := &r.Note.Sections[i].Sentences[j]; s.ID == id {
					return s
				}
			}
		}
		t.Fatalf("no sentence %s", id)
		return nil
	}
	entry := func(r *Report, kind string) *ReportEntry {
		for i := range r.Entries {
			if r.Entries[i].Kind == kind {
				return &r.Entries[i]
			}
		}
		t.Fatalf("no %s entry", kind)
		return nil
	}
	cases := []struct {
		name   string
		key    string
		mutate func(r *Report)
		check  string // the check expected to fail
		where  string // a substring of where it fails
	}{
		{"sentence text", vkey, func(r *Report) { sentence(r, "S2").Text = "Fever." }, "claim", "S2"},
		{"origin text", vkey, func(r *Report) { sentence(r, "S1").Origin.Text = "Cough." }, "claim", "S1"},
		{"model version", vkey, func(r *Report) { sentence(r, "S1").Origin.Model.Version = "2.2" }, "claim", "origin.model"},
		{"parameters hash", vkey, func(r *Report) { sentence(r, "S1").Origin.ParametersSHA256 = strings.Repeat("0", 64) }, "claim", "origin"},
		{"model author", vkey, func(r *Report) { sentence(r, "S1").Origin.Actor = "svc:other" }, "claim", "origin"},
		{"edit reason", vkey, func(r *Report) { sentence(r, "P1").Edits[0].Reason = "typo" }, "claim", "edits[0]"},
		{"edit before", vkey, func(r *Report) { sentence(r, "P1").Edits[0].Before = "Something else." }, "claim", "edits[0]"},
		{"edit author", vkey, func(r *Report) { sentence(r, "P1").Edits[0].Actor = "dr.mallory" }, "claim", "edits[0]"},
		{"edit dropped", vkey, func(r *Report) { s := sentence(r, "P1"); s.Edits = nil }, "claim", "P1"},
		{"added by someone else", vkey, func(r *Report) { sentence(r, "added-1").Origin.Actor = "dr.mallory" }, "claim", "added-1"},
		{"evidence text", vkey, func(r *Report) { sentence(r, "S1").Evidence[0].Text = "nine days of fever" }, "claim", "evidence[0]"},
		{"evidence times", vkey, func(r *Report) { sentence(r, "S1").Evidence[0].StartMS += 1000 }, "claim", "evidence[0]"},
		{"audio times", vkey, func(r *Report) { sentence(r, "S1").Evidence[0].Audio.EndMS += 500 }, "claim", "evidence[0].audio"},
		{"evidence invented", vkey, func(r *Report) {
			s := sentence(r, "S2")
			s.Evidence = append(s.Evidence, sentence(r, "S1").Evidence[0])
		}, "claim", "S2"},
		{"alignment method", vkey, func(r *Report) { sentence(r, "S1").Alignment.Method = "align-0" }, "claim", "alignment"},
		{"verdict upgraded", vkey, func(r *Report) { sentence(r, "added-2").Verdict.Verdict = "supported" }, "claim", "added-2).verdict"},
		{"verdict dropped", vkey, func(r *Report) { sentence(r, "S1").Verdict = nil }, "claim", "S1).verdict"},
		{"severity lowered", vkey, func(r *Report) { sentence(r, "added-2").Verdict.Severity = "minimal" }, "claim", "added-2).verdict"},
		{"conflict words", vkey, func(r *Report) { sentence(r, "added-2").Verdict.Conflicts[0].Words = "Yes" }, "claim", "conflicts[0]"},
		{"conflict claim text", vkey, func(r *Report) { sentence(r, "added-2").Verdict.Conflicts[0].Claim.Text = "two days" }, "claim", "conflicts[0].claim"},
		{"conflict dropped", vkey, func(r *Report) { sentence(r, "added-2").Verdict.Conflicts = nil }, "claim", "conflicts"},
		{"conflict segment", vkey, func(r *Report) { sentence(r, "added-2").Verdict.Conflicts[0].SegmentLeaf-- }, "claim", "conflicts[0]"},
		{"resolution reason", vkey, func(r *Report) { sentence(r, "added-2").Resolutions[0].Reason = "fine" }, "claim", "resolutions[0]"},
		{"resolution actor", vkey, func(r *Report) { sentence(r, "added-2").Resolutions[0].Actor = "dr.mallory" }, "claim", "resolutions[0]"},
		{"verdict seen", vkey, func(r *Report) { sentence(r, "added-2").Resolutions[0].Verdict = "unmentioned" }, "claim", "resolutions[0]"},
		{"resolution action", vkey, func(r *Report) { sentence(r, "added-3").Resolutions[0].Action = "confirmed" }, "claim", "resolutions[0]"},
		{"resolution invented", vkey, func(r *Report) {
			s := sentence(r, "S1")
			s.Resolutions = append(s.Resolutions, sentence(r, "added-2").Resolutions[0])
			s.Resolved = true
		}, "claim", "S1).resolutions[0]"},
		{"signed unresolved", vkey, func(r *Report) { s := sentence(r, "added-2"); s.Resolutions, s.Resolved = nil, false }, "claim", "added-2)"},
		{"resolved claimed", vkey, func(r *Report) { sentence(r, "added-2").Resolved = false }, "claim", "added-2).resolved"},
		{"signoff actor", vkey, func(r *Report) { r.Note.Signoffs[0].Actor = "dr.mallory" }, "claim", "signoffs[0]"},
		{"note hash", vkey, func(r *Report) { r.Note.Hash = strings.Repeat("ab", 32) }, "claim", "note.note_hash"},
		{"access role", vkey, func(r *Report) { r.Accesses[0].Role = "admin" }, "claim", "accesses[0]"},
		{"title", vkey, func(r *Report) { r.Encounter.Title = "Something else" }, "claim", "encounter.title"},
		{"payload byte", vkey, func(r *Report) { e := entry(r, "segment"); e.Payload[len(e.Payload)/2] ^= 1 }, "payload", "entries"},
		{"salt byte", vkey, func(r *Report) { entry(r, "signoff").Salt[0] ^= 1 }, "payload", "entries"},
		{"leaf data byte", vkey, func(r *Report) { entry(r, "edit").LeafData[20] ^= 1 }, "leaf", "entries"},
		{"leaf field claim", vkey, func(r *Report) { entry(r, "edit").Actor = "dr.mallory" }, "leaf", "entries"},
		{"proof hash", vkey, func(r *Report) {
			e := entry(r, "model_output")
			b, _ := hex.DecodeString(e.InclusionProof[0])
			b[0] ^= 1
			e.InclusionProof[0] = hex.EncodeToString(b)
		}, "proof", "entries"},
		{"proof shortened", vkey, func(r *Report) { e := entry(r, "alignment"); e.InclusionProof = e.InclusionProof[1:] }, "proof", "entries"},
		{"leaf index", vkey, func(r *Report) { e := entry(r, "signoff"); e.Leaf-- }, "", ""},
		{"entry removed", vkey, func(r *Report) {
			for i := range r.Entries {
				if r.Entries[i].Kind == "model_output" {
					r.Entries = append(r.Entries[:i], r.Entries[i+1:]...)
					return
				}
			}
		}, "claim", "origin"},
		{"checkpoint root", vkey, func(r *Report) { r.Log.Checkpoint.RootHash = strings.Repeat("00", 32) }, "checkpoint", "root_hash"},
		{"checkpoint note", vkey, func(r *Report) {
			r.Log.Checkpoint.Note = strings.Replace(r.Log.Checkpoint.Note, "\n", "\n1", 1)
		}, "checkpoint", "note"},
		{"another log's key", other.VerifierKey(), func(r *Report) {}, "checkpoint", "log."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReport(bytes.NewReader(good))
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(r)
			check := VerifyReport(r, tc.key)
			if len(check.Problems) == 0 {
				t.Fatal("the mutation went unnoticed")
			}
			if tc.check == "" {
				return
			}
			for _, p := range check.Problems {
				if p.Check == tc.check && strings.Contains(p.Where, tc.where) {
					return
				}
			}
			t.Fatalf("no %q problem at %q; got:\n%v", tc.check, tc.where, check.Problems)
		})
	}
}

// A v1 report (before verdicts) still parses and verifies, and may not
// claim verdicts.
func TestVerifyV1Report(t *testing.T) {
	f := newFixture(t)
	r, _ := buildReport(t, f)
	r.Format = ReportVersionV1
	for i := range r.Note.Sections {
		for j := range r.Note.Sections[i].Sentences {
			s := &r.Note.Sections[i].Sentences[j]
			s.Verdict, s.Resolutions, s.Resolved = nil, nil, false
		}
	}
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	v1, err := ParseReport(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if check := VerifyReport(v1, f.key.VerifierKey()); len(check.Problems) != 0 || check.Format != ReportVersionV1 {
		t.Fatalf("a v1 report: %+v", check)
	}
	v1.Note.Sections[0].Sentences[0].Verdict = &ReportVerdict{Verdict: "supported"}
	if check := VerifyReport(v1, f.key.VerifierKey()); len(check.Problems) != 1 || !strings.Contains(check.Problems[0].Detail, "no verdicts") {
		t.Fatalf("a v1 report with a verdict: %v", check.Problems)
	}
}

func TestParseReportIsStrict(t *testing.T) {
	f := newFixture(t)
	_, good := buildReport(t, f)
	var m map[string]any
	json.Unmarshal(good, &m)
	m["extra"] = 1
	b, _ := json.Marshal(m)
	if _, err := ParseReport(bytes.NewReader(b)); err == nil {
		t.Fatal("unknown field accepted")
	}
	delete(m, "extra")
	m["format"] = "evidence-provenance-report/v0"
	b, _ = json.Marshal(m)
	if _, err := ParseReport(bytes.NewReader(b)); err == nil {
		t.Fatal("other format accepted")
	}
	if _, err := ParseReport(bytes.NewReader(append(bytes.Clone(good), []byte("{}")...))); err == nil {
		t.Fatal("trailing data accepted")
	}
}

func TestExportRoles(t *testing.T) {
	f := newFixture(t)
	pipeline := encounter.Caller{Tenant: "clinic-a", Actor: "svc:scribe", Role: "pipeline"}
	if _, _, err := f.svc.Export(ctx, pipeline, f.id, FormatJSON); !errors.Is(err, ErrForbidden) {
		t.Fatalf("pipeline role export: %v", err)
	}
	if _, _, err := f.svc.Export(ctx, auditor, f.id, "pdf"); err == nil {
		t.Fatal("unknown format accepted")
	}
	other := encounter.Caller{Tenant: "clinic-b", Actor: "dr.eve", Role: "clinician"}
	if _, _, err := f.svc.Export(ctx, other, f.id, FormatJSON); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("another tenant's export: %v, want NotFound", err)
	}
}

func TestHTML(t *testing.T) {
	f := newFixture(t)
	data, ct, err := f.svc.Export(ctx, auditor, f.id, FormatHTML)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	if !strings.HasPrefix(ct, "text/html") || !strings.Contains(page, "<!doctype html>") {
		t.Fatalf("content type %q", ct)
	}
	for _, want := range []string{"Start quintaxin twice daily; rest the knee.", "added the knee", "soap-writer", "Reviewed and signed.", "@media print", "get_transcript", strings.ReplaceAll(f.key.VerifierKey(), "+", "&#43;"), "aches &lt;worse&gt; on stairs &amp; at night"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Verdicts and resolutions.
	for _, want := range []string{`verdict <span class="verdict flag">contradicted (major)</span>`, "The note says <span class=\"quote\">Fever</span>; the transcript says <span class=\"quote\">“No”</span>",
		"Confirmed as written by <code>dr.alice</code>", "corrected this &lt;later&gt; &amp; by phone", "re-verified as",
		`verdict <span class="verdict ok">supported</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Note and transcript texts are escaped wherever they appear.
	if strings.Contains(page, "<worse>") || strings.Contains(page, "<bicycle>") || strings.Contains(page, "<later>") {
		t.Fatal("unescaped markup from a payload")
	}
}
