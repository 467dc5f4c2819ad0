package align

import (
	"strings"

	"github.com/evidenceledger/evidence/clinicaltext"
	"github.com/evidenceledger/evidence/termassoc"
)

// Speaker roles. A note sentence that names a role ("the patient reports", "advised to rest",
// "the Project Manager said") is mostly evidenced by that speaker. Segment speakers are
// mapped to roles by their labels when the labels say ("clinician", "doctor", "patient"), and
// otherwise per encounter by a vote over the note (see roleVotes): the speakers whose turns
// best match the sentences naming a role. The agreement of a candidate's speaker with the
// sentence's role is a reranker feature.
const (
	roleNone = iota
	rolePatient
	roleClinician
	roleProjectManager
	roleMarketing
	roleIndustrial
	roleInterface
	numRoles
)

// roleOfLabel maps a speaker label to a role when the label names one.
func roleOfLabel(label string) int {
	l := strings.ToLower(label)
	switch {
	case strings.Contains(l, "patient"), l == "pt":
		return rolePatient
	case strings.Contains(l, "clinician"), strings.Contains(l, "doctor"), strings.Contains(l, "physician"),
		strings.Contains(l, "nurse"), l == "dr", l == "gp", strings.Contains(l, "provider"):
		return roleClinician
	}
	return roleNone
}

// Role cues of note sentences, as clinicaltext terms (stems).
var (
	clinicianCues = stemSet("advised", "advise", "recommended", "recommend", "explained", "discussed",
		"reassured", "prescribed", "counselled", "counseled", "offered", "referred", "informed",
		"suggested", "encouraged", "instructed", "i", "we", "doctor", "clinician", "examined")
	patientCues = stemSet("patient", "pt", "reports", "reported", "denies", "denied", "states", "stated",
		"complains", "describes", "feels", "notes", "he", "she", "his", "her")
)

func stemSet(words ...string) map[string]bool {
	m := map[string]bool{}
	for _, w := range words {
		m[strings.ToLower(w)] = true
		m[clinicaltext.Stem(w)] = true
	}
	return m
}

// meetingRoles are the role names of the AMI scenario meetings.
var meetingRoles = []struct {
	phrase string
	role   int
}{
	{"project manager", roleProjectManager}, {"marketing", roleMarketing},
	{"industrial designer", roleIndustrial}, {"user interface", roleInterface},
	{"interface designer", roleInterface}, {"ui designer", roleInterface},
}

// sentenceRole returns the role a sentence names, or roleNone. A named meeting role wins;
// then a clinician's action ("advised", "explained"), then a patient cue ("reports", "she").
func sentenceRole(text string) int {
	low := strings.ToLower(text)
	role := roleNone
	for _, r := range meetingRoles {
		if strings.Contains(low, r.phrase) {
			if role != roleNone && role != r.role {
				return roleNone // several roles: no single speaker
			}
			role = r.role
		}
	}
	if role != roleNone {
		return role
	}
	words := strings.FieldsFunc(low, func(r rune) bool { return !(r >= 'a' && r <= 'z') })
	for _, w := range words {
		if clinicianCues[w] || clinicianCues[clinicaltext.Stem(w)] {
			return roleClinician
		}
	}
	for _, w := range words {
		if patientCues[w] || patientCues[clinicaltext.Stem(w)] {
			return rolePatient
		}
	}
	return roleNone
}

// speakerRoles holds, per encounter, how likely each speaker is to hold each role.
type speakerRoles struct {
	// share[role][speaker] in [0, 1]; nil for a role no speaker is known to hold.
	share [numRoles][]float64
}

// labelRoles maps speakers by their labels; it reports whether any label named a role.
func (x *Index) labelRoles() (speakerRoles, bool) {
	var r speakerRoles
	any := false
	for i := range x.segs {
		sp := x.info[i].speaker
		role := roleOfLabel(x.segs[i].Speaker)
		if role == roleNone {
			continue
		}
		if r.share[role] == nil {
			r.share[role] = make([]float64, x.nSpeakers)
		}
		r.share[role][sp] = 1
		any = true
	}
	return r, any
}

// roleVotes maps speakers to the roles a note names when labels do not: for each role,
// every sentence naming it votes for the speakers of its best BM25 segments (weights 1, 1/2,
// 1/3); a speaker's share is its part of the votes.
func roleVotes(nSpeakers int, roles []int, topSpeakers [][]int32) speakerRoles {
	var r speakerRoles
	var total [numRoles]float64
	for i, role := range roles {
		if role == roleNone || role == rolePatient || role == roleClinician {
			continue // clinical roles are mapped by label only
		}
		for k, sp := range topSpeakers[i] {
			if r.share[role] == nil {
				r.share[role] = make([]float64, nSpeakers)
			}
			w := 1 / float64(k+1)
			r.share[role][sp] += w
			total[role] += w
		}
	}
	for role, s := range r.share {
		for sp := range s {
			s[sp] /= total[role]
		}
	}
	return r
}

// readRoles sets the speaker count, the speakers labelled as roles, the largest idf and the
// bridge table of a new index.
func (x *Index) readRoles() {
	for i := range x.info {
		x.nSpeakers = max(x.nSpeakers, int(x.info[i].speaker)+1)
	}
	x.labelled, x.hasLabels = x.labelRoles()
	if s := x.labelled.share[rolePatient]; s != nil {
		x.patient = make([]bool, x.nSpeakers)
		for sp, v := range s {
			x.patient[sp] = v > 0
		}
	}
	for _, v := range x.idf {
		x.maxIDF = max(x.maxIDF, v)
	}
	x.assoc = termassoc.AppendNeighbours
}
