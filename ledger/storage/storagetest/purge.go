package storagetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
)

// RunPurge checks a storage.Purger on disk: after Purge, no byte sequence of
// any version of a purged value is left in any file under the store's
// directory, while the values of other keys are still there (which shows
// that the file scan can find values at all). It writes enough filler to
// push the values out of the memtable into tables, and overwrites and
// deletes before purging, so that old versions exist in the write-ahead log
// and in tables. Values are 80 bytes, the size of a wrapped data key.
func RunPurge(t *testing.T, open OpenFunc) {
	for _, tc := range []struct {
		name   string
		filler int // bytes of filler written between the versions
	}{
		{"InMemtable", 0},
		{"InTables", 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir)
			p, ok := s.(storage.Purger)
			if !ok {
				s.Close()
				t.Fatalf("%T does not implement storage.Purger", s)
			}
			secret := func() []byte {
				var b [40]byte
				rand.Read(b[:])
				return []byte(hex.EncodeToString(b[:]))
			}
			v1, v2, v3, keep := secret(), secret(), secret(), secret()
			set := func(k string, v []byte) {
				var b storage.Batch
				if v == nil {
					b.Delete([]byte(k))
				} else {
					b.Set([]byte(k), v)
				}
				if err := s.Write(&b, true); err != nil {
					t.Fatal(err)
				}
			}
			fill := func() {
				for i := 0; i < tc.filler/(64<<10); i++ {
					var b storage.Batch
					for j := 0; j < 64; j++ {
						v := make([]byte, 1<<10)
						rand.Read(v)
						b.Set([]byte(fmt.Sprintf("f%08d-%04d", i, j)), v)
					}
					if err := s.Write(&b, false); err != nil {
						t.Fatal(err)
					}
				}
			}
			set("kA\x00one\x00d", v1)
			set("kA\x00onetwo\x00d", keep) // shares a shorter prefix only
			fill()
			set("kA\x00one\x00d", v2) // overwrite
			set("kA\x00one\x00x", v3)
			fill()
			set("kA\x00one\x00x", nil) // a delete before the purge
			fill()
			if err := p.Purge([]byte("kA\x00one\x00")); err != nil {
				t.Fatalf("Purge: %v", err)
			}
			for _, k := range []string{"kA\x00one\x00d", "kA\x00one\x00x", "kA\x00one\x00"} {
				if _, err := s.Get([]byte(k)); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("Get(%q) after Purge: %v, want ErrNotFound", k, err)
				}
			}
			if got, err := s.Get([]byte("kA\x00onetwo\x00d")); err != nil || !bytes.Equal(got, keep) {
				t.Fatalf("a key outside the prefix after Purge: %q, %v", got, err)
			}
			check := func(when string) {
				for name, v := range map[string][]byte{"v1": v1, "v2": v2, "v3": v3} {
					if f := FindInFiles(t, dir, v); f != "" {
						t.Errorf("%s: purged value %s is still in %s", when, name, f)
					}
				}
				if FindInFiles(t, dir, keep) == "" {
					t.Errorf("%s: the kept value is in no file: the scan cannot see values", when)
				}
			}
			check("open")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check("closed")
			s = open(t, dir)
			defer s.Close()
			if _, err := s.Get([]byte("kA\x00one\x00d")); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Get after reopen: %v, want ErrNotFound", err)
			}
			if got, err := s.Get([]byte("kA\x00onetwo\x00d")); err != nil || !bytes.Equal(got, keep) {
				t.Fatalf("kept key after reopen: %q, %v", got, err)
			}
		})
	}
}

// FindInFiles returns the path of the first regular file under dir that
// contains needle, or "".
func FindInFiles(t testing.TB, dir string, needle []byte) string {
	t.Helper()
	found := ""
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while walking
			}
			return err
		}
		if found != "" || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			found = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
