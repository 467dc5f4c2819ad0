package prompt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/evidenceledger/evidence/encounter"
)

// ErrNotNote is returned (wrapped, with a reason) by Parse for a reply
// that is not a note. Reasons name positions and limits, never reply text.
var ErrNotNote = errors.New("prompt: the reply is not a note")

// Limits on a reply. A note that breaks them is rejected rather than
// truncated, so that what is recorded is what the model wrote.
const (
	MaxReplyBytes       = 1 << 20
	MaxSections         = 32
	MaxSectionNameBytes = 64
	// MaxSentences and MaxSentenceBytes are the ledger's limits on a note
	// (encounter.MaxSentences, align.MaxSentenceBytes).
	MaxSentences     = encounter.MaxSentences
	MaxSentenceBytes = 8 << 10
)

func notNote(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotNote, fmt.Sprintf(format, args...))
}

// Parse reads a model's reply as a note. It accepts, after removing any
// leading <think>...</think> reasoning block:
//
//   - a JSON object, bare or in a ``` fence: {"sections":[{"name":N,
//     "sentences":[S,...]},...]} where each S is a string or an object with
//     a "text"; or an object whose keys are section names and whose values
//     are a string or a list of sentences; or either of these under "note";
//   - text with SOAP headings ("Subjective", "Objective", "Assessment",
//     "Plan", "Assessment and Plan", or S:/O:/A:/P:), in Markdown or plain,
//     with the body of each section split into sentences. Text before the
//     first heading is ignored, and other short headings ("Medications:")
//     start sections of their own.
//
// Sections without sentences are dropped. Sentence ids are the section's
// initial and the sentence's 1-based position in it ("S1", "P3"), as the
// embedded generator writes them; a later section whose initial is taken
// uses its position too ("S5-1"). The same reply always gives the same
// note.
func Parse(reply string) (*encounter.Draft, error) {
	if len(reply) > MaxReplyBytes {
		return nil, notNote("%d bytes, more than %d", len(reply), MaxReplyBytes)
	}
	if !utf8.ValidString(reply) {
		return nil, notNote("not valid UTF-8")
	}
	s, err := stripReasoning(strings.TrimSpace(reply))
	if err != nil {
		return nil, err
	}
	if body, ok := jsonCandidate(s); ok {
		secs, err := parseJSON([]byte(body), 0)
		if err != nil {
			return nil, err
		}
		return build(secs)
	}
	secs, err := parseText(s)
	if err != nil {
		return nil, err
	}
	return build(secs)
}

// stripReasoning removes the <think> blocks that reasoning models put
// before their answer.
func stripReasoning(s string) (string, error) {
	for strings.HasPrefix(s, "<think>") {
		end := strings.Index(s, "</think>")
		if end < 0 {
			return "", notNote("a <think> block is not closed")
		}
		s = strings.TrimSpace(s[end+len("</think>"):])
	}
	return s, nil
}

// jsonCandidate returns the JSON object the reply holds: the whole reply,
// or the body of its first ``` fence that starts with an object.
func jsonCandidate(s string) (string, bool) {
	if strings.HasPrefix(s, "{") {
		return s, true
	}
	rest := s
	for {
		i := strings.Index(rest, "```")
		if i < 0 {
			return "", false
		}
		rest = rest[i+3:]
		nl := strings.IndexByte(rest, '\n')
		if nl < 0 {
			return "", false
		}
		lang := strings.TrimSpace(rest[:nl])
		body := rest[nl+1:]
		end := strings.Index(body, "```")
		if end < 0 {
			return "", false
		}
		inner := strings.TrimSpace(body[:end])
		if (lang == "" || strings.EqualFold(lang, "json")) && strings.HasPrefix(inner, "{") {
			return inner, true
		}
		rest = body[end+3:]
	}
}

type section struct {
	name      string
	sentences []string
}

// member is one key of a JSON object, in document order.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers decodes a JSON object keeping its key order. Trailing data
// is an error.
func objectMembers(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, notNote("not a JSON object")
	}
	var out []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, notNote("malformed JSON")
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, notNote("malformed JSON")
		}
		out = append(out, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, notNote("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, notNote("data after the JSON object")
	}
	return out, nil
}

func parseJSON(data []byte, depth int) ([]section, error) {
	members, err := objectMembers(data)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		switch strings.ToLower(m.key) {
		case "sections":
			return jsonSections(m.value)
		case "note":
			if depth == 0 && len(members) == 1 {
				return parseJSON(m.value, depth+1)
			}
		}
	}
	// An object keyed by section name.
	var secs []section
	for _, m := range members {
		sents, err := jsonSentences(m.value)
		if err != nil {
			return nil, err
		}
		secs = append(secs, section{name: m.key, sentences: sents})
	}
	return secs, nil
}

func jsonSections(data json.RawMessage) ([]section, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, notNote(`"sections" is not a list`)
	}
	var secs []section
	for i, it := range items {
		members, err := objectMembers(it)
		if err != nil {
			return nil, notNote("sections[%d] is not an object", i)
		}
		var sec section
		var body json.RawMessage
		for _, m := range members {
			switch strings.ToLower(m.key) {
			case "name", "title", "section", "heading":
				if err := json.Unmarshal(m.value, &sec.name); err != nil {
					return nil, notNote("sections[%d].name is not a string", i)
				}
			case "sentences", "text", "content", "items":
				body = m.value
			}
		}
		if body != nil {
			if sec.sentences, err = jsonSentences(body); err != nil {
				return nil, err
			}
		}
		secs = append(secs, sec)
	}
	return secs, nil
}

// jsonSentences reads a section body: a string (split into sentences) or a
// list whose items are strings or objects with a "text".
func jsonSentences(data json.RawMessage) ([]string, error) {
	var s string
	if json.Unmarshal(data, &s) == nil {
		return splitSentences(s), nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, notNote("a section body is neither text nor a list")
	}
	var out []string
	for i, it := range items {
		if json.Unmarshal(it, &s) == nil {
			out = append(out, s)
			continue
		}
		var obj struct {
			Text     *string `json:"text"`
			Sentence *string `json:"sentence"`
		}
		if json.Unmarshal(it, &obj) != nil || (obj.Text == nil && obj.Sentence == nil) {
			return nil, notNote("sentence %d is neither text nor an object with text", i)
		}
		if obj.Text != nil {
			out = append(out, *obj.Text)
		} else {
			out = append(out, *obj.Sentence)
		}
	}
	return out, nil
}

// soapNames maps heading spellings to section names.
var soapNames = map[string]string{
	"subjective": "Subjective", "s": "Subjective",
	"objective": "Objective", "o": "Objective",
	"assessment": "Assessment", "a": "Assessment",
	"plan": "Plan", "p": "Plan",
	"assessment and plan": "Assessment and Plan", "assessment & plan": "Assessment and Plan",
	"assessment/plan": "Assessment and Plan", "a/p": "Assessment and Plan",
}

// emphasis removes Markdown bold markers.
var emphasis = strings.NewReplacer("**", "", "__", "")

// heading recognises a section heading line. It returns the section name,
// any text after the heading on the same line, and whether the heading is
// a SOAP one.
func heading(line string) (name, inline string, soap, ok bool) {
	l := strings.TrimSpace(emphasis.Replace(line))
	hashed := strings.HasPrefix(l, "#")
	l = strings.TrimSpace(strings.TrimLeft(l, "#"))
	if l == "" {
		return "", "", false, false
	}
	// "Name: inline text" or "Name:" or (for Markdown headings) "Name".
	head, rest, colon := strings.Cut(l, ":")
	head = strings.TrimSpace(head)
	if n, isSOAP := soapNames[strings.ToLower(head)]; isSOAP {
		if colon || hashed || len(head) > 1 && !strings.ContainsAny(l, ".!?") {
			return n, strings.TrimSpace(rest), true, true
		}
	}
	if hashed {
		return strings.TrimSuffix(l, ":"), "", false, len(l) <= MaxSectionNameBytes
	}
	// A short line of its own ending with a colon: "Medications:".
	if colon && strings.TrimSpace(rest) == "" && len(head) <= MaxSectionNameBytes &&
		len(strings.Fields(head)) <= 5 && !strings.ContainsAny(head, ".!?;,") {
		if r, _ := utf8.DecodeRuneInString(head); unicode.IsUpper(r) {
			return head, "", false, true
		}
	}
	return "", "", false, false
}

// bullet removes a list marker: "- ", "* ", "• ", "1. ", "2) ".
func bullet(l string) (string, bool) {
	for _, p := range []string{"- ", "* ", "• ", "– ", "+ "} {
		if strings.HasPrefix(l, p) {
			return strings.TrimSpace(l[len(p):]), true
		}
	}
	i := 0
	for i < len(l) && i < 3 && l[i] >= '0' && l[i] <= '9' {
		i++
	}
	if i > 0 && i+1 < len(l) && (l[i] == '.' || l[i] == ')') && l[i+1] == ' ' {
		return strings.TrimSpace(l[i+2:]), true
	}
	return l, false
}

func parseText(s string) ([]section, error) {
	var secs []section
	var para []string
	soapSeen := false
	flush := func() {
		if len(para) > 0 && len(secs) > 0 {
			last := &secs[len(secs)-1]
			last.sentences = append(last.sentences, splitSentences(strings.Join(para, " "))...)
		}
		para = para[:0]
	}
	for _, line := range strings.Split(s, "\n") {
		l := strings.TrimSpace(line)
		if l == "" {
			flush()
			continue
		}
		if name, inline, soap, ok := heading(l); ok {
			flush()
			soapSeen = soapSeen || soap
			secs = append(secs, section{name: name})
			if inline != "" {
				para = append(para, inline)
			}
			continue
		}
		if b, isBullet := bullet(l); isBullet {
			flush()
			para = append(para, b)
			flush()
			continue
		}
		para = append(para, l)
	}
	flush()
	if !soapSeen {
		return nil, notNote("no SOAP section heading")
	}
	return secs, nil
}

// abbreviations end with a period but do not end a sentence.
var abbreviations = map[string]bool{
	"dr": true, "mr": true, "mrs": true, "ms": true, "prof": true, "st": true,
	"e.g": true, "i.e": true, "vs": true, "approx": true, "pt": true, "no": true,
	"fig": true, "cf": true, "hx": true, "dx": true, "rx": true, "tx": true,
}

// splitSentences splits text at a '.', '!' or '?' (and any closing quote
// or bracket) followed by a space and a capital letter, digit or opening
// quote or bracket, unless the period ends an abbreviation or an initial.
func splitSentences(text string) []string {
	t := strings.Join(strings.Fields(text), " ")
	var out []string
	start := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c != '.' && c != '!' && c != '?' {
			continue
		}
		j := i + 1
		for j < len(t) && strings.IndexByte(`"')]`, t[j]) >= 0 {
			j++
		}
		if j+1 >= len(t) || t[j] != ' ' {
			continue
		}
		next, _ := utf8.DecodeRuneInString(t[j+1:])
		if !unicode.IsUpper(next) && !unicode.IsDigit(next) && strings.IndexRune(`"'([`, next) < 0 {
			continue
		}
		if c == '.' {
			w := t[start:i]
			if k := strings.LastIndexByte(w, ' '); k >= 0 {
				w = w[k+1:]
			}
			w = strings.TrimLeft(w, `"'([`)
			if abbreviations[strings.ToLower(w)] || utf8.RuneCountInString(w) == 1 && unicode.IsLetter([]rune(w)[0]) {
				continue
			}
		}
		out = append(out, t[start:j])
		start = j + 1
		i = j
	}
	if start < len(t) {
		out = append(out, t[start:])
	}
	return out
}

// canonicalName capitalises SOAP section names and checks others.
func canonicalName(name string) (string, error) {
	n := strings.Join(strings.Fields(name), " ")
	if c, ok := soapNames[strings.ToLower(n)]; ok && len(n) > 1 {
		return c, nil
	}
	if n == "" || len(n) > MaxSectionNameBytes {
		return "", notNote("a section name is empty or longer than %d bytes", MaxSectionNameBytes)
	}
	return n, nil
}

func build(secs []section) (*encounter.Draft, error) {
	d := &encounter.Draft{}
	used := map[rune]bool{}
	total := 0
	for _, sec := range secs {
		var sents []string
		for _, s := range sec.sentences {
			if s = strings.Join(strings.Fields(s), " "); s != "" {
				sents = append(sents, s)
			}
		}
		if len(sents) == 0 {
			continue
		}
		name, err := canonicalName(sec.name)
		if err != nil {
			return nil, err
		}
		if len(d.Sections) == MaxSections {
			return nil, notNote("more than %d sections", MaxSections)
		}
		initial, _ := utf8.DecodeRuneInString(name)
		initial = unicode.ToUpper(initial)
		if !unicode.IsLetter(initial) || initial > unicode.MaxASCII {
			initial = 'X'
		}
		prefix := string(initial)
		if used[initial] {
			prefix = fmt.Sprintf("%c%d-", initial, len(d.Sections)+1)
		}
		used[initial] = true
		ds := encounter.DraftSection{Name: name}
		for j, s := range sents {
			if len(s) > MaxSentenceBytes {
				return nil, notNote("section %d sentence %d is longer than %d bytes", len(d.Sections)+1, j+1, MaxSentenceBytes)
			}
			if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return nil, notNote("section %d sentence %d has a control character", len(d.Sections)+1, j+1)
			}
			ds.Sentences = append(ds.Sentences, encounter.DraftSentence{ID: fmt.Sprintf("%s%d", prefix, j+1), Text: s})
		}
		total += len(ds.Sentences)
		if total > MaxSentences {
			return nil, notNote("more than %d sentences", MaxSentences)
		}
		d.Sections = append(d.Sections, ds)
	}
	if len(d.Sections) == 0 {
		return nil, notNote("no section has a sentence")
	}
	return d, nil
}
