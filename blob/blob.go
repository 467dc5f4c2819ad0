// Package blob stores large binary objects, such as audio recordings,
// addressed by the SHA-256 of their content and kept in fixed-size chunks in
// the same key-value store as the ledger, so that a byte range can be read
// without reading the whole object.
//
// Every blob belongs to a Scope, the tenant and encounter it was recorded
// for. A blob is addressed by its scope and hash, and deduplicated only
// within its scope, so that each chunk can be sealed under its encounter's
// key (see Sealer) and an encounter's blobs deleted with it (DeleteScope).
//
// Put streams an object in, chunk by chunk, under a random upload id, and
// only then writes the manifest that makes it addressable by its hash, in a
// synced batch. An interrupted Put leaves orphaned chunks but never a
// manifest pointing at missing data.
package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// ChunkSize is the size of every chunk but the last.
const ChunkSize = 64 << 10

// Key prefixes, disjoint from the ledger's (docs/formats.md).
const (
	prefixManifest = 'b' // 'b' tenant 0 encounter 0 sha256(32) -> manifest
	prefixChunk    = 'B' // 'B' upload id(16) chunk(4) -> sealed data
)

// Errors.
var (
	ErrNotFound = errors.New("blob: not found")
	ErrTooLarge = errors.New("blob: too large")
	ErrEmpty    = errors.New("blob: empty")
)

// Scope is what a blob belongs to: a tenant's encounter. Both are ledger
// identifiers (ledger.CheckID), which never contain 0x00.
type Scope struct {
	Tenant    string
	Encounter string
}

// Sealer protects chunks at rest; see ledger.Sealer. aad is the chunk's
// storage key (upload id and chunk number), which the sealer binds to the
// sealed chunk with the scope, so a chunk cannot be moved. OpenChunk returns
// an error wrapping ledger.ErrRedacted once the scope's key is destroyed.
// Implementations must be safe for concurrent use.
type Sealer interface {
	SealChunk(scope Scope, aad, plaintext []byte) ([]byte, error)
	OpenChunk(scope Scope, aad, sealed []byte) ([]byte, error)
}

type plain struct{}

func (plain) SealChunk(_ Scope, _, p []byte) ([]byte, error) { return p, nil }
func (plain) OpenChunk(_ Scope, _, p []byte) ([]byte, error) { return p, nil }

// Store keeps blobs in a storage.Store. It is safe for concurrent use.
type Store struct {
	kv     storage.Store
	sealer Sealer
}

// New returns a blob store on kv. A nil sealer stores chunks as they are.
func New(kv storage.Store, sealer Sealer) *Store {
	if sealer == nil {
		sealer = plain{}
	}
	return &Store{kv: kv, sealer: sealer}
}

// Hash is a blob's address.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses a hex blob address.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("blob: malformed hash")
	}
	copy(h[:], b)
	return h, nil
}

type manifest struct {
	size   int64
	upload [16]byte
}

func (m manifest) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(m.size))
	return append(b, m.upload[:]...)
}

func decodeManifest(b []byte) (manifest, error) {
	var m manifest
	if len(b) != 8+16 {
		return m, fmt.Errorf("blob: malformed manifest")
	}
	m.size = int64(binary.BigEndian.Uint64(b))
	copy(m.upload[:], b[8:])
	return m, nil
}

// scopePrefix is the part of manifest keys that names one scope.
func scopePrefix(sc Scope) []byte {
	b := make([]byte, 0, 1+len(sc.Tenant)+1+len(sc.Encounter)+1+32)
	b = append(b, prefixManifest)
	b = append(b, sc.Tenant...)
	b = append(b, 0)
	b = append(b, sc.Encounter...)
	return append(b, 0)
}

func manifestKey(sc Scope, h Hash) []byte { return append(scopePrefix(sc), h[:]...) }

func checkScope(sc Scope) error {
	if sc.Tenant == "" || sc.Encounter == "" || strings.IndexByte(sc.Tenant, 0) >= 0 || strings.IndexByte(sc.Encounter, 0) >= 0 {
		return errors.New("blob: invalid scope")
	}
	return nil
}

func chunkKey(upload [16]byte, n uint32) []byte {
	k := append([]byte{prefixChunk}, upload[:]...)
	return binary.BigEndian.AppendUint32(k, n)
}

// Put reads r to the end and stores it in scope, returning its hash and
// size. It fails with ErrTooLarge beyond max bytes and ErrEmpty for no bytes;
// in both cases nothing addressable is written. Storing content that is
// already present in the scope stores nothing new.
func (s *Store) Put(ctx context.Context, scope Scope, r io.Reader, max int64) (Hash, int64, error) {
	if err := checkScope(scope); err != nil {
		return Hash{}, 0, err
	}
	var upload [16]byte
	rand.Read(upload[:])
	h := sha256.New()
	var size int64
	var n uint32
	buf := make([]byte, ChunkSize)
	cleanup := func() {
		var b storage.Batch
		for i := uint32(0); i < n; i++ {
			b.Delete(chunkKey(upload, i))
		}
		if b.Len() > 0 {
			s.kv.Write(&b, false)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			cleanup()
			return Hash{}, 0, err
		}
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			size += int64(k)
			if size > max {
				cleanup()
				return Hash{}, 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
			}
			h.Write(buf[:k])
			// Chunks are bound to the upload and position; the content
			// hash is not known yet.
			sealed, serr := s.sealer.SealChunk(scope, chunkKey(upload, n), buf[:k])
			if serr != nil {
				cleanup()
				return Hash{}, 0, serr
			}
			var b storage.Batch
			b.Set(chunkKey(upload, n), sealed)
			if werr := s.kv.Write(&b, false); werr != nil {
				cleanup()
				return Hash{}, 0, fmt.Errorf("blob: write: %w", werr)
			}
			n++
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			cleanup()
			return Hash{}, 0, fmt.Errorf("blob: read: %w", err)
		}
	}
	if size == 0 {
		return Hash{}, 0, ErrEmpty
	}
	var sum Hash
	h.Sum(sum[:0])
	if _, err := s.kv.Get(manifestKey(scope, sum)); err == nil {
		cleanup()
		return sum, size, nil
	}
	var b storage.Batch
	b.Set(manifestKey(scope, sum), manifest{size: size, upload: upload}.encode())
	// The sync also makes the unsynced chunk writes before it durable.
	if err := s.kv.Write(&b, true); err != nil {
		return Hash{}, 0, fmt.Errorf("blob: write: %w", err)
	}
	return sum, size, nil
}

// Blob is a stored object, readable at any offset.
type Blob struct {
	s     *Store
	scope Scope
	hash  Hash
	m     manifest
}

// Open returns the blob with hash h in scope, or ErrNotFound.
func (s *Store) Open(scope Scope, h Hash) (*Blob, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	data, err := s.kv.Get(manifestKey(scope, h))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	m, err := decodeManifest(data)
	if err != nil {
		return nil, err
	}
	return &Blob{s: s, scope: scope, hash: h, m: m}, nil
}

// Size returns the blob's length in bytes.
func (b *Blob) Size() int64 { return b.m.size }

// ReadAt implements io.ReaderAt, reading only the chunks it needs.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blob: negative offset")
	}
	read := 0
	for read < len(p) {
		pos := off + int64(read)
		if pos >= b.m.size {
			return read, io.EOF
		}
		n := uint32(pos / ChunkSize)
		key := chunkKey(b.m.upload, n)
		sealed, err := b.s.kv.Get(key)
		if err != nil {
			return read, fmt.Errorf("blob: chunk %d: %w", n, err)
		}
		chunk, err := b.s.sealer.OpenChunk(b.scope, key, sealed)
		if err != nil {
			return read, fmt.Errorf("blob: chunk %d: %w", n, err)
		}
		within := int(pos % ChunkSize)
		if within >= len(chunk) {
			return read, fmt.Errorf("blob: chunk %d is short", n)
		}
		read += copy(p[read:], chunk[within:])
	}
	return read, nil
}

// Verify reads the whole blob and checks it against its hash.
func (b *Blob) Verify() error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(b, 0, b.m.size)); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), b.hash[:]) {
		return fmt.Errorf("blob: content does not match its hash %s", b.hash)
	}
	return nil
}

// Problem is a stored blob that does not read back whole: a chunk is
// missing or does not open, or the content does not match its hash.
type Problem struct {
	Scope Scope
	Hash  Hash
	Err   error
}

// Check reads back every blob in the store and checks each against its
// hash. It returns how many blobs it checked and those that failed; an
// error only when the store cannot be read. Chunks no manifest names
// (left by an interrupted Put) are not read.
func (s *Store) Check() (int, []Problem, error) {
	type stored struct {
		scope Scope
		hash  Hash
		err   error
	}
	var all []stored
	start := []byte{prefixManifest}
	err := s.kv.Scan(start, prefixEnd(start), func(k, _ []byte) error {
		rest := k[1:]
		tenant, rest, ok1 := bytes.Cut(rest, []byte{0})
		encounter, h, ok2 := bytes.Cut(rest, []byte{0})
		b := stored{scope: Scope{Tenant: string(tenant), Encounter: string(encounter)}}
		if !ok1 || !ok2 || len(h) != len(b.hash) {
			b.err = fmt.Errorf("blob: malformed manifest key %x", k)
		}
		copy(b.hash[:], h)
		all = append(all, b)
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("blob: %w", err)
	}
	var problems []Problem
	for _, b := range all {
		err := b.err
		if err == nil {
			var o *Blob
			if o, err = s.Open(b.scope, b.hash); err == nil {
				err = o.Verify()
			}
		}
		if err != nil {
			problems = append(problems, Problem{Scope: b.scope, Hash: b.hash, Err: err})
		}
	}
	return len(all), problems, nil
}

// DeleteScope deletes every blob of scope, its manifests and chunks, in one
// synced batch, and returns how many blobs it deleted. It is the blob
// store's part of crypto-shredding: the chunks are sealed under the scope's
// key, which is destroyed too, so what a storage engine keeps until it
// compacts is ciphertext nobody can open.
func (s *Store) DeleteScope(scope Scope) (int, error) {
	if err := checkScope(scope); err != nil {
		return 0, err
	}
	prefix := scopePrefix(scope)
	end := append(bytes.Clone(prefix[:len(prefix)-1]), 1)
	var manifests [][]byte
	var uploads [][16]byte
	err := s.kv.Scan(prefix, end, func(k, v []byte) error {
		m, err := decodeManifest(v)
		if err != nil {
			return err
		}
		manifests = append(manifests, bytes.Clone(k))
		uploads = append(uploads, m.upload)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("blob: %w", err)
	}
	var b storage.Batch
	for i, k := range manifests {
		b.Delete(k)
		up := uploads[i]
		err := s.kv.Scan(chunkKey(up, 0), append([]byte{prefixChunk}, prefixEnd(up[:])...), func(k, _ []byte) error {
			b.Delete(bytes.Clone(k))
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("blob: %w", err)
		}
	}
	if b.Len() == 0 {
		return 0, nil
	}
	if err := s.kv.Write(&b, true); err != nil {
		return 0, fmt.Errorf("blob: delete: %w", err)
	}
	return len(manifests), nil
}

// prefixEnd returns the smallest byte string greater than every string with
// prefix p; for a prefix of only 0xff bytes, one longer string of them.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return append(bytes.Repeat([]byte{0xff}, len(p)), 0xff)
}
