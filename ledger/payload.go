package ledger

import (
	"crypto/sha256"
	"crypto/subtle"
)

// SaltSize is the size of the random salt in a payload commitment.
const SaltSize = 32

// Commit returns the payload commitment SHA-256(salt || payload).
func Commit(salt, payload []byte) Hash {
	h := sha256.New()
	h.Write(salt)
	h.Write(payload)
	var c Hash
	h.Sum(c[:0])
	return c
}

// Sealer protects payloads at rest. Seal runs before a payload is stored and
// Open after it is read; the log checks the commitment on the opened
// plaintext. Implementations bind the ciphertext to the commitment (as
// additional data), so a sealed payload cannot be moved to another entry.
//
// Open returns an error wrapping ErrRedacted when the key that sealed the
// payload has been destroyed. Implementations must be safe for concurrent
// use.
type Sealer interface {
	Seal(tenant, encounter string, commitment Hash, plaintext []byte) ([]byte, error)
	Open(tenant, encounter string, commitment Hash, sealed []byte) ([]byte, error)
}

// plainSealer stores payloads as they are. It is the default until a keyring
// is configured.
type plainSealer struct{}

func (plainSealer) Seal(_, _ string, _ Hash, p []byte) ([]byte, error) { return p, nil }
func (plainSealer) Open(_, _ string, _ Hash, p []byte) ([]byte, error) { return p, nil }

// checkCommitment reports whether SHA-256(salt || payload) equals c, in
// constant time.
func checkCommitment(c Hash, salt, payload []byte) bool {
	got := Commit(salt, payload)
	return subtle.ConstantTimeCompare(got[:], c[:]) == 1
}
