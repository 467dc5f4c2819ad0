package index

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/search/query"
)

// Limits on a query string.
const (
	// MaxQueryBytes caps the length of a query string.
	MaxQueryBytes = 1024
	// MaxQueryTerms caps the indexed terms a query may name, counting every
	// term of every word and phrase.
	MaxQueryTerms = 64
	// maxQueryDepth caps the nesting of parentheses and NOTs.
	maxQueryDepth = 16
)

// node is the parsed form of a query string.
type node interface{ isNode() }

type (
	// phraseNode matches a word or a quoted phrase: the terms at
	// consecutive positions, nil for a skipped stop word.
	phraseNode struct{ slots [][]string }
	andNode    struct{ kids []node }
	orNode     struct{ kids []node }
	notNode    struct{ kid node }
)

func (*phraseNode) isNode() {}
func (*andNode) isNode()    {}
func (*orNode) isNode()     {}
func (*notNode) isNode()    {}

// parseQuery parses the query syntax (docs/search.md):
//
//	query   = or
//	or      = and { "OR" and }
//	and     = unary { [ "AND" ] unary }
//	unary   = ( "NOT" | "-" ) unary | "+" unary | primary
//	primary = word | '"' phrase '"' | "(" or ")"
//
// Adjacent terms must all match (AND is implied). AND, OR and NOT are
// operators only in capitals; in lower case they are words. A word or
// phrase is analysed as the index analyses text, so "Coughing" matches
// "cough" and a phrase's stop words match any word. A query of only
// whitespace is nil: it matches everything the filters allow.
func parseQuery(s string) (node, error) {
	if len(s) > MaxQueryBytes {
		return nil, invalid("query", "%d bytes exceed the limit of %d", len(s), MaxQueryBytes)
	}
	if !utf8.ValidString(s) {
		return nil, invalid("query", "is not valid UTF-8")
	}
	for i, r := range s {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return nil, invalid("query", "has a control character at byte %d", i)
		}
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, nil
	}
	p := &parser{toks: toks}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		t := p.toks[p.pos]
		if t.kind == tokRParen {
			return nil, invalid("query", "')' at byte %d has no matching '('", t.at)
		}
		return nil, invalid("query", "unexpected %s at byte %d", t.kind, t.at)
	}
	terms := countTerms(n)
	if terms > MaxQueryTerms {
		return nil, invalid("query", "%d terms exceed the limit of %d", terms, MaxQueryTerms)
	}
	n = prune(n)
	if n == nil {
		return nil, invalid("query", "has no searchable terms (stop words and fillers are not indexed)")
	}
	return n, nil
}

type tokKind int

const (
	tokWord tokKind = iota
	tokPhrase
	tokLParen
	tokRParen
	tokAnd
	tokOr
	tokNot
	tokPlus
	tokMinus
)

func (k tokKind) String() string {
	return [...]string{"word", "phrase", "'('", "')'", "AND", "OR", "NOT", "'+'", "'-'"}[k]
}

type tok struct {
	kind tokKind
	text string
	at   int // byte offset in the query
}

// lex splits a query into tokens. "+" and "-" are operators only at the
// start of a word, phrase or group ("-fever", "-(a b)"); inside a word
// they are part of it ("follow-up").
func lex(s string) ([]tok, error) {
	var toks []tok
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsSpace(r):
			i += w
		case r == '(':
			toks = append(toks, tok{tokLParen, "(", i})
			i++
		case r == ')':
			toks = append(toks, tok{tokRParen, ")", i})
			i++
		case r == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, invalid("query", "the quote at byte %d is not closed", i)
			}
			toks = append(toks, tok{tokPhrase, s[i+1 : i+1+end], i})
			i += end + 2
		case (r == '+' || r == '-') && i+1 < len(s) && !isSpaceAt(s, i+1):
			k := tokPlus
			if r == '-' {
				k = tokMinus
			}
			toks = append(toks, tok{k, s[i : i+1], i})
			i++
		default:
			j := i
			for j < len(s) {
				r, w := utf8.DecodeRuneInString(s[j:])
				if unicode.IsSpace(r) || r == '(' || r == ')' || r == '"' {
					break
				}
				j += w
			}
			word := s[i:j]
			k := tokWord
			switch word {
			case "AND", "&&":
				k = tokAnd
			case "OR", "||":
				k = tokOr
			case "NOT":
				k = tokNot
			}
			toks = append(toks, tok{k, word, i})
			i = j
		}
	}
	return toks, nil
}

func isSpaceAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsSpace(r)
}

type parser struct {
	toks []tok
	pos  int
}

func (p *parser) peek() (tok, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return tok{}, false
}

func (p *parser) or(depth int) (node, error) {
	first, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	kids := []node{first}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tokOr {
			break
		}
		p.pos++
		if next, ok := p.peek(); !ok || next.kind == tokRParen || next.kind == tokOr || next.kind == tokAnd {
			return nil, invalid("query", "OR at byte %d needs a term on each side", t.at)
		}
		n, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &orNode{kids}, nil
}

func (p *parser) and(depth int) (node, error) {
	var kids []node
	for {
		t, ok := p.peek()
		if !ok || t.kind == tokRParen || t.kind == tokOr {
			break
		}
		if t.kind == tokAnd {
			if len(kids) == 0 {
				return nil, invalid("query", "AND at byte %d needs a term on each side", t.at)
			}
			p.pos++
			if next, ok := p.peek(); !ok || next.kind == tokRParen || next.kind == tokOr || next.kind == tokAnd {
				return nil, invalid("query", "AND at byte %d needs a term on each side", t.at)
			}
			continue
		}
		n, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 0 {
		if t, ok := p.peek(); ok && t.kind == tokOr {
			return nil, invalid("query", "OR at byte %d needs a term on each side", t.at)
		}
		if t, ok := p.peek(); ok {
			return nil, invalid("query", "unexpected %s at byte %d", t.kind, t.at)
		}
		return nil, invalid("query", "ends where a term is expected")
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return &andNode{kids}, nil
}

func (p *parser) unary(depth int) (node, error) {
	if depth > maxQueryDepth {
		return nil, invalid("query", "nests deeper than %d levels", maxQueryDepth)
	}
	t, ok := p.peek()
	if !ok {
		return nil, invalid("query", "ends where a term is expected")
	}
	switch t.kind {
	case tokNot, tokMinus:
		p.pos++
		if next, ok := p.peek(); !ok || next.kind == tokRParen || next.kind == tokOr || next.kind == tokAnd {
			return nil, invalid("query", "%s at byte %d needs a term after it", t.kind, t.at)
		}
		n, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &notNode{n}, nil
	case tokPlus:
		p.pos++
		return p.unary(depth + 1)
	case tokWord, tokPhrase:
		p.pos++
		return &phraseNode{slots: queryPositions(t.text)}, nil
	case tokLParen:
		p.pos++
		if next, ok := p.peek(); ok && next.kind == tokRParen {
			return nil, invalid("query", "empty parentheses at byte %d", t.at)
		}
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if next, ok := p.peek(); !ok || next.kind != tokRParen {
			return nil, invalid("query", "the '(' at byte %d is not closed", t.at)
		}
		p.pos++
		return n, nil
	}
	return nil, invalid("query", "unexpected %s at byte %d", t.kind, t.at)
}

func countTerms(n node) int {
	switch n := n.(type) {
	case *phraseNode:
		c := 0
		for _, s := range n.slots {
			c += len(s)
		}
		return c
	case *andNode:
		c := 0
		for _, k := range n.kids {
			c += countTerms(k)
		}
		return c
	case *orNode:
		c := 0
		for _, k := range n.kids {
			c += countTerms(k)
		}
		return c
	case *notNode:
		return countTerms(n.kid)
	}
	return 0
}

// prune drops words and phrases that hold no indexed term (stop words
// only) and the operators left without operands. It returns nil when
// nothing searchable remains.
func prune(n node) node {
	switch n := n.(type) {
	case *phraseNode:
		if len(n.slots) == 0 {
			return nil
		}
		return n
	case *notNode:
		if k := prune(n.kid); k != nil {
			return &notNode{k}
		}
		return nil
	case *andNode, *orNode:
		var kids []node
		var in []node
		if a, ok := n.(*andNode); ok {
			in = a.kids
		} else {
			in = n.(*orNode).kids
		}
		for _, k := range in {
			if k = prune(k); k != nil {
				kids = append(kids, k)
			}
		}
		switch {
		case len(kids) == 0:
			return nil
		case len(kids) == 1:
			return kids[0]
		}
		if _, ok := n.(*andNode); ok {
			return &andNode{kids}
		}
		return &orNode{kids}
	}
	return nil
}

// compiled is a node as bleve queries: match is what a document must
// match (nil: anything the filters allow) and exclude what it must not.
type compiled struct {
	match   query.Query
	exclude []query.Query
}

// compile turns a pruned node into bleve queries on the text field.
func compile(n node) compiled {
	switch n := n.(type) {
	case *phraseNode:
		if len(n.slots) == 1 && len(n.slots[0]) == 1 {
			q := query.NewTermQuery(n.slots[0][0])
			q.SetField(fieldText)
			return compiled{match: q}
		}
		slots := make([][]string, len(n.slots))
		for i, s := range n.slots {
			if s == nil {
				s = []string{""} // a stop word: any term matches here
			}
			slots[i] = s
		}
		q := query.NewMultiPhraseQuery(slots, fieldText)
		return compiled{match: q}
	case *notNode:
		k := compile(n.kid)
		return compiled{exclude: []query.Query{k.query()}}
	case *andNode:
		var c compiled
		var must []query.Query
		for _, kid := range n.kids {
			k := compile(kid)
			if k.match != nil {
				must = append(must, k.match)
			}
			c.exclude = append(c.exclude, k.exclude...)
		}
		switch len(must) {
		case 0:
		case 1:
			c.match = must[0]
		default:
			c.match = query.NewConjunctionQuery(must)
		}
		return c
	case *orNode:
		qs := make([]query.Query, len(n.kids))
		for i, kid := range n.kids {
			qs[i] = compile(kid).query()
		}
		return compiled{match: query.NewDisjunctionQuery(qs)}
	}
	panic(fmt.Sprintf("index: compile %T", n))
}

// query returns c as one query: what it matches minus what it excludes.
func (c compiled) query() query.Query {
	if len(c.exclude) == 0 {
		return c.match
	}
	m := c.match
	if m == nil {
		m = query.NewMatchAllQuery()
	}
	return query.NewBooleanQuery([]query.Query{m}, nil, c.exclude)
}
