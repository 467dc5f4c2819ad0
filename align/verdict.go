package align

// Verdict says whether the conversation supports a sentence.
type Verdict string

// Verdicts. Contradicted and Unmentioned are "flagged": a clinician must resolve them before
// signing.
const (
	// Supported: the conversation says it.
	Supported Verdict = "supported"
	// Inferred: a reasonable clinical inference from what was said.
	Inferred Verdict = "inferred"
	// Contradicted: the conversation says otherwise; Result.Conflicts name where.
	Contradicted Verdict = "contradicted"
	// Unmentioned: nothing in the conversation supports the sentence; Result.Unsupported
	// names the parts.
	Unmentioned Verdict = "unmentioned"
)

// Flagged reports whether the verdict needs a clinician's attention before signing.
func (v Verdict) Flagged() bool { return v == Contradicted || v == Unmentioned }

// Severity grades a flagged sentence by what the error could do to care.
type Severity string

// Severities, set only on flagged sentences.
const (
	// Major: could change care (a drug, dose, diagnosis, allergy, negated symptom, side,
	// duration).
	Major Severity = "major"
	// Minor: wrong, but unlikely to change care.
	Minor Severity = "minor"
	// Minimal: a detail of no clinical weight.
	Minimal Severity = "minimal"
)

// ConflictKind names what a contradicted claim gets wrong.
type ConflictKind string

// Conflict kinds.
const (
	ConflictNegation    ConflictKind = "negation"         // said absent, written present, or the reverse
	ConflictNumber      ConflictKind = "number"           // a count or measurement
	ConflictDuration    ConflictKind = "duration_onset"   // how long, or since when
	ConflictMedication  ConflictKind = "medication"       // another drug
	ConflictDose        ConflictKind = "dose_frequency"   // another dose or frequency
	ConflictSite        ConflictKind = "laterality_site"  // another side or body site
	ConflictCondition   ConflictKind = "condition"        // another diagnosis or condition
	ConflictAttribution ConflictKind = "attribution"      // it belongs to someone else (a relative)
	ConflictQuality     ConflictKind = "severity_quality" // another severity or quality (dry vs productive)
)

// Range is a half-open byte range [Start, End) of a sentence's text.
type Range struct{ Start, End int }

// Conflict is one claim of a sentence that the conversation contradicts.
type Conflict struct {
	Kind ConflictKind
	// Claim is the byte range of the contradicted words in the sentence's text.
	Claim Range
	// SegmentID, CharStart and CharEnd locate the transcript words that say otherwise
	// (byte offsets into the segment's text, half-open); StartMS and EndMS are their audio
	// times, narrowed to the words when the segment has word timings.
	SegmentID          string
	CharStart, CharEnd int
	StartMS, EndMS     int64
	// Words are the transcript words of [CharStart, CharEnd).
	Words string
}
