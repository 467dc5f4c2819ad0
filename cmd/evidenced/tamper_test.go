package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// tamperTrials is how many single-bit flips TestTamperCampaign makes per
// storage engine.
var tamperTrials = flag.Int("tamper.trials", 100, "byte flips per storage engine in TestTamperCampaign")

// fileKind names the kind of a file in a data directory, and whether it
// holds log data (every flip of which must be detected).
func fileKind(engine, rel string) (kind string, logData bool) {
	base := filepath.Base(rel)
	switch {
	case strings.HasPrefix(rel, "index"+string(filepath.Separator)):
		return "search index (derived view)", false
	case base == "highwater.checkpoint":
		return "high-water checkpoint", true
	case base == "keyring.json":
		return "keyring", false
	case base == "log.key" || base == "log.pub":
		return "log key files", false
	case base == "tokens.json":
		return "tokens", false
	case !strings.HasPrefix(rel, engine+string(filepath.Separator)):
		return "other: " + base, false
	}
	if engine == "pebble" {
		switch {
		case strings.HasSuffix(base, ".log"):
			return "pebble write-ahead log", true
		case strings.HasSuffix(base, ".sst"):
			return "pebble table", true
		case strings.HasSuffix(base, ".blob"):
			return "pebble blob file", true
		case strings.HasPrefix(base, "MANIFEST"):
			return "pebble manifest", true
		case strings.HasPrefix(base, "OPTIONS"):
			return "pebble options", false
		case base == "CURRENT" || strings.HasPrefix(base, "marker."):
			return "pebble markers", false
		}
		return "pebble other", false
	}
	switch {
	case strings.HasSuffix(base, ".mem"):
		return "badger memtable log", true
	case strings.HasSuffix(base, ".sst"):
		return "badger table", true
	case strings.HasSuffix(base, ".vlog"):
		return "badger value log", true
	case base == "MANIFEST":
		return "badger manifest", true
	case base == "KEYREGISTRY":
		return "badger key registry", false
	case base == "DISCARD":
		return "badger discard stats", false
	}
	return "badger other", false
}

// written returns the length of a file's written part: up to its last
// non-zero byte (Badger preallocates its logs with zeros).
func written(b []byte) int {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return n
}

// tamperOutcome is how a flip was caught, or not.
type tamperOutcome string

const (
	byVerify   tamperOutcome = "verify"
	atOpen     tamperOutcome = "at open"
	byRead     tamperOutcome = "by a read"
	noEffect   tamperOutcome = "no effect"
	undetected tamperOutcome = "UNDETECTED"
)

// TestTamperCampaign flips one random bit in a random file of every kind
// in a stopped (crashed) server's data directory, tamperTrials times per
// engine, and records how each flip was caught: by evidencectl verify
// --data-dir (exit status 3, or 1 when a file it needs does not parse), by
// the server refusing to start, or by a read of the whole log and every
// transcript and note through the API. A flip that changes nothing the
// server serves (a byte of an obsolete record, of the search index, which
// is never trusted, or of an option file) is "no effect"; one that changes
// what the server serves without an error is UNDETECTED, and in log data
// it fails the test. The table per file kind is docs/compliance.md's.
func TestTamperCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("the campaign runs verify and the server many times")
	}
	for _, engine := range []string{"pebble", "badger"} {
		t.Run(engine, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			rng := rand.New(rand.NewPCG(seed, 6))
			t.Logf("seed %d", seed)
			base := t.TempDir()
			addr := freeAddr(t)
			args := []string{"--storage", engine, "--grpc-addr", addr}
			s := startServer(t, base, args...)
			c := s.client(t, "", "pipeline")
			recordVisit(t, c)
			writeSegments(t, c, 40)
			// Let the index catch up, then crash: the write-ahead logs
			// keep the newest writes.
			time.Sleep(time.Second)
			s.kill()
			tokens := s.tokens
			// What the intact directory serves, from a copy: reads append
			// access entries, and every trial starts from the same bytes.
			ref := t.TempDir()
			copyTree(t, base, ref)
			want := servedView(t, ref, tokens, args)
			if want.err != "" {
				t.Fatalf("the intact directory: %s", want.err)
			}

			// The files, by kind.
			kinds := map[string][]string{}
			logData := map[string]bool{}
			filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				b, _ := os.ReadFile(p)
				if written(b) == 0 {
					return nil
				}
				rel, _ := filepath.Rel(base, p)
				k, ld := fileKind(engine, rel)
				kinds[k] = append(kinds[k], rel)
				logData[k] = ld
				return nil
			})
			names := slices.Sorted(func(yield func(string) bool) {
				for k := range kinds {
					if !yield(k) {
						return
					}
				}
			})
			results := map[string]map[tamperOutcome]int{}
			start := time.Now()
			for i := range *tamperTrials {
				kind := names[i%len(names)]
				rel := kinds[kind][rng.IntN(len(kinds[kind]))]
				dir := t.TempDir()
				copyTree(t, base, dir)
				path := filepath.Join(dir, rel)
				b, _ := os.ReadFile(path)
				at := rng.IntN(written(b))
				bit := byte(1) << rng.IntN(8)
				b[at] ^= bit
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				out := tamperTrial(t, dir, tokens, args, want)
				if results[kind] == nil {
					results[kind] = map[tamperOutcome]int{}
				}
				results[kind][out]++
				if out == undetected && logData[kind] {
					t.Errorf("flip of bit %#x at byte %d of %s (%s) changed what the server serves, undetected", bit, at, rel, kind)
				}
				os.RemoveAll(dir)
			}
			var lines []string
			for _, k := range names {
				r := results[k]
				n := 0
				for _, c := range r {
					n += c
				}
				lines = append(lines, fmt.Sprintf("%-30s %3d trials: verify %d, at open %d, by a read %d, no effect %d, undetected %d",
					k, n, r[byVerify], r[atOpen], r[byRead], r[noEffect], r[undetected]))
			}
			t.Logf("%s: %d flips in %v\n%s", engine, *tamperTrials, time.Since(start).Round(time.Second), strings.Join(lines, "\n"))
		})
	}
}

// tamperTrial finds out how a damaged data directory is caught.
func tamperTrial(t *testing.T, dir string, tokens map[string]string, args []string, want servedLog) tamperOutcome {
	t.Helper()
	if _, code := offlineVerify(t, dir); code != 0 {
		return byVerify
	}
	got := servedView(t, dir, tokens, args)
	switch {
	case got.refused:
		return atOpen
	case got.err != "":
		return byRead
	case got.equal(want):
		return noEffect
	}
	return undetected
}

// servedLog is what a server serves of a data directory: every leaf hash,
// and every encounter's transcript and note as JSON.
type servedLog struct {
	refused bool
	err     string
	leaves  []string
	reads   []string
}

func (a servedLog) equal(b servedLog) bool {
	return slices.Equal(a.leaves, b.leaves) && slices.Equal(a.reads, b.reads)
}

// servedView starts the server on dir and reads everything it serves.
func servedView(t *testing.T, dir string, tokens map[string]string, args []string) servedLog {
	t.Helper()
	s, ok := tryStart(t, dir, tokens, args...)
	if !ok {
		return servedLog{refused: true}
	}
	defer s.kill()
	// A damaged store may make a read hang rather than fail: bound it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v servedLog
	fail := func(err error) servedLog {
		v.err = err.Error()
		return v
	}
	op := s.client(t, "", "operator")
	stream, err := op.Ledger.StreamEntries(ctx, &pb.StreamEntriesRequest{})
	if err != nil {
		return fail(err)
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			if !strings.Contains(err.Error(), "EOF") {
				return fail(err)
			}
			break
		}
		v.leaves = append(v.leaves, fmt.Sprintf("%x", r.GetEntry().GetLeafHash()))
	}
	cl := s.client(t, "", "clinician")
	list, err := cl.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{})
	if err != nil {
		return fail(err)
	}
	for _, e := range list.GetEncounters() {
		id := e.GetEncounterId()
		tr, err := cl.Encounters.GetTranscript(ctx, &pb.GetTranscriptRequest{EncounterId: id})
		if err != nil {
			return fail(err)
		}
		b, _ := json.Marshal(tr.GetSegments())
		v.reads = append(v.reads, string(b))
		n, err := cl.Encounters.GetNote(ctx, &pb.GetNoteRequest{EncounterId: id})
		if err != nil && !strings.Contains(err.Error(), "no note") && !strings.Contains(err.Error(), "NotFound") {
			return fail(err)
		}
		if n != nil {
			b, _ := json.Marshal(n.GetNote().GetSections())
			v.reads = append(v.reads, string(b))
		}
	}
	slices.Sort(v.reads)
	return v
}

// tryStart starts evidenced on dir and reports whether it served, without
// failing the test when it does not.
func tryStart(t *testing.T, dir string, tokens map[string]string, extra ...string) (*server, bool) {
	t.Helper()
	args := append([]string{"--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(filepath.Join(binDir, "evidenced"), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: new(syncBuffer), done: make(chan struct{}), tokens: tokens}
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			var m struct {
				Msg      string `json:"msg"`
				GRPCAddr string `json:"grpc_addr"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "serving" {
				s.grpcAddr = m.GRPCAddr
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
		return s, true
	case <-s.done:
		cmd.Wait()
		return nil, false
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-s.done
		cmd.Wait()
		return nil, false
	}
}
