package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// TokenPrefix starts every opaque token this package issues, so that a
// token is told from a JWT without parsing, and found by secret scanners.
const TokenPrefix = "evt_"

// TokensFileName is the tokens file's name in the server's data directory.
const TokensFileName = "tokens.json"

// MaxTokensFileBytes caps the tokens file.
const MaxTokensFileBytes = 16 << 20

// TokenRecord is one token in the tokens file. The token itself is never
// stored: only its SHA-256. ID is a public handle, for listing and
// revoking.
type TokenRecord struct {
	ID      string     `json:"id"`
	SHA256  string     `json:"sha256"`
	Tenant  string     `json:"tenant"`
	Role    string     `json:"role"`
	Subject string     `json:"subject"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
	Label   string     `json:"label,omitempty"`
}

// Identity returns the identity the token stands for.
func (r TokenRecord) Identity() Identity {
	return Identity{Tenant: r.Tenant, Subject: r.Subject, Role: r.Role}
}

// tokenFile is the tokens file:
//
//	{"version":1,"tokens":[{"id":"tok_…","sha256":"…","tenant":"…","role":"…","subject":"…","created":"…"}]}
type tokenFile struct {
	Version int           `json:"version"`
	Tokens  []TokenRecord `json:"tokens"`
}

// GenerateToken returns a new token: TokenPrefix and 256 random bits in
// unpadded base64url.
func GenerateToken() string {
	var b [32]byte
	rand.Read(b[:])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func newTokenID() string {
	var b [8]byte
	rand.Read(b[:])
	return "tok_" + hex.EncodeToString(b[:])
}

// CheckSecretFile returns an error unless path is a regular file that
// neither group nor others may read or write (mode 0600 or stricter).
func CheckSecretFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return checkSecretMode(path, fi)
}

func checkSecretMode(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("auth: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("auth: %s has mode %04o; secrets files must be 0600 (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// readTokenFile reads and validates a tokens file; a missing file is an
// empty one.
func readTokenFile(path string) (*tokenFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &tokenFile{Version: 1}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The mode of the file opened, not of whatever the path names now.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkSecretMode(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxTokensFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxTokensFileBytes {
		return nil, fmt.Errorf("auth: %s is larger than %d bytes", path, MaxTokensFileBytes)
	}
	return parseTokenFile(b)
}

// parseTokenFile decodes a tokens file strictly: unknown fields, bad
// hashes, invalid identities and duplicate ids or hashes are errors.
func parseTokenFile(b []byte) (*tokenFile, error) {
	var tf tokenFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("auth: tokens file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("auth: tokens file: trailing data")
	}
	if tf.Version != 1 {
		return nil, fmt.Errorf("auth: tokens file: unsupported version %d", tf.Version)
	}
	ids, hashes := map[string]bool{}, map[string]bool{}
	for i, r := range tf.Tokens {
		h, err := hex.DecodeString(r.SHA256)
		if err != nil || len(h) != sha256.Size || hex.EncodeToString(h) != r.SHA256 {
			return nil, fmt.Errorf("auth: tokens file: tokens[%d]: sha256 must be 64 lower-case hex digits", i)
		}
		if r.ID == "" || ids[r.ID] {
			return nil, fmt.Errorf("auth: tokens file: tokens[%d]: missing or duplicate id", i)
		}
		if hashes[r.SHA256] {
			return nil, fmt.Errorf("auth: tokens file: tokens[%d]: duplicate token", i)
		}
		ids[r.ID], hashes[r.SHA256] = true, true
		if err := r.Identity().Validate(); err != nil {
			return nil, fmt.Errorf("auth: tokens file: tokens[%d] (%s): %v", i, r.ID, err)
		}
	}
	return &tf, nil
}

// writeTokenFile replaces path atomically with tf, mode 0600.
func writeTokenFile(path string, tf *tokenFile) error {
	b, err := json.MarshalIndent(tf, "", "  ")
	if err != nil {
		return err
	}
	return WriteSecretFile(path, append(b, '\n'))
}

// WriteSecretFile replaces path atomically (a temporary file in the same
// directory, synced, then renamed) with data, mode 0600.
func WriteSecretFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// TokenOptions are the optional parts of a new token.
type TokenOptions struct {
	// TTL, when positive, makes the token expire that long after creation.
	TTL time.Duration
	// Label is a note for people listing tokens, such as "demo".
	Label string
}

// CreateToken generates a token for id, adds its hash to the tokens file
// at path (creating it, mode 0600) and returns the token, which is shown
// nowhere else: the file keeps only its SHA-256.
func CreateToken(path string, id Identity, opts TokenOptions) (string, TokenRecord, error) {
	token := GenerateToken()
	rec, err := RegisterToken(path, token, id, opts)
	return token, rec, err
}

// RegisterToken adds a token the caller generated (with GenerateToken) to
// the tokens file at path.
func RegisterToken(path, token string, id Identity, opts TokenOptions) (TokenRecord, error) {
	if err := id.Validate(); err != nil {
		return TokenRecord{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	h := tokenHash(token)
	rec := TokenRecord{ID: newTokenID(), SHA256: hex.EncodeToString(h[:]), Tenant: id.Tenant, Role: id.Role, Subject: id.Subject,
		Created: now, Label: opts.Label}
	if opts.TTL > 0 {
		exp := now.Add(opts.TTL)
		rec.Expires = &exp
	}
	err := withFileLock(path, func() error {
		tf, err := readTokenFile(path)
		if err != nil {
			return err
		}
		tf.Tokens = append(tf.Tokens, rec)
		return writeTokenFile(path, tf)
	})
	return rec, err
}

// RevokeToken removes the token with the given id from the tokens file. A
// server holding the file stops accepting the token within about a
// second (TokenStore re-reads the file when it changes).
func RevokeToken(path, tokenID string) (TokenRecord, error) {
	var out TokenRecord
	err := withFileLock(path, func() error {
		tf, err := readTokenFile(path)
		if err != nil {
			return err
		}
		for i, r := range tf.Tokens {
			if r.ID == tokenID {
				out = r
				tf.Tokens = append(tf.Tokens[:i], tf.Tokens[i+1:]...)
				return writeTokenFile(path, tf)
			}
		}
		return fmt.Errorf("auth: no token %q in %s", tokenID, path)
	})
	return out, err
}

// ListTokens returns the records of the tokens file at path.
func ListTokens(path string) ([]TokenRecord, error) {
	tf, err := readTokenFile(path)
	if err != nil {
		return nil, err
	}
	return tf.Tokens, nil
}

// TokenStore authenticates opaque bearer tokens against a tokens file. It
// re-reads the file when its size or modification time changes, checking
// at most once a second, so tokens created or revoked with evidencectl
// take effect without a restart. A file that cannot be read, or whose
// mode lets group or others read it, makes the store refuse every token
// until it is fixed (fail closed). It is safe for concurrent use.
type TokenStore struct {
	path   string
	logger *slog.Logger

	mu struct {
		sync.RWMutex
		byHash  map[[32]byte]TokenRecord
		stamp   fileStamp
		checked time.Time
		err     error
	}
}

type fileStamp struct {
	size    int64
	modTime time.Time
	mode    fs.FileMode
	exists  bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), mode: fi.Mode(), exists: true}
}

// OpenTokenStore reads the tokens file at path. A missing file is an
// empty store (tokens created later are picked up); a file with a mode
// other than 0600 (or stricter) or bad contents is an error. logger
// receives reload failures (never tokens); nil discards.
func OpenTokenStore(path string, logger *slog.Logger) (*TokenStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &TokenStore{path: path, logger: logger}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// reloadLocked reads the file into the store. On an error the store holds
// no tokens. s.mu must be held for writing.
func (s *TokenStore) reloadLocked() error {
	s.mu.stamp = stampOf(s.path)
	s.mu.checked = time.Now()
	tf, err := readTokenFile(s.path)
	if err != nil {
		s.mu.byHash, s.mu.err = nil, err
		return err
	}
	m := make(map[[32]byte]TokenRecord, len(tf.Tokens))
	for _, r := range tf.Tokens {
		var h [32]byte
		hex.Decode(h[:], []byte(r.SHA256))
		m[h] = r
	}
	s.mu.byHash, s.mu.err = m, nil
	return nil
}

// refresh re-reads the file if it changed since the last check, checking
// at most once a second.
func (s *TokenStore) refresh() {
	s.mu.RLock()
	due := time.Since(s.mu.checked) >= time.Second
	s.mu.RUnlock()
	if !due {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.mu.checked) < time.Second {
		return
	}
	st := stampOf(s.path)
	if st == s.mu.stamp {
		s.mu.checked = time.Now()
		return
	}
	if err := s.reloadLocked(); err != nil {
		s.logger.Error("tokens file not reloaded: refusing every token until it is fixed", "path", s.path, "error", err.Error())
	}
}

// Reload re-reads the tokens file now, for a caller that just changed it.
func (s *TokenStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

// Path returns the tokens file's path.
func (s *TokenStore) Path() string { return s.path }

// Len returns the number of tokens the store accepts.
func (s *TokenStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.mu.byHash)
}

// Authenticate returns the identity of token.
func (s *TokenStore) Authenticate(token string) (Identity, error) {
	s.refresh()
	h := tokenHash(token)
	s.mu.RLock()
	rec, ok := s.mu.byHash[h]
	broken := s.mu.err != nil
	s.mu.RUnlock()
	switch {
	case broken:
		return Identity{}, fmt.Errorf("%w: the tokens file cannot be read", ErrUnauthenticated)
	case !ok:
		return Identity{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	case rec.Expires != nil && !time.Now().Before(*rec.Expires):
		return Identity{}, fmt.Errorf("%w: token expired", ErrUnauthenticated)
	}
	return rec.Identity(), nil
}
