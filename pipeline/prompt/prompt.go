// Package prompt is the contract between the inference wrapper and a text
// model: the prompt that asks for a SOAP note (Build) and the parser of the
// model's reply (Parse). The OpenAI-compatible and KServe backends both use
// it, and the proxies use Parse to recognise a note in a reply they
// forward.
//
// The prompt template is versioned: TemplateVersion names it and
// TemplateSHA256 is the SHA-256 of its text, recorded with every call as
// the model_output's prompt hash. Any change to System or to the transcript
// rendering MUST change TemplateVersion, and changes TemplateSHA256 by
// construction.
//
// The reply format is described in docs/pipeline.md ("Reply format"): a
// JSON note (preferred, and what the prompt asks for) or text with SOAP
// headings. Sentence ids are assigned by position, so the same reply always
// gives the same ids.
package prompt

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/evidenceledger/evidence/encounter"
)

// TemplateVersion names the prompt template.
const TemplateVersion = "soap-note-json/1"

// System is the system message of the template.
const System = `You are a clinical documentation assistant. You write the clinician's note for a primary-care consultation from its transcript.

Write a SOAP note with exactly four sections, in this order: Subjective, Objective, Assessment, Plan.
- Use only what was said in the transcript. Do not add findings, diagnoses, doses or plans that were not stated.
- Write short, complete sentences in the third person, in the register of a clinical note.
- If nothing was said for a section, write the single sentence "None recorded."

Reply with one JSON object and nothing else, in exactly this form:
{"sections":[{"name":"Subjective","sentences":["...","..."]},{"name":"Objective","sentences":["..."]},{"name":"Assessment","sentences":["..."]},{"name":"Plan","sentences":["..."]}]}`

// transcriptHeader opens the user message; each segment follows on its own
// line as "[mm:ss] ROLE: text".
const transcriptHeader = "Transcript of the consultation:\n"

// TemplateSHA256 is the hex SHA-256 of the template: System, a NUL byte,
// the transcript header, a NUL byte and the line format.
var TemplateSHA256 = func() string {
	h := sha256.Sum256([]byte(TemplateVersion + "\x00" + System + "\x00" + transcriptHeader + "\x00" + "[%02d:%02d] %s: %s\n"))
	return hex.EncodeToString(h[:])
}()

// Build renders the prompt for a transcript: the system message and the
// user message holding the transcript, one segment per line in the given
// order.
func Build(segs []encounter.Segment) (system, user string) {
	var b strings.Builder
	b.WriteString(transcriptHeader)
	for _, s := range segs {
		sec := s.StartMS / 1000
		fmt.Fprintf(&b, "[%02d:%02d] %s: %s\n", sec/60, sec%60, strings.ToUpper(roleOf(s.Role)), oneLine(s.Text))
	}
	return System, b.String()
}

// Text is the prompt as one string, for completion-style models that take
// no separate system message (the KServe backend's text_input): the system
// message, a blank line and the user message.
func Text(segs []encounter.Segment) string {
	system, user := Build(segs)
	return system + "\n\n" + user
}

func roleOf(r string) string {
	if r == "" {
		return "other"
	}
	return r
}

// oneLine keeps a segment on its line: line breaks become spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
