// Package encounter records clinical encounters in the ledger and reads them
// back: the opening of a visit, its audio and transcript, model outputs,
// alignments, clinician edits and sign-offs, each as a ledger entry with a
// JSON payload (docs/formats.md), and the current note as a projection of
// the encounter's chain.
//
// It is the one writer of encounter entries: every entry of an encounter's
// chain (segments, audio, model outputs from any backend or proxy, edits,
// alignments, resolutions, sign-offs, accesses, redactions) is appended
// through a Service, under its per-encounter ordering and validation.
//
// Every write validates its whole request before appending anything, so a
// rejected request writes nothing. Writes to one encounter are serialized,
// so an edit or sign-off is checked against the note it changes. A write
// encodes each payload once, appends once, and answers from what the
// append reports: nothing it wrote is read back.
package encounter

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// Caller is who makes a request, as authentication established it: the
// tenant, the subject (recorded as the leaf's actor) and the role.
type Caller struct {
	Tenant string
	Actor  string
	Role   string
}

// Appender appends entries to the log in order and applies writes that are
// not appends (payload tombstones); *ledger.Appender on a single node and
// *cluster.Node in a cluster are Appenders.
type Appender interface {
	Append(ctx context.Context, entries []ledger.Entry) (*ledger.Appended, error)
	Write(ctx context.Context, b *storage.Batch) error
}

// Keys makes data keys before anything is sealed under them (see
// WithKeys): appends never make keys, so an encounter's key is made when
// the encounter is created, and a tenant's audit key before its first
// access or redaction entry.
type Keys interface {
	// EnsureKey makes tenant's data key for scope, an encounter id or ""
	// for the tenant's audit key, unless it exists.
	EnsureKey(ctx context.Context, tenant, scope string) error
}

// Limits on requests.
const (
	MaxSegmentsPerRequest = 1000
	MaxTextBytes          = 16 << 10
	MaxWords              = 2000
	MaxTitleBytes         = 256
	MaxIDBytes            = 128
	MaxSentences          = 500
	MaxParameters         = 64
	MaxAudioBytes         = 512 << 20
	MaxInputs             = 10_000
)

// ErrPrecondition marks a request that is well formed but cannot apply to
// the encounter as it is now, such as signing a note that changed since it
// was reviewed.
var ErrPrecondition = errors.New("encounter: failed precondition")

// Service records and reads encounters. It is safe for concurrent use.
type Service struct {
	log         *ledger.Log
	app         Appender
	blobs       *blob.Store
	states      *stateCache
	accessTrail bool        // see WithAccessTrail
	check       Checker     // see WithChecker; nil means align.Align
	summaries   SummaryView // see WithSummaries; nil: Find reads the chains
	keys        Keys        // see WithKeys; nil: keys need not be made
	auditKeys   sync.Map    // tenants whose audit key is known to exist
}

// New returns a Service that reads the log l, appends through app and keeps
// recordings in blobs.
func New(l *ledger.Log, app Appender, blobs *blob.Store, opts ...Option) *Service {
	svc := &Service{log: l, app: app, blobs: blobs, states: newStateCache(DefaultStateCacheBytes)}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

// WithStateCacheBytes bounds the memory of the decoded encounters the
// Service keeps (estimated; default DefaultStateCacheBytes). A visit not
// in the cache is decoded from its own chain when it is next read.
func WithStateCacheBytes(n int64) Option {
	return func(s *Service) { s.states = newStateCache(n) }
}

// CacheStats returns the state cache's hit and miss counts and its size.
func (svc *Service) CacheStats() CacheStats { return svc.states.stats() }

func invalid(field, format string, args ...any) error {
	return &ledger.InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// newID returns an unguessable encounter id: "enc_" and 26 base32 letters
// (128 random bits).
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return "enc_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// Info summarises an encounter.
type Info struct {
	ID         string
	Title      string
	PatientRef string
	// Created is the opening entry: its leaf, actor and time.
	Created meta
	// Updated is the time of the latest entry that is not an access
	// entry: when the encounter was last written. Reads do not change it.
	Updated time.Time
	// Count is the number of entries in the encounter's chain, access
	// entries included, and Head the leaf index of the last one.
	Count uint64
	Head  int64
	// Status is where the note stands; Flagged and Unresolved count its
	// flagged sentences and those still unresolved (Review.Flags).
	Status              NoteStatus
	Flagged, Unresolved int
	// Redacted: the encounter's payloads were destroyed (crypto-shredded);
	// its title and patient reference are gone, and its note with them.
	Redacted bool
}

func (s *state) info() Info {
	n := s.project()
	flagged, unresolved := n.Flags()
	return Info{ID: s.id, Title: s.opened.Title, PatientRef: s.opened.PatientRef,
		Created: meta{Index: s.openedLeaf, Actor: s.actor, Time: s.openedAt}, Updated: s.updated, Count: s.count, Head: s.head,
		Status: n.Status(), Flagged: flagged, Unresolved: unresolved}
}

// with runs fn on the up-to-date state of an encounter, holding its lock.
func (svc *Service) with(c Caller, id string, fn func(s *state) error) error {
	if err := ledger.CheckID("encounter_id", id, ledger.MaxEncounterLen); err != nil {
		return err
	}
	if id == AuditChain {
		return fmt.Errorf("%w: encounter %s", ledger.ErrNotFound, id)
	}
	s := svc.states.acquire(c.Tenant, id)
	s.mu.Lock()
	defer func() {
		svc.states.release(s)
		s.mu.Unlock()
	}()
	if err := s.refresh(svc.log); err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("%w: encounter %s", ledger.ErrNotFound, id)
		}
		return err
	}
	return fn(s)
}

// append appends entries of one encounter and applies them to its state.
func (svc *Service) append(ctx context.Context, c Caller, s *state, kinds []ledger.Kind, payloads [][]byte) (*ledger.Appended, error) {
	return svc.appendDecoded(ctx, c, s, kinds, payloads, nil)
}

// appendDecoded is append for callers that also hold the decoded payloads
// (values[i] decodes payloads[i]), which the state then keeps as they are.
func (svc *Service) appendDecoded(ctx context.Context, c Caller, s *state, kinds []ledger.Kind, payloads [][]byte, values []any) (*ledger.Appended, error) {
	entries := make([]ledger.Entry, len(kinds))
	for i := range kinds {
		entries[i] = ledger.Entry{Kind: kinds[i], Tenant: c.Tenant, Encounter: s.id, Actor: c.Actor, Payload: payloads[i]}
	}
	a, err := svc.app.Append(ctx, entries)
	if err != nil {
		return nil, err
	}
	// The state takes the entries just written as they were written,
	// unless another writer appended to the encounter in between; then it
	// catches up from the log.
	if err := s.applyAppended(svc.log, a, payloads, values); err != nil {
		return nil, err
	}
	return a, nil
}

// replayed returns the earlier append of a retried request: one whose
// request id (ledger.WithRequestID) the log applied before, to this
// encounter. It returns nil for a new request. Writes ask it before
// validating against the state, which the first attempt changed (its
// segment ids are recorded now, say), so that a retry reports the first
// attempt instead of being refused.
func (svc *Service) replayed(ctx context.Context, c Caller, s *state) (*ledger.Appended, error) {
	a, err := svc.log.Repeated(ctx)
	if a == nil || err != nil {
		return nil, err
	}
	leaf, err := a.Leaf(0)
	if err != nil {
		return nil, err
	}
	if leaf.Tenant != c.Tenant || leaf.Encounter != s.id {
		return nil, fmt.Errorf("%w: the request id names an earlier request that was not this one", ErrPrecondition)
	}
	return a, nil
}

// applyAppended applies entries this state's owner just appended, when
// they directly follow what the state holds; the leaves come from the
// commit, not from storage.
func (s *state) applyAppended(l *ledger.Log, a *ledger.Appended, payloads [][]byte, values []any) error {
	for i, data := range a.Leaves {
		leaf, err := a.Leaf(i)
		if err != nil {
			return err
		}
		if leaf.Seq != s.count || leaf.Tenant != s.tenant || leaf.Encounter != s.id {
			return s.refresh(l)
		}
		e := &ledger.StoredEntry{Index: a.First + int64(i), Data: data, Hash: a.LeafHashes[i], Leaf: leaf}
		if values != nil {
			err = s.applyValue(e, values[i])
		} else {
			err = s.apply(e, payloads[i])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func encodeAll[T any](vs []T) ([][]byte, error) {
	out := make([][]byte, len(vs))
	for i := range vs {
		b, err := encodePayload(vs[i])
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func repeat(k ledger.Kind, n int) []ledger.Kind {
	out := make([]ledger.Kind, n)
	for i := range out {
		out[i] = k
	}
	return out
}

func checkText(field, s string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return invalid(field, "must not be empty")
	case len(s) > max:
		return invalid(field, "longer than %d bytes", max)
	case !utf8.ValidString(s):
		return invalid(field, "is not valid UTF-8")
	}
	return nil
}

// checkLabel checks a short identifier-like string chosen by a client.
func checkLabel(field, s string, required bool) error {
	if err := checkText(field, s, MaxIDBytes, required); err != nil {
		return err
	}
	for i, r := range s {
		if r < ' ' || r == 0x7f {
			return invalid(field, "has a control character at byte %d", i)
		}
	}
	return nil
}

// Create opens a new encounter. Its data key is made first (see WithKeys),
// so that the append seals under a key that exists.
func (svc *Service) Create(ctx context.Context, c Caller, title, patientRef string) (Info, *ledger.Appended, error) {
	if err := checkText("title", title, MaxTitleBytes, false); err != nil {
		return Info{}, nil, err
	}
	if err := checkLabel("patient_ref", patientRef, false); err != nil {
		return Info{}, nil, err
	}
	opened := &Opened{V: PayloadVersion, Title: title, PatientRef: patientRef}
	p, err := encodePayload(opened)
	if err != nil {
		return Info{}, nil, err
	}
	id := newID()
	if svc.keys != nil {
		if err := svc.keys.EnsureKey(ctx, c.Tenant, id); err != nil {
			return Info{}, nil, err
		}
	}
	s := svc.states.acquire(c.Tenant, id)
	s.mu.Lock()
	a, err := svc.app.Append(ctx, []ledger.Entry{{Kind: ledger.KindEncounter, Tenant: c.Tenant, Encounter: id, Actor: c.Actor, Payload: p}})
	if err != nil {
		s.mu.Unlock()
		svc.states.drop(c.Tenant, id)
		return Info{}, nil, err
	}
	if leaf, err := a.Leaf(0); err == nil && (leaf.Encounter != id || leaf.Tenant != c.Tenant) {
		// A retried request (ledger.WithRequestID): its first attempt
		// opened another encounter, which this one reports; the new id
		// was never used.
		s.mu.Unlock()
		svc.states.drop(c.Tenant, id)
		if leaf.Tenant != c.Tenant || leaf.Kind != ledger.KindEncounter {
			return Info{}, nil, fmt.Errorf("%w: the request id names an earlier request that was not this one", ErrPrecondition)
		}
		info, err := svc.get(c, leaf.Encounter)
		return info, a, err
	}
	defer func() {
		svc.states.release(s)
		s.mu.Unlock()
	}()
	if err := s.applyAppended(svc.log, a, [][]byte{p}, []any{opened}); err != nil {
		return Info{}, nil, err
	}
	return s.info(), a, nil
}

// Get returns an encounter's summary.
func (svc *Service) Get(ctx context.Context, c Caller, id string) (Info, error) {
	info, err := svc.get(c, id)
	if err != nil {
		return info, err
	}
	return info, svc.audit(ctx, c, id, Access{Action: AccessGetEncounter, Head: info.Head})
}

func (svc *Service) get(c Caller, id string) (Info, error) {
	var info Info
	err := svc.with(c, id, func(s *state) error { info = s.info(); return nil })
	return info, err
}

// List returns up to limit of the tenant's encounters with ids after the
// given one, in id order, and whether more follow. It reads each listed
// encounter's chain; the API lists through Find, which reads the
// encounter summaries.
func (svc *Service) List(ctx context.Context, c Caller, after string, limit int) ([]Info, bool, error) {
	var ids []string
	more := false
	errStop := errors.New("stop")
	err := svc.log.Encounters(c.Tenant, after, func(id string, _ ledger.Head) error {
		if id == AuditChain {
			return nil
		}
		if len(ids) == limit {
			more = true
			return errStop
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, false, err
	}
	out := make([]Info, 0, len(ids))
	for _, id := range ids {
		info, err := svc.get(c, id)
		if err != nil {
			return nil, false, err
		}
		out = append(out, info)
	}
	if len(out) > 0 {
		if err := svc.audit(ctx, c, "", Access{Action: AccessListEncounters, Head: -1, Encounters: ids, Count: len(ids)}); err != nil {
			return nil, false, err
		}
	}
	return out, more, nil
}

func validateSegment(field string, g *Segment) error {
	if err := checkLabel(field+".segment_id", g.ID, true); err != nil {
		return err
	}
	switch g.Role {
	case RoleClinician, RolePatient, RoleOther:
	default:
		return invalid(field+".speaker_role", "must be clinician, patient or other")
	}
	if err := checkLabel(field+".speaker_label", g.SpeakerLabel, false); err != nil {
		return err
	}
	if err := checkText(field+".text", g.Text, MaxTextBytes, true); err != nil {
		return err
	}
	if g.StartMS < 0 || g.EndMS < g.StartMS {
		return invalid(field+".end_ms", "times must satisfy 0 <= start_ms <= end_ms")
	}
	if len(g.Words) > MaxWords {
		return invalid(field+".words", "more than %d words", MaxWords)
	}
	for j, w := range g.Words {
		if w.StartMS < g.StartMS || w.EndMS < w.StartMS || w.EndMS > g.EndMS {
			return invalid(fmt.Sprintf("%s.words[%d]", field, j), "word times must lie within the segment and not run backwards")
		}
		if err := checkText(fmt.Sprintf("%s.words[%d].text", field, j), w.Text, 256, true); err != nil {
			return err
		}
	}
	if err := checkLabel(field+".asr_model", g.ASRModel, false); err != nil {
		return err
	}
	if g.Confidence < 0 || g.Confidence > 1 {
		return invalid(field+".confidence", "must be in [0,1]")
	}
	return nil
}

// RecordSegments appends transcript segments, all or none.
func (svc *Service) RecordSegments(ctx context.Context, c Caller, id string, segs []Segment) (*ledger.Appended, error) {
	if len(segs) == 0 {
		return nil, invalid("segments", "at least one segment is required")
	}
	if len(segs) > MaxSegmentsPerRequest {
		return nil, &ledger.InvalidError{Field: "segments", Reason: fmt.Sprintf("more than %d segments in one request", MaxSegmentsPerRequest), Err: ledger.ErrTooLarge}
	}
	seen := make(map[string]bool, len(segs))
	for i := range segs {
		segs[i].V = PayloadVersion
		field := fmt.Sprintf("segments[%d]", i)
		if err := validateSegment(field, &segs[i]); err != nil {
			return nil, err
		}
		if seen[segs[i].ID] {
			return nil, invalid(field+".segment_id", "repeats an earlier segment of the request")
		}
		seen[segs[i].ID] = true
	}
	var a *ledger.Appended
	err := svc.with(c, id, func(s *state) error {
		var err error
		if a, err = svc.replayed(ctx, c, s); a != nil || err != nil {
			return err
		}
		for i := range segs {
			if s.segmentIDs[segs[i].ID] {
				return invalid(fmt.Sprintf("segments[%d].segment_id", i), "already recorded in this encounter")
			}
		}
		payloads, err := encodeAll(segs)
		if err != nil {
			return err
		}
		values := make([]any, len(segs))
		for i := range segs {
			values[i] = &segs[i]
		}
		a, err = svc.appendDecoded(ctx, c, s, repeat(ledger.KindSegment, len(segs)), payloads, values)
		return err
	})
	return a, err
}

// RecordAudio stores a recording read from r as a blob and appends its
// audio entry.
func (svc *Service) RecordAudio(ctx context.Context, c Caller, id string, meta Audio, r io.Reader) (*ledger.Appended, Audio, error) {
	meta.V = PayloadVersion
	if err := checkLabel("media_type", meta.MediaType, true); err != nil {
		return nil, meta, err
	}
	if err := checkLabel("codec", meta.Codec, false); err != nil {
		return nil, meta, err
	}
	if meta.SampleRateHz < 0 || meta.SampleRateHz > 384_000 {
		return nil, meta, invalid("sample_rate_hz", "must be between 0 and 384000")
	}
	if meta.Channels < 0 || meta.Channels > 32 {
		return nil, meta, invalid("channels", "must be between 0 and 32")
	}
	if meta.DurationMS < 0 || meta.StartMS < 0 {
		return nil, meta, invalid("duration_ms", "times must not be negative")
	}
	var a *ledger.Appended
	err := svc.with(c, id, func(s *state) error {
		h, size, err := svc.blobs.Put(ctx, blob.Scope{Tenant: c.Tenant, Encounter: id}, r, MaxAudioBytes)
		switch {
		case errors.Is(err, blob.ErrEmpty):
			return invalid("chunk", "the recording has no bytes")
		case errors.Is(err, blob.ErrTooLarge):
			return &ledger.InvalidError{Field: "chunk", Reason: fmt.Sprintf("the recording exceeds %d bytes", MaxAudioBytes), Err: ledger.ErrTooLarge}
		case err != nil:
			return err
		}
		meta.BlobSHA256, meta.SizeBytes = h.String(), size
		p, err := encodePayload(meta)
		if err != nil {
			return err
		}
		a, err = svc.append(ctx, c, s, []ledger.Kind{ledger.KindAudio}, [][]byte{p})
		return err
	})
	return a, meta, err
}

// AudioRecording is a stored recording of an encounter.
type AudioRecording struct {
	Audio
	Index int64
}

// Transcript returns an encounter's segments in chain order and its audio.
func (svc *Service) Transcript(ctx context.Context, c Caller, id string) ([]StoredSegment, []AudioRecording, error) {
	var segs []StoredSegment
	var audio []AudioRecording
	head := int64(-1)
	err := svc.with(c, id, func(s *state) error {
		head = s.head
		for _, g := range s.segments {
			segs = append(segs, StoredSegment{Segment: g.Segment, Index: g.Index, Time: g.Time})
		}
		for _, a := range s.audio {
			audio = append(audio, AudioRecording{Audio: a.Audio, Index: a.Index})
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := svc.audit(ctx, c, id, Access{Action: AccessTranscript, Head: head, Count: len(segs)}); err != nil {
		return nil, nil, err
	}
	return segs, audio, nil
}

// StoredSegment is a recorded segment with its leaf.
type StoredSegment struct {
	Segment
	Index int64
	Time  time.Time
}

// AudioBlob returns a recording of the encounter for reading: the one
// recorded at leaf index, or the latest when index is negative.
func (svc *Service) AudioBlob(ctx context.Context, c Caller, id string, index int64) (*blob.Blob, Audio, error) {
	var meta Audio
	found := false
	leaf, head := int64(-1), int64(-1)
	err := svc.with(c, id, func(s *state) error {
		head = s.head
		for _, a := range s.audio {
			if a.Index == index || index < 0 {
				meta, found, leaf = a.Audio, true, a.Index
			}
		}
		return nil
	})
	if err != nil {
		return nil, meta, err
	}
	if !found {
		return nil, meta, fmt.Errorf("%w: audio", ledger.ErrNotFound)
	}
	h, err := blob.ParseHash(meta.BlobSHA256)
	if err != nil {
		return nil, meta, err
	}
	b, err := svc.blobs.Open(blob.Scope{Tenant: c.Tenant, Encounter: id}, h)
	if err != nil {
		return nil, meta, err
	}
	if err := svc.audit(ctx, c, id, Access{Action: AccessAudio, Head: head, Leaves: []int64{leaf}}); err != nil {
		return nil, meta, err
	}
	return b, meta, nil
}

func hexHash(h [32]byte) string { return hex.EncodeToString(h[:]) }
