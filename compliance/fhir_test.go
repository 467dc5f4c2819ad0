package compliance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	r4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// parseFHIR parses and validates a FHIR R4 resource with google/fhir's
// jsonformat unmarshaller (required fields, primitive formats, codes of
// required bindings, and the resource types references may point to).
func parseFHIR(t *testing.T, data []byte) (*r4pb.ContainedResource, error) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	m, err := u.Unmarshal(data)
	if err != nil {
		return nil, err
	}
	return m.(*r4pb.ContainedResource), nil
}

func extension(exts []*d4pb.Extension, url string) *d4pb.Extension {
	for _, e := range exts {
		if e.GetUrl().GetValue() == url {
			return e
		}
	}
	return nil
}

func TestFHIRBundle(t *testing.T) {
	f := newFixture(t)
	r, _ := buildReport(t, f)
	data, err := r.FHIR()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("\"leaf_data\"")) {
		t.Fatal("the bundle holds report fields")
	}
	cr, err := parseFHIR(t, data)
	if err != nil {
		t.Fatalf("the bundle does not validate as FHIR R4: %v", err)
	}
	b := cr.GetBundle()
	if b == nil || b.GetType().GetValue().String() != "COLLECTION" {
		t.Fatalf("not a collection bundle: %v", b.GetType())
	}
	count := map[string]int{}
	devices := map[string]string{}       // id -> device name
	practitioners := map[string]string{} // id -> actor
	var sectionIDs []string
	verdicts := map[string]string{} // section id -> verdict (and severity, resolved)
	var provenances, issues []*r4pb.ContainedResource
	for _, e := range b.GetEntry() {
		res := e.GetResource()
		switch {
		case res.GetComposition() != nil:
			count["Composition"]++
			c := res.GetComposition()
			if c.GetStatus().GetValue().String() != "FINAL" || len(c.GetAttester()) != 1 {
				t.Fatalf("signed note: composition status %v, %d attesters", c.GetStatus().GetValue(), len(c.GetAttester()))
			}
			for _, sec := range c.GetSection() {
				for _, s := range sec.GetSection() {
					sectionIDs = append(sectionIDs, s.GetId().GetValue())
					if ext := extension(s.GetExtension(), ExtSentenceVerdict); ext != nil {
						var parts []string
						for _, e := range ext.GetExtension() {
							v := e.GetValue()
							val := v.GetCode().GetValue() + v.GetStringValue().GetValue()
							if v.GetBoolean() != nil {
								val = fmt.Sprint(v.GetBoolean().GetValue())
							}
							parts = append(parts, e.GetUrl().GetValue()+"="+val)
						}
						verdicts[s.GetId().GetValue()] = strings.Join(parts, " ")
					}
				}
			}
		case res.GetProvenance() != nil:
			count["Provenance"]++
			provenances = append(provenances, res)
		case res.GetDevice() != nil:
			d := res.GetDevice()
			devices[d.GetId().GetValue()] = d.GetDeviceName()[0].GetName().GetValue()
		case res.GetPractitioner() != nil:
			p := res.GetPractitioner()
			practitioners[p.GetId().GetValue()] = p.GetIdentifier()[0].GetValue().GetValue()
		case res.GetDetectedIssue() != nil:
			issues = append(issues, res)
		case res.GetMedia() != nil:
			count["Media"]++
		case res.GetDocumentReference() != nil:
			count["DocumentReference"]++
		case res.GetAuditEvent() != nil:
			count["AuditEvent"]++
		case res.GetBinary() != nil:
			count["Binary"]++
		}
	}
	if count["Composition"] != 1 || count["Media"] != 1 || count["DocumentReference"] != 1 || count["Binary"] != 1 {
		t.Fatalf("resource counts %v", count)
	}
	if count["AuditEvent"] != len(r.Accesses) {
		t.Fatalf("%d AuditEvents for %d accesses", count["AuditEvent"], len(r.Accesses))
	}
	if len(sectionIDs) != 6 {
		t.Fatalf("sentence elements %v", sectionIDs)
	}
	// Every sentence is the target element of a Provenance; the model is a
	// Device agent of the drafted ones, a clinician a Practitioner agent of
	// the edited and added ones; evidence is quoted from the transcript and
	// derived from the recording with the audio time range.
	targeted := map[string]bool{}
	var modelAuthored, clinicianAuthored, quotations, derivations int
	for _, res := range provenances {
		p := res.GetProvenance()
		for _, tgt := range p.GetTarget() {
			if tgt.GetCompositionId() == nil {
				t.Fatal("a Provenance targets something other than the note")
			}
			if ext := extension(tgt.GetExtension(), ExtTargetElement); ext != nil {
				targeted[ext.GetValue().GetUri().GetValue()] = true
			}
		}
		for _, a := range p.GetAgent() {
			if a.GetType().GetCoding()[0].GetCode().GetValue() != "author" {
				continue
			}
			if id := a.GetWho().GetDeviceId(); id != nil && devices[id.GetValue()] == "soap-writer" {
				modelAuthored++
			}
			if id := a.GetWho().GetPractitionerId(); id != nil && practitioners[id.GetValue()] == "dr.alice" {
				clinicianAuthored++
			}
		}
		for _, e := range p.GetEntity() {
			switch e.GetRole().GetValue().String() {
			case "QUOTATION":
				if e.GetWhat().GetDocumentReferenceId() == nil || e.GetWhat().GetDisplay().GetValue() == "" {
					t.Fatal("a quotation does not quote the transcript")
				}
				if extension(e.GetExtension(), ExtTranscriptSpan) == nil {
					t.Fatal("a quotation lacks its transcript span")
				}
				quotations++
			case "DERIVATION":
				rng := extension(e.GetExtension(), ExtAudioTimeRange).GetValue().GetRange()
				if e.GetWhat().GetMediaId() == nil || rng == nil || rng.GetLow().GetCode().GetValue() != "ms" ||
					rng.GetHigh().GetValue().GetValue() == "" {
					t.Fatal("a derivation lacks the recording or its time range")
				}
				derivations++
			}
		}
	}
	for _, id := range sectionIDs {
		if !targeted[id] {
			t.Errorf("sentence element %s is no Provenance's target element", id)
		}
	}
	if modelAuthored != 3 || clinicianAuthored != 5 {
		t.Fatalf("model-authored %d (want 3 drafts), clinician-authored %d (want 1 edit, 3 additions, 1 resolving edit)", modelAuthored, clinicianAuthored)
	}
	evidence := 0
	for _, sec := range r.Note.Sections {
		for _, s := range sec.Sentences {
			evidence += len(s.Evidence)
		}
	}
	if evidence == 0 || quotations != evidence || derivations != evidence {
		t.Fatalf("%d evidence spans, %d quotations, %d derivations", evidence, quotations, derivations)
	}

	// Every sentence states its verdict; the flagged ones (see
	// fixtureChecker) are DetectedIssues with their resolutions.
	for _, id := range sectionIDs {
		if verdicts[id] == "" {
			t.Errorf("sentence element %s has no verdict extension", id)
		}
	}
	if got := verdicts["s-added-2"]; !strings.HasPrefix(got, "verdict=contradicted severity=major resolved=true") {
		t.Errorf("the contradicted sentence's verdict extension: %q", got)
	}
	if got := verdicts["s-S1"]; !strings.HasPrefix(got, "verdict=supported method=") {
		t.Errorf("a supported sentence's verdict extension: %q", got)
	}
	var contradicted, edited *r4pb.ContainedResource
	for _, res := range issues {
		d := res.GetDetectedIssue()
		el := extension(d.GetImplicated()[0].GetExtension(), ExtTargetElement).GetValue().GetUri().GetValue()
		switch {
		case el == "s-added-2":
			contradicted = res
		case el == "s-added-3" && len(d.GetMitigation()) > 0 && d.GetMitigation()[0].GetAction().GetCoding()[0].GetCode().GetValue() == "edited":
			edited = res
		}
	}
	if contradicted == nil || edited == nil {
		t.Fatalf("no DetectedIssue for the contradicted sentence (%v) or the edited one (%v) among %d", contradicted != nil, edited != nil, len(issues))
	}
	d := contradicted.GetDetectedIssue()
	if d.GetCode().GetCoding()[0].GetCode().GetValue() != "contradicted" || d.GetSeverity().GetValue().String() != "HIGH" || len(d.GetEvidence()) != 1 {
		t.Fatalf("contradicted DetectedIssue: code %v, severity %v, %d evidence", d.GetCode(), d.GetSeverity(), len(d.GetEvidence()))
	}
	ev := d.GetEvidence()[0]
	if ev.GetCode()[0].GetCoding()[0].GetCode().GetValue() != "negation" || ev.GetDetail()[0].GetDisplay().GetValue() != "No" || ev.GetDetail()[0].GetDocumentReferenceId() == nil {
		t.Errorf("conflict evidence %v", ev)
	}
	if rng := extension(ev.GetExtension(), ExtSentenceRange).GetValue().GetRange(); rng.GetHigh().GetValue().GetValue() != "5" {
		t.Errorf("claim range %v", rng)
	}
	m := d.GetMitigation()
	if len(m) != 1 || m[0].GetAction().GetCoding()[0].GetCode().GetValue() != "confirmed" || !strings.Contains(m[0].GetAction().GetText().GetValue(), "corrected this <later>") ||
		practitioners[m[0].GetAuthor().GetPractitionerId().GetValue()] != "dr.alice" {
		t.Errorf("the confirmation mitigation %v", m)
	}
	if e := edited.GetDetectedIssue(); e.GetCode().GetCoding()[0].GetCode().GetValue() != "unmentioned" || e.GetSeverity().GetValue().String() != "HIGH" {
		t.Errorf("the edited version's DetectedIssue %v", e)
	}
}

// TestFHIRValidationCanFail checks that the validator used above rejects
// what it should, so that passing it means something.
func TestFHIRValidationCanFail(t *testing.T) {
	f := newFixture(t)
	r, _ := buildReport(t, f)
	data, err := r.FHIR()
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(string) string{
		"missing recorded": func(s string) string { return strings.Replace(s, `"recorded":`, `"recordedX":`, 1) },
		"a device reference to a note": func(s string) string {
			return strings.Replace(s, `"reference": "Device/`, `"reference": "Composition/`, 1)
		},
		"bad instant":  func(s string) string { return strings.Replace(s, `"recorded": "20`, `"recorded": "yesterday 20`, 1) },
		"unknown role": func(s string) string { return strings.Replace(s, `"role": "quotation"`, `"role": "hearsay"`, 1) },
		"bad id": func(s string) string {
			return strings.Replace(s, `"resourceType": "Media",`, `"resourceType": "Media", "id": "not an id!",`, 1)
		},
		"bad bundle type": func(s string) string { return strings.Replace(s, `"type": "collection"`, `"type": "pile"`, 1) },
	} {
		bad := mutate(string(data))
		if bad == string(data) {
			t.Fatalf("%s: the mutation did not apply", name)
		}
		var v any
		if json.Unmarshal([]byte(bad), &v) != nil {
			t.Fatalf("%s: the mutation broke the JSON itself", name)
		}
		if _, err := parseFHIR(t, []byte(bad)); err == nil {
			t.Errorf("%s: the validator accepted it", name)
		}
	}
}
