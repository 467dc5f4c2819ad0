package compliance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// MaxReportBytes caps a report that ParseReport reads.
const MaxReportBytes = 256 << 20

// ParseReport reads a JSON report strictly: unknown fields, trailing data
// and other format versions are errors.
func ParseReport(r io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxReportBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxReportBytes {
		return nil, fmt.Errorf("compliance: report larger than %d bytes", MaxReportBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rep Report
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("compliance: report: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("compliance: report: trailing data")
	}
	if rep.Format != ReportVersion && rep.Format != ReportVersionV1 {
		return nil, fmt.Errorf("compliance: report format %q, want %q (or %q)", rep.Format, ReportVersion, ReportVersionV1)
	}
	return &rep, nil
}

// ReportProblem is one failed check of a report: which check, where in the
// report, and what was expected and found.
type ReportProblem struct {
	Check    string `json:"check"`
	Where    string `json:"where"`
	Detail   string `json:"detail"`
	Expected string `json:"expected,omitempty"`
	Found    string `json:"found,omitempty"`
}

func (p ReportProblem) String() string {
	s := p.Check + " at " + p.Where + ": " + p.Detail
	if p.Expected != "" || p.Found != "" {
		s += fmt.Sprintf(" (expected %s, found %s)", p.Expected, p.Found)
	}
	return s
}

// ReportCheck is the outcome of VerifyReport. The report holds when
// Problems is empty.
type ReportCheck struct {
	Format    string `json:"format"`
	Origin    string `json:"origin"`
	TreeSize  int64  `json:"tree_size"`
	RootHash  string `json:"root_hash"`
	Encounter string `json:"encounter_id"`
	Entries   int    `json:"entries"`
	Sentences int    `json:"sentences"`
	Evidence  int    `json:"evidence_spans"`
	// Flagged counts the sentences whose verdict is contradicted or
	// unmentioned, and Resolutions every resolution checked.
	Flagged     int             `json:"flagged"`
	Resolutions int             `json:"resolutions"`
	Accesses    int             `json:"accesses"`
	Problems    []ReportProblem `json:"problems"`
}

// VerifyReport checks a report offline against a verifier key the caller
// trusts (not the one in the report):
//
//   - the checkpoint's signature, origin, size and root;
//   - for every entry: its leaf hash from its leaf data, every field of
//     the leaf against what the report says, its payload against the leaf's
//     commitment, and its inclusion proof against the checkpoint;
//   - every claim against the payloads: each sentence's origin (model,
//     version, prompt and parameters hashes, or the clinician's edit), every
//     edit (before, after, reason, author, time), the alignment and each
//     evidence span's text, segment and times, the verdict (severity,
//     conflicts with their transcript words, unsupported parts) against the
//     alignment entry, every resolution (who, when, the verdict they saw
//     against the alignment they saw it in, what they did), the note hash,
//     every sign-off and every access; and that a signed note has no
//     flagged sentence left unresolved.
//
// It uses transparency-dev/merkle and sumdb/note for the cryptography, and
// the ledger's strict leaf decoder.
func VerifyReport(r *Report, verifierKey string) *ReportCheck {
	v := &reportVerifier{r: r, out: &ReportCheck{Format: r.Format, Encounter: r.Encounter.ID, Problems: []ReportProblem{}}, entries: map[int64]*checkedEntry{}}
	v.run(strings.TrimSpace(verifierKey))
	return v.out
}

type checkedEntry struct {
	e       *ReportEntry
	leaf    *ledger.Leaf
	payload any // decoded payload, or nil
	ok      bool
}

type reportVerifier struct {
	r       *Report
	out     *ReportCheck
	root    []byte // nil when the checkpoint did not verify
	entries map[int64]*checkedEntry
}

func (v *reportVerifier) problem(check, where, detail string, expected, found any) {
	p := ReportProblem{Check: check, Where: where, Detail: detail}
	if expected != nil || found != nil {
		p.Expected, p.Found = fmt.Sprint(expected), fmt.Sprint(found)
	}
	v.out.Problems = append(v.out.Problems, p)
}

// same records a problem unless expected == found.
func same[T comparable](v *reportVerifier, check, where, what string, expected, found T) bool {
	if expected == found {
		return true
	}
	v.problem(check, where, what+" differs", expected, found)
	return false
}

func (v *reportVerifier) run(vkey string) {
	v.checkCheckpoint(vkey)
	for i := range v.r.Entries {
		v.checkEntry(&v.r.Entries[i], i)
	}
	v.out.Entries = len(v.entries)
	v.checkEncounter()
	v.checkNote()
	for i, a := range v.r.Accesses {
		v.checkAccess(i, a)
	}
	v.out.Accesses = len(v.r.Accesses)
}

func (v *reportVerifier) checkCheckpoint(vkey string) {
	c := v.r.Log.Checkpoint
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		v.problem("checkpoint", "log.checkpoint", "the verifier key is malformed: "+err.Error(), nil, nil)
		return
	}
	v.out.Origin = verifier.Name()
	if v.r.Log.VerifierKey != vkey {
		v.problem("checkpoint", "log.verifier_key", "the report names another verifier key than the trusted one", vkey, v.r.Log.VerifierKey)
	}
	cp, _, _, err := log.ParseCheckpoint([]byte(c.Note), verifier.Name(), verifier)
	if err != nil {
		v.problem("checkpoint", "log.checkpoint.note", "the checkpoint does not verify with the trusted key: "+err.Error(), nil, nil)
		return
	}
	v.out.TreeSize, v.out.RootHash = int64(cp.Size), hex.EncodeToString(cp.Hash)
	ok := same(v, "checkpoint", "log.origin", "origin", cp.Origin, v.r.Log.Origin)
	ok = same(v, "checkpoint", "log.checkpoint.tree_size", "tree size", int64(cp.Size), c.TreeSize) && ok
	ok = same(v, "checkpoint", "log.checkpoint.root_hash", "root hash", hex.EncodeToString(cp.Hash), c.RootHash) && ok
	if ok {
		v.root = cp.Hash
	}
}

func (v *reportVerifier) checkEntry(e *ReportEntry, i int) {
	where := fmt.Sprintf("entries[%d] (leaf %d)", i, e.Leaf)
	if _, dup := v.entries[e.Leaf]; dup {
		v.problem("entry", where, "leaf appears twice", nil, nil)
		return
	}
	ce := &checkedEntry{e: e}
	v.entries[e.Leaf] = ce
	lh := rfc6962.DefaultHasher.HashLeaf(e.LeafData)
	if !same(v, "leaf", where, "leaf hash of the leaf data", hex.EncodeToString(lh), e.LeafHash) {
		return
	}
	leaf, err := ledger.DecodeLeaf(e.LeafData)
	if err != nil {
		v.problem("leaf", where, "leaf data does not decode: "+err.Error(), nil, nil)
		return
	}
	ce.leaf = leaf
	ok := same(v, "leaf", where, "kind", leaf.Kind.String(), e.Kind)
	ok = same(v, "leaf", where, "tenant", leaf.Tenant, e.Tenant) && ok
	ok = same(v, "leaf", where, "encounter", leaf.Encounter, e.Encounter) && ok
	ok = same(v, "leaf", where, "actor", leaf.Actor, e.Actor) && ok
	ok = same(v, "leaf", where, "time", leaf.Time.UnixNano(), e.Time.UnixNano()) && ok
	ok = same(v, "leaf", where, "chain position", leaf.Seq, e.Seq) && ok
	ok = same(v, "leaf", where, "commitment", hex.EncodeToString(leaf.Commitment[:]), e.Commitment) && ok
	ok = same(v, "leaf", where, "tenant of the report's encounter", v.r.Encounter.Tenant, leaf.Tenant) && ok
	ok = same(v, "leaf", where, "encounter of the report", v.r.Encounter.ID, leaf.Encounter) && ok
	h := sha256.New()
	h.Write(e.Salt)
	h.Write(e.Payload)
	ok = same(v, "payload", where, "SHA-256(salt || payload) against the leaf's commitment", hex.EncodeToString(leaf.Commitment[:]), hex.EncodeToString(h.Sum(nil))) && ok
	if v.root != nil {
		var hashes [][]byte
		for j, s := range e.InclusionProof {
			b, err := hex.DecodeString(s)
			if err != nil || len(b) != sha256.Size {
				v.problem("proof", where, fmt.Sprintf("inclusion_proof[%d] is not a hex SHA-256 hash", j), nil, nil)
				return
			}
			hashes = append(hashes, b)
		}
		if e.Leaf < 0 || e.Leaf >= v.out.TreeSize {
			v.problem("proof", where, "leaf index is outside the checkpoint's tree", fmt.Sprintf("< %d", v.out.TreeSize), e.Leaf)
			ok = false
		} else if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.Leaf), uint64(v.out.TreeSize), lh, hashes, v.root); err != nil {
			v.problem("proof", where, "inclusion proof does not verify against the checkpoint: "+err.Error(), nil, nil)
			ok = false
		}
	}
	if !ok {
		return
	}
	switch leaf.Kind {
	case ledger.KindAccess:
		a, err := encounter.DecodeAccess(e.Payload)
		if err != nil {
			v.problem("payload", where, "access payload does not decode", nil, nil)
			return
		}
		ce.payload = a
	case ledger.KindRedaction:
	default:
		p, err := encounter.DecodePayload(leaf.Kind, e.Payload)
		if err != nil {
			v.problem("payload", where, "payload does not decode: "+err.Error(), nil, nil)
			return
		}
		ce.payload = p
	}
	ce.ok = true
}

// entry returns the checked entry at leaf with the given kind, recording a
// problem when it is missing, failed its checks or has another kind.
func (v *reportVerifier) entry(where string, leaf int64, kind ledger.Kind) *checkedEntry {
	ce := v.entries[leaf]
	switch {
	case ce == nil:
		v.problem("claim", where, fmt.Sprintf("leaf %d is not among the report's entries", leaf), nil, nil)
		return nil
	case !ce.ok:
		return nil // already reported
	case ce.leaf.Kind != kind:
		v.problem("claim", where, fmt.Sprintf("leaf %d has the wrong kind", leaf), kind, ce.leaf.Kind)
		return nil
	}
	return ce
}

// byLeaf checks the actor and time a claim gives for an entry.
func (v *reportVerifier) byLeaf(where string, ce *checkedEntry, actor string, t interface{ UnixNano() int64 }) {
	same(v, "claim", where, "actor", ce.leaf.Actor, actor)
	same(v, "claim", where, "time", ce.leaf.Time.UnixNano(), t.UnixNano())
}

func (v *reportVerifier) checkEncounter() {
	e := v.r.Encounter
	ce := v.entry("encounter.opened_leaf", e.OpenedLeaf, ledger.KindEncounter)
	if ce == nil {
		return
	}
	o := ce.payload.(*encounter.Opened)
	same(v, "claim", "encounter.title", "title", o.Title, e.Title)
	same(v, "claim", "encounter.patient_ref", "patient reference", o.PatientRef, e.PatientRef)
	v.byLeaf("encounter.opened_by", ce, e.OpenedBy, e.OpenedAt)
	for i, a := range v.r.Audio {
		where := fmt.Sprintf("audio[%d]", i)
		ce := v.entry(where, a.Leaf, ledger.KindAudio)
		if ce == nil {
			continue
		}
		p := ce.payload.(*encounter.Audio)
		same(v, "claim", where, "blob SHA-256", p.BlobSHA256, a.BlobSHA256)
		same(v, "claim", where, "size", p.SizeBytes, a.SizeBytes)
		same(v, "claim", where, "media type", p.MediaType, a.MediaType)
		same(v, "claim", where, "duration", p.DurationMS, a.DurationMS)
		same(v, "claim", where, "start", p.StartMS, a.StartMS)
	}
}

func (v *reportVerifier) checkNote() {
	n := v.r.Note
	if n.ModelOutputLeaf >= 0 {
		v.entry("note.model_output_leaf", n.ModelOutputLeaf, ledger.KindModelOutput)
	}
	var sections []encounter.NoteSection
	for i, sec := range n.Sections {
		ns := encounter.NoteSection{Name: sec.Name}
		for j := range sec.Sentences {
			t := &sec.Sentences[j]
			v.checkSentence(fmt.Sprintf("note.sections[%d].sentences[%d] (%s)", i, j, t.ID), sec.Name, t)
			ns.Sentences = append(ns.Sentences, &encounter.NoteSentence{ID: t.ID, Text: t.Text})
			v.out.Sentences++
			v.out.Evidence += len(t.Evidence)
		}
		sections = append(sections, ns)
	}
	h := encounter.NoteHash(sections)
	same(v, "claim", "note.note_hash", "hash of the note's sections and sentences", hex.EncodeToString(h[:]), n.Hash)
	current := -1
	for i, g := range n.Signoffs {
		where := fmt.Sprintf("note.signoffs[%d]", i)
		ce := v.entry(where, g.Leaf, ledger.KindSignoff)
		if ce == nil {
			continue
		}
		p := ce.payload.(*encounter.Signoff)
		same(v, "claim", where, "note hash", p.NoteHash, g.NoteHash)
		same(v, "claim", where, "head", p.Head, g.Head)
		same(v, "claim", where, "statement", p.Statement, g.Statement)
		same(v, "claim", where, "acknowledged sentences", strings.Join(p.Acknowledged, ","), strings.Join(g.Acknowledged, ","))
		v.byLeaf(where, ce, g.Actor, g.Time)
		if g.Current {
			current = i
			same(v, "claim", where, "note hash of the current sign-off", n.Hash, g.NoteHash)
		}
	}
	if n.Signed && (current != len(n.Signoffs)-1 || current < 0) {
		v.problem("claim", "note.signed", "the note is said to be signed, but its last sign-off is not marked current", nil, nil)
	}
	if !n.Signed && current >= 0 {
		v.problem("claim", "note.signed", "a sign-off is marked current, but the note is said to be unsigned", nil, nil)
	}
}

func (v *reportVerifier) checkSentence(where, section string, t *ReportSentence) {
	o := t.Origin
	text := o.Text
	lastLeaf := o.Leaf
	switch o.Kind {
	case OriginModel:
		ce := v.entry(where+".origin", o.Leaf, ledger.KindModelOutput)
		if ce == nil {
			break
		}
		p := ce.payload.(*encounter.ModelOutput)
		found := false
		if p.Note != nil {
			for _, sec := range p.Note.Sections {
				for _, d := range sec.Sentences {
					if d.ID == t.ID {
						found = true
						same(v, "claim", where+".origin", "drafted text", d.Text, o.Text)
					}
				}
			}
		}
		if !found {
			v.problem("claim", where+".origin", "the model output has no sentence with this id", nil, nil)
		}
		if o.Model == nil {
			v.problem("claim", where+".origin.model", "a model output origin names no model", nil, nil)
		} else {
			same(v, "claim", where+".origin.model", "model name", p.Model.Name, o.Model.Name)
			same(v, "claim", where+".origin.model", "model version", p.Model.Version, o.Model.Version)
		}
		same(v, "claim", where+".origin", "backend", p.Backend, o.Backend)
		same(v, "claim", where+".origin", "prompt hash", p.PromptSHA256, o.PromptSHA256)
		same(v, "claim", where+".origin", "parameters hash", ParametersSHA256(p.Parameters), o.ParametersSHA256)
		same(v, "claim", where+".origin", "latency", p.LatencyMS, o.LatencyMS)
		same(v, "claim", where+".origin", "inputs", fmt.Sprint(p.Inputs), fmt.Sprint(o.Inputs))
		v.byLeaf(where+".origin", ce, o.Actor, o.Time)
	case OriginClinician:
		ce := v.entry(where+".origin", o.Leaf, ledger.KindEdit)
		if ce == nil {
			break
		}
		p := ce.payload.(*encounter.Edit)
		same(v, "claim", where+".origin", "edit action", encounter.ActionAdd, p.Action)
		same(v, "claim", where+".origin", "sentence id", p.SentenceID, t.ID)
		same(v, "claim", where+".origin", "added text", p.Text, o.Text)
		same(v, "claim", where+".origin", "section", p.Section, section)
		v.byLeaf(where+".origin", ce, o.Actor, o.Time)
	default:
		v.problem("claim", where+".origin.kind", "unknown origin kind", OriginModel+" or "+OriginClinician, o.Kind)
	}
	for k, d := range t.Edits {
		w := fmt.Sprintf("%s.edits[%d]", where, k)
		ce := v.entry(w, d.Leaf, ledger.KindEdit)
		if ce == nil {
			text, lastLeaf = d.After, d.Leaf
			continue
		}
		p := ce.payload.(*encounter.Edit)
		same(v, "claim", w, "sentence id", p.SentenceID, t.ID)
		same(v, "claim", w, "action", p.Action, d.Action)
		same(v, "claim", w, "text after the edit", p.Text, d.After)
		same(v, "claim", w, "reason", p.Reason, d.Reason)
		same(v, "claim", w, "text before the edit", text, d.Before)
		same(v, "claim", w, "version the edit changed", lastLeaf, p.Base)
		v.byLeaf(w, ce, d.Actor, d.Time)
		text, lastLeaf = d.After, d.Leaf
	}
	same(v, "claim", where+".text", "current text (the last version's)", text, t.Text)
	same(v, "claim", where+".unsupported", "unsupported (no evidence)", len(t.Evidence) == 0, t.Unsupported)
	sa, aligned := v.checkEvidence(where, t, lastLeaf)
	if v.r.Format == ReportVersionV1 {
		if t.Verdict != nil || len(t.Resolutions) > 0 || t.Resolved {
			v.problem("claim", where+".verdict", "a "+ReportVersionV1+" report has no verdicts or resolutions", nil, nil)
		}
		return
	}
	v.checkVerdict(where, t, sa, aligned)
	v.checkResolutions(where, t, lastLeaf)
}

// checkEvidence checks the alignment and evidence claims of a sentence
// whose current version is the entry at lastLeaf. It returns the
// alignment entry's record of that version (nil when the report names no
// alignment, or it failed a check), and whether the report names one.
func (v *reportVerifier) checkEvidence(where string, t *ReportSentence, lastLeaf int64) (*encounter.SentenceAlignment, bool) {
	if t.Alignment == nil {
		if len(t.Evidence) > 0 {
			v.problem("claim", where+".alignment", "evidence without an alignment entry", nil, nil)
		}
		return nil, false
	}
	ce := v.entry(where+".alignment", t.Alignment.Leaf, ledger.KindAlignment)
	if ce == nil {
		return nil, true
	}
	p := ce.payload.(*encounter.Alignment)
	same(v, "claim", where+".alignment", "method version", p.Method, t.Alignment.Method)
	i := slices.IndexFunc(p.Sentences, func(s encounter.SentenceAlignment) bool { return s.SentenceID == t.ID && s.Version == lastLeaf })
	if i < 0 {
		v.problem("claim", where+".alignment", "the alignment entry has no evidence for this version of the sentence", lastLeaf, nil)
		return nil, true
	}
	sa := &p.Sentences[i]
	spans := sa.Spans
	if !same(v, "claim", where+".evidence", "number of spans", len(spans), len(t.Evidence)) {
		return sa, true
	}
	for k, e := range t.Evidence {
		w := fmt.Sprintf("%s.evidence[%d]", where, k)
		sp := spans[k]
		same(v, "claim", w, "segment id", sp.SegmentID, e.SegmentID)
		same(v, "claim", w, "segment leaf", sp.SegmentIndex, e.SegmentLeaf)
		same(v, "claim", w, "character range", fmt.Sprint(sp.CharStart, "-", sp.CharEnd), fmt.Sprint(e.CharStart, "-", e.CharEnd))
		same(v, "claim", w, "time range", fmt.Sprint(sp.StartMS, "-", sp.EndMS), fmt.Sprint(e.StartMS, "-", e.EndMS))
		same(v, "claim", w, "score", sp.Score, e.Score)
		if g := v.segment(w, e.SegmentLeaf, e.SegmentID, e.SpeakerRole); g != nil {
			if e.CharStart < 0 || e.CharStart > e.CharEnd || e.CharEnd > len(g.Text) {
				v.problem("claim", w, "character range is outside the segment's text", len(g.Text), fmt.Sprint(e.CharStart, "-", e.CharEnd))
			} else {
				same(v, "claim", w, "quoted transcript text", g.Text[e.CharStart:e.CharEnd], e.Text)
			}
		}
		v.checkAudioRef(w, e.Audio, e.StartMS, e.EndMS)
	}
	return sa, true
}

// segment returns the payload of the segment entry at leaf after checking
// the id and speaker role a claim gives for it, or nil.
func (v *reportVerifier) segment(where string, leaf int64, id, role string) *encounter.Segment {
	seg := v.entry(where+".segment_leaf", leaf, ledger.KindSegment)
	if seg == nil {
		return nil
	}
	g := seg.payload.(*encounter.Segment)
	same(v, "claim", where, "segment id of the segment entry", g.ID, id)
	same(v, "claim", where, "speaker role", g.Role, role)
	return g
}

// checkAudioRef checks where a claim places a stretch of the visit in a
// recording.
func (v *reportVerifier) checkAudioRef(where string, a *ReportAudioRef, start, end int64) {
	if a == nil {
		return
	}
	ae := v.entry(where+".audio", a.Leaf, ledger.KindAudio)
	if ae == nil {
		return
	}
	ap := ae.payload.(*encounter.Audio)
	same(v, "claim", where+".audio", "blob SHA-256", ap.BlobSHA256, a.BlobSHA256)
	same(v, "claim", where+".audio", "time in the recording", fmt.Sprint(start-ap.StartMS, "-", end-ap.StartMS), fmt.Sprint(a.StartMS, "-", a.EndMS))
}

// checkVerdict checks a sentence's verdict against the alignment entry's
// record of its current version (sa), or, when no alignment covers it
// (aligned false), against the rule for an unchecked version: unmentioned
// and major as a whole.
func (v *reportVerifier) checkVerdict(where string, t *ReportSentence, sa *encounter.SentenceAlignment, aligned bool) {
	w := where + ".verdict"
	if t.Verdict == nil {
		v.problem("claim", w, "the sentence states no verdict", nil, nil)
		return
	}
	if aligned && sa == nil {
		return // the alignment failed its checks, reported above
	}
	verdict, severity, unsupported := encounter.VerdictUnmentioned, encounter.SeverityMajor, []encounter.TextRange{{Start: 0, End: len(t.Text)}}
	var conflicts []encounter.Conflict
	if sa != nil {
		verdict, severity, unsupported = sa.Checked(t.Text)
		conflicts = sa.Conflicts
	}
	if encounter.Flagged(verdict) {
		v.out.Flagged++
	}
	got := t.Verdict
	same(v, "claim", w, "verdict", verdict, got.Verdict)
	same(v, "claim", w, "severity", severity, got.Severity)
	if same(v, "claim", w+".unsupported", "number of unsupported ranges", len(unsupported), len(got.Unsupported)) {
		for k, r := range unsupported {
			v.checkRange(fmt.Sprintf("%s.unsupported[%d]", w, k), t.Text, r, got.Unsupported[k])
		}
	}
	if !same(v, "claim", w+".conflicts", "number of conflicts", len(conflicts), len(got.Conflicts)) {
		return
	}
	for k, c := range conflicts {
		cw := fmt.Sprintf("%s.conflicts[%d]", w, k)
		rc := got.Conflicts[k]
		same(v, "claim", cw, "kind", c.Kind, rc.Kind)
		v.checkRange(cw+".claim", t.Text, c.Claim, rc.Claim)
		same(v, "claim", cw, "segment id", c.SegmentID, rc.SegmentID)
		same(v, "claim", cw, "segment leaf", c.SegmentIndex, rc.SegmentLeaf)
		same(v, "claim", cw, "character range", fmt.Sprint(c.CharStart, "-", c.CharEnd), fmt.Sprint(rc.CharStart, "-", rc.CharEnd))
		same(v, "claim", cw, "time range", fmt.Sprint(c.StartMS, "-", c.EndMS), fmt.Sprint(rc.StartMS, "-", rc.EndMS))
		same(v, "claim", cw, "words", c.Words, rc.Words)
		if g := v.segment(cw, rc.SegmentLeaf, rc.SegmentID, rc.SpeakerRole); g != nil && (rc.CharStart < 0 || rc.CharStart > rc.CharEnd || rc.CharEnd > len(g.Text)) {
			v.problem("claim", cw, "character range is outside the segment's text", len(g.Text), fmt.Sprint(rc.CharStart, "-", rc.CharEnd))
		}
		v.checkAudioRef(cw, rc.Audio, rc.StartMS, rc.EndMS)
	}
}

// checkRange checks a claimed range of a sentence and the text it quotes.
func (v *reportVerifier) checkRange(where, text string, want encounter.TextRange, got ReportRange) {
	if !same(v, "claim", where, "range", fmt.Sprint(want.Start, "-", want.End), fmt.Sprint(got.Start, "-", got.End)) {
		return
	}
	if want.Start < 0 || want.Start > want.End || want.End > len(text) {
		v.problem("claim", where, "range is outside the sentence", len(text), fmt.Sprint(want.Start, "-", want.End))
		return
	}
	same(v, "claim", where, "quoted sentence text", text[want.Start:want.End], got.Text)
}

// checkResolutions checks each resolution of a sentence against its entry,
// the verdict it says the clinician saw against the alignment entry it
// names, an edit against the sentence's edits, and the resolved claim.
func (v *reportVerifier) checkResolutions(where string, t *ReportSentence, lastLeaf int64) {
	texts := map[int64]string{t.Origin.Leaf: t.Origin.Text}
	for _, d := range t.Edits {
		texts[d.Leaf] = d.After
	}
	resolved := false
	for k, r := range t.Resolutions {
		w := fmt.Sprintf("%s.resolutions[%d]", where, k)
		v.out.Resolutions++
		ce := v.entry(w, r.Leaf, ledger.KindResolution)
		if ce == nil {
			continue
		}
		p := ce.payload.(*encounter.Resolution)
		same(v, "claim", w, "sentence id", p.SentenceID, t.ID)
		same(v, "claim", w, "version resolved", p.Version, r.Version)
		same(v, "claim", w, "alignment seen", p.Alignment, r.Alignment)
		same(v, "claim", w, "verdict seen", p.Verdict, r.Verdict)
		same(v, "claim", w, "severity seen", p.Severity, r.Severity)
		same(v, "claim", w, "action", p.Action, r.Action)
		same(v, "claim", w, "reason", p.Reason, r.Reason)
		same(v, "claim", w, "edit", p.Edit, r.Edit)
		same(v, "claim", w, "re-alignment", p.Realigned, r.Realigned)
		same(v, "claim", w, "new verdict", p.NewVerdict, r.NewVerdict)
		v.byLeaf(w, ce, r.Actor, r.Time)
		same(v, "claim", w+".current", "covers the current version", p.Version == lastLeaf, r.Current)
		resolved = resolved || p.Version == lastLeaf
		text, ok := texts[p.Version]
		if !ok {
			v.problem("claim", w, "the resolved version is not a version of this sentence", nil, p.Version)
			continue
		}
		// The verdict the clinician saw is the one the ledger gave that
		// version.
		v.checkSeen(w, t.ID, p.Alignment, p.Version, text, p.Verdict, p.Severity)
		if p.Action == encounter.ResolveEdited {
			after, ok := texts[p.Edit]
			if !ok {
				v.problem("claim", w+".edit", "the resolving edit is not among the sentence's edits", nil, p.Edit)
				continue
			}
			for _, d := range t.Edits {
				if d.Leaf == p.Edit {
					same(v, "claim", w+".edit", "version the resolving edit changed", p.Version, editBase(v, d.Leaf))
				}
			}
			v.checkSeen(w+".new_verdict", t.ID, p.Realigned, p.Edit, after, p.NewVerdict, "")
		}
	}
	same(v, "claim", where+".resolved", "a resolution covers the current version", resolved, t.Resolved)
	if v.r.Note.Signed && t.Verdict != nil && encounter.Flagged(t.Verdict.Verdict) && !resolved && !t.Acknowledged {
		v.problem("claim", where, "the note is signed with this flagged sentence neither resolved nor acknowledged", nil, nil)
	}
}

// editBase returns the version an edit entry says it changed, or -1.
func editBase(v *reportVerifier, leaf int64) int64 {
	if ce := v.entries[leaf]; ce != nil && ce.ok {
		if e, ok := ce.payload.(*encounter.Edit); ok {
			return e.Base
		}
	}
	return -1
}

// checkSeen checks that the alignment entry at alignment (-1: none) gave
// the sentence version at version, whose text is text, the verdict (and,
// unless empty, the severity) a resolution records.
func (v *reportVerifier) checkSeen(where, id string, alignment, version int64, text, verdict, severity string) {
	wantVerdict, wantSeverity := encounter.VerdictUnmentioned, encounter.SeverityMajor
	if alignment >= 0 {
		ce := v.entry(where+".alignment", alignment, ledger.KindAlignment)
		if ce == nil {
			return
		}
		p := ce.payload.(*encounter.Alignment)
		i := slices.IndexFunc(p.Sentences, func(s encounter.SentenceAlignment) bool { return s.SentenceID == id && s.Version == version })
		if i < 0 {
			v.problem("claim", where+".alignment", "the alignment entry does not cover the version resolved", version, nil)
			return
		}
		wantVerdict, wantSeverity, _ = p.Sentences[i].Checked(text)
	}
	same(v, "claim", where, "verdict the alignment entry gave", wantVerdict, verdict)
	if severity != "" || wantSeverity == "" {
		same(v, "claim", where, "severity the alignment entry gave", wantSeverity, severity)
	}
}

func (v *reportVerifier) checkAccess(i int, a AccessEvent) {
	where := fmt.Sprintf("accesses[%d]", i)
	ce := v.entry(where, a.Leaf, ledger.KindAccess)
	if ce == nil {
		return
	}
	p := ce.payload.(*encounter.Access)
	same(v, "claim", where, "action", p.Action, a.Action)
	same(v, "claim", where, "role", p.Role, a.Role)
	same(v, "claim", where, "channel", p.Channel, a.Channel)
	same(v, "claim", where, "remote address", p.Remote, a.Remote)
	same(v, "claim", where, "forwarded-for address", p.ForwardedFor, a.ForwardedFor)
	same(v, "claim", where, "format", p.Format, a.Format)
	same(v, "claim", where, "head", p.Head, a.Head)
	v.byLeaf(where, ce, a.Actor, a.Time)
}
