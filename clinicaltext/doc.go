// Package clinicaltext turns clinical text — transcript segments and note sentences — into
// normalized terms with byte offsets into the original string.
//
// It is shared by the alignment engine (package align) and is meant to back a full-text
// search analyzer, so it has no alignment-specific logic. Two layers are exported:
//
//   - Tokenize splits text into surface word tokens. It drops transcript markup such as
//     <UNSURE>, </UNSURE>, <UNIN/> and <INAUDIBLE_SPEECH/> (keeping the words between tags),
//     keeps clinical shorthand together ("3/7", "x6/day", "N&V", "c/o", "L_C_D_") and marks
//     the first token of each clause.
//   - Analyze normalizes those tokens: lower-casing, English (Snowball) stemming with UK to US
//     spelling variants, number words to digits ("twenty five" -> "25", "twice" -> "2 time"),
//     durations ("3/7" -> "3 day", "2/52" -> "2 week", "3/12" -> "3 month", "x6/day"),
//     expansion of clinical abbreviations ("SOB" -> "short", "breath", ...), lay synonyms
//     ("tummy" -> "abdomen") and flags for stop words and negation cues.
//
// The abbreviation, synonym, unit and spelling tables live in one data file, lexicon.tsv,
// embedded in the package; its header carries the attribution and licence note.
//
// Offsets are byte offsets into the string that was passed in, half-open [Start, End).
// Terms synthesized from one word (abbreviation expansions, units, synonyms) carry the offsets
// and position of that word. All functions are pure and safe for concurrent use.
package clinicaltext
