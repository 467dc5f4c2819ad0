package align

// verdictOf is the first, retrieval-only verdict: a sentence with evidence is supported and
// one without is unmentioned as a whole. The claim checker replaces it.
func verdictOf(s Sentence, spans []Span) (Verdict, Severity, []Conflict, []Range) {
	if len(spans) > 0 {
		return Supported, "", nil, nil
	}
	return Unmentioned, Minor, nil, []Range{{0, len(s.Text)}}
}
