package compliance

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"

	"github.com/evidenceledger/evidence/encounter"
)

// FHIR extension and identifier-system URLs this package defines. They are
// documented in docs/compliance.md.
const (
	fhirBase = "https://evidenceledger.github.io/fhir/"
	// ExtAudioTimeRange (valueRange, UCUM "ms") is the time range of a
	// Provenance entity within the recording (a Media).
	ExtAudioTimeRange = fhirBase + "StructureDefinition/audio-time-range"
	// ExtTranscriptSpan is a complex extension on a quotation entity: the
	// segment id (segmentId, valueString), the UTF-8 byte range of the
	// quote in the segment's text (charStart, charEnd, valueInteger), the
	// time range in the visit (visitTime, valueRange in ms) and the
	// alignment score (score, valueDecimal).
	ExtTranscriptSpan = fhirBase + "StructureDefinition/transcript-span"
	// ExtLedgerEntry (valueIdentifier) names the ledger entry a resource
	// was derived from: system is SystemLedger, value the leaf index.
	ExtLedgerEntry = fhirBase + "StructureDefinition/ledger-entry"
	// ExtTargetElement is FHIR's own extension for a Reference to one
	// element of the target resource.
	ExtTargetElement = "http://hl7.org/fhir/StructureDefinition/targetElement"
	// SystemActor identifies people and services by their ledger actor id.
	SystemActor = fhirBase + "sid/actor"
	// SystemLedger identifies ledger entries by leaf index.
	SystemLedger = fhirBase + "sid/leaf"
	// SystemAccessAction codes AuditEvent subtypes by access action.
	SystemAccessAction = fhirBase + "CodeSystem/access-action"
	// SystemPatientRef identifies the patient by the encounter's patient
	// reference.
	SystemPatientRef = fhirBase + "sid/patient-ref"
	// ExtSentenceVerdict is a complex extension on a sentence's
	// Composition section: the verdict (verdict, valueCode: supported,
	// inferred, contradicted or unmentioned), for a flagged one its
	// severity (severity, valueCode: major, minor, minimal) and whether a
	// clinician resolved it (resolved, valueBoolean), and the method
	// version (method, valueString).
	ExtSentenceVerdict = fhirBase + "StructureDefinition/sentence-verdict"
	// ExtSentenceRange (valueRange of UTF-8 byte offsets, unitless) is the
	// part of a sentence a DetectedIssue evidence is about: a
	// contradicted claim or an unsupported part.
	ExtSentenceRange = fhirBase + "StructureDefinition/sentence-range"
	// SystemVerdict codes a DetectedIssue by the verdict that flagged the
	// sentence (contradicted, unmentioned), and its evidence by conflict
	// kind (docs/align.md).
	SystemVerdict = fhirBase + "CodeSystem/verdict"
	// SystemConflictKind codes what a contradicted claim gets wrong.
	SystemConflictKind = fhirBase + "CodeSystem/conflict-kind"
	// SystemResolution codes a DetectedIssue mitigation by what the
	// clinician did: confirmed or edited.
	SystemResolution = fhirBase + "CodeSystem/resolution"
)

type obj = map[string]any

// fhirBundle builds a FHIR R4 Bundle from a report.
type fhirBundle struct {
	r       *Report
	base    string
	entries []any
	actors  map[string]string // actor -> "Practitioner/<id>" or "Device/<id>"
	models  map[string]string // name@version -> "Device/<id>"
}

// FHIR renders the report as a FHIR R4 Bundle (type collection) of:
//
//   - a Composition for the note, one section per note section and one
//     nested section per sentence, whose element id is "s-" and the
//     sentence id (with characters outside [A-Za-z0-9-.] as "-");
//   - a Provenance per sentence version (the model's draft or a
//     clinician's addition, then every edit), targeting the Composition
//     with the targetElement extension, with the model as a Device agent
//     or the clinician as a Practitioner agent, a quotation entity per
//     evidence span pointing at the transcript (a DocumentReference) and a
//     derivation entity pointing at the recording (a Media) with the
//     audio time range extension; and a Provenance per sign-off;
//   - a DetectedIssue per flagged sentence version (contradicted or
//     unmentioned, by the alignment method as a Device) that is current or
//     that a clinician resolved: its severity, the sentence element it
//     implicates, a piece of evidence per conflict (the transcript words,
//     with the claim's range) or unsupported part, and a mitigation per
//     resolution (confirmed or edited, by whom, when, why); every sentence
//     section carries the sentence-verdict extension;
//   - Device, Practitioner, Media and DocumentReference resources for them;
//   - an AuditEvent per access;
//   - a Binary holding the signed checkpoint every ledger entry is proved
//     against (the JSON report carries the proofs).
//
// Every resource derived from a ledger entry carries the ledger-entry
// extension with its leaf index.
func (r *Report) FHIR() ([]byte, error) {
	f := &fhirBundle{r: r, base: fhirBaseURL(r.Log.Origin), actors: map[string]string{}, models: map[string]string{}}
	f.build()
	b := obj{
		"resourceType": "Bundle",
		"id":           f.id("bundle", r.Encounter.ID, r.Log.Checkpoint.RootHash),
		"type":         "collection",
		"timestamp":    instant(r.GeneratedAt),
		"identifier":   obj{"system": SystemLedger, "value": "report-" + r.Encounter.ID + "-" + strconv.FormatInt(r.Log.Checkpoint.TreeSize, 10)},
		"entry":        f.entries,
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// fhirBaseURL makes a RESTful base for fullUrls from the log origin, so
// that relative references ("Device/<id>") resolve within the Bundle.
func fhirBaseURL(origin string) string {
	return "https://" + strings.TrimSuffix(origin, "/") + "/fhir/"
}

// id derives a stable resource id (a UUID-shaped hash) from parts.
func (f *fhirBundle) id(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(append([]string{f.r.Log.Origin, f.r.Encounter.Tenant}, parts...), "\x00")))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-5" + x[13:16] + "-" + "8" + x[17:20] + "-" + x[20:32]
}

func (f *fhirBundle) add(resource obj) string {
	ref := resource["resourceType"].(string) + "/" + resource["id"].(string)
	f.entries = append(f.entries, obj{"fullUrl": f.base + ref, "resource": resource})
	return ref
}

func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func ledgerExt(leaf int64) obj {
	return obj{"url": ExtLedgerEntry, "valueIdentifier": obj{"system": SystemLedger, "value": strconv.FormatInt(leaf, 10)}}
}

func msRange(start, end int64) obj {
	q := func(v int64) obj {
		return obj{"value": v, "unit": "ms", "system": "http://unitsofmeasure.org", "code": "ms"}
	}
	return obj{"low": q(start), "high": q(end)}
}

// elementID turns a sentence id into a FHIR element id.
func elementID(sentence string) string {
	var b strings.Builder
	b.WriteString("s-")
	for _, r := range sentence {
		if r < 128 && (r == '-' || r == '.' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// human reports whether an actor is a person: services are named "svc:...".
func human(actor string) bool { return !strings.HasPrefix(actor, "svc:") }

// actor returns the reference of the Practitioner or Device for an actor.
func (f *fhirBundle) actor(a string) string {
	if ref, ok := f.actors[a]; ok {
		return ref
	}
	ident := []any{obj{"system": SystemActor, "value": a}}
	var ref string
	if human(a) {
		ref = f.add(obj{"resourceType": "Practitioner", "id": f.id("actor", a), "identifier": ident, "name": []any{obj{"text": a}}})
	} else {
		ref = f.add(obj{"resourceType": "Device", "id": f.id("actor", a), "identifier": ident, "status": "active",
			"deviceName": []any{obj{"name": a, "type": "user-friendly-name"}},
			"type":       obj{"text": "Evidence Ledger client service"}})
	}
	f.actors[a] = ref
	return ref
}

// model returns the reference of the Device for a model and version.
func (f *fhirBundle) model(m *encounter.Model) string {
	k := m.Name + "@" + m.Version
	if ref, ok := f.models[k]; ok {
		return ref
	}
	d := obj{"resourceType": "Device", "id": f.id("model", k), "status": "active",
		"deviceName": []any{obj{"name": m.Name, "type": "model-name"}},
		"type":       obj{"text": "AI language model"}}
	if m.Version != "" {
		d["version"] = []any{obj{"value": m.Version}}
	}
	ref := f.add(d)
	f.models[k] = ref
	return ref
}

func (f *fhirBundle) build() {
	r := f.r
	cpRef := f.add(obj{"resourceType": "Binary", "id": f.id("checkpoint", strconv.FormatInt(r.Log.Checkpoint.TreeSize, 10)),
		"contentType": "text/plain", "data": base64.StdEncoding.EncodeToString([]byte(r.Log.Checkpoint.Note))})
	_ = cpRef
	var subject obj
	if r.Encounter.PatientRef != "" {
		subject = obj{"identifier": obj{"system": SystemPatientRef, "value": r.Encounter.PatientRef}}
	}

	// The transcript the evidence quotes, and the recordings.
	var lines []string
	segs := map[int64]bool{}
	for _, sec := range r.Note.Sections {
		for _, t := range sec.Sentences {
			for _, e := range t.Evidence {
				segs[e.SegmentLeaf] = true
			}
			if t.Verdict != nil {
				for _, c := range t.Verdict.Conflicts {
					segs[c.SegmentLeaf] = true
				}
			}
		}
	}
	for _, e := range r.Entries {
		if e.Kind != "segment" || !segs[e.Leaf] {
			continue
		}
		var g encounter.Segment
		if json.Unmarshal(e.Payload, &g) == nil {
			lines = append(lines, fmt.Sprintf("[%s %s-%s] %s: %s", g.ID, msClock(g.StartMS), msClock(g.EndMS), g.Role, g.Text))
		}
	}
	doc := obj{"resourceType": "DocumentReference", "id": f.id("transcript", r.Encounter.ID), "status": "current",
		"type":        obj{"text": "Visit transcript (the segments quoted as evidence)"},
		"description": "Transcript segments of encounter " + r.Encounter.ID,
		"content": []any{obj{"attachment": obj{"contentType": "text/plain; charset=utf-8", "title": "transcript",
			"data": base64.StdEncoding.EncodeToString([]byte(strings.Join(lines, "\n")))}}}}
	if subject != nil {
		doc["subject"] = subject
	}
	transcript := f.add(doc)
	media := map[int64]string{}
	for _, a := range r.Audio {
		m := obj{"resourceType": "Media", "id": f.id("audio", strconv.FormatInt(a.Leaf, 10)), "status": "completed",
			"type":       obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/media-type", "code": "audio", "display": "Audio"}}},
			"identifier": []any{obj{"system": "urn:ietf:rfc:6920", "value": "ni:///sha-256;" + b64url(a.BlobSHA256)}},
			"content":    obj{"contentType": a.MediaType, "size": a.SizeBytes, "title": "recording " + a.BlobSHA256},
			"extension":  []any{ledgerExt(a.Leaf)}}
		if a.DurationMS > 0 {
			m["duration"] = float64(a.DurationMS) / 1000
		}
		if subject != nil {
			m["subject"] = subject
		}
		media[a.Leaf] = f.add(m)
	}

	// The note.
	compID := f.id("note", r.Encounter.ID)
	compRef := "Composition/" + compID
	var authors []any
	seenAuthor := map[string]bool{}
	addAuthor := func(ref string) {
		if !seenAuthor[ref] {
			seenAuthor[ref] = true
			authors = append(authors, obj{"reference": ref})
		}
	}
	var sections []any
	var provenances, issues []obj
	for _, sec := range r.Note.Sections {
		var sents []any
		for _, t := range sec.Sentences {
			eid := elementID(t.ID)
			div := `<div xmlns="http://www.w3.org/1999/xhtml">` + html.EscapeString(t.Text) + `</div>`
			st := obj{"id": eid, "title": t.ID, "text": obj{"status": "generated", "div": div}}
			if ext := verdictExt(t); ext != nil {
				st["extension"] = []any{ext}
			}
			sents = append(sents, st)
			provenances = append(provenances, f.sentenceProvenance(compRef, eid, t, transcript, media, addAuthor)...)
			issues = append(issues, f.sentenceIssues(compRef, eid, t, transcript, subject)...)
		}
		s := obj{"title": sec.Name, "section": sents}
		if len(sents) == 0 {
			s["emptyReason"] = obj{"text": "no sentences"}
			delete(s, "section")
		}
		sections = append(sections, s)
	}
	status := "preliminary"
	date := r.GeneratedAt
	var attesters []any
	for _, g := range r.Note.Signoffs {
		who := f.actor(g.Actor)
		if g.Current {
			status, date = "final", g.Time
			if strings.HasPrefix(who, "Practitioner/") {
				attesters = append(attesters, obj{"mode": "legal", "time": g.Time.UTC().Format(time.RFC3339Nano), "party": obj{"reference": who}})
			}
		}
		provenances = append(provenances, obj{"resourceType": "Provenance", "id": f.id("provenance", "signoff", strconv.FormatInt(g.Leaf, 10)),
			"target":   []any{obj{"reference": compRef}},
			"recorded": instant(g.Time),
			"activity": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion", "code": "LA", "display": "legally authenticated"}},
				"text": "sign-off of note version " + g.NoteHash},
			"agent":     []any{obj{"type": participant("attester"), "who": obj{"reference": who}}},
			"extension": []any{ledgerExt(g.Leaf)}})
	}
	if len(authors) == 0 {
		addAuthor(f.actor(r.Encounter.OpenedBy))
	}
	comp := obj{"resourceType": "Composition", "id": compID, "status": status,
		"identifier": obj{"system": "urn:ietf:rfc:6920", "value": "ni:///sha-256;" + b64url(r.Note.Hash)},
		"type":       obj{"coding": []any{obj{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}}},
		"date":       date.UTC().Format(time.RFC3339Nano),
		"title":      noteTitle(r),
		"author":     authors,
		"section":    sections,
		"extension":  []any{ledgerExt(r.Note.Head)}}
	if subject != nil {
		comp["subject"] = subject
	}
	if len(attesters) > 0 {
		comp["attester"] = attesters
	}
	f.add(comp)
	for _, p := range provenances {
		f.add(p)
	}
	for _, d := range issues {
		f.add(d)
	}

	// The access trail.
	for _, a := range r.Accesses {
		agent := obj{"who": obj{"reference": f.actor(a.Actor)}, "requestor": true, "altId": a.Actor}
		if a.Role != "" {
			agent["role"] = []any{obj{"text": a.Role}}
		}
		if addr := hostOf(a.Remote); addr != "" {
			agent["network"] = obj{"address": addr, "type": "2"}
		}
		ev := obj{"resourceType": "AuditEvent", "id": f.id("access", strconv.FormatInt(a.Leaf, 10)),
			"type":     obj{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
			"subtype":  []any{obj{"system": SystemAccessAction, "code": a.Action}},
			"action":   "R",
			"recorded": instant(a.Time),
			"outcome":  "0",
			"agent":    []any{agent},
			"source":   obj{"site": r.Log.Origin, "observer": obj{"display": "evidenced (" + r.Log.Origin + ")"}},
			"entity": []any{obj{"what": obj{"reference": compRef}, "type": obj{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
				"description": "encounter " + a.Encounter}},
			"extension": []any{ledgerExt(a.Leaf)}}
		if a.Channel != "" {
			ev["source"].(obj)["type"] = []any{obj{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}}
			ev["entity"].([]any)[0].(obj)["detail"] = []any{obj{"type": "channel", "valueString": a.Channel}}
		}
		if a.Action == encounter.AccessExport {
			ev["action"] = "E"
		}
		f.add(ev)
	}
}

func noteTitle(r *Report) string {
	if r.Encounter.Title != "" {
		return "Clinical note: " + r.Encounter.Title
	}
	return "Clinical note of encounter " + r.Encounter.ID
}

func participant(code string) obj {
	return obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": code}}}
}

func dataOperation(code string) obj {
	return obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": code}}}
}

// sentenceProvenance returns the Provenance resources of one sentence: its
// origin and each edit. The current version's carries the evidence.
func (f *fhirBundle) sentenceProvenance(compRef, eid string, t ReportSentence, transcript string, media map[int64]string, addAuthor func(string)) []obj {
	target := []any{obj{"reference": compRef, "extension": []any{obj{"url": ExtTargetElement, "valueUri": eid}}}}
	var out []obj
	o := t.Origin
	var agents []any
	if o.Kind == OriginModel && o.Model != nil {
		m := f.model(o.Model)
		addAuthor(m)
		agents = append(agents, obj{"type": participant("author"), "who": obj{"reference": m}})
		agents = append(agents, obj{"type": participant("enterer"), "who": obj{"reference": f.actor(o.Actor)}})
	} else {
		a := f.actor(o.Actor)
		addAuthor(a)
		agents = append(agents, obj{"type": participant("author"), "who": obj{"reference": a}})
	}
	origin := obj{"resourceType": "Provenance", "id": f.id("provenance", t.ID, strconv.FormatInt(o.Leaf, 10)),
		"target": target, "occurredDateTime": o.Time.UTC().Format(time.RFC3339Nano), "recorded": instant(o.Time),
		"activity": dataOperation("CREATE"), "agent": agents, "extension": []any{ledgerExt(o.Leaf)}}
	if o.Kind == OriginModel {
		origin["entity"] = []any{obj{"role": "source", "what": obj{"reference": transcript, "display": "the visit transcript, input of the model"}}}
		if o.PromptSHA256 != "" || o.ParametersSHA256 != "" {
			origin["reason"] = []any{obj{"text": "model call: prompt sha256 " + o.PromptSHA256 + ", parameters sha256 " + o.ParametersSHA256}}
		}
	}
	out = append(out, origin)
	for _, d := range t.Edits {
		a := f.actor(d.Actor)
		addAuthor(a)
		p := obj{"resourceType": "Provenance", "id": f.id("provenance", t.ID, strconv.FormatInt(d.Leaf, 10)),
			"target": target, "occurredDateTime": d.Time.UTC().Format(time.RFC3339Nano), "recorded": instant(d.Time),
			"activity": dataOperation("UPDATE"), "agent": []any{obj{"type": participant("author"), "who": obj{"reference": a}}},
			"entity":    []any{obj{"role": "revision", "what": obj{"reference": compRef, "display": "previous text: " + d.Before}}},
			"extension": []any{ledgerExt(d.Leaf)}}
		if d.Reason != "" {
			p["reason"] = []any{obj{"text": d.Reason}}
		}
		out = append(out, p)
	}
	// Evidence supports the current version: it goes on the last one.
	cur := out[len(out)-1]
	entities, _ := cur["entity"].([]any)
	for _, e := range t.Evidence {
		span := obj{"url": ExtTranscriptSpan, "extension": []any{
			obj{"url": "segmentId", "valueString": e.SegmentID},
			obj{"url": "charStart", "valueInteger": e.CharStart},
			obj{"url": "charEnd", "valueInteger": e.CharEnd},
			obj{"url": "visitTime", "valueRange": msRange(e.StartMS, e.EndMS)},
			obj{"url": "score", "valueDecimal": e.Score},
		}}
		entities = append(entities, obj{"role": "quotation", "what": obj{"reference": transcript, "display": e.Text},
			"extension": []any{span, ledgerExt(e.SegmentLeaf)}})
		if e.Audio != nil && media[e.Audio.Leaf] != "" {
			entities = append(entities, obj{"role": "derivation", "what": obj{"reference": media[e.Audio.Leaf]},
				"extension": []any{obj{"url": ExtAudioTimeRange, "valueRange": msRange(e.Audio.StartMS, e.Audio.EndMS)}}})
		}
	}
	if len(entities) > 0 {
		cur["entity"] = entities
	}
	if t.Alignment != nil {
		cur["policy"] = []any{fhirBase + "alignment-method/" + t.Alignment.Method}
	}
	return out
}

// verdictExt is the sentence-verdict extension of a sentence, or nil for
// a report without verdicts.
func verdictExt(t ReportSentence) obj {
	if t.Verdict == nil {
		return nil
	}
	parts := []any{obj{"url": "verdict", "valueCode": t.Verdict.Verdict}}
	if t.Verdict.Severity != "" {
		parts = append(parts, obj{"url": "severity", "valueCode": t.Verdict.Severity})
	}
	if encounter.Flagged(t.Verdict.Verdict) {
		parts = append(parts, obj{"url": "resolved", "valueBoolean": t.Resolved})
	}
	if t.Alignment != nil {
		parts = append(parts, obj{"url": "method", "valueString": t.Alignment.Method})
	}
	return obj{"url": ExtSentenceVerdict, "extension": parts}
}

// fhirSeverity maps a verdict's severity to DetectedIssue.severity.
var fhirSeverity = map[string]string{
	encounter.SeverityMajor:   "high",
	encounter.SeverityMinor:   "moderate",
	encounter.SeverityMinimal: "low",
}

var verdictDisplay = map[string]string{
	encounter.VerdictContradicted: "Contradicted by the visit transcript",
	encounter.VerdictUnmentioned:  "Not mentioned in the visit transcript",
}

// checker returns the Device that stands for an alignment method, the
// software that gave a verdict.
func (f *fhirBundle) checker(method string) string {
	k := "checker@" + method
	if ref, ok := f.models[k]; ok {
		return ref
	}
	ref := f.add(obj{"resourceType": "Device", "id": f.id("checker", method), "status": "active",
		"deviceName": []any{obj{"name": "evidence alignment and claim check", "type": "model-name"}},
		"type":       obj{"text": "Software that checks note sentences against the visit transcript"},
		"version":    []any{obj{"value": method}}})
	f.models[k] = ref
	return ref
}

// sentenceIssues returns the DetectedIssues of one sentence: one for its
// current version when flagged, and one for each older version a
// clinician resolved (by editing it), each with its resolutions as
// mitigations.
func (f *fhirBundle) sentenceIssues(compRef, eid string, t ReportSentence, transcript string, subject obj) []obj {
	if t.Verdict == nil {
		return nil
	}
	implicated := []any{obj{"reference": compRef, "extension": []any{obj{"url": ExtTargetElement, "valueUri": eid}}}}
	current := t.Origin.Leaf
	if n := len(t.Edits); n > 0 {
		current = t.Edits[n-1].Leaf
	}
	byVersion := map[int64][]ReportResolution{}
	var versions []int64
	for _, res := range t.Resolutions {
		if _, ok := byVersion[res.Version]; !ok && res.Version != current {
			versions = append(versions, res.Version)
		}
		byVersion[res.Version] = append(byVersion[res.Version], res)
	}
	issue := func(version int64, verdict, severity string, leaf int64, method string) obj {
		d := obj{"resourceType": "DetectedIssue", "id": f.id("issue", t.ID, strconv.FormatInt(version, 10)), "status": "final",
			"code":       obj{"coding": []any{obj{"system": SystemVerdict, "code": verdict, "display": verdictDisplay[verdict]}}},
			"implicated": implicated}
		// Derived from the alignment entry that gave the verdict, or, for
		// a version none covered, from the version itself.
		if leaf >= 0 {
			d["extension"] = []any{ledgerExt(leaf)}
		} else {
			d["extension"] = []any{ledgerExt(version)}
		}
		if sv := fhirSeverity[severity]; sv != "" {
			d["severity"] = sv
		}
		if subject != nil {
			d["patient"] = subject
		}
		if method != "" {
			d["author"] = obj{"reference": f.checker(method)}
		}
		var mitigations []any
		for _, res := range byVersion[version] {
			text := "Confirmed as written: " + res.Reason
			if res.Action == encounter.ResolveEdited {
				text = "Replaced (new text's verdict: " + res.NewVerdict + ")"
				if res.Reason != "" {
					text += ": " + res.Reason
				}
			}
			mitigations = append(mitigations, obj{
				"action":    obj{"coding": []any{obj{"system": SystemResolution, "code": res.Action}}, "text": text},
				"date":      res.Time.UTC().Format(time.RFC3339Nano),
				"author":    obj{"reference": f.actor(res.Actor)},
				"extension": []any{ledgerExt(res.Leaf)}})
		}
		if len(mitigations) > 0 {
			d["mitigation"] = mitigations
		}
		return d
	}
	var out []obj
	for _, v := range versions {
		res := byVersion[v][0]
		out = append(out, issue(v, res.Verdict, res.Severity, res.Alignment, ""))
	}
	if !encounter.Flagged(t.Verdict.Verdict) {
		return out
	}
	method, leaf := "", int64(-1)
	if t.Alignment != nil {
		method, leaf = t.Alignment.Method, t.Alignment.Leaf
	}
	d := issue(current, t.Verdict.Verdict, t.Verdict.Severity, leaf, method)
	var evidence []any
	for _, c := range t.Verdict.Conflicts {
		evidence = append(evidence, obj{
			"code": []any{obj{"coding": []any{obj{"system": SystemConflictKind, "code": c.Kind}}, "text": "the note says \"" + c.Claim.Text + "\"; the transcript says otherwise"}},
			"detail": []any{obj{"reference": transcript, "display": c.Words,
				"extension": []any{obj{"url": ExtTranscriptSpan, "extension": []any{
					obj{"url": "segmentId", "valueString": c.SegmentID},
					obj{"url": "charStart", "valueInteger": c.CharStart},
					obj{"url": "charEnd", "valueInteger": c.CharEnd},
					obj{"url": "visitTime", "valueRange": msRange(c.StartMS, c.EndMS)},
				}}, ledgerExt(c.SegmentLeaf)}}},
			"extension": []any{obj{"url": ExtSentenceRange, "valueRange": byteRange(c.Claim.Start, c.Claim.End)}}})
	}
	for _, u := range t.Verdict.Unsupported {
		evidence = append(evidence, obj{
			"code":      []any{obj{"text": "nothing in the transcript supports \"" + u.Text + "\""}},
			"extension": []any{obj{"url": ExtSentenceRange, "valueRange": byteRange(u.Start, u.End)}}})
	}
	if len(evidence) > 0 {
		d["evidence"] = evidence
	}
	return append(out, d)
}

// byteRange is a FHIR Range of byte offsets.
func byteRange(start, end int) obj {
	return obj{"low": obj{"value": start}, "high": obj{"value": end}}
}

func msClock(ms int64) string { return fmt.Sprintf("%d:%02d.%03d", ms/60000, ms/1000%60, ms%1000) }

// b64url converts a hex SHA-256 to the unpadded base64url of RFC 6920.
func b64url(hexHash string) string {
	b, err := hex.DecodeString(hexHash)
	if err != nil {
		return hexHash
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hostOf returns the host of a "host:port" address.
func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 && !strings.HasSuffix(addr, "]") {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}
