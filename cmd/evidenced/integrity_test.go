package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// kill ends the server with SIGKILL, as a crash would.
func (s *server) kill() {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd.Wait()
}

// dirDigest is every file under dir with its mode and SHA-256, and every
// directory: two equal digests mean no byte, file or mode changed.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %v %d %x", rel, fi.Mode(), len(b), sha256.Sum256(b)))
		} else {
			lines = append(lines, fmt.Sprintf("%s %v", rel, fi.Mode()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// copyTree copies a data directory, files and modes. Blocks of zeros are
// skipped, so that the copy of a preallocated file (Badger's logs) is
// sparse: it reads the same.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copySparse(p, target, fi)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copySparse(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	buf, zeros := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zeros[:n]) { // bytes.Equal, not a loop: fast under -race
			if _, werr := out.WriteAt(buf[:n], off); werr != nil {
				out.Close()
				return werr
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Truncate(off); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// offlineVerify runs evidencectl verify --data-dir and returns its output
// and exit status.
func offlineVerify(t *testing.T, dataDir string, extra ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "evidencectl"), append([]string{"verify", "--data-dir", dataDir}, extra...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// refusedStart runs evidenced on dataDir and expects it to refuse to start;
// it returns what it logged.
func refusedStart(t *testing.T, dataDir string, extra ...string) string {
	t.Helper()
	args := append([]string{"--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--search=false"}, extra...)
	cmd := exec.Command(filepath.Join(binDir, "evidenced"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("evidenced started and stopped cleanly on a damaged data directory:\n%s", out.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("evidenced kept running on a damaged data directory:\n%s", out.String())
	}
	if strings.Contains(out.String(), `"msg":"serving"`) {
		t.Fatalf("evidenced served a damaged data directory:\n%s", out.String())
	}
	return out.String()
}

// newestFile returns the newest-numbered file of dir with the suffix
// (pebble's WALs are NNNNNN.log, badger's memtable logs NNNNN.mem).
func newestFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no *%s file in %s", suffix, dir)
	}
	slices.Sort(names)
	return filepath.Join(dir, names[len(names)-1])
}

// flipMiddle flips one bit in the middle of the file's written part (up to
// its last non-zero byte: badger preallocates its logs).
func flipMiddle(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	if end < 64 {
		t.Fatalf("%s holds %d written bytes: nothing to damage", path, end)
	}
	b[end/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// cutHalf truncates a file to half its written length, as a lost tail of
// writes would.
func cutHalf(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	if err := os.Truncate(path, int64(end/2)); err != nil {
		t.Fatal(err)
	}
}

// writeSegments appends n segments to a new encounter through c.
func writeSegments(t *testing.T, c *client.Client, n int) {
	t.Helper()
	enc, err := c.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "synthetic integrity visit"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		_, err := c.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: enc.GetEncounter().GetEncounterId(),
			Segments: []*pb.Segment{{SegmentId: fmt.Sprintf("s%d", i), SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: fmt.Sprintf("synthetic words %d", i), StartMs: int64(i * 1000), EndMs: int64(i*1000 + 900)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRollbackIsCaught damages a stopped server's store in the three ways a
// store loses its newest writes without noticing (a flipped byte in its
// newest write-ahead log, a deleted write-ahead log, the store replaced by
// an older copy) and checks that evidencectl verify --data-dir reports each
// with exit status 3 and the server refuses to start on it, naming both
// sizes; that verify leaves every byte of the directory as it was; and
// that a whole data directory restored from an older backup, which
// carries its own older high-water checkpoint, is caught by verify
// --trusted-checkpoint with a checkpoint a client kept.
func TestRollbackIsCaught(t *testing.T) {
	for _, engine := range []string{"pebble", "badger"} {
		t.Run(engine, func(t *testing.T) {
			data := t.TempDir()
			state := filepath.Join(t.TempDir(), "state.json")
			s := startServer(t, data, "--storage", engine, "--search=false")
			c := s.client(t, state, "pipeline")
			writeSegments(t, c, 5)
			// A backup of the whole directory, taken stopped.
			s.stop()
			backup := t.TempDir()
			copyTree(t, data, backup)
			s = startServer(t, data, "--storage", engine, "--search=false")
			c = s.client(t, state, "pipeline")
			writeSegments(t, c, 60)
			if _, err := c.LatestCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			if engine == "badger" {
				// Badger flushes its memtable at a clean stop, leaving no
				// log to damage; after a crash the log holds the writes.
				s.kill()
			} else {
				s.stop()
			}

			before := dirDigest(t, data)
			out, code := offlineVerify(t, data)
			if code != 0 {
				t.Fatalf("verify of the intact directory: exit %d\n%s", code, out)
			}
			if after := dirDigest(t, data); after != before {
				t.Fatalf("verify --data-dir changed the directory it checked:\nbefore:\n%s\nafter:\n%s", before, after)
			}

			walSuffix := map[string]string{"pebble": ".log", "badger": ".mem"}[engine]
			damages := []struct {
				name   string
				damage func(dir string)
			}{
				{"newest write-ahead log flipped", func(dir string) { flipMiddle(t, newestFile(t, filepath.Join(dir, engine), walSuffix)) }},
				{"newest write-ahead log cut short", func(dir string) { cutHalf(t, newestFile(t, filepath.Join(dir, engine), walSuffix)) }},
				{"newest write-ahead log deleted", func(dir string) { os.Remove(newestFile(t, filepath.Join(dir, engine), walSuffix)) }},
				{"store replaced by an older copy", func(dir string) {
					os.RemoveAll(filepath.Join(dir, engine))
					copyTree(t, filepath.Join(backup, engine), filepath.Join(dir, engine))
				}},
			}
			for _, d := range damages {
				t.Run(strings.ReplaceAll(d.name, " ", "_"), func(t *testing.T) {
					dir := t.TempDir()
					copyTree(t, data, dir)
					d.damage(dir)
					before := dirDigest(t, dir)
					out, code := offlineVerify(t, dir)
					// The engine may find the damage itself (a damaged
					// record it will not skip), or open a shorter store,
					// which the high-water checkpoint shows.
					rolledBack := strings.Contains(out, "ROLLED BACK OR TRUNCATED")
					if code != 3 || !(rolledBack || strings.Contains(out, "DAMAGED STORE")) {
						t.Fatalf("verify: exit %d, want 3 reporting a damaged, rolled back or truncated store:\n%s", code, out)
					}
					if d.name != "newest write-ahead log flipped" && !rolledBack {
						t.Fatalf("verify does not report the lost entries:\n%s", out)
					}
					if after := dirDigest(t, dir); after != before {
						t.Fatal("verify --data-dir changed the damaged directory it checked")
					}
					logs := refusedStart(t, dir, "--storage", engine)
					if rolledBack && (!strings.Contains(logs, "rolled back or truncated") || !strings.Contains(logs, "high-water checkpoint covers")) {
						t.Fatalf("the server's refusal does not say what is wrong:\n%s", logs)
					}
					if !rolledBack && !strings.Contains(logs, "store does not open") {
						t.Fatalf("the server's refusal does not say what is wrong:\n%s", logs)
					}
					t.Logf("verify: %s", lastLines(out, 3))
				})
			}

			t.Run("whole directory restored from an older backup", func(t *testing.T) {
				dir := t.TempDir()
				copyTree(t, backup, dir)
				if out, code := offlineVerify(t, dir); code != 0 {
					t.Fatalf("the backup alone verifies: exit %d\n%s", code, out)
				}
				out, code := offlineVerify(t, dir, "--trusted-checkpoint", state)
				if code != 3 || !strings.Contains(out, "ROLLED BACK OR TRUNCATED") || !strings.Contains(out, "trusted checkpoint") {
					t.Fatalf("verify --trusted-checkpoint of an old backup: exit %d\n%s", code, out)
				}
				// The same with a raw signed note, as /checkpoint serves it.
				note := filepath.Join(t.TempDir(), "checkpoint")
				if err := os.WriteFile(note, trustedNote(t, state), 0o600); err != nil {
					t.Fatal(err)
				}
				if out, code := offlineVerify(t, dir, "--trusted-checkpoint", note); code != 3 {
					t.Fatalf("verify --trusted-checkpoint NOTE of an old backup: exit %d\n%s", code, out)
				}
				if out, code := offlineVerify(t, data, "--trusted-checkpoint", note); code != 0 {
					t.Fatalf("verify --trusted-checkpoint NOTE of the current directory: exit %d\n%s", code, out)
				}
			})
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// trustedNote returns the signed checkpoint kept in a client's state file.
func trustedNote(t *testing.T, state string) []byte {
	t.Helper()
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var st client.State
	if err := json.Unmarshal(b, &st); err != nil || len(st.Checkpoint) == 0 {
		t.Fatalf("state file: %v", err)
	}
	return st.Checkpoint
}

// TestVerifyChecksBlobs checks that evidencectl verify --data-dir reads
// back every blob (audio recording) against its hash: a changed byte of a
// stored, sealed chunk is a problem, exit status 3.
func TestVerifyChecksBlobs(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "--search=false")
	c := s.client(t, "", "pipeline")
	id := recordVisit(t, c)
	recordAudio(t, c, id, 100<<10)
	s.stop()
	out, code := offlineVerify(t, data)
	if code != 0 || !regexp.MustCompile(`blobs checked\s+1\n`).MatchString(out) {
		t.Fatalf("verify of the intact directory: exit %d\n%s", code, out)
	}
	// Change one byte of the recording's second chunk, as stored.
	st, err := pebblestore.Open(filepath.Join(data, "pebble"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var key, val []byte
	n := 0
	st.Scan([]byte{'B'}, []byte{'C'}, func(k, v []byte) error {
		if n++; n == 2 {
			key, val = slices.Clone(k), slices.Clone(v)
		}
		return nil
	})
	if key == nil {
		t.Fatalf("the store holds %d blob chunks, want 2", n)
	}
	val[len(val)/2] ^= 0x01
	var b storage.Batch
	b.Set(key, val)
	if err := st.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, code = offlineVerify(t, data)
	if code != 3 || !strings.Contains(out, "blob ") || !strings.Contains(out, "does not read back whole") {
		t.Fatalf("verify of a changed blob chunk: exit %d, want 3 and a blob problem\n%s", code, out)
	}
}

// TestDamagedViewIsReported: a derived view that does not open (here the encounter summaries,
// their manifest overwritten) stops the server at start with what to do, and after the
// rebuild it names the server starts again.
func TestDamagedViewIsReported(t *testing.T) {
	data := t.TempDir()
	state := filepath.Join(t.TempDir(), "state.json")
	s := startServer(t, data, "--search=false")
	writeSegments(t, s.client(t, state, "pipeline"), 3)
	s.stop()

	manifests, err := filepath.Glob(filepath.Join(data, "summaries", "MANIFEST-*"))
	if err != nil || len(manifests) == 0 {
		t.Fatalf("no manifest in the summaries: %v %v", manifests, err)
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, bytes.Repeat([]byte{0xA5}, 512), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := refusedStart(t, data)
	if !strings.Contains(out, "evidencectl summaries rebuild --data-dir") {
		t.Fatalf("the refusal does not say how to rebuild the summaries:\n%s", out)
	}

	cmd := exec.Command(filepath.Join(binDir, "evidencectl"), "summaries", "rebuild", "--data-dir", data)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("evidencectl summaries rebuild: %v\n%s", err, b)
	}
	s = startServer(t, data, "--search=false")
	defer s.stop()
	if _, err := s.client(t, state, "pipeline").LatestCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
}
