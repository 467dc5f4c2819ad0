package pebblestore_test

import (
	"bytes"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
	"github.com/evidenceledger/evidence/ledger/storage/storagetest"
)

func open(tb testing.TB, dir string) storage.Store {
	s, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, open, storagetest.Options{})
}

// TestQuietByDefault checks that, with no Logger, Pebble writes nothing to
// the standard logger, which is where its default logger goes.
func TestQuietByDefault(t *testing.T) {
	var out bytes.Buffer
	log.SetOutput(&out)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	exercise(t, pebblestore.Options{MemTableSize: 1 << 20})
	if out.Len() > 0 {
		t.Errorf("pebble logged to the standard logger:\n%s", out.String())
	}
}

// TestLoggerReceivesEvents checks that a given slog.Logger receives
// Pebble's events at debug level, and that no value bytes reach it.
func TestLoggerReceivesEvents(t *testing.T) {
	var out bytes.Buffer
	l := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exercise(t, pebblestore.Options{MemTableSize: 1 << 20, Logger: l})
	text := out.String()
	if !strings.Contains(text, "level=DEBUG") || !strings.Contains(text, "engine=pebble") {
		t.Errorf("expected debug records from pebble, got:\n%s", text)
	}
	if strings.Contains(text, secretValue) {
		t.Error("a value reached the log")
	}
}

const secretValue = "PATIENT-NOTE-VALUE"

// exercise opens a store with a small memtable, writes enough to flush it
// a few times, and closes it.
func exercise(t *testing.T, opts pebblestore.Options) {
	t.Helper()
	s, err := pebblestore.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte(secretValue), 64)
	for i := range 4 {
		var b storage.Batch
		for j := range 1000 {
			b.Set([]byte{byte(i), byte(j >> 8), byte(j)}, value)
		}
		if err := s.Write(&b, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkWriteSync(b *testing.B) {
	storagetest.BenchWriteSync(b, open)
}
