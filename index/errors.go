package index

import (
	"errors"
	"fmt"
)

// InvalidError reports a search request field that is not acceptable: a
// malformed or oversized query, a bad filter or a page token that does not
// belong to the request. Reason never echoes the field's content, which may
// be PHI.
type InvalidError struct {
	Field  string // the request field, as the API names it: "query", "page_token", ...
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("index: invalid %s: %s", e.Field, e.Reason)
}

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ErrBehind is returned for a page token whose results the index no longer
// covers because it was dropped and is being rebuilt. Retrying later
// succeeds.
var ErrBehind = errors.New("index: the index has not caught up with the page token's log size yet")

// DivergedError reports an index that is not a view of the given log: it
// records more entries than the log holds, or its last applied entry is
// not the log's entry at that index, or it was written in another format.
// The index must be dropped and rebuilt (Remove, then Open and CatchUp).
type DivergedError struct {
	Detail string
}

func (e *DivergedError) Error() string { return "index: not a view of this log: " + e.Detail }
