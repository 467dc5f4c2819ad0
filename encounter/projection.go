package encounter

import (
	"crypto/sha256"
	"encoding/json"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/evidenceledger/evidence/ledger"
)

// Note is the current note of an encounter: a projection computed from the
// chain on every read, never stored.
type Note struct {
	Encounter   string
	Sections    []NoteSection
	Hash        [32]byte // see NoteHash
	Head        int64    // the last leaf of the chain included
	ModelOutput int64    // the model output the note was drafted by; -1 for none
	Model       Model
	Signoffs    []SignoffRecord
	Signed      bool // the latest sign-off covers exactly this version
}

// NoteSection is a section of a Note.
type NoteSection struct {
	Name      string
	Sentences []*NoteSentence
}

// NoteSentence is one sentence of the current note with its history and
// evidence.
type NoteSentence struct {
	ID   string
	Text string
	// Versions lists the model's draft and every edit, oldest first; the
	// last is the current text.
	Versions []Version
	// Aligned is true once an alignment covers the current version.
	Aligned bool
	// Evidence supports the current version, best first.
	Evidence        []Evidence
	AlignmentIndex  int64
	AlignmentMethod string
	// Verdict says whether the transcript supports the current version
	// (one of the Verdict constants), and Severity how much a flagged one
	// matters. A version no alignment covers yet is unmentioned (major):
	// nothing has checked it.
	Verdict  string
	Severity string
	// Conflicts, for a contradicted sentence, locate each contradicted
	// claim and the transcript words that say otherwise.
	Conflicts []ConflictEvidence
	// UnsupportedRanges, for an unmentioned sentence, are the parts of the
	// text that nothing supports.
	UnsupportedRanges []SentenceRange
	// Resolutions are the clinicians' resolutions of the sentence's
	// flagged versions, oldest first; Resolved says one covers the
	// current version.
	Resolutions []ResolutionRecord
	Resolved    bool
	// Acknowledged: a signer accepted the current version while it was
	// unsupported (sign-offs before resolutions existed; see Service.Sign).
	Acknowledged bool
}

// Unsupported reports whether the current text has no evidence: either the
// alignment found none, or no alignment covers it.
func (s *NoteSentence) Unsupported() bool { return len(s.Evidence) == 0 }

// Flagged reports whether the current version's verdict is contradicted
// or unmentioned.
func (s *NoteSentence) Flagged() bool { return Flagged(s.Verdict) }

// NeedsResolution reports whether the current version is flagged and no
// clinician has resolved it: the note cannot be signed while one does.
func (s *NoteSentence) NeedsResolution() bool { return s.Flagged() && !s.Resolved }

// SentenceRange is a range of a sentence's text, in UTF-8 bytes and in
// UTF-16 code units (as browsers count), half-open.
type SentenceRange struct {
	TextRange
	UTF16Start, UTF16End int
}

// ConflictEvidence is a recorded conflict with the claim's and the
// transcript words' ranges also in UTF-16 code units, and the speaker.
type ConflictEvidence struct {
	Conflict
	ClaimRange SentenceRange
	Role       string
	// UTF16Start and UTF16End locate the words in the segment's text.
	UTF16Start, UTF16End int
}

// ResolutionRecord is a resolution entry of the chain.
type ResolutionRecord struct {
	meta
	Resolution
}

// Version is one version of a sentence.
type Version struct {
	meta
	Kind   ledger.Kind // model_output or edit
	Action string      // for edits
	Text   string
	Reason string
	Model  *Model // for model outputs
}

// Evidence is an alignment span with the transcript text it covers.
type Evidence struct {
	Span
	Role string
	Text string
	// UTF16Start and UTF16End are the span's offsets in UTF-16 code
	// units, as browsers count.
	UTF16Start, UTF16End int
}

// SignoffRecord is a sign-off of the note.
type SignoffRecord struct {
	meta
	Signoff
}

// NoteHash is SHA-256 over the note's canonical form: the JSON encoding
// of [{"name":S,"sentences":[{"id":I,"text":T},...]},...] with sections and
// sentences in note order, as Go's encoding/json writes it (no spaces,
// HTML-safe escaping). docs/api.md shows an example.
func NoteHash(sections []NoteSection) [32]byte {
	type sent struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	type sec struct {
		Name      string `json:"name"`
		Sentences []sent `json:"sentences"`
	}
	canon := make([]sec, len(sections))
	for i, s := range sections {
		canon[i] = sec{Name: s.Name, Sentences: make([]sent, len(s.Sentences))}
		for j, t := range s.Sentences {
			canon[i].Sentences[j] = sent{ID: t.ID, Text: t.Text}
		}
	}
	b, _ := json.Marshal(canon)
	return sha256.Sum256(b)
}

// project computes the current note from s.
func (s *state) project() *Note {
	n := &Note{Encounter: s.id, Head: s.head, ModelOutput: -1}
	segs := make(map[int64]*storedSegment, len(s.segments))
	for i := range s.segments {
		segs[s.segments[i].Index] = &s.segments[i]
	}
	find := func(id string) (sec, pos int) {
		for i := range n.Sections {
			for j, t := range n.Sections[i].Sentences {
				if t.ID == id {
					return i, j
				}
			}
		}
		return -1, -1
	}
	for _, ev := range s.events {
		switch {
		case ev.output != nil:
			o := ev.output
			if o.Error != "" || o.Note == nil {
				continue
			}
			n.ModelOutput, n.Model = ev.Index, o.Model
			n.Sections = nil
			for _, ds := range o.Note.Sections {
				sec := NoteSection{Name: ds.Name}
				for _, d := range ds.Sentences {
					model := o.Model
					t := &NoteSentence{ID: d.ID, Text: d.Text,
						Versions: []Version{{meta: ev.meta, Kind: ledger.KindModelOutput, Text: d.Text, Model: &model}}}
					unchecked(t)
					sec.Sentences = append(sec.Sentences, t)
				}
				n.Sections = append(n.Sections, sec)
			}
		case ev.edit != nil:
			applyEdit(n, ev, find)
		case ev.alignment != nil:
			for k := range ev.alignment.Sentences {
				sa := &ev.alignment.Sentences[k]
				i, j := find(sa.SentenceID)
				if i < 0 {
					continue
				}
				t := n.Sections[i].Sentences[j]
				if t.Versions[len(t.Versions)-1].Index != sa.Version {
					continue // evidence for an older version
				}
				t.Aligned, t.AlignmentIndex, t.AlignmentMethod = true, ev.Index, ev.alignment.Method
				t.Evidence = t.Evidence[:0]
				for _, sp := range sa.Spans {
					t.Evidence = append(t.Evidence, evidenceFor(sp, segs[sp.SegmentIndex]))
				}
				applyVerdict(t, sa, segs)
			}
		case ev.resolution != nil:
			r := ev.resolution
			if i, j := find(r.SentenceID); i >= 0 {
				t := n.Sections[i].Sentences[j]
				t.Resolutions = append(t.Resolutions, ResolutionRecord{meta: ev.meta, Resolution: *r})
				if t.Versions[len(t.Versions)-1].Index == r.Version {
					t.Resolved = true
				}
			}
		case ev.signoff != nil:
			n.Signoffs = append(n.Signoffs, SignoffRecord{meta: ev.meta, Signoff: *ev.signoff})
			for _, id := range ev.signoff.Acknowledged {
				if i, j := find(id); i >= 0 {
					n.Sections[i].Sentences[j].Acknowledged = true
				}
			}
		}
	}
	n.Hash = NoteHash(n.Sections)
	if k := len(n.Signoffs); k > 0 {
		n.Signed = n.Signoffs[k-1].NoteHash == hexHash(n.Hash)
	}
	return n
}

func applyEdit(n *Note, ev event, find func(string) (int, int)) {
	d := ev.edit
	v := Version{meta: ev.meta, Kind: ledger.KindEdit, Action: d.Action, Text: d.Text, Reason: d.Reason}
	switch d.Action {
	case ActionReplace:
		if i, j := find(d.SentenceID); i >= 0 {
			t := n.Sections[i].Sentences[j]
			t.Text, t.Versions = d.Text, append(t.Versions, v)
			t.Aligned, t.Evidence, t.Acknowledged = false, nil, false
			t.AlignmentIndex, t.AlignmentMethod = 0, ""
			unchecked(t)
		}
	case ActionDelete:
		if i, j := find(d.SentenceID); i >= 0 {
			n.Sections[i].Sentences = slices.Delete(n.Sections[i].Sentences, j, j+1)
		}
	case ActionAdd:
		t := &NoteSentence{ID: d.SentenceID, Text: d.Text, Versions: []Version{v}}
		unchecked(t)
		sec := slices.IndexFunc(n.Sections, func(s NoteSection) bool { return s.Name == d.Section })
		if sec < 0 {
			n.Sections = append(n.Sections, NoteSection{Name: d.Section})
			sec = len(n.Sections) - 1
		}
		pos := 0
		if d.After != "" {
			if i, j := find(d.After); i == sec {
				pos = j + 1
			} else {
				pos = len(n.Sections[sec].Sentences)
			}
		}
		n.Sections[sec].Sentences = slices.Insert(n.Sections[sec].Sentences, pos, t)
	}
}

// unchecked gives a sentence version that no alignment covers yet its
// verdict: unmentioned as a whole, major, since nothing has checked it.
func unchecked(t *NoteSentence) {
	t.Verdict, t.Severity, t.Conflicts, t.Resolved = VerdictUnmentioned, SeverityMajor, nil, false
	t.UnsupportedRanges = []SentenceRange{sentenceRange(t.Text, TextRange{0, len(t.Text)})}
}

// applyVerdict sets the verdict of t's current version from the
// alignment that covers it.
func applyVerdict(t *NoteSentence, sa *SentenceAlignment, segs map[int64]*storedSegment) {
	verdict, severity, unsupported := sa.Checked(t.Text)
	t.Verdict, t.Severity, t.Conflicts, t.UnsupportedRanges = verdict, severity, nil, nil
	for _, r := range unsupported {
		t.UnsupportedRanges = append(t.UnsupportedRanges, sentenceRange(t.Text, r))
	}
	for _, c := range sa.Conflicts {
		ce := ConflictEvidence{Conflict: c, ClaimRange: sentenceRange(t.Text, c.Claim)}
		if seg := segs[c.SegmentIndex]; seg != nil {
			ce.Role = seg.Role
			if c.CharStart >= 0 && c.CharStart <= c.CharEnd && c.CharEnd <= len(seg.Text) {
				ce.UTF16Start = utf16Len(seg.Text[:c.CharStart])
				ce.UTF16End = ce.UTF16Start + utf16Len(seg.Text[c.CharStart:c.CharEnd])
			}
		}
		t.Conflicts = append(t.Conflicts, ce)
	}
}

// sentenceRange adds UTF-16 offsets to a byte range of text; a range
// outside the text keeps zero UTF-16 offsets.
func sentenceRange(text string, r TextRange) SentenceRange {
	out := SentenceRange{TextRange: r}
	if r.Start >= 0 && r.Start <= r.End && r.End <= len(text) {
		out.UTF16Start = utf16Len(text[:r.Start])
		out.UTF16End = out.UTF16Start + utf16Len(text[r.Start:r.End])
	}
	return out
}

func evidenceFor(sp Span, seg *storedSegment) Evidence {
	e := Evidence{Span: sp}
	if seg == nil {
		return e
	}
	e.Role = seg.Role
	text := seg.Text
	if sp.CharStart >= 0 && sp.CharStart <= sp.CharEnd && sp.CharEnd <= len(text) {
		e.Text = text[sp.CharStart:sp.CharEnd]
		e.UTF16Start = utf16Len(text[:sp.CharStart])
		e.UTF16End = e.UTF16Start + utf16Len(e.Text)
	}
	return e
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r == utf8.RuneError {
			n++
			continue
		}
		n += utf16.RuneLen(r)
	}
	return n
}
