package index

import (
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"
)

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "chest pain", `"short of breath"`, "warfarin OR heparin", "chest -stairs", "+a (b OR c) NOT d",
		"((a))", `"unclosed`, "a OR", "NOT", "()", "SOB 3/7 x6/day 5mg", "-(a b)", "a AND AND b", "é 😀 ü",
		strings.Repeat("(", 20) + "a" + strings.Repeat(")", 20), "the of", "follow-up", "a && b || c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseQuery(s)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "query" {
				t.Fatalf("error %v is not an InvalidError for query", err)
			}
			return
		}
		if n == nil {
			if strings.TrimSpace(s) != "" {
				t.Fatalf("non-blank query %q parsed to nothing", s)
			}
			return
		}
		if c := countTerms(n); c < 1 || c > MaxQueryTerms {
			t.Fatalf("%d terms", c)
		}
		c := compile(n)
		if c.match == nil && len(c.exclude) == 0 {
			t.Fatal("compiled to nothing")
		}
		for _, q := range append(c.exclude, c.match) {
			if v, ok := q.(interface{ Validate() error }); ok {
				if err := v.Validate(); err != nil {
					t.Fatalf("invalid bleve query: %v", err)
				}
			}
		}
	})
}

func FuzzPageToken(f *testing.F) {
	r := Request{Tenant: "t", Query: "chest"}
	for _, tok := range []pageToken{
		{digest: r.digest(), bound: 10, order: OrderRelevance, score: 1.25, id: docID(3, "")},
		{digest: r.digest(), bound: 1 << 40, order: OrderOldest, id: docID(1<<39, "s1")},
		{digest: r.digest(), bound: 5, order: OrderNewest, id: docID(0, "added-1")},
	} {
		f.Add(tok.encode())
	}
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := decodePageToken(s)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "page_token" {
				t.Fatalf("error %v is not an InvalidError for page_token", err)
			}
			return
		}
		// Accepted tokens are canonical: they encode back to the input.
		if got := tok.encode(); got != s {
			t.Fatalf("token %q re-encodes as %q", s, got)
		}
		if math.IsNaN(tok.score) || tok.bound < 0 {
			t.Fatalf("decoded %+v", tok)
		}
		leaf, _, ok := parseDocID(tok.id)
		if !ok || leaf >= tok.bound {
			t.Fatalf("decoded id %q with bound %d", tok.id, tok.bound)
		}
	})
}

func FuzzDocID(f *testing.F) {
	f.Add(int64(0), "")
	f.Add(int64(1234), "s1")
	f.Add(int64(math.MaxInt64), "added-7")
	f.Fuzz(func(t *testing.T, leaf int64, sid string) {
		if leaf < 0 || strings.Contains(sid, "\x00") {
			return
		}
		id := docID(leaf, sid)
		l, s, ok := parseDocID(id)
		if !ok || l != leaf || s != sid {
			t.Fatalf("parseDocID(%q) = %d %q %v", id, l, s, ok)
		}
		// Ids sort as leaves do.
		if leaf > 0 && !(docID(leaf-1, "~") < id) {
			t.Fatalf("%q does not sort after %q", id, docID(leaf-1, "~"))
		}
	})
}

func TestMaxPageTokenLen(t *testing.T) {
	if want := base64.RawURLEncoding.EncodedLen(maxTokenBytes); MaxPageTokenLen != want {
		t.Fatalf("MaxPageTokenLen %d, want %d", MaxPageTokenLen, want)
	}
}
