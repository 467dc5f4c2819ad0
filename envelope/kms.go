package envelope

import (
	"context"
	"errors"
)

// KMS holds the key-encryption keys (KEKs), one or more per tenant, and
// wraps and unwraps data keys with them. The data keys never leave this
// process unwrapped; the KEKs need never leave the KMS.
//
// Keyring is the local implementation. A cloud KMS slots in with one call
// per method: AWS KMS Encrypt and Decrypt with the aad as the encryption
// context, Google Cloud KMS Encrypt and Decrypt with it as additional
// authenticated data, or Azure Key Vault wrapKey and unwrapKey (binding aad
// by wrapping aad's hash with the key). Implementations must be safe for
// concurrent use and must not log keys or aad.
type KMS interface {
	// Wrap encrypts dek under the tenant's current KEK, bound to aad,
	// and returns the id of the KEK it used with the wrapped key. A KMS
	// may create the tenant's first KEK here.
	Wrap(ctx context.Context, tenant string, dek, aad []byte) (keyID string, wrapped []byte, err error)
	// Unwrap decrypts a data key wrapped by Wrap with the KEK keyID of
	// the tenant and the same aad. It fails with an error wrapping
	// ErrUnknownKEK when the KMS has no such key, and ErrUnwrap when the
	// wrapped key, its aad or the KEK do not match.
	Unwrap(ctx context.Context, tenant, keyID string, wrapped, aad []byte) ([]byte, error)
}

// Errors of a KMS.
var (
	// ErrUnknownKEK: the KMS has no key-encryption key for the tenant, or
	// none with the given id.
	ErrUnknownKEK = errors.New("envelope: no such key-encryption key")
	// ErrUnwrap: a wrapped data key did not decrypt: it was altered,
	// moved to another encounter, or wrapped by another key.
	ErrUnwrap = errors.New("envelope: wrapped data key does not decrypt")
)
