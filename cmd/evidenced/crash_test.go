package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
)

// crashKills is how many times TestCrashThroughTheAPI kills the server per
// storage engine: 30 in CI; go test -run TestCrashThroughTheAPI
// -crash.kills 100 for the longer run that docs/benchmarks.md reports.
var crashKills = flag.Int("crash.kills", 30, "SIGKILLs per storage engine in TestCrashThroughTheAPI")

// crashStall is how long a restarted server may take to acknowledge a
// write before TestCrashThroughTheAPI calls the writers stalled.
const crashStall = time.Minute

// crashAck is one acknowledged write: the entry, its leaf hash and the
// checkpoint of the receipt.
type crashAck struct {
	index    int64
	leafHash []byte
	size     int64
	root     []byte
	segment  string
	enc      string
}

// crashLoad is the writers' shared record of acknowledgements.
type crashLoad struct {
	mu    sync.Mutex
	acks  []crashAck
	tries int
}

func (l *crashLoad) add(a crashAck) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks = append(l.acks, a)
}

func (l *crashLoad) snapshot() []crashAck {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks)
}

func (l *crashLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// waitBeyond waits until more than n writes are acknowledged, or d has
// passed; it reports whether they were.
func (l *crashLoad) waitBeyond(n int, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if l.count() > n {
			return true
		}
	}
	return false
}

// crashWriter appends one transcript segment at a time to its encounter
// until ctx ends. A write whose outcome it does not know (the server died)
// is sent again, with the same request id, until it is acknowledged: the
// server must record it once.
func crashWriter(ctx context.Context, t *testing.T, addr, token, enc string, w int, load *crashLoad) {
	dial := func() *client.Client {
		c, err := client.Dial(addr, client.Options{Token: token})
		if err != nil {
			t.Error(err)
		}
		return c
	}
	c := dial()
	defer func() { c.Close() }()
	for i := 0; ctx.Err() == nil; i++ {
		seg := fmt.Sprintf("w%d-%d", w, i)
		req := &pb.RecordSegmentsRequest{EncounterId: enc, Verify: true, Segments: []*pb.Segment{{SegmentId: seg,
			SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: fmt.Sprintf("synthetic crash-test words %d of writer %d", i, w),
			StartMs: int64(i * 1000), EndMs: int64(i*1000 + 900)}}}
		rctx := client.WithMetadata(context.Background(), grpcapi.RequestIDKey, "crash-"+seg)
		for failures := 1; ; failures++ {
			actx, cancel := context.WithTimeout(rctx, 10*time.Second)
			resp, err := c.Encounters.RecordSegments(actx, req)
			cancel()
			if err == nil {
				r := resp.GetReceipt()
				p := r.GetProofs()[0]
				load.add(crashAck{index: r.GetLeafIndexes()[0], leafHash: p.GetLeafHash(), size: r.GetCheckpoint().GetTreeSize(),
					root: r.GetCheckpoint().GetRootHash(), segment: seg, enc: enc})
				break
			}
			if ctx.Err() != nil {
				return
			}
			if failures%100 == 0 {
				t.Logf("writer %d: segment %s refused %d times: %v", w, seg, failures, err)
			}
			// The server is down or restarting: a new connection, so that
			// gRPC's reconnection backoff does not hold the writer up.
			c.Close()
			time.Sleep(20 * time.Millisecond)
			c = dial()
		}
	}
}

// freeAddr returns a loopback address with a free port, for a server
// that must come back on the same address after a crash.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCrashThroughTheAPI runs the real evidenced binary with many gRPC
// writers and kills it with SIGKILL at random moments while writes are
// being acknowledged (0-600 ms after the restarted server's first
// acknowledgement), crashKills times per storage engine. After every restart the log must hold every
// acknowledged write: its size is at least the largest acknowledged
// checkpoint's and it is consistent with each acknowledged checkpoint
// (the newest ones are checked at each restart, all of them at the end).
// At the end every acknowledged entry is in the log with its leaf hash,
// every acknowledged segment is in its transcript exactly once (writes
// retried after a crash carry their request id), and the stopped data
// directory verifies offline.
func TestCrashThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test runs the server many times")
	}
	const writers = 8
	for _, engine := range []string{"pebble", "badger"} {
		t.Run(engine, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			rng := rand.New(rand.NewPCG(seed, 14))
			t.Logf("seed %d", seed)
			data := t.TempDir()
			addr := freeAddr(t)
			args := []string{"--storage", engine, "--search=false", "--grpc-addr", addr, "--log-level", "info", "--rate-limit", "0"}
			s := startServer(t, data, args...)
			tokens := s.tokens
			var encs []string
			setup := s.client(t, "", "pipeline")
			for range writers {
				e, err := setup.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "synthetic crash visit"})
				if err != nil {
					t.Fatal(err)
				}
				encs = append(encs, e.GetEncounter().GetEncounterId())
			}
			operator := s.client(t, "", "operator")
			info, err := operator.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := note.NewVerifier(info.GetVerifierKey())
			if err != nil {
				t.Fatal(err)
			}

			load := &crashLoad{}
			loadCtx, stopLoad := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() { crashWriter(loadCtx, t, addr, tokens["pipeline"], encs[w], w, load) })
			}
			start := time.Now()
			checked := 0
			for k := range *crashKills {
				// Kill while writes are being acknowledged: after the
				// restarted server acknowledged one, at a random moment.
				// Right after a restart the writers wait for the first
				// write to each encounter, which reads the encounter's
				// whole chain (about 2 ms an entry in a race build on
				// loaded cores); a kill timed from the restart alone
				// fell within that wait more and more often as the
				// chains grew, until no write got through.
				n := load.count()
				if !load.waitBeyond(n, crashStall) {
					t.Fatalf("kill %d: no write was acknowledged within %v of the restart (%d before): the writers are stalled\n%s", k+1, crashStall, n, s.logs)
				}
				time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
				before := load.count()
				s.kill()
				s = startServer(t, data, args...)
				acks := load.snapshot()
				checked += crashCheck(t, s, v, acks, 20, rng)
				if k%10 == 9 {
					t.Logf("%s: %d kills in %v, %d writes acknowledged (%d before the last kill)", engine, k+1, time.Since(start).Round(time.Second), len(acks), before)
				}
			}
			stopLoad()
			wg.Wait()
			s.stop()
			s = startServer(t, data, args...)
			acks := load.snapshot()
			checked += crashCheck(t, s, v, acks, len(acks), rng)
			crashFinal(t, s, acks)
			s.stop()
			if out, code := offlineVerify(t, data); code != 0 {
				t.Fatalf("verify --data-dir after %d kills: exit %d\n%s", *crashKills, code, out)
			}
			t.Logf("%s: %d kills survived in %v; %d writes acknowledged, every one present once and unchanged; %d acknowledged checkpoints proved consistent",
				engine, *crashKills, time.Since(start).Round(time.Second), len(acks), checked)
		})
	}
}

// crashCheck checks the restarted server's log against the acknowledged
// writes: the size covers the largest acknowledged checkpoint, and the
// log is consistent with it and with up to n other acknowledged
// checkpoints. It returns how many checkpoints it proved consistent.
func crashCheck(t *testing.T, s *server, v note.Verifier, acks []crashAck, n int, rng *rand.Rand) int {
	t.Helper()
	c := s.client(t, "", "operator")
	resp, err := c.Ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.OpenCheckpoint(resp.GetCheckpoint().GetNote(), v.Name(), v)
	if err != nil {
		t.Fatalf("the restarted server's checkpoint: %v", err)
	}
	bySize := map[int64][]byte{}
	var largest int64
	for _, a := range acks {
		bySize[a.size] = a.root
		largest = max(largest, a.size)
	}
	if cp.Size < largest {
		t.Fatalf("after a restart the log has %d entries; a write was acknowledged with a checkpoint of %d", cp.Size, largest)
	}
	sizes := make([]int64, 0, len(bySize))
	for size := range bySize {
		sizes = append(sizes, size)
	}
	slices.Sort(sizes)
	pick := sizes
	if len(sizes) > n {
		pick = []int64{sizes[len(sizes)-1]}
		for range n - 1 {
			pick = append(pick, sizes[rng.IntN(len(sizes))])
		}
	}
	for _, size := range pick {
		if size == 0 || size == cp.Size {
			if size == cp.Size && !bytes.Equal(bySize[size], cp.Root[:]) {
				t.Fatalf("the log's root at size %d differs from the acknowledged checkpoint's", size)
			}
			continue
		}
		p, err := c.Ledger.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromTreeSize: size, ToTreeSize: cp.Size})
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(size), uint64(cp.Size), p.GetHashes(), bySize[size], cp.Root[:]); err != nil {
			t.Fatalf("the log of size %d is not consistent with the acknowledged checkpoint of size %d: %v", cp.Size, size, err)
		}
	}
	return len(pick)
}

// crashFinal checks that every acknowledged entry is in the log with its
// leaf hash, and every acknowledged segment in its transcript once.
func crashFinal(t *testing.T, s *server, acks []crashAck) {
	t.Helper()
	c := s.client(t, "", "operator")
	stream, err := c.Ledger.StreamEntries(ctx, &pb.StreamEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for {
		r, err := stream.Recv()
		if err != nil {
			break
		}
		hashes = append(hashes, r.GetEntry().GetLeafHash())
	}
	for _, a := range acks {
		if a.index >= int64(len(hashes)) || !bytes.Equal(hashes[a.index], a.leafHash) {
			t.Fatalf("acknowledged entry %d (segment %s) is missing or changed", a.index, a.segment)
		}
	}
	reader := s.client(t, "", "clinician")
	perEnc := map[string]map[string]int{}
	for _, a := range acks {
		if perEnc[a.enc] == nil {
			perEnc[a.enc] = map[string]int{}
		}
	}
	for enc := range perEnc {
		tr, err := reader.Encounters.GetTranscript(ctx, &pb.GetTranscriptRequest{EncounterId: enc})
		if err != nil {
			t.Fatal(err)
		}
		for _, sg := range tr.GetSegments() {
			perEnc[enc][sg.GetSegmentId()]++
		}
	}
	for _, a := range acks {
		if got := perEnc[a.enc][a.segment]; got != 1 {
			t.Fatalf("acknowledged segment %s is in its transcript %d times", a.segment, got)
		}
	}
	for enc, segs := range perEnc {
		for id, n := range segs {
			if n != 1 {
				t.Fatalf("segment %s of %s is recorded %d times", id, enc, n)
			}
		}
	}
}
