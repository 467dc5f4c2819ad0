package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline/soapgen"
)

// Embedded is the default generator: the deterministic rule-based
// generator of package soapgen, run in-process. It needs no model server
// and gives the same note for the same transcript and soapgen.Version.
// docs/generator.md describes its method and limits.
type Embedded struct {
	// Options bound the input soapgen accepts; the zero value uses its
	// defaults.
	Options soapgen.Options
}

// Generate drafts a note with soapgen. It accepts Request.Model only when
// empty or soapgen.Name. Input soapgen cannot take (empty, too large or
// malformed) fails with ErrRejected.
func (e Embedded) Generate(ctx context.Context, req Request) (Output, error) {
	if req.Model != "" && req.Model != soapgen.Name {
		return Output{}, invalid("model", fmt.Sprintf("the embedded backend serves only %q", soapgen.Name))
	}
	out := Output{Model: encounter.Model{Name: soapgen.Name, Version: soapgen.Version}}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	segs := make([]align.Segment, len(req.Segments))
	for i, s := range req.Segments {
		segs[i] = align.Segment{ID: s.ID, Speaker: s.Role, StartMS: s.StartMS, EndMS: s.EndMS, Text: s.Text}
	}
	n, err := soapgen.Generate(segs, e.Options)
	if err != nil {
		// soapgen's errors name positions and fields, never text.
		var se *soapgen.SegmentError
		if errors.As(err, &se) || errors.Is(err, soapgen.ErrEmptyInput) || errors.Is(err, soapgen.ErrInputTooLarge) {
			return out, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		return out, err
	}
	d := &encounter.Draft{Sections: make([]encounter.DraftSection, len(n.Sections))}
	for i, sec := range n.Sections {
		ds := encounter.DraftSection{Name: sec.Name, Sentences: make([]encounter.DraftSentence, len(sec.Sentences))}
		for j, t := range sec.Sentences {
			ds.Sentences[j] = encounter.DraftSentence{ID: t.ID, Text: t.Text}
		}
		d.Sections[i] = ds
	}
	out.Note = d
	return out, nil
}
