package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

func testLog(t *testing.T) *ledger.Appender {
	t.Helper()
	k, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(memstore.New(), ledger.Options{Origin: "evidence.test/log", Key: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendSegments(t *testing.T, l *ledger.Appender, enc string, texts ...string) {
	t.Helper()
	var es []ledger.Entry
	for i, text := range texts {
		p, _ := json.Marshal(encounter.Segment{V: 1, ID: fmt.Sprintf("s%d-%d", l.Size(), i), Role: "patient", Text: text})
		es = append(es, ledger.Entry{Kind: ledger.KindSegment, Tenant: "demo", Encounter: enc, Actor: "asr", Payload: p})
	}
	if _, err := l.Append(context.Background(), es); err != nil {
		t.Fatal(err)
	}
}

func waitApplied(t *testing.T, x *index.Index, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for x.Applied() < n {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d, want %d", x.Applied(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(t *testing.T, x *index.Index, q string) uint64 {
	t.Helper()
	res, err := x.Search(context.Background(), index.Request{Tenant: "demo", Query: q})
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

func TestStartIndex(t *testing.T) {
	dataDir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	l := testLog(t)
	appendSegments(t, l, "enc-1", "chest pain", "no fever")

	x, stop, err := startIndex(context.Background(), dataDir, l.Log, logger)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, x, l.Size())
	// It follows new entries.
	appendSegments(t, l, "enc-1", "more chest pain")
	waitApplied(t, x, l.Size())
	if n := count(t, x, "chest"); n != 2 {
		t.Fatalf("%d hits for chest, want 2", n)
	}
	stop()
	stop()

	// Against another log, the index is dropped and rebuilt.
	other := testLog(t)
	appendSegments(t, other, "enc-9", "warfarin", "chest pain", "chest pain", "chest pain")
	x, stop, err = startIndex(context.Background(), dataDir, other.Log, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitApplied(t, x, other.Size())
	if n := count(t, x, "chest"); n != 3 {
		t.Fatalf("%d hits for chest after the rebuild, want 3", n)
	}
	if n := count(t, x, "fever"); n != 0 {
		t.Fatalf("the rebuilt index still holds the old log's text")
	}
}
