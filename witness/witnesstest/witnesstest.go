// Package witnesstest starts the real transparency-dev witness
// (github.com/transparency-dev/witness, its omniwitness serving code with
// in-memory state) for tests: it builds testdata/omniwitness, a module of
// its own, once per test binary, and runs it on a loopback port.
package witnesstest

import (
	"bufio"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	f_note "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

var build struct {
	once sync.Once
	bin  string
	err  error
	out  []byte
}

// binary builds the witness once.
func binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "testdata", "omniwitness")
		dir, err := os.MkdirTemp("", "omniwitness-")
		if err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(dir, "omniwitness")
		cmd := exec.Command("go", "build", "-o", build.bin, ".")
		cmd.Dir = src
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("build the witness: %v\n%s", build.err, build.out)
	}
	return build.bin
}

// Witness is a running witness.
type Witness struct {
	URL  string
	VKey string // its cosignature/v1 verifier key
	cmd  *exec.Cmd
}

// Start runs a witness for the log with the given origin and checkpoint
// verifier key, and stops it when the test ends.
func Start(t testing.TB, name, origin, logVKey string) *Witness {
	t.Helper()
	bin := binary(t)
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := f_note.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "witness.key")
	if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--private_key_path", keyFile, "--log_origin", origin, "--log_vkey", logVKey)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return &Witness{URL: "http://" + a, VKey: cvkey, cmd: cmd}
	case <-time.After(30 * time.Second):
		t.Fatal("the witness did not start")
	}
	return nil
}

// Stop kills the witness, as an outage would; a test's end stops it anyway.
func (w *Witness) Stop() {
	w.cmd.Process.Kill()
	w.cmd.Wait()
}
