//go:build unix

package auth

import (
	"os"
	"syscall"
)

// withFileLock runs fn holding an exclusive advisory lock on path+".lock",
// so that concurrent evidencectl runs do not lose each other's tokens.
func withFileLock(path string, fn func() error) error {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
