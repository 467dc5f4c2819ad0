package soapgen

import (
	"strconv"
	"strings"
)

// extraction holds the lines of each section before ids are assigned.
type extraction struct {
	subjective, objective, assessment, plan []line
}

// extract runs every section's rules over the dialogue.
func extract(d *dialogue) extraction {
	from, found := planStart(d)
	// Once the plan is being explained, a patient repeating "back pain,
	// vomiting, OK" is echoing the safety-netting, not reporting symptoms.
	historyEnd := len(d.utts)
	if found {
		historyEnd = from
	}
	syms := collectSymptoms(d, historyEnd)
	var x extraction
	x.subjective = append(x.subjective, symptomLines(syms, presenting(d, syms))...)
	// History questions can come after a first impression, so history
	// reads the whole dialogue; only the patient's mentions of medicines
	// stop at the plan, where "I'll take the antibiotics" is not a
	// medication history.
	all := len(d.utts)
	x.subjective = append(x.subjective, pastHistory(d, all)...)
	x.subjective = append(x.subjective, medications(d, historyEnd)...)
	x.subjective = append(x.subjective, allergies(d, all)...)
	x.subjective = append(x.subjective, familyHistory(d, all)...)
	x.subjective = append(x.subjective, socialHistory(d, all)...)
	x.subjective = append(x.subjective, otherHistory(d, all)...)
	x.objective = objective(d)
	x.assessment = assessment(d, from)
	x.plan = plan(d, from)
	return x
}

// symptomLines writes the presenting complaint, the other symptoms
// reported, the character of the main pain and the symptoms denied.
func symptomLines(s *symptomSet, pc []*finding) []line {
	var out []line
	if len(pc) > 0 {
		names := make([]string, len(pc))
		for i, f := range pc {
			names[i] = name(f)
		}
		out = append(out, line{"Presents with " + joinList(names, "and") + details(pc[0]) + ".", pc[0].firstPos})
		out = append(out, painLine(pc[0])...)
	}
	var rest []line
	for _, f := range s.order {
		if !f.present() || containsFinding(pc, f) || s.hasSpecific(f) {
			continue
		}
		rest = append(rest, line{"Reports " + name(f) + details(f) + ".", f.firstPos})
		rest = append(rest, painLine(f)...)
	}
	sortLines(rest)
	out = append(out, rest...)
	return append(out, denials(s)...)
}

// name is a finding's name with its side: "left-sided headache".
func name(f *finding) string {
	if f.side != "" && f.isPain() && f.canon != "sore throat" {
		return f.side + "-sided " + f.canon
	}
	return f.canon
}

// details renders duration and frequency: " for 3 days, 6-7 times a day".
func details(f *finding) string {
	var parts []string
	if f.duration != "" {
		parts = append(parts, f.duration)
	}
	if len(parts) > 0 && strings.HasPrefix(parts[0], "started") {
		return ", " + strings.Join(parts, ", ") // "Reports fever, started 3 days ago."
	}
	if f.frequency != "" {
		parts = append(parts, f.frequency)
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, ", ")
}

// painLine describes a pain's character and severity, when the patient
// gave them: "Lower abdominal pain described as crampy and intermittent."
func painLine(f *finding) []line {
	if !f.isPain() || (len(f.qualities) == 0 && f.severity == "") {
		return nil
	}
	var parts []string
	var character, onset []string
	for _, q := range f.qualities {
		if strings.HasSuffix(q, "onset") {
			onset = append(onset, q)
		} else {
			character = append(character, q)
		}
	}
	if len(character) > 0 {
		parts = append(parts, capitalize(f.canon)+" described as "+joinList(character, "and"))
	}
	if len(onset) > 0 {
		if len(parts) == 0 {
			parts = append(parts, capitalize(f.canon)+" of "+onset[0])
		} else {
			parts = append(parts, onset[0])
		}
	}
	if f.severity != "" {
		if len(parts) == 0 {
			parts = append(parts, capitalize(f.canon)+" severity "+f.severity)
		} else {
			parts = append(parts, "severity "+f.severity)
		}
	}
	return []line{{strings.Join(parts, ", ") + ".", f.firstPos}}
}

// denials writes one "Denies ..." sentence per question (or statement)
// that the denials came from, so each sentence has one source.
func denials(s *symptomSet) []line {
	var groups []int
	by := map[int][]string{}
	for _, f := range s.order {
		if f.present() || f.firstNeg < 0 {
			continue
		}
		if _, ok := by[f.negGroup]; !ok {
			groups = append(groups, f.negGroup)
		}
		by[f.negGroup] = append(by[f.negGroup], f.canon)
	}
	out := make([]line, 0, len(groups))
	for _, g := range groups {
		out = append(out, line{"Denies " + joinList(by[g], "or") + ".", g})
	}
	sortLines(out)
	return out
}

// Placeholders state an absence. They are the only sentences not drawn
// from the transcript, and they say so plainly.
const (
	noHistory   = "No history recorded."
	noFindings  = "No examination findings recorded."
	noImpession = "No impression stated."
	noPlan      = "No plan stated."
)

// render assigns ids and fills empty sections with their placeholder.
func render(x extraction) Note {
	parts := []struct {
		name, prefix, empty string
		lines               []line
	}{
		{SectionSubjective, "S", noHistory, x.subjective},
		{SectionObjective, "O", noFindings, x.objective},
		{SectionAssessment, "A", noImpession, x.assessment},
		{SectionPlan, "P", noPlan, x.plan},
	}
	n := Note{Sections: make([]Section, 0, len(parts))}
	for _, p := range parts {
		texts := dedupe(p.lines)
		if len(texts) == 0 {
			texts = []string{p.empty}
		}
		sec := Section{Name: p.name, Sentences: make([]Sentence, len(texts))}
		for i, t := range texts {
			sec.Sentences[i] = Sentence{ID: p.prefix + strconv.Itoa(i+1), Text: t}
		}
		n.Sections = append(n.Sections, sec)
	}
	return n
}

// dedupe drops empty and repeated sentences, keeping first occurrences.
func dedupe(ls []line) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range ls {
		t := strings.TrimSpace(l.text)
		if t == "" || seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}
