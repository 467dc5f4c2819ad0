package ledger

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of the log's size and root hash.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   Hash
	// Note is the C2SP signed note: the tlog-checkpoint text followed by
	// an Ed25519 signature line. These are the bytes served at /checkpoint.
	Note []byte
}

// Key is the log's Ed25519 signing key in the C2SP signed-note form.
type Key struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

// VerifierKey returns the public verifier key in the standard
// "name+hash+key" form accepted by note.NewVerifier.
func (k *Key) VerifierKey() string { return k.vkey }

// Verifier returns the note verifier for checkpoints signed by k.
func (k *Key) Verifier() note.Verifier { return k.verifier }

// Name returns the key name, which is the log origin.
func (k *Key) Name() string { return k.signer.Name() }

// NewKey parses a private key in the "PRIVATE+KEY+name+hash+key" form and
// its matching verifier key.
func NewKey(skey, vkey string) (*Key, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("ledger: signing key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("ledger: verifier key: %w", err)
	}
	if s.Name() != v.Name() || s.KeyHash() != v.KeyHash() {
		return nil, errors.New("ledger: signing key and verifier key do not match")
	}
	// Check that the pair really matches: sign and verify a probe.
	sig, err := s.Sign([]byte("probe\n"))
	if err != nil || !v.Verify([]byte("probe\n"), sig) {
		return nil, errors.New("ledger: signing key and verifier key do not match")
	}
	return &Key{signer: s, verifier: v, vkey: strings.TrimSpace(vkey)}, nil
}

// Key files in the data directory.
const (
	signingKeyFile  = "log.key"
	verifierKeyFile = "log.pub"
)

// LoadOrCreateKey returns the log key kept in dir, creating it on first use
// with the origin as its name. The private key file has mode 0600; an
// existing key file readable by group or others is refused. A key whose name
// is not origin is refused too, since checkpoints name their origin.
func LoadOrCreateKey(dir, origin string) (*Key, error) {
	if err := checkOrigin(origin); err != nil {
		return nil, err
	}
	skeyPath := filepath.Join(dir, signingKeyFile)
	vkeyPath := filepath.Join(dir, verifierKeyFile)
	skey, err := os.ReadFile(skeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(dir, origin)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read signing key: %w", err)
	}
	st, err := os.Stat(skeyPath)
	if err != nil {
		return nil, fmt.Errorf("ledger: signing key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ledger: signing key %s has mode %#o; it must be 0600", skeyPath, st.Mode().Perm())
	}
	vkey, err := os.ReadFile(vkeyPath)
	if err != nil {
		return nil, fmt.Errorf("ledger: read verifier key: %w", err)
	}
	k, err := NewKey(string(skey), string(vkey))
	if err != nil {
		return nil, err
	}
	if k.Name() != origin {
		return nil, fmt.Errorf("ledger: the log key in %s is for origin %q, not %q", dir, k.Name(), origin)
	}
	return k, nil
}

func createKey(dir, origin string) (*Key, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, fmt.Errorf("ledger: generate key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if err := writeFileSync(filepath.Join(dir, verifierKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	// The private key is written last: its presence means the pair is complete.
	if err := writeFileSync(filepath.Join(dir, signingKeyFile), []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	return NewKey(skey, vkey)
}

// writeFileSync writes a file atomically (temp file, fsync, rename, fsync dir).
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ledger: write %s: %w", filepath.Base(path), err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return fmt.Errorf("ledger: sync the directory of %s: %w", filepath.Base(path), err)
	}
	return nil
}

// checkOrigin applies the C2SP rules for a log origin (a non-empty line
// without spaces or "+", conventionally a schema-less URL) that also make it
// a valid note key name.
func checkOrigin(origin string) error {
	if origin == "" {
		return &InvalidError{Field: "origin", Reason: "must not be empty"}
	}
	if len(origin) > 256 {
		return &InvalidError{Field: "origin", Reason: "longer than 256 bytes"}
	}
	for _, r := range origin {
		if r <= ' ' || r == '+' || r > '~' {
			return &InvalidError{Field: "origin", Reason: "must be printable ASCII without spaces or '+'"}
		}
	}
	return nil
}

// signCheckpoint returns the signed note for a tree of the given size and root.
func signCheckpoint(k *Key, origin string, size int64, root Hash) (*Checkpoint, error) {
	text := log.Checkpoint{Origin: origin, Size: uint64(size), Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, k.signer)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	return &Checkpoint{Origin: origin, Size: size, Root: root, Note: signed}, nil
}

// OpenCheckpoint verifies a signed checkpoint note against the verifier and
// origin and returns its contents.
func OpenCheckpoint(signed []byte, origin string, v note.Verifier) (*Checkpoint, error) {
	cp, _, _, err := log.ParseCheckpoint(signed, origin, v)
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoint: %w", err)
	}
	if len(cp.Hash) != HashSize || cp.Size > 1<<62 {
		return nil, errors.New("ledger: checkpoint: bad root hash or size")
	}
	var root Hash
	copy(root[:], cp.Hash)
	return &Checkpoint{Origin: cp.Origin, Size: int64(cp.Size), Root: root, Note: append([]byte(nil), signed...)}, nil
}
