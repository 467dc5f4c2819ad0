package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/evidenceledger/evidence/envelope"
)

// TestKeyring: keyring add gives a tenant a key once (a second add keeps
// it), makes the file with mode 0600, and list shows ids, never keys.
func TestKeyring(t *testing.T) {
	dir := t.TempDir()
	ctl := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append(args, "--data-dir", dir), &out, &errb)
		return out.String(), code
	}
	if _, code := ctl("keyring", "add"); code != exitUsage {
		t.Fatalf("add without --tenant: exit %d", code)
	}
	for range 2 {
		if _, code := ctl("keyring", "add", "--tenant", "clinic-a"); code != 0 {
			t.Fatalf("add: exit %d", code)
		}
	}
	if _, code := ctl("keyring", "add", "--tenant", "clinic-b"); code != 0 {
		t.Fatalf("add: exit %d", code)
	}
	path := envelope.DefaultKeyringPath(dir)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v %v", fi, err)
	}
	out, code := ctl("keyring", "list", "--json")
	var keys []struct {
		Tenant, ID string
		Primary    bool
	}
	if code != 0 || json.Unmarshal([]byte(out), &keys) != nil || len(keys) != 2 || !keys[0].Primary || keys[0].Tenant != "clinic-a" {
		t.Fatalf("list: %d %s", code, out)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, envelope.KeyringFile))
	var kf struct {
		Tenants map[string]struct {
			Keys []struct{ Key string }
		}
	}
	if err := json.Unmarshal(raw, &kf); err != nil || bytes.Contains([]byte(out), []byte(kf.Tenants["clinic-a"].Keys[0].Key)) {
		t.Fatalf("list shows key material, or the file does not parse: %v", err)
	}
}
