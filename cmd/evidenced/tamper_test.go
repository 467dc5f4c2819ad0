package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// tamperTrials is how many single-bit flips TestTamperCampaign makes per
// storage engine: by default (0) two in each kind of file, which is what CI
// runs; go test -run TestTamperCampaign -tamper.trials 100 for the campaign
// that docs/compliance.md reports.
var tamperTrials = flag.Int("tamper.trials", 0, "byte flips per storage engine in TestTamperCampaign (0: two per kind of file)")

// fileKind names the kind of a file in the data directory dir, and whether
// it holds log data (every flip of which must be detected).
func fileKind(dir, engine, rel string) (kind string, logData bool) {
	base := filepath.Base(rel)
	switch {
	case strings.HasPrefix(rel, "index"+string(filepath.Separator)):
		return "search index (derived view)", false
	case strings.HasPrefix(rel, "summaries"+string(filepath.Separator)):
		// A pebble database of its own, derived from the log (package
		// summary): its files are one kind, whatever their names.
		return "encounter summaries (derived view)", false
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
			// The marker file's name names the current manifest; Pebble
			// keeps the one before it, which it never reads.
			if m, _ := filepath.Glob(filepath.Join(dir, engine, "marker.manifest.*."+base)); len(m) == 0 {
				return "pebble previous manifest", false
			}
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
	case base == "LOCK":
		return "badger lock file", false
	}
	return "badger other", false
}

// tamperKinds are the kinds of file the campaign's data set must hold, so
// that each is damaged.
var tamperKinds = map[string][]string{
	"pebble": {"pebble write-ahead log", "pebble table", "pebble blob file", "pebble manifest", "pebble options",
		"high-water checkpoint", "keyring", "log key files", "tokens", "search index (derived view)", "encounter summaries (derived view)"},
	"badger": {"badger memtable log", "badger table", "badger value log", "badger manifest", "badger key registry",
		"high-water checkpoint", "keyring", "log key files", "tokens", "search index (derived view)", "encounter summaries (derived view)"},
}

// tamperDataSet fills a data directory through the API so that every kind
// of file is in it: visits with segments, notes and audio recordings (blob
// chunks), written in two runs of the server. The first run is stopped
// (Badger flushes its memtable to a table); the second start replays
// Pebble's write-ahead log into a table and blob files; the second run is
// killed, so the newest writes are only in the write-ahead logs. It returns
// the tokens.
func tamperDataSet(t *testing.T, dir string, args []string) map[string]string {
	t.Helper()
	for run := range 2 {
		s := startServer(t, dir, args...)
		c := s.client(t, "", "pipeline")
		id := recordVisit(t, c)
		recordAudio(t, c, id, 150<<10)
		writeSegments(t, c, 40)
		if run == 0 {
			s.stop()
			continue
		}
		// Let the search index catch up, then crash.
		time.Sleep(time.Second)
		s.kill()
		return s.tokens
	}
	panic("unreachable")
}

// recordAudio uploads n random bytes as a recording of encounter id.
func recordAudio(t *testing.T, c *client.Client, id string, n int) {
	t.Helper()
	data := make([]byte, n)
	crand.Read(data)
	st, err := c.Encounters.RecordAudio(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Header{Header: &pb.AudioHeader{EncounterId: id, MediaType: demo.MediaType, Codec: "opus"}}}); err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		k := min(len(data), 32<<10)
		if err := st.Send(&pb.RecordAudioRequest{Msg: &pb.RecordAudioRequest_Chunk{Chunk: data[:k]}}); err != nil {
			t.Fatal(err)
		}
		data = data[k:]
	}
	if _, err := st.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
}

// written returns the length of a file's written part, up to its last
// non-zero byte (Badger preallocates its logs with zeros), and its size.
func written(t *testing.T, path string) (n, size int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for end := fi.Size(); end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			t.Fatal(err)
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i) + 1, fi.Size()
			}
		}
		end = start
	}
	return 0, fi.Size()
}

// flipBit flips one bit of the byte at offset at of a file, in place.
func flipBit(t *testing.T, path string, at int64, bit byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= bit
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
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
// in a crashed server's data directory (tamperDataSet: every kind of file
// is there, tables and blob files too), tamperTrials times per engine, the
// kinds in turn, and records how each flip was caught: by evidencectl
// verify --data-dir (exit status 3, or 1 when a file it needs does not
// parse), by the server refusing to start, or by a read of the whole log,
// the visit list, every transcript, note and recording, and a search
// through the API. A flip that changes nothing the server serves (a byte
// of an obsolete record, of a derived view that is checked against the
// log, or of an option file) is "no effect"; one that changes
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
			args := []string{"--storage", engine, "--grpc-addr", freeAddr(t)}
			tokens := tamperDataSet(t, base, args)
			// What the intact directory serves, from a copy: reads append
			// access entries, and every trial starts from the same bytes.
			ref := t.TempDir()
			copyTree(t, base, ref)
			want := servedView(t, ref, tokens, args)
			if want.err != "" {
				t.Fatalf("the intact directory: %s", want.err)
			}
			if len(want.audio) < 2 || len(want.search) < 20 {
				t.Fatalf("the intact directory serves %d recordings and %d search hits, want 2 and at least 20", len(want.audio), len(want.search))
			}

			// The files, by kind.
			kinds := map[string][]string{}
			logData := map[string]bool{}
			filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				if n, _ := written(t, p); n == 0 {
					return nil
				}
				rel, _ := filepath.Rel(base, p)
				k, ld := fileKind(base, engine, rel)
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
			var inventory []string
			for _, k := range names {
				var files []string
				for _, rel := range kinds[k] {
					n, size := written(t, filepath.Join(base, rel))
					files = append(files, fmt.Sprintf("%s (%d of %d bytes written)", rel, n, size))
				}
				inventory = append(inventory, fmt.Sprintf("%s: %s", k, strings.Join(files, ", ")))
			}
			t.Logf("%s: the files, by kind:\n%s", engine, strings.Join(inventory, "\n"))
			for _, k := range tamperKinds[engine] {
				if kinds[k] == nil {
					t.Errorf("the data set has no %s: the campaign would not damage one", k)
				}
			}
			results := map[string]map[tamperOutcome]int{}
			start := time.Now()
			trials := *tamperTrials
			if trials <= 0 {
				trials = 2 * len(names)
			}
			for i := range trials {
				kind := names[i%len(names)]
				rel := kinds[kind][rng.IntN(len(kinds[kind]))]
				dir := t.TempDir()
				copyTree(t, base, dir)
				path := filepath.Join(dir, rel)
				n, _ := written(t, path)
				at := rng.Int64N(n)
				bit := byte(1) << rng.IntN(8)
				flipBit(t, path, at, bit)
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
			t.Logf("%s: %d flips in %v\n%s", engine, trials, time.Since(start).Round(time.Second), strings.Join(lines, "\n"))
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
// the visit list, every encounter's transcript and note as JSON, its
// recordings' hashes and a search's hits.
type servedLog struct {
	refused bool
	err     string
	leaves  []string
	reads   []string
	list    string   // the visit list, which the encounter summaries answer
	audio   []string // SHA-256 of each recording served
	search  []string // the hits of a search, in log order
}

func (a servedLog) equal(b servedLog) bool {
	return slices.Equal(a.leaves, b.leaves) && a.list == b.list && slices.Equal(a.reads, b.reads) && slices.Equal(a.audio, b.audio) && slices.Equal(a.search, b.search)
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
	info, err := op.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		return fail(err)
	}
	size := info.GetTreeSize()
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
	// Listed before any read appends access entries, so the same bytes
	// list the same.
	b, _ := json.Marshal(list.GetEncounters())
	v.list = string(b)
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
		for _, a := range tr.GetAudio() {
			sum, err := readAudio(ctx, s, id, a.GetLeafIndex())
			if err != nil {
				return fail(err)
			}
			v.audio = append(v.audio, sum)
		}
	}
	slices.Sort(v.reads)
	slices.Sort(v.audio)
	// A search, which the index answers (each hit read back from the log),
	// once the index covers the log as it was at the start.
	var hits *pb.SearchResponse
	for {
		hits, err = pb.NewSearchServiceClient(cl.Conn()).Search(ctx, &pb.SearchRequest{Query: "synthetic OR breath", Order: pb.SearchOrder_SEARCH_ORDER_OLDEST, PageSize: 100})
		if err != nil {
			return fail(err)
		}
		if hits.GetTreeSize() >= size {
			break
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("the index covers %d of the %d entries after 30 s", hits.GetTreeSize(), size))
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, h := range hits.GetHits() {
		v.search = append(v.search, fmt.Sprintf("%d %s", h.GetLeafIndex(), h.GetText()))
	}
	return v
}

// readAudio reads a recording over HTTP, as the page does, and returns
// its SHA-256.
func readAudio(ctx context.Context, s *server, id string, leaf int64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/api/v1/encounters/%s/audio?leaf=%d", s.httpAddr, id, leaf), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.tokens["clinician"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("audio of leaf %d: HTTP %d", leaf, resp.StatusCode)
	}
	if err != nil {
		return "", fmt.Errorf("audio of leaf %d: %w", leaf, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
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
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "serving" {
				s.grpcAddr, s.httpAddr = m.GRPCAddr, m.HTTPAddr
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
