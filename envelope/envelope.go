// Package envelope encrypts Evidence Ledger's payloads and audio at rest
// with envelope encryption: every encounter has its own AES-256 data key
// (DEK), and every tenant its own key-encryption keys (KEKs), held by a KMS
// (a local keyring file by default, see Keyring) that wraps the DEKs. The
// wrapped DEKs are kept in the ledger's key-value store under the 'k' prefix
// (docs/formats.md). Destroying an encounter's DEK (Shred) makes every
// payload and audio chunk sealed under it unreadable, which is how
// crypto-shredding works; the ledger's leaves and proofs are unaffected.
//
// Ciphers and formats: AES-256-GCM (NIST SP 800-38D) with a random 96-bit
// nonce per message; every ciphertext is bound, as additional data, to the
// tenant, the encounter and the payload commitment (or the blob chunk key),
// so a ciphertext moved to another entry or encounter does not open.
// Access and redaction payloads, which hold no PHI and must outlive a
// shredded encounter, are sealed under a per-tenant audit data key instead
// (ledger.KindSealer). This meets the encryption-at-rest specification of
// HIPAA 45 CFR 164.312(a)(2)(iv); docs/compliance.md says what it covers and
// what it does not (the full-text index, which bleve writes unencrypted).
//
// Sealer implements ledger.Sealer, ledger.KindSealer and blob.Sealer; it
// reads wrapped keys and never writes them, so that sealing does no
// storage I/O once a key is in memory. Keys makes and destroys data keys,
// through the log's store or, in a cluster, its replicated view: an
// encounter's key is made when the encounter is created, before anything
// is sealed under it. Keys and plaintext never appear in errors.
package envelope

import (
	"bytes"
	"container/list"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// Ciphertext header: format version, then which data key sealed it.
const (
	formatVersion  = 0x01
	classEncounter = 0x01 // the encounter's data key
	classAudit     = 0x02 // the tenant's audit data key
	headerLen      = 2
	nonceLen       = 12
	tagLen         = 16
	// Overhead is how many bytes sealing adds to a payload or chunk.
	Overhead = headerLen + nonceLen + tagLen
)

// Key-value layout (docs/formats.md): 'k' tenant 0x00 scope 0x00 kind,
// where scope is an encounter id, or empty for the tenant's audit key.
const (
	prefixKey    = 'k'
	kindDataKey  = 'd' // -> key record: version, KEK id, wrapped DEK
	kindShredded = 'x' // -> shredded at: Unix nanoseconds (8, big-endian)
	recordV1     = 0x01
)

// MaxKeyRecord bounds a stored key record. It stays below the 256-byte
// threshold above which pebblestore separates values into blob files, which
// storage.Purger cannot erase.
const MaxKeyRecord = 200

func keyName(tenant, scope string, kind byte) []byte {
	b := make([]byte, 0, 1+len(tenant)+1+len(scope)+2)
	b = append(b, prefixKey)
	b = append(b, tenant...)
	b = append(b, 0)
	b = append(b, scope...)
	return append(b, 0, kind)
}

// Sealer seals payloads and chunks under per-encounter data keys. It is
// safe for concurrent use.
//
// Data keys are made by Keys (a durable write of the wrapped key before
// anything sealed with it), unwrapped through the KMS on first use after a
// start, and then kept in a bounded in-memory cache. A key destroyed by
// Keys.Shred leaves the cache at once; one destroyed through another
// Sealer over the same replicated store leaves it when that write is
// applied here (Observe).
type Sealer struct {
	kv   storage.Store
	kms  KMS
	opts Options
	mu   struct {
		sync.Mutex
		cache   map[string]*list.Element // of *dataKey
		lru     *list.List               // front = most recent
		loading map[string]chan struct{} // closed when the load of a key ends
		epoch   map[string]uint64        // counts Shred calls, to void loads they overlap
	}
}

// Options configure a Sealer.
type Options struct {
	// ReadOnly forbids creating data keys: sealing for an encounter with
	// no key fails. Offline tools (verify) set it.
	ReadOnly bool
	// CacheSize bounds the cache of unwrapped data keys; default 4,096.
	CacheSize int
	// Rand is the source of keys and nonces; default crypto/rand.Reader.
	Rand io.Reader
	// Now is the time recorded when a key is shredded; default time.Now.
	Now func() time.Time
	// KMSTimeout bounds each KMS call; default 10 seconds.
	KMSTimeout time.Duration
}

type dataKey struct {
	name string
	aead cipher.AEAD
}

// New returns a Sealer keeping wrapped keys in kv, the ledger's store, and
// wrapping them with kms.
func New(kv storage.Store, kms KMS, opts Options) *Sealer {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 4096
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.KMSTimeout <= 0 {
		opts.KMSTimeout = 10 * time.Second
	}
	s := &Sealer{kv: kv, kms: kms, opts: opts}
	s.mu.cache = make(map[string]*list.Element)
	s.mu.lru = list.New()
	s.mu.loading = make(map[string]chan struct{})
	s.mu.epoch = make(map[string]uint64)
	return s
}

var (
	_ ledger.KindSealer = (*Sealer)(nil)
	_ blob.Sealer       = (*Sealer)(nil)
)

// ErrNoKey reports a ciphertext whose data key was never stored (or was
// deleted without a shred record): the data is lost or the store damaged.
var ErrNoKey = errors.New("envelope: no data key for this encounter")

// ErrMalformed reports a sealed value that is not in this package's format.
var ErrMalformed = errors.New("envelope: malformed ciphertext")

// errOpen reports a ciphertext that failed authentication.
var errOpen = errors.New("envelope: ciphertext does not authenticate (altered, moved, or sealed under another key)")

func checkScope(tenant, encounter string) error {
	if err := ledger.CheckID("tenant", tenant, ledger.MaxTenantLen); err != nil {
		return err
	}
	return ledger.CheckID("encounter", encounter, ledger.MaxEncounterLen)
}

// Seal implements ledger.Sealer: it seals under the encounter's data key.
func (s *Sealer) Seal(tenant, encounter string, commitment ledger.Hash, plaintext []byte) ([]byte, error) {
	return s.seal(classEncounter, tenant, encounter, payloadAAD(tenant, encounter, commitment), plaintext)
}

// SealKind implements ledger.KindSealer: access and redaction payloads are
// sealed under the tenant's audit key, everything else under the
// encounter's data key.
func (s *Sealer) SealKind(kind ledger.Kind, tenant, encounter string, commitment ledger.Hash, plaintext []byte) ([]byte, error) {
	class := byte(classEncounter)
	if AuditKind(kind) {
		class = classAudit
	}
	return s.seal(class, tenant, encounter, payloadAAD(tenant, encounter, commitment), plaintext)
}

// AuditKind reports whether payloads of kind are sealed under the tenant's
// audit key and so survive the shredding of their encounter.
func AuditKind(kind ledger.Kind) bool {
	return kind == ledger.KindAccess || kind == ledger.KindRedaction
}

// Open implements ledger.Sealer. A payload whose encounter was shredded
// returns an error wrapping ledger.ErrRedacted.
func (s *Sealer) Open(tenant, encounter string, commitment ledger.Hash, sealed []byte) ([]byte, error) {
	return s.open(tenant, encounter, payloadAAD(tenant, encounter, commitment), sealed)
}

// SealChunk implements blob.Sealer under the encounter's data key.
func (s *Sealer) SealChunk(scope blob.Scope, aad, plaintext []byte) ([]byte, error) {
	return s.seal(classEncounter, scope.Tenant, scope.Encounter, chunkAAD(scope, aad), plaintext)
}

// OpenChunk implements blob.Sealer.
func (s *Sealer) OpenChunk(scope blob.Scope, aad, sealed []byte) ([]byte, error) {
	return s.open(scope.Tenant, scope.Encounter, chunkAAD(scope, aad), sealed)
}

// recordScope stands for the encounter in the scope check of a record
// sealed under the tenant's audit key, which no encounter owns; it is the
// reserved id of the tenant's audit chain.
const recordScope = "audit"

// SealRecord seals a record of the tenant's that is kept for a while
// outside the ledger's store, such as a call in the inference proxy's spool,
// under the tenant's audit data key, bound to aad (which names the record).
// A record must not outlive its use: the audit key is not destroyed when an
// encounter is shredded.
func (s *Sealer) SealRecord(tenant string, aad, plaintext []byte) ([]byte, error) {
	return s.seal(classAudit, tenant, recordScope, recordAAD(tenant, aad), plaintext)
}

// OpenRecord opens what SealRecord sealed with the same tenant and aad.
func (s *Sealer) OpenRecord(tenant string, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < headerLen || sealed[1] != classAudit {
		return nil, ErrMalformed
	}
	return s.open(tenant, recordScope, recordAAD(tenant, aad), sealed)
}

func recordAAD(tenant string, aad []byte) []byte {
	b := make([]byte, 0, 24+len(tenant)+len(aad))
	b = append(b, "evidence/record/v1"...)
	b = append(b, 0)
	b = append(b, tenant...)
	b = append(b, 0)
	return append(b, aad...)
}

// payloadAAD binds a payload to its entry: tenant, encounter and the
// commitment the leaf holds.
func payloadAAD(tenant, encounter string, c ledger.Hash) []byte {
	b := make([]byte, 0, 24+len(tenant)+len(encounter)+len(c))
	b = append(b, "evidence/payload/v1"...)
	b = append(b, 0)
	b = append(b, tenant...)
	b = append(b, 0)
	b = append(b, encounter...)
	b = append(b, 0)
	return append(b, c[:]...)
}

// chunkAAD binds a chunk to its scope and storage key.
func chunkAAD(sc blob.Scope, key []byte) []byte {
	b := make([]byte, 0, 24+len(sc.Tenant)+len(sc.Encounter)+len(key))
	b = append(b, "evidence/chunk/v1"...)
	b = append(b, 0)
	b = append(b, sc.Tenant...)
	b = append(b, 0)
	b = append(b, sc.Encounter...)
	b = append(b, 0)
	return append(b, key...)
}

func (s *Sealer) seal(class byte, tenant, encounter string, aad, plaintext []byte) ([]byte, error) {
	if err := checkScope(tenant, encounter); err != nil {
		return nil, err
	}
	scope := encounter
	if class == classAudit {
		scope = ""
	}
	k, err := s.key(tenant, scope, nil)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerLen+nonceLen, Overhead+len(plaintext))
	out[0], out[1] = formatVersion, class
	if _, err := io.ReadFull(s.opts.Rand, out[headerLen:]); err != nil {
		return nil, fmt.Errorf("envelope: nonce: %w", err)
	}
	return k.aead.Seal(out, out[headerLen:], plaintext, append(aad, out[:headerLen]...)), nil
}

func (s *Sealer) open(tenant, encounter string, aad, sealed []byte) ([]byte, error) {
	if err := checkScope(tenant, encounter); err != nil {
		return nil, err
	}
	if len(sealed) < Overhead || sealed[0] != formatVersion || (sealed[1] != classEncounter && sealed[1] != classAudit) {
		return nil, ErrMalformed
	}
	scope := encounter
	if sealed[1] == classAudit {
		scope = ""
	}
	k, err := s.key(tenant, scope, nil)
	if err != nil {
		return nil, err
	}
	plain, err := k.aead.Open(nil, sealed[headerLen:headerLen+nonceLen], sealed[headerLen+nonceLen:], append(aad, sealed[:headerLen]...))
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}

// key returns the data key of tenant's scope, from the cache, the store or,
// when create is not nil, a new one written to create. One load per key
// runs at a time, without holding s.mu, so that a slow KMS call delays
// only the callers that need that key and two callers can never create two
// keys for one encounter. A cached key is returned without reading
// anything.
func (s *Sealer) key(tenant, scope string, create storage.Store) (*dataKey, error) {
	name := tenant + "\x00" + scope
	for {
		s.mu.Lock()
		if el, ok := s.mu.cache[name]; ok {
			s.mu.lru.MoveToFront(el)
			s.mu.Unlock()
			return el.Value.(*dataKey), nil
		}
		if c, ok := s.mu.loading[name]; ok {
			s.mu.Unlock()
			<-c
			continue // cached now, or failed: try again ourselves
		}
		c := make(chan struct{})
		s.mu.loading[name] = c
		epoch := s.mu.epoch[name]
		s.mu.Unlock()

		k, err := s.load(tenant, scope, create)

		s.mu.Lock()
		delete(s.mu.loading, name)
		close(c)
		if err == nil && s.mu.epoch[name] != epoch {
			// Shredded while we loaded it.
			err = fmt.Errorf("%w: the encounter's data key was destroyed", ledger.ErrRedacted)
		}
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.mu.cache[name] = s.mu.lru.PushFront(k)
		for s.mu.lru.Len() > s.opts.CacheSize {
			old := s.mu.lru.Remove(s.mu.lru.Back()).(*dataKey)
			delete(s.mu.cache, old.name)
		}
		s.mu.Unlock()
		return k, nil
	}
}

// forget drops a data key from memory and makes a load of it that is under
// way end with ErrRedacted.
func (s *Sealer) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.epoch[name]++
	if el, ok := s.mu.cache[name]; ok {
		s.mu.lru.Remove(el)
		delete(s.mu.cache, name)
	}
}

func (s *Sealer) kmsContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.KMSTimeout)
}

// load reads and unwraps a data key, or creates one through create. Only
// one load of a key runs at a time (see key).
func (s *Sealer) load(tenant, scope string, create storage.Store) (*dataKey, error) {
	if _, err := s.kv.Get(keyName(tenant, scope, kindShredded)); err == nil {
		return nil, fmt.Errorf("%w: the encounter's data key was destroyed", ledger.ErrRedacted)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("envelope: read key: %w", err)
	}
	ctx, cancel := s.kmsContext()
	defer cancel()
	wrapAAD := keyAAD(tenant, scope)
	rec, err := s.kv.Get(keyName(tenant, scope, kindDataKey))
	switch {
	case err == nil:
		keyID, wrapped, err := decodeKeyRecord(rec)
		if err != nil {
			return nil, err
		}
		raw, err := s.kms.Unwrap(ctx, tenant, keyID, wrapped, wrapAAD)
		if err != nil {
			return nil, err
		}
		return newDataKey(tenant+"\x00"+scope, raw)
	case !errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("envelope: read key: %w", err)
	case create == nil || s.opts.ReadOnly:
		return nil, ErrNoKey
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(s.opts.Rand, raw); err != nil {
		return nil, fmt.Errorf("envelope: generate key: %w", err)
	}
	keyID, wrapped, err := s.kms.Wrap(ctx, tenant, raw, wrapAAD)
	if err != nil {
		return nil, err
	}
	rec, err = encodeKeyRecord(keyID, wrapped)
	if err != nil {
		return nil, err
	}
	// The key is durable before anything sealed with it can be.
	var b storage.Batch
	b.Set(keyName(tenant, scope, kindDataKey), rec)
	if err := create.Write(&b, true); err != nil {
		// In a cluster, another node may have made the scope's key first
		// (the write is create-only): then that one is the key.
		if stored, gerr := s.kv.Get(keyName(tenant, scope, kindDataKey)); gerr == nil && !bytes.Equal(stored, rec) {
			clear(raw)
			return s.load(tenant, scope, nil)
		}
		return nil, fmt.Errorf("envelope: store key: %w", err)
	}
	return newDataKey(tenant+"\x00"+scope, raw)
}

func newDataKey(name string, raw []byte) (*dataKey, error) {
	if len(raw) != 32 {
		return nil, ErrUnwrap
	}
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	clear(raw)
	return &dataKey{name: name, aead: aead}, nil
}

// keyAAD binds a wrapped data key to its tenant and scope, so that a key
// record copied to another encounter does not unwrap.
func keyAAD(tenant, scope string) []byte {
	b := make([]byte, 0, 20+len(tenant)+len(scope))
	b = append(b, "evidence/dek/v1"...)
	b = append(b, 0)
	b = append(b, tenant...)
	b = append(b, 0)
	return append(b, scope...)
}

// encodeKeyRecord: version (1) || KEK id length (1) || KEK id || wrapped.
func encodeKeyRecord(keyID string, wrapped []byte) ([]byte, error) {
	if len(keyID) == 0 || len(keyID) > 64 {
		return nil, errors.New("envelope: KMS returned a key id of bad length")
	}
	rec := make([]byte, 0, 2+len(keyID)+len(wrapped))
	rec = append(rec, recordV1, byte(len(keyID)))
	rec = append(rec, keyID...)
	rec = append(rec, wrapped...)
	if len(rec) > MaxKeyRecord {
		return nil, fmt.Errorf("envelope: key record of %d bytes exceeds %d", len(rec), MaxKeyRecord)
	}
	return rec, nil
}

func decodeKeyRecord(rec []byte) (keyID string, wrapped []byte, err error) {
	if len(rec) < 3 || rec[0] != recordV1 || len(rec) < 2+int(rec[1])+1 || rec[1] == 0 {
		return "", nil, errors.New("envelope: malformed key record")
	}
	n := int(rec[1])
	return string(rec[2 : 2+n]), bytes.Clone(rec[2+n:]), nil
}

// ShredResult reports what Shred did.
type ShredResult struct {
	// Purged is true when the store physically erased the wrapped key
	// (storage.Purger); otherwise it was only deleted, and old copies may
	// stay in the store's files until it compacts them.
	Purged bool
	// Already is true when the key had been shredded before.
	Already bool
}

// Keys makes and destroys a Sealer's data keys through w, the log's store
// or, in a cluster, its replicated view (so that every node holds them). It
// is safe for concurrent use.
type Keys struct {
	s *Sealer
	w storage.Store
}

// NewKeys returns the Keys of s, writing through w.
func NewKeys(s *Sealer, w storage.Store) *Keys { return &Keys{s: s, w: w} }

// EnsureKey makes tenant's data key for scope (an encounter id, or "" for
// the tenant's audit key) unless it exists, and keeps it in the Sealer's
// memory. It fails with an error wrapping ledger.ErrRedacted for a
// shredded encounter.
func (k *Keys) EnsureKey(_ context.Context, tenant, scope string) error {
	check := scope
	if scope == "" {
		check = "audit"
	}
	if err := checkScope(tenant, check); err != nil {
		return err
	}
	_, err := k.s.key(tenant, scope, k.w)
	return err
}

// Shred destroys an encounter's data key: it records that the key was
// shredded (so that nothing is ever sealed for the encounter again), then
// erases the wrapped key from the store, with storage.Purger when the store
// has it, and drops the key from memory. Afterwards everything sealed under
// it, payloads and audio, fails to open with an error wrapping
// ledger.ErrRedacted. It is idempotent: run it again after a failure. The
// tenant's audit key cannot be shredded.
func (k *Keys) Shred(_ context.Context, tenant, encounter string) (ShredResult, error) {
	if err := checkScope(tenant, encounter); err != nil {
		return ShredResult{}, err
	}
	s := k.s
	name := tenant + "\x00" + encounter
	s.forget(name)
	// A load that started before the marker is written ends with
	// ErrRedacted (the epoch changed); one that starts after finds the
	// marker. Shreds of one encounter may run concurrently: each step is
	// idempotent.
	var res ShredResult
	marker := keyName(tenant, encounter, kindShredded)
	if _, err := s.kv.Get(marker); err == nil {
		res.Already = true
	} else if !errors.Is(err, storage.ErrNotFound) {
		return res, fmt.Errorf("envelope: read key: %w", err)
	} else {
		var b storage.Batch
		b.Set(marker, binary.BigEndian.AppendUint64(nil, uint64(s.opts.Now().UnixNano())))
		if err := k.w.Write(&b, true); err != nil {
			return res, fmt.Errorf("envelope: record shredding: %w", err)
		}
	}
	// A load that read the store before the marker was there may have
	// cached the key since: drop it again. Loads from now on find the
	// marker.
	s.forget(name)
	record := keyName(tenant, encounter, kindDataKey)
	if p, ok := k.w.(storage.Purger); ok {
		if err := p.Purge(record); err != nil {
			return res, fmt.Errorf("envelope: purge key: %w", err)
		}
		res.Purged = true
		return res, nil
	}
	var b storage.Batch
	b.Delete(record)
	if err := k.w.Write(&b, true); err != nil {
		return res, fmt.Errorf("envelope: delete key: %w", err)
	}
	return res, nil
}

// Observe tells the Sealer about a write to its store that did not go
// through its Keys: a shredding marker or a deleted key record written
// through another Sealer over the same replicated store. The key leaves
// memory, so the next use reads the store and finds it destroyed. A
// cluster node calls it for every replicated write it applies.
func (s *Sealer) Observe(key []byte, deleted bool) {
	if len(key) < 4 || key[0] != prefixKey || key[len(key)-2] != 0 {
		return
	}
	if kind := key[len(key)-1]; kind == kindShredded || (kind == kindDataKey && deleted) {
		s.forget(string(key[1 : len(key)-2]))
	}
}

// ForgetAll drops every key from memory, after the store's contents were
// replaced (a replication snapshot was installed).
func (s *Sealer) ForgetAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.mu.cache {
		s.mu.epoch[name]++
	}
	clear(s.mu.cache)
	s.mu.lru.Init()
	for name := range s.mu.loading {
		s.mu.epoch[name]++
	}
}

// Shredded reports whether an encounter's data key was shredded, and when.
func (s *Sealer) Shredded(tenant, encounter string) (bool, time.Time, error) {
	if err := checkScope(tenant, encounter); err != nil {
		return false, time.Time{}, err
	}
	v, err := s.kv.Get(keyName(tenant, encounter, kindShredded))
	if errors.Is(err, storage.ErrNotFound) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("envelope: read key: %w", err)
	}
	var at time.Time
	if len(v) == 8 {
		at = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
	}
	return true, at, nil
}

// WrappedKey returns the stored record of an encounter's wrapped data key,
// for tests and forensic checks that look for copies of it in files.
func (s *Sealer) WrappedKey(tenant, encounter string) ([]byte, error) {
	rec, err := s.kv.Get(keyName(tenant, encounter, kindDataKey))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoKey
	}
	return rec, err
}

// OpenLocal opens the keyring file at keyringPath and returns a Sealer on
// kv that uses it. With create (the server), a missing keyring is created
// and tenants get their first key on first use. Without it (offline tools),
// nothing ever changes a key and the Sealer is read-only: its Keys make
// none.
func OpenLocal(kv storage.Store, keyringPath string, create bool) (*Sealer, *Keyring, error) {
	kr, err := OpenKeyring(keyringPath, KeyringOptions{Create: create})
	if err != nil {
		return nil, nil, err
	}
	return New(kv, kr, Options{ReadOnly: !create}), kr, nil
}
