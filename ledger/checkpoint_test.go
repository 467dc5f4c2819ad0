package ledger

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointsOpenWithStandardTools(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadOrCreateKey(dir, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	l := openTestLog(t, memstore.New(), k)
	a := mustAppend(t, l, segment("enc-1", "a"), segment("enc-1", "b"), segment("enc-2", "c"))

	// The verifier key is the standard name+hash+key string.
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatalf("note.NewVerifier(%q): %v", l.VerifierKey(), err)
	}
	if !strings.HasPrefix(l.VerifierKey(), testOrigin+"+") {
		t.Fatalf("verifier key %q is not named for the origin", l.VerifierKey())
	}
	n, err := note.Open(a.Checkpoint.Note, note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin {
		t.Fatalf("signatures %+v", n.Sigs)
	}
	cp, _, _, err := flog.ParseCheckpoint(a.Checkpoint.Note, testOrigin, v)
	if err != nil {
		t.Fatalf("ParseCheckpoint: %v", err)
	}
	if cp.Size != 3 || !bytes.Equal(cp.Hash, a.Checkpoint.Root[:]) || cp.Origin != testOrigin {
		t.Fatalf("checkpoint %+v does not match the append", cp)
	}
	// The body is exactly the C2SP tlog-checkpoint: origin, size, root.
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[0] != testOrigin || lines[1] != "3" || lines[3] != "" {
		t.Fatalf("checkpoint text %q", n.Text)
	}

	// Another key does not verify it.
	other, err := LoadOrCreateKey(t.TempDir(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(a.Checkpoint.Note, testOrigin, other.Verifier()); err == nil {
		t.Fatal("checkpoint verified with another log's key")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, signingKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode %#o, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(dir, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if k1.VerifierKey() != k2.VerifierKey() {
		t.Fatal("reloading the key gave a different key")
	}
	if _, err := LoadOrCreateKey(dir, "another.origin/log"); err == nil {
		t.Fatal("loaded a key for another origin")
	}
	if err := os.Chmod(filepath.Join(dir, signingKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir, testOrigin); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	for _, bad := range []string{"", "has space", "plus+sign", "tab\there"} {
		if _, err := LoadOrCreateKey(t.TempDir(), bad); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
}
