package encounter

import (
	"context"
	"fmt"
	"strings"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/ledger"
)

// PreconditionError is a request that is well formed but does not apply
// to the encounter as it is now. Field names the request field that does
// not; the error wraps ErrPrecondition.
type PreconditionError struct {
	Field  string
	Reason string
}

func (e *PreconditionError) Error() string {
	return fmt.Sprintf("encounter: failed precondition: %s %s", e.Field, e.Reason)
}

func (e *PreconditionError) Unwrap() error { return ErrPrecondition }

// UnresolvedSentence is a flagged sentence no clinician has resolved.
type UnresolvedSentence struct {
	ID, Verdict, Severity string
}

// UnresolvedError refuses a sign-off while flagged sentences are
// unresolved. It wraps ErrPrecondition and names the sentences by id only.
type UnresolvedError struct {
	Sentences []UnresolvedSentence
}

func (e *UnresolvedError) Error() string {
	n := len(e.Sentences)
	ids := make([]string, n)
	for i, t := range e.Sentences {
		ids[i] = t.ID
	}
	noun := "sentences are"
	if n == 1 {
		noun = "sentence is"
	}
	return fmt.Sprintf("encounter: failed precondition: %d flagged %s unresolved (%s): resolve each, by editing it or confirming it with a reason, before signing",
		n, noun, strings.Join(ids, ", "))
}

func (e *UnresolvedError) Unwrap() error { return ErrPrecondition }

// ResolveRequest is a clinician's resolution of a flagged sentence: they
// saw its verdict and either confirm the sentence as written, with a
// reason, or replace it with new text, which is re-aligned and re-verified.
type ResolveRequest struct {
	SentenceID string
	// Verdict is the verdict the clinician saw; it must be the current
	// version's. Alignment, when not zero, is the alignment entry it came
	// from, and must be the current version's too.
	Verdict   string
	Alignment int64
	// Action is ResolveConfirmed or ResolveEdited.
	Action string
	// Reason is required to confirm.
	Reason string
	// Text is the new text, for ResolveEdited.
	Text string
}

// MaxReasonBytes caps the reason of an edit or a resolution.
const MaxReasonBytes = 1024

func validateResolve(r *ResolveRequest) error {
	if err := checkLabel("sentence_id", r.SentenceID, true); err != nil {
		return err
	}
	switch r.Verdict {
	case VerdictContradicted, VerdictUnmentioned, VerdictSupported, VerdictInferred:
	default:
		return invalid("verdict", "must be the verdict the clinician saw: contradicted or unmentioned")
	}
	if r.Alignment < 0 {
		return invalid("alignment_index", "must not be negative")
	}
	switch r.Action {
	case ResolveConfirmed:
		if err := checkText("reason", r.Reason, MaxReasonBytes, true); err != nil {
			if strings.TrimSpace(r.Reason) == "" {
				return invalid("reason", "confirming a flagged sentence needs a reason")
			}
			return err
		}
		if r.Text != "" {
			return invalid("text", "a confirmation keeps the text; leave it empty")
		}
	case ResolveEdited:
		if err := checkText("text", r.Text, align.MaxSentenceBytes, true); err != nil {
			return err
		}
		if err := checkText("reason", r.Reason, MaxReasonBytes, false); err != nil {
			return err
		}
	default:
		return invalid("action", "must be confirm or edit")
	}
	return nil
}

// ResolveSentence records a clinician's resolution of a flagged sentence of
// the current note: a resolution entry with the verdict they saw and what
// they did. To edit, it first records the edit and the alignment that
// re-verifies the new text, as RecordEdit does; the new text has its own
// verdict, and needs its own resolution if it is flagged too.
//
// It refuses, writing nothing, a sentence that is not flagged or is
// already resolved, and a verdict or alignment that is not the current
// version's (the clinician saw another version), with a
// *PreconditionError naming the field; a sentence that is not in the note
// is ledger.ErrNotFound. Which roles may resolve is the API's policy (the
// same as signing).
func (svc *Service) ResolveSentence(ctx context.Context, c Caller, id string, r ResolveRequest) (*Recorded, error) {
	if err := validateResolve(&r); err != nil {
		return nil, err
	}
	var rec *Recorded
	err := svc.with(c, id, func(s *state) error {
		var err error
		if rec, err = svc.replay(ctx, c, s); rec != nil || err != nil {
			return err
		}
		n := s.project()
		if n.ModelOutput < 0 {
			return fmt.Errorf("%w: the encounter has no note yet", ErrPrecondition)
		}
		t := n.sentence(r.SentenceID)
		if t == nil {
			return fmt.Errorf("%w: sentence %q", ledger.ErrNotFound, r.SentenceID)
		}
		version := t.Versions[len(t.Versions)-1].Index
		alignment := int64(-1)
		if t.Aligned {
			alignment = t.AlignmentIndex
		}
		switch {
		case !t.Flagged():
			return &PreconditionError{Field: "sentence_id", Reason: fmt.Sprintf("is not flagged: its verdict is %s; only contradicted or unmentioned sentences are resolved", t.Verdict)}
		case t.Resolved:
			return &PreconditionError{Field: "sentence_id", Reason: "is already resolved in its current version"}
		case r.Verdict != t.Verdict:
			return &PreconditionError{Field: "verdict", Reason: fmt.Sprintf("is not the sentence's current verdict (%s); fetch the note again", t.Verdict)}
		case r.Alignment != 0 && r.Alignment != alignment:
			return &PreconditionError{Field: "alignment_index", Reason: "is not the alignment of the sentence's current version; fetch the note again"}
		}
		res := Resolution{V: PayloadVersion, SentenceID: t.ID, Version: version, Alignment: alignment,
			Verdict: t.Verdict, Severity: t.Severity, Action: r.Action, Reason: r.Reason}
		if r.Action == ResolveEdited {
			if r.Text == t.Text {
				return &PreconditionError{Field: "text", Reason: "is the same as the current text; to keep it, confirm it with a reason"}
			}
			rec, err = svc.recordEditLocked(ctx, c, s, EditRequest{Action: ActionReplace, SentenceID: t.ID, Text: r.Text, Reason: r.Reason})
			if err != nil {
				return err
			}
			res.Edit, res.Realigned = rec.Change, rec.Alignment
			if nt := rec.Note.sentence(t.ID); nt != nil {
				res.NewVerdict = nt.Verdict
			}
		}
		p, err := encodePayload(res)
		if err != nil {
			return err
		}
		a, err := svc.append(ctx, c, s, []ledger.Kind{ledger.KindResolution}, [][]byte{p})
		if err != nil {
			return err
		}
		if rec == nil {
			rec = &Recorded{Appended: a, Indexes: []int64{a.First}, Change: -1, Alignment: -1}
		} else {
			rec.Indexes = append(rec.Indexes, a.First)
			rec.Appended = a
		}
		rec.Resolution, rec.SentenceID = a.First, t.ID
		rec.Note = s.project()
		return nil
	})
	return rec, err
}
