package summary

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/evidenceledger/evidence/encounter"
)

// record is one encounter's summary as the view stores it. Times are Unix
// nanoseconds.
type record struct {
	Open       int64                `json:"o"` // the opening entry's leaf; -1 before it
	Created    int64                `json:"c,omitempty"`
	Actor      string               `json:"a,omitempty"`
	Updated    int64                `json:"u,omitempty"` // the latest entry that is not an access entry
	Count      uint64               `json:"n"`
	Head       int64                `json:"h"`
	Status     encounter.NoteStatus `json:"s"`
	Flagged    int                  `json:"f,omitempty"`
	Unresolved int                  `json:"x,omitempty"`
	Redacted   bool                 `json:"r,omitempty"`
	// Patient is the keyed digest of the patient reference (patientDigest).
	Patient []byte `json:"p,omitempty"`
	// Noted: a NoteTracker is stored for the encounter.
	Noted bool `json:"t,omitempty"`

	// Not stored: the applier's working state.
	tenant, enc  string
	tracker      *encounter.NoteTracker // loaded on first use
	trackerDirty bool
	stored       [][]byte // the index keys stored for the record before this batch
}

func newRecord(tenant, enc string) *record {
	return &record{tenant: tenant, enc: enc, Open: -1, Head: -1, Status: encounter.NoteNone}
}

// indexKeys returns the keys of the ordered indexes the record belongs in.
func (r *record) indexKeys() [][]byte {
	keys := [][]byte{
		appendOrder(tenantPrefix(tableAll, r.tenant), r.Updated, r.enc),
		appendOrder(append(tenantPrefix(tableStatus, r.tenant), byte(r.Status)), r.Updated, r.enc),
	}
	if r.Unresolved > 0 {
		keys = append(keys, appendOrder(tenantPrefix(tableFlagged, r.tenant), r.Updated, r.enc))
	}
	if len(r.Patient) > 0 {
		keys = append(keys, appendOrder(append(tenantPrefix(tablePatient, r.tenant), r.Patient...), r.Updated, r.enc))
	}
	return keys
}

// Index entries hold the row: its status, whether it has unresolved flags
// (so that a scan filters without decoding), then the record's JSON.
func (r *record) row() []byte {
	b, _ := json.Marshal(r)
	unresolved := byte(0)
	if r.Unresolved > 0 {
		unresolved = 1
	}
	return append([]byte{byte(r.Status), unresolved}, b...)
}

// info is the encounter.Info of a stored row, without title and patient
// reference.
func info(enc string, r *record) encounter.Info {
	i := encounter.Info{ID: enc, Updated: time.Unix(0, r.Updated).UTC(), Count: r.Count, Head: r.Head,
		Status: r.Status, Flagged: r.Flagged, Unresolved: r.Unresolved, Redacted: r.Redacted}
	i.Created.Index, i.Created.Actor = r.Open, r.Actor
	if r.Open >= 0 {
		i.Created.Time = time.Unix(0, r.Created).UTC()
	}
	return i
}

// patientDigest is the first 16 bytes of HMAC-SHA256 under the view's
// digest key of tenant 0x00 patientRef.
func (v *View) patientDigest(tenant, patientRef string) []byte {
	m := hmac.New(sha256.New, v.digestKey)
	m.Write([]byte(tenant))
	m.Write([]byte{0})
	m.Write([]byte(patientRef))
	return m.Sum(nil)[:16]
}
