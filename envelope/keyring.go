package envelope

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/ledger"
)

// KeyringFile is the keyring's file name in a data directory.
const KeyringFile = "keyring.json"

// keyringFormat names the file format; another value is refused.
const keyringFormat = "evidence-keyring-v1"

// Keyring is a KMS backed by a local JSON file of AES-256 key-encryption
// keys, one or more per tenant (docs/compliance.md shows the format). The
// file must have mode 0600 or stricter: a keyring readable by group or others
// is refused. It is safe for concurrent use by one process; two processes
// must not open one keyring with KeyringOptions.Create at once.
type Keyring struct {
	path string
	opts KeyringOptions
	mu   struct {
		sync.Mutex
		tenants map[string]*tenantKeys
	}
}

// KeyringOptions configure OpenKeyring.
type KeyringOptions struct {
	// Create lets the keyring create its file when missing, and a tenant's
	// first KEK on the tenant's first Wrap. The server sets it; offline
	// tools leave it false, so they never change keys.
	Create bool
	// Rand is the source of keys and nonces; default crypto/rand.Reader.
	Rand io.Reader
	// Now dates new keys; default time.Now.
	Now func() time.Time
}

type tenantKeys struct {
	primary string
	keys    map[string]*kek
	order   []string // ids, oldest first
}

type kek struct {
	id      string
	created time.Time
	aead    cipher.AEAD
	raw     []byte
}

// keyringJSON is the file format.
type keyringJSON struct {
	Format  string                       `json:"format"`
	Tenants map[string]*tenantKeyringKey `json:"tenants"`
}

type tenantKeyringKey struct {
	Primary string       `json:"primary"`
	Keys    []keyringKey `json:"keys"`
}

type keyringKey struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Key     string    `json:"key"` // standard base64 of 32 bytes
}

// DefaultKeyringPath returns the keyring's default place in a data
// directory.
func DefaultKeyringPath(dataDir string) string { return filepath.Join(dataDir, KeyringFile) }

// OpenKeyring reads the keyring at path, or with Create, creates an empty
// one there (mode 0600) if there is none. It refuses a file that group or
// others can read or write, and a malformed one.
func OpenKeyring(path string, opts KeyringOptions) (*Keyring, error) {
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	k := &Keyring{path: path, opts: opts}
	k.mu.tenants = make(map[string]*tenantKeys)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opts.Create:
		if err := k.saveLocked(); err != nil {
			return nil, err
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("envelope: keyring %s does not exist", path)
	case err != nil:
		return nil, fmt.Errorf("envelope: keyring: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("envelope: keyring %s has mode %#o; it must be 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("envelope: keyring %s is not a regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("envelope: keyring: %w", err)
	}
	if err := k.parse(data); err != nil {
		return nil, fmt.Errorf("envelope: keyring %s: %w", path, err)
	}
	return k, nil
}

// parse reads the file strictly. Errors name fields, never key material.
func (k *Keyring) parse(data []byte) error {
	var f keyringJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("malformed: %v", jsonProblem(err))
	}
	if dec.More() {
		return errors.New("malformed: trailing data")
	}
	if f.Format != keyringFormat {
		return fmt.Errorf("format is %q, want %q", f.Format, keyringFormat)
	}
	for tenant, tk := range f.Tenants {
		if err := ledger.CheckID("tenant", tenant, ledger.MaxTenantLen); err != nil {
			return fmt.Errorf("tenants: %q is not a tenant id", tenant)
		}
		if tk == nil || len(tk.Keys) == 0 {
			return fmt.Errorf("tenants.%s: no keys", tenant)
		}
		t := &tenantKeys{primary: tk.Primary, keys: make(map[string]*kek)}
		for i, kj := range tk.Keys {
			field := fmt.Sprintf("tenants.%s.keys[%d]", tenant, i)
			if err := ledger.CheckID("id", kj.ID, 64); err != nil {
				return fmt.Errorf("%s.id: not a key id", field)
			}
			if t.keys[kj.ID] != nil {
				return fmt.Errorf("%s.id: repeats an earlier key id", field)
			}
			raw, err := base64.StdEncoding.Strict().DecodeString(kj.Key)
			if err != nil || len(raw) != 32 {
				return fmt.Errorf("%s.key: must be the standard base64 of 32 bytes", field)
			}
			aead, err := newGCM(raw)
			if err != nil {
				return err
			}
			t.keys[kj.ID] = &kek{id: kj.ID, created: kj.Created, aead: aead, raw: raw}
			t.order = append(t.order, kj.ID)
		}
		if t.keys[t.primary] == nil {
			return fmt.Errorf("tenants.%s.primary: names no key of the tenant", tenant)
		}
		k.mu.tenants[tenant] = t
	}
	return nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	// Unknown-field errors name the field, which is not secret.
	return err.Error()
}

// saveLocked writes the keyring atomically: a temporary file with mode
// 0600, fsync, rename, fsync of the directory. k.mu is held (or k is not
// shared yet).
func (k *Keyring) saveLocked() error {
	f := keyringJSON{Format: keyringFormat, Tenants: make(map[string]*tenantKeyringKey)}
	for tenant, t := range k.mu.tenants {
		tj := &tenantKeyringKey{Primary: t.primary}
		for _, id := range t.order {
			kk := t.keys[id]
			tj.Keys = append(tj.Keys, keyringKey{ID: id, Created: kk.created, Key: base64.StdEncoding.EncodeToString(kk.raw)})
		}
		f.Tenants[tenant] = tj
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return fmt.Errorf("envelope: keyring: %w", err)
	}
	tmp := k.path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("envelope: keyring: %w", err)
	}
	_, err = w.Write(data)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, k.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("envelope: write keyring: %w", err)
	}
	if d, err := os.Open(filepath.Dir(k.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return cipher.NewGCM(block)
}

// addKeyLocked creates a new KEK for tenant and makes it the primary,
// saving the file before the key is used. k.mu is held.
func (k *Keyring) addKeyLocked(tenant string) (*kek, error) {
	raw := make([]byte, 32)
	var idb [8]byte
	if _, err := io.ReadFull(k.opts.Rand, raw); err != nil {
		return nil, fmt.Errorf("envelope: generate key: %w", err)
	}
	if _, err := io.ReadFull(k.opts.Rand, idb[:]); err != nil {
		return nil, fmt.Errorf("envelope: generate key: %w", err)
	}
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	kk := &kek{id: "kek-" + hex.EncodeToString(idb[:]), created: k.opts.Now().UTC().Truncate(time.Second), aead: aead, raw: raw}
	t := k.mu.tenants[tenant]
	if t == nil {
		t = &tenantKeys{keys: make(map[string]*kek)}
		k.mu.tenants[tenant] = t
	}
	prevPrimary := t.primary
	t.keys[kk.id] = kk
	t.order = append(t.order, kk.id)
	t.primary = kk.id
	if err := k.saveLocked(); err != nil {
		// Undo, so that memory matches the file.
		delete(t.keys, kk.id)
		t.order = t.order[:len(t.order)-1]
		t.primary = prevPrimary
		if len(t.keys) == 0 {
			delete(k.mu.tenants, tenant)
		}
		return nil, err
	}
	return kk, nil
}

// Wrap implements KMS with AES-256-GCM under the tenant's primary KEK:
// the wrapped key is nonce (12 bytes) || ciphertext || tag (16 bytes). With
// KeyringOptions.Create, a tenant's first KEK is created and saved here.
func (k *Keyring) Wrap(_ context.Context, tenant string, dek, aad []byte) (string, []byte, error) {
	if err := ledger.CheckID("tenant", tenant, ledger.MaxTenantLen); err != nil {
		return "", nil, err
	}
	k.mu.Lock()
	var kk *kek
	if t := k.mu.tenants[tenant]; t != nil {
		kk = t.keys[t.primary]
	}
	if kk == nil {
		if !k.opts.Create {
			k.mu.Unlock()
			return "", nil, fmt.Errorf("%w: tenant %s has no key in the keyring", ErrUnknownKEK, tenant)
		}
		var err error
		if kk, err = k.addKeyLocked(tenant); err != nil {
			k.mu.Unlock()
			return "", nil, err
		}
	}
	k.mu.Unlock()
	nonce := make([]byte, kk.aead.NonceSize(), kk.aead.NonceSize()+len(dek)+kk.aead.Overhead())
	if _, err := io.ReadFull(k.opts.Rand, nonce); err != nil {
		return "", nil, fmt.Errorf("envelope: nonce: %w", err)
	}
	return kk.id, kk.aead.Seal(nonce, nonce, dek, aad), nil
}

// Unwrap implements KMS.
func (k *Keyring) Unwrap(_ context.Context, tenant, keyID string, wrapped, aad []byte) ([]byte, error) {
	k.mu.Lock()
	var kk *kek
	if t := k.mu.tenants[tenant]; t != nil {
		kk = t.keys[keyID]
	}
	k.mu.Unlock()
	if kk == nil {
		return nil, fmt.Errorf("%w: tenant %s has no key %s", ErrUnknownKEK, tenant, keyID)
	}
	ns := kk.aead.NonceSize()
	if len(wrapped) < ns+kk.aead.Overhead() {
		return nil, ErrUnwrap
	}
	dek, err := kk.aead.Open(nil, wrapped[:ns], wrapped[ns:], aad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return dek, nil
}

// Rotate creates a new KEK for tenant and makes it the one Wrap uses. Data
// keys wrapped before stay wrapped by the old KEK, which stays in the
// keyring to unwrap them.
func (k *Keyring) Rotate(tenant string) (string, error) {
	if err := ledger.CheckID("tenant", tenant, ledger.MaxTenantLen); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	kk, err := k.addKeyLocked(tenant)
	if err != nil {
		return "", err
	}
	return kk.id, nil
}

// KeyInfo describes one KEK, without its key material.
type KeyInfo struct {
	Tenant  string
	ID      string
	Created time.Time
	Primary bool
}

// Keys lists the keyring's KEKs, by tenant and age.
func (k *Keyring) Keys() []KeyInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []KeyInfo
	for tenant, t := range k.mu.tenants {
		for _, id := range t.order {
			out = append(out, KeyInfo{Tenant: tenant, ID: id, Created: t.keys[id].created, Primary: id == t.primary})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
}
