package index

import (
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/registry"

	"github.com/evidenceledger/evidence/clinicaltext"
)

// Names under which the clinical text analysis is registered with bleve.
const (
	// TokenizerName is the bleve tokenizer that runs clinicaltext.Analyze.
	TokenizerName = "evidence_clinicaltext"
	// AnalyzerName is the bleve analyzer built on it, used for the text
	// field.
	AnalyzerName = "evidence_clinical"
)

func init() {
	if err := registry.RegisterTokenizer(TokenizerName, func(map[string]any, *registry.Cache) (analysis.Tokenizer, error) {
		return clinicalTokenizer{}, nil
	}); err != nil {
		panic(err)
	}
	if err := registry.RegisterAnalyzer(AnalyzerName, func(_ map[string]any, cache *registry.Cache) (analysis.Analyzer, error) {
		t, err := cache.TokenizerNamed(TokenizerName)
		if err != nil {
			return nil, err
		}
		return &analysis.DefaultAnalyzer{Tokenizer: t}, nil
	}); err != nil {
		panic(err)
	}
}

// clinicalTokenizer is the bleve face of clinicaltext: it normalizes,
// stems and expands exactly as the alignment engine does, so a word means
// the same to search and to alignment. It keeps clinicaltext's byte offsets,
// which become the highlight offsets.
type clinicalTokenizer struct{}

func (clinicalTokenizer) Tokenize(text []byte) analysis.TokenStream {
	terms := analyzeTerms(string(text))
	out := make(analysis.TokenStream, len(terms))
	backing := make([]analysis.Token, len(terms))
	for i, t := range terms {
		backing[i] = analysis.Token{Term: []byte(t.term), Start: t.start, End: t.end, Position: t.pos, Type: analysis.AlphaNumeric}
		out[i] = &backing[i]
	}
	return out
}

// term is one indexed term of a text.
type term struct {
	term       string
	start, end int // byte offsets into the text
	pos        int // 1-based position
	expansion  bool
}

// analyzeTerms returns the terms that the index holds for text, with their
// positions. It is the one definition of positions, shared by indexing and
// by phrase queries:
//
//   - every term clinicaltext reads from the text itself takes the next
//     position, so "5mg" is "5" then "milligram" and "3/7" is "3" then
//     "day", and a phrase can require both in order;
//   - expansions (an abbreviation's meaning, a lay synonym's canonical
//     term, the unit of "3/7") share the position of the term they expand,
//     as synonyms do;
//   - stop words and fillers are not indexed but keep their position, so
//     "short of breath" is short, a gap, then breath;
//   - negation cues ("no", "denies", "not") are indexed: in clinical text
//     they carry meaning.
func analyzeTerms(text string) []term {
	toks := clinicaltext.Analyze(text)
	out := make([]term, 0, len(toks))
	pos, end := 0, 0 // position and end offset of the last word read
	for _, t := range toks {
		// An expansion with its own span of text ("/7" of "3/7" read as
		// "day") is a word of its own, not a synonym.
		exp := t.Flags&clinicaltext.Expansion != 0 && t.Start < end
		if !exp || pos == 0 {
			pos++
			end = t.End
		}
		if t.Flags&clinicaltext.Stop != 0 && t.Flags&clinicaltext.Negation == 0 {
			continue
		}
		out = append(out, term{term: t.Term, start: t.Start, end: t.End, pos: pos, expansion: exp})
	}
	return out
}

// queryPositions returns the terms of text as a query sees them: one slot
// per position from the first to the last indexed term, each holding the
// term clinicaltext read from the text itself, or nil for a stop word
// between them. Expansions are left out: the index already holds them
// beside the words they expand, so a query for "shortness of breath" finds
// "SOB", while a query for "SOB" finds the abbreviation only.
func queryPositions(text string) [][]string {
	var slots [][]string
	first, last := 0, -1
	for _, t := range analyzeTerms(text) {
		if t.expansion {
			continue
		}
		if last < 0 {
			first = t.pos
		}
		for len(slots) < t.pos-first+1 {
			slots = append(slots, nil)
		}
		slots[t.pos-first] = append(slots[t.pos-first], t.term)
		last = t.pos
	}
	return slots
}
