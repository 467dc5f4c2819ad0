// Package index is the full-text index of Evidence Ledger: transcript
// segments and note sentences (every version, superseded ones marked),
// searchable by words, phrases and boolean queries with filters, facets,
// highlights and stable pages. docs/search.md describes the query syntax,
// the guarantees and the benchmark.
//
// The index is a view derived from the ledger (docs/architecture.md): it
// tails the log (Follow, CatchUp), records how many entries it has applied
// in the same atomic bleve batch as the documents they produced, resumes
// after a crash without skipping or repeating an entry, and can be dropped
// (Remove) and rebuilt from the log with the same answers. It never stores
// text: every hit is read back from the log, so a search returns nothing
// the log does not hold.
//
// Text is analysed by clinicaltext, the normalization the alignment engine
// uses (stemming, numbers, clinical abbreviations and lay words), registered
// with bleve as the tokenizer TokenizerName and the analyzer AnalyzerName.
// Each tenant has its own bleve (scorch) index, so a search can only read
// its caller's tenant.
//
// Errors: bad search input is an *InvalidError naming the field; an index
// that is not a view of the given log is a *DivergedError; ErrBehind asks
// the caller to retry a page while the index catches up.
package index
