package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
)

// A page token is opaque to clients. It is base64url (no padding) of:
//
//	version(1) = 1
//	request digest(16): the first 16 bytes of SHA-256 over the request's
//	                    canonical form, so a token only continues the query,
//	                    filters, order and tenant it was issued for
//	bound: uvarint       the log size the first page was bounded to
//	order(1)
//	score: float64 bits  relevance order only: the last hit's score
//	id: uvarint length, then bytes: the last hit's document id
//
// Tokens carry no text and need no secret: every value in them is checked
// (the bound against the log, the id's syntax) and none widens what the
// tenant may see.
const (
	tokenVersion  = 1
	digestSize    = 16
	maxTokenBytes = 256 // decoded
)

// MaxPageTokenLen caps the length of a page token string: maxTokenBytes
// in unpadded base64.
const MaxPageTokenLen = (maxTokenBytes*8 + 5) / 6

type pageToken struct {
	digest [digestSize]byte
	bound  int64
	order  Order
	score  float64 // OrderRelevance only
	id     string
}

func (t *pageToken) encode() string {
	b := []byte{tokenVersion}
	b = append(b, t.digest[:]...)
	b = binary.AppendUvarint(b, uint64(t.bound))
	b = append(b, byte(t.order))
	if t.order == OrderRelevance {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(t.score))
	}
	b = binary.AppendUvarint(b, uint64(len(t.id)))
	b = append(b, t.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken parses a token strictly: canonical base64 and varints,
// a known version and order, a finite score, a well-formed document id and
// no trailing bytes.
func decodePageToken(s string) (*pageToken, error) {
	bad := func(reason string) error { return invalid("page_token", "%s", reason) }
	if len(s) > MaxPageTokenLen {
		return nil, bad("too long")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, bad("not a page token this server issued")
	}
	if len(b) < 1+digestSize || b[0] != tokenVersion {
		return nil, bad("not a page token this server issued")
	}
	t := &pageToken{}
	copy(t.digest[:], b[1:1+digestSize])
	r := bytes.NewReader(b[1+digestSize:])
	bound, err := readUvarint(r)
	if err != nil || bound > math.MaxInt64 {
		return nil, bad("malformed")
	}
	t.bound = int64(bound)
	o, err := r.ReadByte()
	if err != nil {
		return nil, bad("malformed")
	}
	t.order = Order(o)
	switch t.order {
	case OrderRelevance:
		var sb [8]byte
		if _, err := io.ReadFull(r, sb[:]); err != nil {
			return nil, bad("malformed")
		}
		t.score = math.Float64frombits(binary.BigEndian.Uint64(sb[:]))
		if math.IsNaN(t.score) || math.IsInf(t.score, 0) {
			return nil, bad("malformed")
		}
	case OrderOldest, OrderNewest:
	default:
		return nil, bad("malformed")
	}
	n, err := readUvarint(r)
	if err != nil || n != uint64(r.Len()) {
		return nil, bad("malformed")
	}
	t.id = string(b[len(b)-int(n):])
	leaf, _, ok := parseDocID(t.id)
	if !ok || leaf >= t.bound {
		return nil, bad("malformed")
	}
	return t, nil
}

// readUvarint reads a canonical (minimal) uvarint.
func readUvarint(r *bytes.Reader) (uint64, error) {
	start := r.Len()
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, err
	}
	if start-r.Len() != len(binary.AppendUvarint(nil, v)) {
		return 0, strconv.ErrSyntax
	}
	return v, nil
}

// digest returns the request digest a page token is bound to: everything
// that selects and orders the results, but not the page size or facets.
func (r *Request) digest() [digestSize]byte {
	h := sha256.New()
	field := func(s string) {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	field("evidence-search-v1")
	field(r.Tenant)
	field(r.Query)
	field(r.Encounter)
	field(r.Speaker)
	kinds := slices.Clone(r.Kinds)
	slices.Sort(kinds)
	kinds = slices.Compact(kinds)
	for _, k := range kinds {
		field(k.String())
	}
	field("|")
	field(timeKey(r.From))
	field(timeKey(r.To))
	field(strconv.FormatBool(r.CurrentOnly))
	field(strconv.Itoa(int(r.Order)))
	var d [digestSize]byte
	copy(d[:], h.Sum(nil))
	return d
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}
