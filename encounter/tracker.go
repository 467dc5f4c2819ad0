package encounter

import (
	"fmt"
	"slices"
)

// NoteTracker follows one encounter's note through its entries by the
// rules of the note projection (Note), keeping only what a summary of the
// encounter needs: the current sentences in order, with each one's current
// version and Review (its verdict and whether a clinician resolved it),
// and the latest sign-off. It holds no text. The note
// hash that decides whether the latest sign-off covers the current version
// is computed from the entries' payloads when needed (PayloadFunc): after
// a sign-off, and after each change of a signed note.
//
// Package summary keeps one per encounter, in its JSON encoding. A test
// checks it against the projection over random histories.
type NoteTracker struct {
	// Draft is the leaf of the model output that drafted the note, -1
	// before any (Note.ModelOutput).
	Draft    int64            `json:"m"`
	Sections []trackedSection `json:"s,omitempty"`
	// SignedHash is the note hash (hex) of the latest sign-off, "" before
	// any; Signed reports whether it is the current note's hash.
	SignedHash string `json:"h,omitempty"`
	Signed     bool   `json:"g,omitempty"`
}

// trackedSection is a section of the current note. Its name is read from
// the entry that introduced it when needed: section Ord of the model
// output at From, or the section of the add edit at From when Ord < 0.
type trackedSection struct {
	From      int64             `json:"f"`
	Ord       int               `json:"o"`
	Sentences []trackedSentence `json:"t,omitempty"`
}

// trackedSentence is a current sentence: its id, the leaf of its current
// version (a model output, whose draft holds the text as its Ord-th
// sentence, or an edit when Ord < 0) and its Review.
type trackedSentence struct {
	ID      string `json:"i"`
	Version int64  `json:"v"`
	Ord     int    `json:"o"`
	Review  Review `json:"r"`
}

// unreviewed is the Review of a version no alignment covers yet: nothing
// has checked it, so it is unmentioned (the projection's unchecked).
var unreviewed = Review{Verdict: VerdictUnmentioned}

// PayloadFunc returns the decoded payload (DecodePayload) of an earlier
// entry of the encounter, by leaf index.
type PayloadFunc func(leaf int64) (any, error)

// NewNoteTracker returns the tracker of an encounter with no entries.
func NewNoteTracker() *NoteTracker { return &NoteTracker{Draft: -1} }

// Status returns where the note stands (Note.Status).
func (t *NoteTracker) Status() NoteStatus { return noteStatus(t.Draft >= 0, t.Signed) }

// Flags counts the flagged and unresolved sentences (Note.Flags).
func (t *NoteTracker) Flags() (flagged, unresolved int) {
	return countFlags(func(yield func(Review) bool) {
		for _, sec := range t.Sections {
			for _, s := range sec.Sentences {
				if !yield(s.Review) {
					return
				}
			}
		}
	})
}

// Apply applies the encounter's entry at leaf, whose decoded payload is v
// (nil or any other type for entries that do not affect the note), in
// chain order. payload reads earlier entries: the names of the note's
// sections for an add edit, the texts for the note hash. On error the
// tracker may be part-way through the entry.
func (t *NoteTracker) Apply(leaf int64, v any, payload PayloadFunc) error {
	changed := false
	switch p := v.(type) {
	case *ModelOutput:
		if p.Error != "" || p.Note == nil {
			return nil
		}
		t.Draft, t.Sections, changed = leaf, nil, true
		k := 0
		for i, ds := range p.Note.Sections {
			sec := trackedSection{From: leaf, Ord: i}
			for _, d := range ds.Sentences {
				sec.Sentences = append(sec.Sentences, trackedSentence{ID: d.ID, Version: leaf, Ord: k, Review: unreviewed})
				k++
			}
			t.Sections = append(t.Sections, sec)
		}
	case *Edit:
		var err error
		if changed, err = t.edit(leaf, p, payload); err != nil {
			return err
		}
	case *Alignment:
		for k := range p.Sentences {
			sa := &p.Sentences[k]
			s := t.find(sa.SentenceID)
			if s == nil || s.Version != sa.Version {
				continue
			}
			// The verdict does not depend on the text; the unsupported
			// ranges, which do, are not kept.
			s.Review.Verdict, _, _ = sa.Checked("")
		}
	case *Resolution:
		if s := t.find(p.SentenceID); s != nil && s.Version == p.Version {
			s.Review.Resolved = true
		}
	case *Signoff:
		t.SignedHash, changed = p.NoteHash, true
	}
	if changed && t.SignedHash != "" {
		h, err := t.hash(payload)
		if err != nil {
			return err
		}
		t.Signed = hexHash(h) == t.SignedHash
	}
	return nil
}

// edit applies an edit as applyEdit does and reports whether the note
// changed.
func (t *NoteTracker) edit(leaf int64, d *Edit, payload PayloadFunc) (bool, error) {
	switch d.Action {
	case ActionReplace:
		if s := t.find(d.SentenceID); s != nil {
			*s = trackedSentence{ID: s.ID, Version: leaf, Ord: -1, Review: unreviewed}
			return true, nil
		}
	case ActionDelete:
		for i := range t.Sections {
			sec := &t.Sections[i]
			if j := slices.IndexFunc(sec.Sentences, func(s trackedSentence) bool { return s.ID == d.SentenceID }); j >= 0 {
				sec.Sentences = slices.Delete(sec.Sentences, j, j+1)
				return true, nil
			}
		}
	case ActionAdd:
		sec := -1
		for i := range t.Sections {
			name, err := t.sectionName(&t.Sections[i], payload)
			if err != nil {
				return false, err
			}
			if name == d.Section {
				sec = i
				break
			}
		}
		if sec < 0 {
			t.Sections = append(t.Sections, trackedSection{From: leaf, Ord: -1})
			sec = len(t.Sections) - 1
		}
		pos := 0
		if d.After != "" {
			pos = len(t.Sections[sec].Sentences)
			if i, j := t.locate(d.After); i == sec {
				pos = j + 1
			}
		}
		t.Sections[sec].Sentences = slices.Insert(t.Sections[sec].Sentences, pos, trackedSentence{ID: d.SentenceID, Version: leaf, Ord: -1, Review: unreviewed})
		return true, nil
	}
	return false, nil
}

// locate returns the section and position of the first sentence with id,
// or -1, -1, as the projection's find does.
func (t *NoteTracker) locate(id string) (int, int) {
	for i := range t.Sections {
		for j := range t.Sections[i].Sentences {
			if t.Sections[i].Sentences[j].ID == id {
				return i, j
			}
		}
	}
	return -1, -1
}

func (t *NoteTracker) find(id string) *trackedSentence {
	if i, j := t.locate(id); i >= 0 {
		return &t.Sections[i].Sentences[j]
	}
	return nil
}

// sectionName reads the name of sec from the entry that introduced it.
func (t *NoteTracker) sectionName(sec *trackedSection, payload PayloadFunc) (string, error) {
	v, err := payload(sec.From)
	if err != nil {
		return "", err
	}
	switch p := v.(type) {
	case *ModelOutput:
		if p.Note != nil && sec.Ord >= 0 && sec.Ord < len(p.Note.Sections) {
			return p.Note.Sections[sec.Ord].Name, nil
		}
	case *Edit:
		if sec.Ord < 0 {
			return p.Section, nil
		}
	}
	return "", fmt.Errorf("encounter: note tracker: entry %d does not name section %d", sec.From, sec.Ord)
}

// text reads the current text of s from its version's entry.
func (t *NoteTracker) text(s *trackedSentence, payload PayloadFunc) (string, error) {
	v, err := payload(s.Version)
	if err != nil {
		return "", err
	}
	switch p := v.(type) {
	case *ModelOutput:
		if p.Note == nil {
			break
		}
		k := 0
		for _, sec := range p.Note.Sections {
			if s.Ord < k+len(sec.Sentences) && s.Ord >= k {
				return sec.Sentences[s.Ord-k].Text, nil
			}
			k += len(sec.Sentences)
		}
	case *Edit:
		if s.Ord < 0 {
			return p.Text, nil
		}
	}
	return "", fmt.Errorf("encounter: note tracker: entry %d has no sentence %d", s.Version, s.Ord)
}

// hash computes the current note's NoteHash from the payloads.
func (t *NoteTracker) hash(payload PayloadFunc) ([32]byte, error) {
	secs := make([]NoteSection, len(t.Sections))
	for i := range t.Sections {
		sec := &t.Sections[i]
		name, err := t.sectionName(sec, payload)
		if err != nil {
			return [32]byte{}, err
		}
		secs[i] = NoteSection{Name: name, Sentences: make([]*NoteSentence, len(sec.Sentences))}
		for j := range sec.Sentences {
			text, err := t.text(&sec.Sentences[j], payload)
			if err != nil {
				return [32]byte{}, err
			}
			secs[i].Sentences[j] = &NoteSentence{ID: sec.Sentences[j].ID, Text: text}
		}
	}
	return NoteHash(secs), nil
}
