package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	f_note "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/witness"
	"github.com/evidenceledger/evidence/witness/witnesstest"
)

// TestWitnessEndToEnd runs evidenced with --witness against two real
// transparency-dev witnesses and checks, through the Go client over gRPC
// and through evidencectl, that a client requiring cosignatures from
// pinned keys gets a checkpoint cosigned by them, with entries proved
// against it, and refuses one without enough cosignatures: when the
// pinned key is not one of the server's witnesses, and when one of two
// required witnesses is down and the server serves checkpoints cosigned
// by the other alone (--witness-quorum 1).
func TestWitnessEndToEnd(t *testing.T) {
	data := t.TempDir()
	// The first start makes the log's key; the witnesses are configured
	// with its origin and verifier key, as an operator would.
	s := startServer(t, data, "--search=false")
	info, err := s.client(t, "", "operator").Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.stop()
	w1 := witnesstest.Start(t, "witness.test/w1", info.GetOrigin(), info.GetVerifierKey())
	w2 := witnesstest.Start(t, "witness.test/w2", info.GetOrigin(), info.GetVerifierKey())
	// A witness key the server does not submit to.
	_, vkey3, err := note.GenerateKey(rand.Reader, "witness.test/w3")
	if err != nil {
		t.Fatal(err)
	}
	w3key, err := f_note.VKeyToCosignatureV1(vkey3)
	if err != nil {
		t.Fatal(err)
	}

	s = startServer(t, data, "--search=false", "--witness", w1.VKey+"="+w1.URL, "--witness", w2.VKey+"="+w2.URL,
		"--witness-quorum", "1", "--witness-interval", "100ms")
	pipe := s.client(t, "", "pipeline")
	recordVisit(t, pipe)
	size := logSize(t, s)
	both := []string{w1.VKey, w2.VKey}
	waitWitnessed(t, s, size, both, 2)

	// The Go client, requiring both witnesses: the checkpoint it trusts
	// is the witnessed one, and an entry is proved against it.
	c := witnessClient(t, s, both, 2)
	cp, err := c.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatalf("a client requiring both witnesses: %v", err)
	}
	if cp.TreeSize != size {
		t.Fatalf("the witnessed checkpoint has size %d, the log %d", cp.TreeSize, size)
	}
	for _, name := range []string{"witness.test/w1", "witness.test/w2"} {
		if !strings.Contains(string(cp.Note), "— "+name+" ") {
			t.Errorf("the checkpoint lacks %s's cosignature:\n%s", name, cp.Note)
		}
	}
	e, err := c.Entry(ctx, size-1)
	if err != nil || e.Checkpoint.TreeSize != size {
		t.Fatalf("an entry proved against the witnessed checkpoint: %v, %v", e, err)
	}
	// evidencectl, the same.
	out, code := witnessCtl(t, s, both, 2, "log", "checkpoint")
	if code != 0 || !strings.Contains(out, "— witness.test/w1 ") || !strings.Contains(out, "— witness.test/w2 ") {
		t.Fatalf("evidencectl log checkpoint with both witnesses required: exit %d\n%s", code, out)
	}

	// A pinned key the server's witnesses do not hold: refused.
	if _, err := witnessClient(t, s, []string{w3key}, 1).LatestCheckpoint(ctx); !isPolicyRefusal(err, 0, 1) {
		t.Fatalf("a client requiring another witness: %v, want a refusal (0 of 1 cosignatures)", err)
	}
	if out, code := witnessCtl(t, s, []string{w3key}, 1, "log", "checkpoint"); code != 3 {
		t.Fatalf("evidencectl requiring another witness: exit %d, want 3\n%s", code, out)
	}

	// One witness down: the server, at quorum 1, serves checkpoints that
	// w1 alone cosigned. A client requiring both refuses them; one that
	// requires one of the two accepts them.
	w2.Stop()
	recordVisit(t, pipe)
	size = logSize(t, s)
	waitWitnessed(t, s, size, []string{w1.VKey}, 1)
	if _, err := witnessClient(t, s, both, 2).LatestCheckpoint(ctx); !isPolicyRefusal(err, 1, 2) {
		t.Fatalf("a client requiring both witnesses, one down: %v, want a refusal (1 of 2 cosignatures)", err)
	}
	out, code = witnessCtl(t, s, both, 2, "log", "checkpoint")
	if code != 3 || strings.Contains(out, "— witness.test/w1") {
		t.Fatalf("evidencectl requiring both witnesses, one down: exit %d, want 3, and no checkpoint printed\n%s", code, out)
	}
	if cp, err := witnessClient(t, s, both, 1).LatestCheckpoint(ctx); err != nil || cp.TreeSize != size {
		t.Fatalf("a client requiring one of the two witnesses: %v, %v", cp, err)
	}
	if out, code := witnessCtl(t, s, both, 1, "log", "checkpoint"); code != 0 {
		t.Fatalf("evidencectl requiring one of the two witnesses: exit %d\n%s", code, out)
	}
}

// logSize is the size of the server's latest checkpoint.
func logSize(t *testing.T, s *server) int64 {
	t.Helper()
	info, err := s.client(t, "", "operator").Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return info.GetTreeSize()
}

// waitWitnessed waits until the server serves a witnessed checkpoint of
// at least size entries that quorum of the witness keys cosigned.
func waitWitnessed(t *testing.T, s *server, size int64, vkeys []string, quorum int) {
	t.Helper()
	policy, err := witness.NewPolicy(vkeys, quorum)
	if err != nil {
		t.Fatal(err)
	}
	op := s.client(t, "", "operator")
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := op.Ledger.GetCheckpoint(ctx, &pb.GetCheckpointRequest{Witnessed: true})
		if err != nil {
			last = err
			continue
		}
		signed := resp.GetCheckpoint().GetNote()
		if resp.GetCheckpoint().GetTreeSize() < size {
			last = errors.New("the witnessed checkpoint is behind")
			continue
		}
		if last = policy.Check(signed); last == nil {
			return
		}
	}
	t.Fatalf("no witnessed checkpoint of size %d cosigned by %d witnesses within a minute: %v\n%s", size, quorum, last, s.logs)
}

// witnessClient dials s as the auditor, trusting only checkpoints that
// quorum of the pinned witness keys cosigned.
func witnessClient(t *testing.T, s *server, vkeys []string, quorum int) *client.Client {
	t.Helper()
	c, err := client.Dial(s.grpcAddr, client.Options{Token: s.tokens["auditor"], Witnesses: vkeys, WitnessQuorum: quorum})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// witnessCtl runs evidencectl with --witness-key for each key and
// --witness-quorum, with a fresh state file; it returns stdout and stderr
// together, and the exit status.
func witnessCtl(t *testing.T, s *server, vkeys []string, quorum int, args ...string) (string, int) {
	t.Helper()
	var flags []string
	for _, k := range vkeys {
		flags = append(flags, "--witness-key", k)
	}
	flags = append(flags, "--witness-quorum", strconv.Itoa(quorum))
	cmd := exec.Command(filepath.Join(binDir, "evidencectl"), append(append([]string{"--server", s.grpcAddr, "--token", s.tokens["auditor"],
		"--state", filepath.Join(t.TempDir(), "state.json")}, flags...), args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), 0
}

// isPolicyRefusal reports whether err is the client's refusal of a
// checkpoint cosigned by have of the want pinned witnesses required.
func isPolicyRefusal(err error, have, want int) bool {
	var ve *client.VerificationError
	return errors.As(err, &ve) && strings.Contains(ve.What, (&witness.PolicyError{Have: have, Want: want}).Error())
}
