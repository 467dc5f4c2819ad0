package badgerstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/evidenceledger/evidence/ledger/storage"
	badgerstore "github.com/evidenceledger/evidence/ledger/storage/badger"
	"github.com/evidenceledger/evidence/ledger/storage/storagetest"
)

func open(tb testing.TB, dir string) storage.Store {
	s, err := badgerstore.Open(dir, badgerstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, open, storagetest.Options{})
}

// opCost is Badger's accounting of one op, as documented on
// Store.MaxBatchSize.
func opCost(op storage.Op) int64 {
	v := int64(len(op.Value))
	if v >= 1<<20 {
		v = 12
	}
	return int64(len(op.Key)) + v + 12
}

// largestBatch returns the largest batch of ops made by next that Badger's
// documented accounting says fits in one Write.
func largestBatch(s *badgerstore.Store, next func(i int) storage.Op) *storage.Batch {
	var b storage.Batch
	size, count := int64(21), int64(1)
	for i := 0; ; i++ {
		op := next(i)
		size, count = size+opCost(op), count+1
		if size >= s.MaxBatchSize() || count >= s.MaxBatchCount() {
			return &b
		}
		b.Set(op.Key, op.Value)
	}
}

// TestBatchLimits checks the documented accounting from both sides of each
// limit: a batch that just fits is written, one more op is refused with
// badger.ErrTxnTooBig and nothing of it is applied. It logs the limits in
// ledger terms.
func TestBatchLimits(t *testing.T) {
	s, err := badgerstore.Open(t.TempDir(), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("MaxBatchSize %d bytes, MaxBatchCount %d ops", s.MaxBatchSize(), s.MaxBatchCount())

	cases := []struct {
		name  string
		value int
	}{
		{"600-byte values, bytes bound", 600},
		{"8 KiB values, bytes bound", 8 << 10},
		{"empty values, count bound", 0},
	}
	for n, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			value := bytes.Repeat([]byte{'v'}, c.value)
			key := func(i int) []byte { return []byte(fmt.Sprintf("%d/%08d", n, i)) }
			b := largestBatch(s, func(i int) storage.Op { return storage.Op{Key: key(i), Value: value} })
			if err := s.Write(b, true); err != nil {
				t.Fatalf("a batch of %d ops that the accounting says fits failed: %v", b.Len(), err)
			}
			t.Logf("largest batch: %d ops, %d bytes of keys and values", b.Len(), b.Size())

			// One op more, with the same key length, is refused whole.
			var over storage.Batch
			over.Set(key(-1), value)
			for i := range b.Len() {
				over.Set(key(10_000_000+i), value)
			}
			err := s.Write(&over, true)
			if !errors.Is(err, badger.ErrTxnTooBig) {
				t.Fatalf("a batch one op over the limit gave %v, want badger.ErrTxnTooBig", err)
			}
			if _, err := s.Get(key(-1)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("part of a refused batch was applied: Get = %v", err)
			}
		})
	}

	// Values of 1 MiB or more go to the value log and count 12 bytes, so a
	// batch may hold more value bytes than MaxBatchSize.
	var b storage.Batch
	big := bytes.Repeat([]byte{'v'}, 1<<20)
	for i := range 8 {
		b.Set([]byte(fmt.Sprintf("big/%d", i)), big)
	}
	if int64(b.Size()) <= s.MaxBatchSize() {
		t.Fatalf("test batch of %d bytes is meant to exceed MaxBatchSize", b.Size())
	}
	if err := s.Write(&b, true); err != nil {
		t.Errorf("8 MiB batch of value-log values: %v", err)
	}
}

// TestAsyncRefusesTooBig checks that WriteAsync reports a batch over the
// limit as an error, from WriteAsync or its wait, and applies nothing.
func TestAsyncRefusesTooBig(t *testing.T) {
	s, err := badgerstore.Open(t.TempDir(), badgerstore.Options{MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	value := bytes.Repeat([]byte{'v'}, 1000)
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%08d", i)) }
	b := largestBatch(s, func(i int) storage.Op { return storage.Op{Key: key(i), Value: value} })
	b.Set(key(-1), value)
	wait, err := s.WriteAsync(b)
	if err == nil {
		err = wait()
	}
	if !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("WriteAsync of an oversized batch: %v, want badger.ErrTxnTooBig", err)
	}
	if _, err := s.Get(key(0)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("part of a refused batch was applied: Get = %v", err)
	}
}

// TestQuietByDefault checks that, with no Logger, Badger writes nothing to
// the standard logger, which is where its default logger goes.
func TestQuietByDefault(t *testing.T) {
	var out bytes.Buffer
	log.SetOutput(&out)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	exercise(t, badgerstore.Options{MemTableSize: 1 << 20})
	if out.Len() > 0 {
		t.Errorf("badger logged to the standard logger:\n%s", out.String())
	}
}

// TestLoggerReceivesMessages checks that a given slog.Logger receives
// Badger's messages, and that no value bytes reach it.
func TestLoggerReceivesMessages(t *testing.T) {
	var out bytes.Buffer
	l := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exercise(t, badgerstore.Options{MemTableSize: 1 << 20, Logger: l})
	text := out.String()
	if !strings.Contains(text, "engine=badger") {
		t.Errorf("expected records from badger, got:\n%s", text)
	}
	if strings.Contains(text, secretValue) {
		t.Error("a value reached the log")
	}
}

const secretValue = "PATIENT-NOTE-VALUE"

// exercise opens a store with a small memtable, writes enough to flush it
// a few times, and closes it.
func exercise(t *testing.T, opts badgerstore.Options) {
	t.Helper()
	s, err := badgerstore.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte(secretValue), 8)
	for i := range 16 {
		var b storage.Batch
		for j := range 500 {
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
