//go:build !unix

package auth

// withFileLock runs fn. Without flock, concurrent evidencectl runs on the
// same tokens file may lose each other's changes.
func withFileLock(path string, fn func() error) error { return fn() }
