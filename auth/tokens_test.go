package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var alice = Identity{Tenant: "clinic-a", Subject: "dr.alice@clinic-a.example", Role: RoleClinician}

func TestCreateListRevokeTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFileName)
	tok, rec, err := CreateToken(path, alice, TokenOptions{Label: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+43 {
		t.Fatalf("token %q", tok)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file mode %v %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), tok) || strings.Contains(string(b), tok[len(TokenPrefix):]) {
		t.Fatal("the tokens file holds the token itself")
	}
	list, err := ListTokens(path)
	if err != nil || len(list) != 1 || list[0].ID != rec.ID || list[0].Identity() != alice || list[0].Label != "test" {
		t.Fatalf("list %+v %v", list, err)
	}
	s, err := OpenTokenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Authenticate(tok); err != nil || id != alice {
		t.Fatalf("authenticate: %v %v", id, err)
	}
	for _, bad := range []string{"", TokenPrefix, tok + "x", tok[:len(tok)-1], strings.ToUpper(tok)} {
		if _, err := s.Authenticate(bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if _, err := RevokeToken(path, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := RevokeToken(path, rec.ID); err == nil {
		t.Fatal("revoked twice")
	}
	waitFor(t, func() bool { _, err := s.Authenticate(tok); return err != nil })
}

// waitFor polls cond for up to 5 seconds; the store checks the file at
// most once a second.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTokenStorePicksUpNewTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFileName)
	s, err := OpenTokenStore(path, nil) // no file yet
	if err != nil || s.Len() != 0 {
		t.Fatal(err)
	}
	tok, _, err := CreateToken(path, alice, TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := s.Authenticate(tok); return err == nil })
}

func TestTokenExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFileName)
	tok, _, err := CreateToken(path, alice, TokenOptions{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenTokenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := s.Authenticate(tok)
		return err != nil && strings.Contains(err.Error(), "expired")
	})
}

func TestTokensFileModeIsChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFileName)
	tok, _, err := CreateToken(path, alice, TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o666} {
		os.Chmod(path, mode)
		if _, err := OpenTokenStore(path, nil); err == nil || !strings.Contains(err.Error(), "0600") {
			t.Errorf("mode %04o: %v", mode, err)
		}
		if _, err := ListTokens(path); err == nil {
			t.Errorf("mode %04o listed", mode)
		}
		if _, _, err := CreateToken(path, alice, TokenOptions{}); err == nil {
			t.Errorf("mode %04o: created a token", mode)
		}
	}
	os.Chmod(path, 0o400)
	s, err := OpenTokenStore(path, nil)
	if err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
	// A running store that sees the mode loosen refuses every token.
	os.Chmod(path, 0o644)
	now := time.Now().Add(2 * time.Second)
	os.Chtimes(path, now, now)
	waitFor(t, func() bool { _, err := s.Authenticate(tok); return err != nil })
	if s.Len() != 0 {
		t.Fatal("a store with a readable tokens file still holds tokens")
	}
}

func TestTokensFileParsing(t *testing.T) {
	good := `{"version":1,"tokens":[{"id":"tok_1","sha256":"` + strings.Repeat("ab", 32) + `","tenant":"t","role":"admin","subject":"s","created":"2026-01-01T00:00:00Z"}]}`
	if _, err := parseTokenFile([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"unknown field":     strings.Replace(good, `"id"`, `"extra":1,"id"`, 1),
		"version":           strings.Replace(good, `"version":1`, `"version":2`, 1),
		"short hash":        strings.Replace(good, strings.Repeat("ab", 32), "abcd", 1),
		"upper-case hash":   strings.Replace(good, strings.Repeat("ab", 32), strings.Repeat("AB", 32), 1),
		"role":              strings.Replace(good, `"admin"`, `"root"`, 1),
		"tenant":            strings.Replace(good, `"tenant":"t"`, `"tenant":"a b"`, 1),
		"operator pipeline": strings.Replace(strings.Replace(good, `"tenant":"t"`, `"tenant":"*"`, 1), `"admin"`, `"pipeline"`, 1),
		"duplicate id":      strings.Replace(good, `}]}`, `},{"id":"tok_1","sha256":"`+strings.Repeat("cd", 32)+`","tenant":"t","role":"admin","subject":"s","created":"2026-01-01T00:00:00Z"}]}`, 1),
		"trailing":          good + "{}",
		"not json":          "tokens",
	} {
		if _, err := parseTokenFile([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestConcurrentCreatesKeepEveryToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokensFileName)
	var wg sync.WaitGroup
	toks := make([]string, 16)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, _, err := CreateToken(path, alice, TokenOptions{})
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		}()
	}
	wg.Wait()
	s, err := OpenTokenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if _, err := s.Authenticate(tok); err != nil {
			t.Fatalf("a concurrently created token was lost: %v", err)
		}
	}
}
