package encounter

// What a clinician must review in a note, and the note's status: one
// definition shared by the note projection (GetNote, GetEncounter), the
// encounter summaries (package summary) and the visit list.

// NoteStatus is where an encounter's note stands.
type NoteStatus uint8

// Note statuses. The numeric values are stored by package summary; they
// never change.
const (
	// NoteNone: no model output has drafted a note yet.
	NoteNone NoteStatus = 1
	// NoteDrafted: a note exists and its current version is not signed.
	NoteDrafted NoteStatus = 2
	// NoteSigned: the latest sign-off covers exactly the current version.
	NoteSigned NoteStatus = 3
)

var noteStatusNames = [...]string{NoteNone: "none", NoteDrafted: "drafted", NoteSigned: "signed"}

func (s NoteStatus) String() string {
	if s.Valid() {
		return noteStatusNames[s]
	}
	return "unknown"
}

// Valid reports whether s is one of the statuses above.
func (s NoteStatus) Valid() bool { return s >= NoteNone && s <= NoteSigned }

// ParseNoteStatus returns the status String names.
func ParseNoteStatus(name string) (NoteStatus, bool) {
	for s := NoteNone; s <= NoteSigned; s++ {
		if noteStatusNames[s] == name {
			return s, true
		}
	}
	return 0, false
}

// noteStatus is the status of a note drafted (or not) by a model output
// and signed (or not) in its current version.
func noteStatus(drafted, signed bool) NoteStatus {
	switch {
	case signed:
		return NoteSigned
	case drafted:
		return NoteDrafted
	}
	return NoteNone
}

// Review is what decides whether one current sentence of a note is
// flagged for a clinician, and whether that flag is resolved.
type Review struct {
	// Verdict is the current version's verdict (the Verdict constants):
	// the alignment's that covers it, or unmentioned while none does.
	Verdict string `json:"v,omitempty"`
	// Resolved: a clinician resolved the current version (a resolution
	// entry).
	Resolved bool `json:"r,omitempty"`
}

// Flags is the one definition of a flagged and an unresolved sentence:
// a sentence is flagged when its current version's verdict is
// contradicted or unmentioned (Flagged), and unresolved while it is
// flagged and no clinician has resolved that version.
func (r Review) Flags() (flagged, unresolved bool) {
	flagged = Flagged(r.Verdict)
	return flagged, flagged && !r.Resolved
}

// countFlags adds up Flags over a note's current sentences.
func countFlags(reviews func(yield func(Review) bool)) (flagged, unresolved int) {
	for r := range reviews {
		f, u := r.Flags()
		if f {
			flagged++
		}
		if u {
			unresolved++
		}
	}
	return flagged, unresolved
}

// review is the sentence's Review.
func (s *NoteSentence) review() Review {
	return Review{Verdict: s.Verdict, Resolved: s.Resolved}
}

// Status returns where the note stands.
func (n *Note) Status() NoteStatus { return noteStatus(n.ModelOutput >= 0, n.Signed) }

// Flags counts the note's flagged sentences and those still unresolved
// (Review.Flags).
func (n *Note) Flags() (flagged, unresolved int) {
	return countFlags(func(yield func(Review) bool) {
		for _, sec := range n.Sections {
			for _, t := range sec.Sentences {
				if !yield(t.review()) {
					return
				}
			}
		}
	})
}
