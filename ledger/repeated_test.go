package ledger

import (
	"context"
	"testing"

	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

// TestRepeated: Repeated reports the earlier append of the request id the
// next Append under the context would carry, and nothing for a context
// without one, an id not applied yet, or one past the window.
func TestRepeated(t *testing.T) {
	l, err := Open(memstore.New(), Options{Origin: testOrigin, Key: testKey(t), RequestIDWindow: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if a, err := l.Repeated(ctx); a != nil || err != nil {
		t.Fatalf("no request id: %v %v", a, err)
	}
	rctx := WithRequestID(ctx, "q1")
	if a, err := l.Repeated(rctx); a != nil || err != nil {
		t.Fatalf("a new id: %v %v", a, err)
	}
	first := mustAppendCtx(t, l, rctx, segment("e", "a"), segment("e", "b"))
	// The context's next append would carry q1#1, not applied yet.
	if a, err := l.Repeated(rctx); a != nil || err != nil {
		t.Fatalf("the next id under the same context: %v %v", a, err)
	}
	// A retry's fresh context carries q1 again.
	a, err := l.Repeated(WithRequestID(ctx, "q1"))
	if err != nil || a == nil || a.First != first.First || len(a.Leaves) != 2 || a.LeafHashes[1] != first.LeafHashes[1] || a.Checkpoint.Size < 2 {
		t.Fatalf("retry: %+v %v", a, err)
	}
	second := mustAppendCtx(t, l, rctx, segment("e", "c"))
	retry := WithRequestID(ctx, "q1")
	mustAppendCtx(t, l, retry, segment("e", "a"), segment("e", "b")) // a retry: q1 again, nothing appended
	if a, err := l.Repeated(retry); err != nil || a == nil || a.First != second.First {
		t.Fatalf("retry's second append (q1#1): %+v %v", a, err)
	}
	for i := range 12 {
		mustAppend(t, l, segment("f", string(rune('a'+i))))
	}
	if a, err := l.Repeated(WithRequestID(ctx, "q1")); a != nil || err != nil {
		t.Fatalf("an id past the window: %v %v", a, err)
	}
}
