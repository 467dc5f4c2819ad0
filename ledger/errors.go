package ledger

import (
	"errors"
	"fmt"
)

// The errors a Log returns. Callers test for them with errors.Is and
// errors.As; the API layer maps them to status codes in one table.
var (
	// ErrNotFound: the leaf index, encounter or payload does not exist.
	ErrNotFound = errors.New("ledger: not found")
	// ErrBeyondTree: a proof or read asked for a tree size larger than the
	// log's current size.
	ErrBeyondTree = errors.New("ledger: tree size beyond the log")
	// ErrTooLarge: a payload or request exceeds a configured limit.
	ErrTooLarge = errors.New("ledger: too large")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("ledger: closed")
	// ErrRedacted: the payload was destroyed (crypto-shredded); the leaf
	// and all proofs remain valid.
	ErrRedacted = errors.New("ledger: payload redacted")
	// ErrRequestReused: a request id was applied before for an append
	// with a different number of entries (see WithRequestID).
	ErrRequestReused = errors.New("ledger: request id reused")
)

// InvalidError reports an invalid field of an entry or request. Nothing is
// written for a request that fails validation.
type InvalidError struct {
	Field  string // the offending field, e.g. "tenant" or "entries[3].payload"
	Reason string // what is wrong with it, without echoing its content
	Err    error  // an optional sentinel such as ErrTooLarge
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("ledger: invalid %s: %s", e.Field, e.Reason)
}

func (e *InvalidError) Unwrap() error { return e.Err }

// FailedError is returned by every operation after a storage write or sync
// failed. The log stops accepting appends rather than risk acknowledging
// what it cannot persist; reopening it recovers the last durable state.
type FailedError struct {
	Err error
}

func (e *FailedError) Error() string { return "ledger: log failed: " + e.Err.Error() }
func (e *FailedError) Unwrap() error { return e.Err }

// CorruptionError reports stored data that no longer matches what the log
// committed to: a leaf whose hash differs from the tree, a tree that does not
// hash to its signed root, a payload that does not match its commitment, a
// broken encounter chain or a checkpoint with a bad signature. Corrupt data
// is never served.
type CorruptionError struct {
	What     string // "leaf", "tile", "payload", "chain", "checkpoint", "state"
	Index    int64  // the leaf index concerned, or -1
	Detail   string // which check failed, with expected and found values
	Expected Hash   // optional
	Found    Hash   // optional
}

func (e *CorruptionError) Error() string {
	msg := "ledger: corruption: " + e.What
	if e.Index >= 0 {
		msg += fmt.Sprintf(" at index %d", e.Index)
	}
	msg += ": " + e.Detail
	if e.Expected != (Hash{}) || e.Found != (Hash{}) {
		msg += fmt.Sprintf(" (expected %x, found %x)", e.Expected[:], e.Found[:])
	}
	return msg
}

// IsCorruption reports whether err is or wraps a *CorruptionError.
func IsCorruption(err error) bool {
	var c *CorruptionError
	return errors.As(err, &c)
}
