package ledger

import (
	"encoding/binary"
	"fmt"
	"time"
)

// LeafVersion is the only leaf encoding version this package writes and
// reads.
const LeafVersion = 1

// Kind says what an entry records. The numeric values are part of the leaf
// encoding and never change.
type Kind uint8

// The entry kinds. See docs/formats.md.
const (
	KindEncounter   Kind = 1  // an encounter was opened
	KindAudio       Kind = 2  // a recording or chunk, stored as a blob
	KindSegment     Kind = 3  // a transcript segment
	KindModelOutput Kind = 4  // one call of a model
	KindAlignment   Kind = 5  // evidence for note sentences
	KindEdit        Kind = 6  // a clinician changed, added or deleted a sentence
	KindSignoff     Kind = 7  // a clinician signed a note version
	KindAccess      Kind = 8  // someone read or exported PHI
	KindRedaction   Kind = 9  // an earlier payload was destroyed
	KindResolution  Kind = 10 // a clinician resolved a flagged note sentence
	maxKind              = KindResolution
)

var kindNames = [...]string{
	KindEncounter:   "encounter",
	KindAudio:       "audio",
	KindSegment:     "segment",
	KindModelOutput: "model_output",
	KindAlignment:   "alignment",
	KindEdit:        "edit",
	KindSignoff:     "signoff",
	KindAccess:      "access",
	KindRedaction:   "redaction",
	KindResolution:  "resolution",
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindEncounter && k <= maxKind }

func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the kind named s, as Kind.String spells it.
func ParseKind(s string) (Kind, bool) {
	for k := KindEncounter; k <= maxKind; k++ {
		if kindNames[k] == s {
			return k, true
		}
	}
	return 0, false
}

// Limits of the identifier fields of a leaf.
const (
	MaxTenantLen    = 64
	MaxEncounterLen = 64
	MaxActorLen     = 128
)

// Leaf is the decoded leaf data of one entry: the exact bytes that the
// Merkle tree hashes. It carries no PHI: only identifiers, the time, a link to
// the previous leaf of the encounter and a hiding commitment to the payload.
type Leaf struct {
	Kind      Kind
	Time      time.Time // recorded time, UTC, nanosecond precision
	Tenant    string
	Encounter string
	Actor     string
	// Seq is the position of this entry in its encounter's chain, from 0.
	Seq uint64
	// Prev is the leaf hash of the previous entry of the encounter, or the
	// zero hash for the first entry (Seq 0).
	Prev Hash
	// Commitment is SHA-256(salt || payload).
	Commitment Hash
}

// fixed-size parts of the encoding: version, kind, time, seq, prev,
// commitment, and the three length bytes.
const leafFixedLen = 1 + 1 + 8 + 8 + HashSize + HashSize + 3

// MaxLeafLen is the largest valid leaf encoding.
const MaxLeafLen = leafFixedLen + MaxTenantLen + MaxEncounterLen + MaxActorLen

// Encode returns the canonical encoding of l. It fails if l is not valid.
func (l *Leaf) Encode() ([]byte, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	return l.appendTo(make([]byte, 0, leafFixedLen+len(l.Tenant)+len(l.Encounter)+len(l.Actor))), nil
}

func (l *Leaf) appendTo(b []byte) []byte {
	b = append(b, LeafVersion, byte(l.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(l.Time.UnixNano()))
	b = append(b, byte(len(l.Tenant)))
	b = append(b, l.Tenant...)
	b = append(b, byte(len(l.Encounter)))
	b = append(b, l.Encounter...)
	b = append(b, byte(len(l.Actor)))
	b = append(b, l.Actor...)
	b = binary.BigEndian.AppendUint64(b, l.Seq)
	b = append(b, l.Prev[:]...)
	b = append(b, l.Commitment[:]...)
	return b
}

func (l *Leaf) validate() error {
	if !l.Kind.Valid() {
		return &InvalidError{Field: "kind", Reason: fmt.Sprintf("unknown kind %d", l.Kind)}
	}
	if l.Time.Before(minTime) || l.Time.After(maxTime) {
		return &InvalidError{Field: "time", Reason: "must be between 1970 and 2262"}
	}
	if err := CheckID("tenant", l.Tenant, MaxTenantLen); err != nil {
		return err
	}
	if err := CheckID("encounter", l.Encounter, MaxEncounterLen); err != nil {
		return err
	}
	if err := CheckID("actor", l.Actor, MaxActorLen); err != nil {
		return err
	}
	if (l.Seq == 0) != (l.Prev == Hash{}) {
		return &InvalidError{Field: "prev", Reason: "must be zero exactly when seq is 0"}
	}
	return nil
}

var (
	minTime = time.Unix(0, 1)
	maxTime = time.Unix(0, 1<<63-1)
)

// CheckID reports whether s is a valid identifier for field: 1 to max bytes
// of ASCII letters, digits and "._-:@/+". Identifiers never hold spaces,
// control bytes or NUL, so they can be joined with 0x00 in storage keys.
func CheckID(field, s string, max int) error {
	if s == "" {
		return &InvalidError{Field: field, Reason: "must not be empty"}
	}
	if len(s) > max {
		return &InvalidError{Field: field, Reason: fmt.Sprintf("longer than %d bytes", max)}
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return &InvalidError{Field: field, Reason: fmt.Sprintf("byte %d is not one of A-Z a-z 0-9 . _ - : @ / +", i)}
		}
	}
	return nil
}

func idByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '-', ':', '@', '/', '+':
		return true
	}
	return false
}

// DecodeLeaf parses leaf data strictly: it rejects unknown versions and
// kinds, invalid identifiers, non-canonical forms (a non-zero prev hash on
// the first entry of a chain, a zero one on a later entry), trailing bytes and
// input longer than MaxLeafLen. DecodeLeaf(l.Encode()) == l for every valid
// l, and Encode(DecodeLeaf(b)) == b for every b that decodes.
func DecodeLeaf(data []byte) (*Leaf, error) {
	if len(data) > MaxLeafLen {
		return nil, fmt.Errorf("ledger: leaf data of %d bytes exceeds %d", len(data), MaxLeafLen)
	}
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != LeafVersion {
		return nil, fmt.Errorf("ledger: unknown leaf version %d", v)
	}
	var l Leaf
	l.Kind = Kind(d.byte())
	ns := int64(d.uint64())
	l.Tenant = d.string()
	l.Encounter = d.string()
	l.Actor = d.string()
	l.Seq = d.uint64()
	copy(l.Prev[:], d.bytes(HashSize))
	copy(l.Commitment[:], d.bytes(HashSize))
	if d.err != nil {
		return nil, fmt.Errorf("ledger: leaf data: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("ledger: leaf data has %d trailing bytes", len(d.b))
	}
	l.Time = time.Unix(0, ns).UTC()
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("ledger: leaf data: %w", err)
	}
	return &l, nil
}

// decoder reads fixed fields from b, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("truncated: need %d more bytes, have %d", n, len(d.b))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) byte() byte {
	if p := d.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if p := d.bytes(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) string() string {
	n := int(d.byte())
	return string(d.bytes(n))
}
