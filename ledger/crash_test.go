package ledger

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The crash test re-runs this test binary as a child that appends under
// load and reports every acknowledged entry on stdout, then kills it with
// SIGKILL at a random moment and checks the log it left behind.

const crashEnv = "LEDGER_CRASH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashEnv); spec != "" {
		os.Exit(crashChild(spec))
	}
	os.Exit(m.Run())
}

func crashPayload(round, worker, i int) []byte {
	return fmt.Appendf(nil, "round %d worker %d entry %d %s", round, worker, i, strings.Repeat("x", (worker*7+i)%300))
}

// crashChild appends until killed. spec is "backend,dir,round".
func crashChild(spec string) int {
	parts := strings.Split(spec, ",")
	backend, dir := parts[0], parts[1]
	round, _ := strconv.Atoi(parts[2])
	s, err := diskBackends[backend](filepath.Join(dir, "store"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	k, err := LoadOrCreateKey(dir, testOrigin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	l, err := Open(s, Options{Origin: testOrigin, Key: k})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				n := 1 + (i+w)%3 // single and multi-entry appends
				entries := make([]Entry, n)
				for j := range entries {
					entries[j] = Entry{Kind: KindSegment, Tenant: "tenant-a", Encounter: fmt.Sprintf("enc-%d", (w+j)%8), Actor: "asr", Payload: crashPayload(round, w, i*3+j)}
				}
				a, err := l.Append(context.Background(), entries)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				for j := range entries {
					p := sha256.Sum256(entries[j].Payload)
					fmt.Fprintf(out, "ack %d %x %x\n", a.First+int64(j), a.LeafHashes[j][:], p)
				}
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

type ack struct {
	index   int64
	leaf    string
	payload string
}

func runCrashChild(t *testing.T, backend, dir string, round int, rng *rand.Rand) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", crashEnv, backend, dir, round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acks []ack
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 4 || f[0] != "ack" {
				continue // a torn last line from the kill: never acknowledged
			}
			idx, _ := strconv.ParseInt(f[1], 10, 64)
			acks = append(acks, ack{idx, f[2], f[3]})
			if len(acks) == 1 {
				close(first)
			}
		}
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child acknowledged nothing in 30s: %s", stderr.String())
	}
	// Kill at a random moment while appends are in flight.
	time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	<-done
	if strings.Contains(stderr.String(), "ledger:") {
		t.Fatalf("child failed before the kill: %s", stderr.String())
	}
	return acks
}

func TestCrashSafety(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for backend := range diskBackends {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(uint64(len(backend)), 7))
			var lastCP *Checkpoint
			verified := int64(0)
			totalAcks := 0
			for round := range rounds {
				acks := runCrashChild(t, backend, dir, round, rng)
				totalAcks += len(acks)

				s := openBackend(t, backend, filepath.Join(dir, "store"))
				k, err := LoadOrCreateKey(dir, testOrigin)
				if err != nil {
					t.Fatal(err)
				}
				// Open checks the tree against the latest signed checkpoint.
				l, err := Open(s, Options{Origin: testOrigin, Key: k})
				if err != nil {
					t.Fatalf("round %d: reopen: %v", round, err)
				}
				cp := l.Checkpoint()
				for _, a := range acks {
					if a.index >= cp.Size {
						t.Fatalf("round %d: acknowledged index %d lost (size %d)", round, a.index, cp.Size)
					}
					e, err := l.Entry(a.index)
					if err != nil {
						t.Fatalf("round %d: entry %d: %v", round, a.index, err)
					}
					p, _, err := l.Payload(a.index)
					if err != nil {
						t.Fatalf("round %d: payload %d: %v", round, a.index, err)
					}
					ps := sha256.Sum256(p)
					if hex.EncodeToString(e.Hash[:]) != a.leaf || hex.EncodeToString(ps[:]) != a.payload {
						t.Fatalf("round %d: entry %d changed after the crash: leaf %x vs %s, payload %x vs %s", round, a.index, e.Hash, a.leaf, ps, a.payload)
					}
				}
				// Nothing torn: every entry since the last check reads back
				// whole, with its payload.
				for i := verified; i < cp.Size; i++ {
					if _, _, err := l.Payload(i); err != nil {
						t.Fatalf("round %d: entry %d: %v", round, i, err)
					}
				}
				verified = cp.Size
				// History was never rewritten.
				if lastCP != nil {
					c, err := l.ConsistencyProof(lastCP.Size, cp.Size)
					if err != nil {
						t.Fatal(err)
					}
					if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(lastCP.Size), uint64(cp.Size), toBytes(c), lastCP.Root[:], cp.Root[:]); err != nil {
						t.Fatalf("round %d: checkpoint %d is not consistent with %d: %v", round, cp.Size, lastCP.Size, err)
					}
				}
				lastCP = cp
				for e := range 8 {
					if err := l.WalkEncounter("tenant-a", fmt.Sprintf("enc-%d", e), func(*StoredEntry) error { return nil }); err != nil {
						t.Fatalf("round %d: chain enc-%d: %v", round, e, err)
					}
				}
				l.Close()
				if round == rounds-1 {
					// The whole log, checked from scratch, is intact.
					rep, err := Verify(context.Background(), s, VerifyOptions{Origin: testOrigin, Verifier: k.Verifier()})
					if err != nil || len(rep.Problems) != 0 || rep.Leaves != cp.Size {
						t.Fatalf("verify after crashes: %v %v", err, rep.Problems)
					}
				}
				s.Close()
			}
			t.Logf("%s: %d kills, %d acknowledged entries, log size %d", backend, rounds, totalAcks, lastCP.Size)
		})
	}
}
