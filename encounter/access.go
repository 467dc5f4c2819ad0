package encounter

import (
	"context"
	"errors"
	"fmt"

	"github.com/evidenceledger/evidence/ledger"
)

// AuditChain is the encounter id of each tenant's audit chain: the chain
// that holds the access entries of reads that are not about one encounter
// (listing encounters, searching). newID never makes it, and the service
// treats it as no encounter: Get returns NotFound and List skips it.
const AuditChain = "audit"

// Access actions: what a read disclosed.
const (
	AccessGetEncounter   = "get_encounter"   // title and patient reference
	AccessListEncounters = "list_encounters" // titles of a page of encounters
	AccessTranscript     = "get_transcript"  // segments and audio metadata
	AccessNote           = "get_note"        // the current note with evidence
	AccessAudio          = "get_audio"       // the recording's bytes
	AccessAlign          = "align"           // transcript spans for ad hoc sentences
	AccessSearch         = "search"          // highlighted text of matching entries
	AccessExport         = "export"          // a provenance report
)

// Access is the payload of an access entry: one read or export of PHI. It
// holds no PHI. Who, which tenant and when are in the leaf (actor, tenant,
// time); what is the leaf's encounter, or for an entry in the audit chain,
// Encounters.
type Access struct {
	V      int    `json:"v"`
	Action string `json:"action"`
	// Role is the caller's role, as authentication established it.
	Role string `json:"role,omitempty"`
	// Channel is how the read came in: an RPC method, an HTTP route, or
	// "internal" for a read by the server's own components.
	Channel string `json:"channel,omitempty"`
	// Remote is the network peer of the request; ForwardedFor the client
	// address a gateway in front of the API reported, unverified.
	Remote       string `json:"remote,omitempty"`
	ForwardedFor string `json:"forwarded_for,omitempty"`
	// Head is the encounter's last leaf reflected in what was read, or -1.
	Head int64 `json:"head"`
	// Leaves are the specific entries disclosed, such as the audio entry
	// whose recording was read.
	Leaves []int64 `json:"leaves,omitempty"`
	// Encounters lists, for a read that is not about one encounter, the
	// encounters whose PHI it returned.
	Encounters []string `json:"encounters,omitempty"`
	// Count is how many items were returned (segments, results, ...).
	Count int `json:"count,omitempty"`
	// Format is the format of an export.
	Format string `json:"format,omitempty"`
}

// Origin says where a request came from, for the access trail. The API
// layer puts it in the request's context with WithOrigin.
type Origin struct {
	Role         string
	Channel      string
	Remote       string
	ForwardedFor string
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin in ctx; without one, the read is the
// server's own ("internal").
func OriginFrom(ctx context.Context) Origin {
	if o, ok := ctx.Value(originKey{}).(Origin); ok {
		return o
	}
	return Origin{Channel: "internal"}
}

// Option configures a Service.
type Option func(*Service)

// WithAccessTrail makes every read of PHI through the Service append an
// access entry (RecordAccess) before it returns anything: a read is served
// only once its access entry is durable, and a read whose entry cannot be
// written fails. Concurrent reads share group commits, so they cost one
// sync between them, not one each.
func WithAccessTrail() Option {
	return func(s *Service) { s.accessTrail = true }
}

// AccessTrail reports whether the Service records reads (WithAccessTrail).
func (svc *Service) AccessTrail() bool { return svc.accessTrail }

// RecordAccess appends an access entry for a read by c, in the chain of the
// encounter it was about, or in the tenant's audit chain (AuditChain) when
// encounter is empty, and returns once it is durable, with its leaf index.
// The Role, Channel and addresses come from ctx (OriginFrom) when a is
// missing them.
func (svc *Service) RecordAccess(ctx context.Context, c Caller, encounter string, a Access) (int64, error) {
	if encounter == "" {
		encounter = AuditChain
	}
	if a.Action == "" {
		return -1, invalid("action", "must not be empty")
	}
	o := OriginFrom(ctx)
	a.V = PayloadVersion
	if a.Role == "" {
		a.Role = o.Role
	}
	if a.Channel == "" {
		a.Channel = o.Channel
	}
	if a.Remote == "" {
		a.Remote = o.Remote
	}
	if a.ForwardedFor == "" {
		a.ForwardedFor = o.ForwardedFor
	}
	p, err := encodePayload(a)
	if err != nil {
		return -1, err
	}
	if err := svc.EnsureAuditKey(ctx, c.Tenant); err != nil {
		return -1, err
	}
	app, err := svc.app.Append(ctx, []ledger.Entry{{Kind: ledger.KindAccess, Tenant: c.Tenant, Encounter: encounter, Actor: c.Actor, Payload: p}})
	if err != nil {
		return -1, fmt.Errorf("encounter: record access: %w", err)
	}
	return app.First, nil
}

// WithKeys makes the Service make data keys (Keys.EnsureKey) before the
// appends that seal under them: an encounter's when it is created, a
// tenant's audit key before its first access or redaction entry. A
// Service on a log that seals payloads (envelope encryption) needs it.
func WithKeys(k Keys) Option {
	return func(s *Service) { s.keys = k }
}

// EnsureAuditKey makes the tenant's audit key (WithKeys), under which its
// access and redaction payloads, and records the proxies keep outside the
// ledger, are sealed; once per tenant and process.
func (svc *Service) EnsureAuditKey(ctx context.Context, tenant string) error {
	if svc.keys == nil {
		return nil
	}
	if _, ok := svc.auditKeys.Load(tenant); ok {
		return nil
	}
	if err := svc.keys.EnsureKey(ctx, tenant, ""); err != nil {
		return err
	}
	svc.auditKeys.Store(tenant, true)
	return nil
}

// audit records a read when the access trail is on.
func (svc *Service) audit(ctx context.Context, c Caller, encounter string, a Access) error {
	if !svc.accessTrail {
		return nil
	}
	_, err := svc.RecordAccess(ctx, c, encounter, a)
	return err
}

// DecodeAccess parses an access entry's payload strictly.
func DecodeAccess(data []byte) (*Access, error) {
	var a Access
	if err := decodePayload(data, &a, func() int { return a.V }); err != nil {
		return nil, err
	}
	return &a, nil
}

// Redaction is the payload of a redaction entry: the encounter's payloads
// and recordings were destroyed (crypto-shredded). It holds no PHI.
type Redaction struct {
	V      int    `json:"v"`
	Reason string `json:"reason"`
	// Payloads and Blobs count what was destroyed; Through is the last leaf
	// of the encounter whose payload was destroyed.
	Payloads int   `json:"payloads"`
	Blobs    int   `json:"blobs"`
	Through  int64 `json:"through"`
	// KeyPurged reports whether the storage engine physically erased the
	// encounter's wrapped data key.
	KeyPurged bool `json:"key_purged"`
	// IndexCleared reports whether the full-text index's documents of the
	// encounter were removed.
	IndexCleared bool `json:"index_cleared"`
}

// DecodeRedaction parses a redaction entry's payload strictly.
func DecodeRedaction(data []byte) (*Redaction, error) {
	var r Redaction
	if err := decodePayload(data, &r, func() int { return r.V }); err != nil {
		return nil, err
	}
	return &r, nil
}

// DestroyPayloads replaces the stored payloads of an encounter's entries,
// except access and redaction entries (whose payloads hold no PHI and
// outlive the encounter), with tombstones (ledger.Log.Tombstones), through
// the Appender, and drops the service's state of the encounter. Leaves and
// proofs stay valid. It returns how many payloads it destroyed; those
// destroyed before are not counted again. Crypto-shredding calls it once
// the encounter's data key is destroyed.
func (svc *Service) DestroyPayloads(ctx context.Context, c Caller, id string) (int, error) {
	if err := ledger.CheckID("encounter_id", id, ledger.MaxEncounterLen); err != nil {
		return 0, err
	}
	if id == AuditChain {
		return 0, &ledger.InvalidError{Field: "encounter_id", Reason: "the audit chain holds no PHI and cannot be shredded"}
	}
	s := svc.states.acquire(c.Tenant, id)
	s.mu.Lock()
	defer func() {
		svc.states.release(s)
		s.mu.Unlock()
	}()
	s.forget()
	b, n, err := svc.log.Tombstones(c.Tenant, id, func(k ledger.Kind) bool { return k != ledger.KindAccess && k != ledger.KindRedaction })
	if err != nil {
		return 0, err
	}
	if n > 0 {
		if err := svc.app.Write(ctx, b); err != nil {
			return 0, fmt.Errorf("encounter: write tombstones: %w", err)
		}
	}
	return n, nil
}

// RecordRedaction appends the redaction entry of a shredded encounter
// (what was destroyed and why; no PHI). Reads of the encounter fail from
// then on with an error wrapping ledger.ErrRedacted. The encounter need not
// be readable: its payloads may be destroyed already.
func (svc *Service) RecordRedaction(ctx context.Context, c Caller, id string, r Redaction) (*ledger.Appended, error) {
	if err := ledger.CheckID("encounter_id", id, ledger.MaxEncounterLen); err != nil {
		return nil, err
	}
	if id == AuditChain {
		return nil, &ledger.InvalidError{Field: "encounter_id", Reason: "the audit chain holds no PHI and cannot be shredded"}
	}
	if err := checkText("reason", r.Reason, MaxRedactionReasonBytes, true); err != nil {
		return nil, err
	}
	for i, ch := range r.Reason {
		if ch < ' ' || ch == 0x7f {
			return nil, invalid("reason", "has a control character at byte %d", i)
		}
	}
	if r.Payloads < 0 || r.Blobs < 0 || r.Through < 0 {
		return nil, invalid("redaction", "counts and the last leaf must not be negative")
	}
	r.V = PayloadVersion
	p, err := encodePayload(r)
	if err != nil {
		return nil, err
	}
	if err := svc.EnsureAuditKey(ctx, c.Tenant); err != nil {
		return nil, err
	}
	s := svc.states.acquire(c.Tenant, id)
	s.mu.Lock()
	defer func() {
		svc.states.release(s)
		s.mu.Unlock()
	}()
	if _, err := svc.log.EncounterHead(c.Tenant, id); err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("%w: encounter %s", ledger.ErrNotFound, id)
		}
		return nil, err
	}
	s.forget()
	return svc.app.Append(ctx, []ledger.Entry{{Kind: ledger.KindRedaction, Tenant: c.Tenant, Encounter: id, Actor: c.Actor, Payload: p}})
}

// MaxRedactionReasonBytes caps the reason of a redaction.
const MaxRedactionReasonBytes = 512

// Forget drops the service's in-memory state of an encounter, so that the
// next read rebuilds it from the log. Crypto-shredding calls it once the
// encounter's key is destroyed, so that nothing decoded before is served
// from memory.
func (svc *Service) Forget(c Caller, id string) {
	svc.states.drop(c.Tenant, id)
}

func (c *stateCache) drop(tenant, id string) {
	k := cacheKey(tenant, id)
	c.mu.Lock()
	el, ok := c.mu.items[k]
	var s *state
	if ok {
		s = el.Value.(*cached).s
		c.removeLocked(el)
	}
	c.mu.Unlock()
	if ok {
		s.mu.Lock()
		s.forget()
		s.mu.Unlock()
	}
}

// Export is everything an export of an encounter reads: its summary,
// current note, transcript and recordings.
type Export struct {
	Info     Info
	Note     *Note
	Segments []StoredSegment
	Audio    []AudioRecording
	// AccessLeaf is the leaf index of the export's access entry, or -1
	// when the access trail is off.
	AccessLeaf int64
}

// Export reads an encounter for an export in the given format (a
// provenance report) and, with the access trail on, records one access
// entry (AccessExport) before it returns.
func (svc *Service) Export(ctx context.Context, c Caller, id, format string) (*Export, error) {
	x := &Export{AccessLeaf: -1}
	err := svc.with(c, id, func(s *state) error {
		x.Info, x.Note = s.info(), s.project()
		for _, g := range s.segments {
			x.Segments = append(x.Segments, StoredSegment{Segment: g.Segment, Index: g.Index, Time: g.Time})
		}
		for _, a := range s.audio {
			x.Audio = append(x.Audio, AudioRecording{Audio: a.Audio, Index: a.Index})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if svc.accessTrail {
		leaf, err := svc.RecordAccess(ctx, c, id, Access{Action: AccessExport, Head: x.Note.Head, Format: format})
		if err != nil {
			return nil, err
		}
		x.AccessLeaf = leaf
	}
	return x, nil
}
