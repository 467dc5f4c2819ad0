package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/evidenceledger/evidence/ledger"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
)

// The benchmarks run real nodes in one process: the TCP transport on
// loopback, pebble stores for the ledger and for the raft log, and the
// production raft timeouts (Fast off). docs/benchmarks.md reports them:
//
//	go test -run '^$' -bench ReplicatedAppend -benchtime 100000x ./cluster/
//	go test -run '^$' -bench Failover -benchtime 7x ./cluster/
//	go test -run '^$' -bench CatchUp -benchtime 1000000x -timeout 1h ./cluster/

const benchOrigin = "bench.test/cluster"

// appender is a single node's ledger.Appender or a cluster Node.
type appender interface {
	Append(ctx context.Context, entries []ledger.Entry) (*ledger.Appended, error)
}

// benchNode is one node with its stores in dir; it can be killed and
// started again on the same address with the same stores.
type benchNode struct {
	id   string
	dir  string
	addr string // empty until first started
	key  *ledger.Key
	cfg  func(*Config)

	tcp    *TCP
	node   *Node
	log    *ledger.Replica
	store  *pebblestore.Store
	raftKV *pebblestore.Store
}

func (n *benchNode) start(b testing.TB, bootstrap bool) {
	b.Helper()
	bind := n.addr
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	discard := slog.New(slog.DiscardHandler)
	var err error
	for try := 0; ; try++ {
		// The port of a killed node may take a moment to free.
		if n.tcp, err = NewTCP(bind, "", nil, discard); err == nil || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		b.Fatal(err)
	}
	n.addr = string(n.tcp.Transport().LocalAddr())
	if n.store, err = pebblestore.Open(filepath.Join(n.dir, "ledger"), pebblestore.Options{}); err != nil {
		b.Fatal(err)
	}
	if n.raftKV, err = pebblestore.Open(filepath.Join(n.dir, "raftlog"), pebblestore.Options{}); err != nil {
		b.Fatal(err)
	}
	cfg := Config{ID: n.id, RaftAddr: n.addr, Dir: filepath.Join(n.dir, "raft"), RaftStore: n.raftKV,
		Transport: n.tcp.Transport(), Peers: n.tcp, Bootstrap: bootstrap, Logger: discard}
	if n.cfg != nil {
		n.cfg(&cfg)
	}
	if n.log, err = ledger.OpenReplica(n.store, ledger.Options{Origin: benchOrigin, Key: n.key}); err != nil {
		b.Fatal(err)
	}
	if n.node, err = New(cfg, n.log); err != nil {
		b.Fatal(err)
	}
	n.tcp.Serve(n.node)
}

// kill cuts the node off the network at once, as a crash does, then
// releases what it holds.
func (n *benchNode) kill() {
	if n.tcp == nil {
		return
	}
	n.tcp.Close()
	n.node.Close()
	n.log.Close()
	n.store.Close()
	n.raftKV.Close()
	n.tcp = nil
}

// benchCluster starts a node that bootstraps and joins size-1 more.
func benchCluster(b *testing.B, size int, cfg func(*Config)) []*benchNode {
	b.Helper()
	key, err := ledger.LoadOrCreateKey(b.TempDir(), benchOrigin)
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]*benchNode, size)
	for i := range nodes {
		nodes[i] = &benchNode{id: fmt.Sprintf("n%d", i), dir: b.TempDir(), key: key, cfg: cfg}
		b.Cleanup(nodes[i].kill)
	}
	nodes[0].start(b, true)
	benchLeader(b, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes[1:] {
		n.start(b, false)
		if err := n.node.Join(ctx, nodes[0].addr); err != nil {
			b.Fatal(err)
		}
	}
	benchSettle(b, nodes...)
	return nodes
}

// benchLeader waits for one of the running nodes to lead and returns it.
func benchLeader(b *testing.B, nodes ...*benchNode) *benchNode {
	b.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, n := range nodes {
			if n.tcp != nil && n.node.IsLeader() {
				return n
			}
		}
	}
	b.Fatal("no leader")
	return nil
}

// benchSettle waits until every running node has applied what the leader
// committed. Raft's own entries (configuration changes, a new leader's
// no-op) do not reach the ledger, so the ledgers are compared with the
// leader's rather than with raft's commit index.
func benchSettle(b *testing.B, nodes ...*benchNode) {
	b.Helper()
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		l := benchLeader(b, nodes...)
		want, applied := l.node.Raft().CommitIndex(), l.log.AppliedIndex()
		done := true
		for _, n := range nodes {
			if n.tcp != nil && (n.node.Raft().AppliedIndex() < want || n.log.AppliedIndex() != applied) {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("nodes did not settle")
		}
	}
}

// appendLoad appends total 512-byte entries from appenders goroutines,
// appender w through logs[w%len(logs)], each waiting for its append before
// the next, and returns the elapsed time, the sorted latencies and how
// many appends were retried. An append whose outcome is unknown (the
// leader lost its leadership with it in flight) or that found no leader
// is retried with the same request id, as a client does; its latency
// includes the retries.
func appendLoad(ctx context.Context, logs []appender, total, appenders int) (time.Duration, []time.Duration, int64, error) {
	payload := make([]byte, 512)
	rand.Read(payload)
	var next, retries atomic.Int64
	lat := make([][]time.Duration, appenders)
	errs := make(chan error, appenders)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := logs[w%len(logs)]
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				e := ledger.Entry{Kind: ledger.KindSegment, Tenant: "bench", Encounter: "enc-" + strconv.FormatInt(i%1000, 10), Actor: "bench", Payload: payload}
				t0 := time.Now()
				for try := 0; ; try++ {
					_, err := l.Append(ledger.WithRequestID(ctx, "a"+strconv.FormatInt(i, 10)), []ledger.Entry{e})
					if err == nil {
						break
					}
					if try == 100 || !(errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrNoLeader)) {
						errs <- fmt.Errorf("append %d (try %d): %w", i, try, err)
						return
					}
					retries.Add(1)
					time.Sleep(10 * time.Millisecond)
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return 0, nil, 0, err
	default:
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return elapsed, all, retries.Load(), nil
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)*99/100]
}

// BenchmarkReplicatedAppend appends b.N entries of 512 bytes from 64
// concurrent appenders to a three-node cluster and, in the same run, to a
// single node's log on pebble without replication. "leader" sends every
// append to the leader; "spread" sends a third to each node, so that two
// thirds are forwarded.
func BenchmarkReplicatedAppend(b *testing.B) {
	for _, mode := range []string{"leader", "spread"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			key, err := ledger.LoadOrCreateKey(b.TempDir(), benchOrigin)
			if err != nil {
				b.Fatal(err)
			}
			s, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			single, err := ledger.Open(s, ledger.Options{Origin: benchOrigin, Key: key})
			if err != nil {
				b.Fatal(err)
			}
			singleTime, singleLat, _, err := appendLoad(ctx, []appender{single}, b.N, 64)
			single.Close()
			s.Close()
			if err != nil {
				b.Fatal(err)
			}

			nodes := benchCluster(b, 3, nil)
			var logs []appender
			if mode == "leader" {
				logs = []appender{benchLeader(b, nodes...).node}
			} else {
				for _, n := range nodes {
					logs = append(logs, n.node)
				}
			}
			b.ResetTimer()
			term := func() string { return benchLeader(b, nodes...).node.Raft().Stats()["term"] }
			termBefore := term()
			clusterTime, clusterLat, retries, err := appendLoad(ctx, logs, b.N, 64)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			perSec := float64(b.N) / clusterTime.Seconds()
			singlePerSec := float64(b.N) / singleTime.Seconds()
			b.ReportMetric(perSec, "entries/s")
			b.ReportMetric(float64(p99(clusterLat).Microseconds())/1000, "p99-ms")
			b.ReportMetric(singlePerSec, "single-entries/s")
			b.ReportMetric(float64(p99(singleLat).Microseconds())/1000, "single-p99-ms")
			b.ReportMetric(perSec/singlePerSec, "cluster/single")
			b.ReportMetric(float64(retries), "retries")
			if termAfter := term(); termAfter != termBefore {
				b.Logf("elections during the run: term %s to %s", termBefore, termAfter)
			}
		})
	}
}

// BenchmarkFailover kills the leader b.N times while both followers take
// appends from 16 appenders each, and measures the time from the kill to
// the first acknowledged append submitted after it. The killed node is
// restarted and caught up before the next round.
func BenchmarkFailover(b *testing.B) {
	nodes := benchCluster(b, 3, nil)
	payload := make([]byte, 512)
	var times []time.Duration
	for round := range b.N {
		leader := benchLeader(b, nodes...)
		var killedAt atomic.Int64 // Unix ns; 0 before the kill
		var firstAck atomic.Int64 // Unix ns of the first ack of an append sent after the kill
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var acks atomic.Int64
		for _, n := range nodes {
			if n == leader {
				continue
			}
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						sent := time.Now().UnixNano()
						req := fmt.Sprintf("r%d-%s-%d-%d", round, n.id, w, i)
						e := ledger.Entry{Kind: ledger.KindSegment, Tenant: "bench", Encounter: "enc", Actor: "bench", Payload: payload}
						ctx, cancel := context.WithTimeout(ledger.WithRequestID(context.Background(), req), 30*time.Second)
						_, err := n.node.Append(ctx, []ledger.Entry{e})
						cancel()
						if err != nil {
							// Outcome unknown or no leader: a client retries
							// (a new id here: only acks are measured).
							time.Sleep(10 * time.Millisecond)
							continue
						}
						acks.Add(1)
						if k := killedAt.Load(); k != 0 && sent > k {
							firstAck.CompareAndSwap(0, time.Now().UnixNano())
						}
					}
				}()
			}
		}
		// Let the load settle, then kill.
		for acks.Load() < 200 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		killedAt.Store(time.Now().UnixNano())
		leader.kill()
		deadline := time.Now().Add(60 * time.Second)
		for firstAck.Load() == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("round %d: no append acknowledged within a minute of the kill", round)
			}
			time.Sleep(time.Millisecond)
		}
		times = append(times, time.Duration(firstAck.Load()-killedAt.Load()))
		close(stop)
		wg.Wait()
		leader.start(b, false)
		benchSettle(b, nodes...)
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-ms")
	b.Logf("failover times (N=%d): %v", b.N, times)
}

// BenchmarkCatchUp stops a follower, appends b.N entries of 512 bytes in
// appends of 2,000 from 8 appenders, has the leader snapshot, appends
// 20,000 more, restarts the follower and measures the time until it has
// applied the leader's whole tree. In "snapshot" the live nodes' logs keep 16
// raft entries after the snapshot, so the follower must install the
// snapshot and then replay the trailing log; in "log" it keeps the default
// 10,240 raft entries, which here (appends of 2,000 entries, several per
// raft entry) hold everything the follower missed, so it replays the log.
func BenchmarkCatchUp(b *testing.B) {
	for _, mode := range []struct {
		name     string
		trailing uint64
	}{{"snapshot", 16}, {"log", 0}} {
		b.Run(mode.name, func(b *testing.B) { benchCatchUp(b, mode.trailing) })
	}
}

func benchCatchUp(b *testing.B, trailing uint64) {
	nodes := benchCluster(b, 3, func(c *Config) {
		c.TrailingLogs = trailing
		c.SnapshotThreshold = 1 << 40 // only the explicit snapshot below
	})
	ctx := context.Background()
	lag := nodes[2]
	lag.kill()
	leader := benchLeader(b, nodes[:2]...)
	payload := make([]byte, 512)
	rand.Read(payload)
	batch := make([]ledger.Entry, 2000)
	for i := range batch {
		batch[i] = ledger.Entry{Kind: ledger.KindSegment, Tenant: "bench", Encounter: "enc-" + strconv.Itoa(i%100), Actor: "bench", Payload: payload}
	}
	var retries atomic.Int64
	load := func(total int) error {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(int64(len(batch))) - int64(len(batch))
					if i >= int64(total) {
						return
					}
					n := min(len(batch), total-int(i))
					// Retried like a client when the outcome is unknown.
					req := fmt.Sprintf("c%d-%d", total, i)
					for try := 0; ; try++ {
						_, err := leader.node.Append(ledger.WithRequestID(ctx, req), batch[:n])
						if err == nil {
							break
						}
						if try == 100 || !(errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrNoLeader)) {
							errs <- err
							return
						}
						retries.Add(1)
						time.Sleep(10 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
	t0 := time.Now()
	if err := load(b.N); err != nil {
		b.Fatal(err)
	}
	loadTime := time.Since(t0)
	// Both live nodes snapshot (and compact their logs), so that the
	// follower needs the snapshot whichever of them leads when it returns.
	t0 = time.Now()
	for _, n := range nodes[:2] {
		if err := n.node.Raft().Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			b.Fatal(err)
		}
	}
	snapTime := time.Since(t0) / 2
	if err := load(20000); err != nil {
		b.Fatal(err)
	}
	benchSettle(b, nodes[:2]...)
	var snapBytes int64
	if snaps, err := leader.node.snaps.List(); err == nil && len(snaps) > 0 {
		snapBytes = snaps[0].Size
	}
	leader = benchLeader(b, nodes[:2]...)
	first, _ := leader.node.rstore.FirstIndex()
	want := leader.log.Size()
	if want != int64(b.N)+20000 {
		// A retried append recorded twice would show here.
		b.Fatalf("the leader holds %d entries after appending %d", want, b.N+20000)
	}
	b.ResetTimer()
	t0 = time.Now()
	lag.start(b, false)
	for lag.log.Size() < want {
		if time.Since(t0) > time.Hour {
			b.Fatal("the follower did not catch up within an hour")
		}
		time.Sleep(5 * time.Millisecond)
	}
	catchUp := time.Since(t0)
	b.StopTimer()
	if lag.log.Checkpoint().Root != leader.log.Checkpoint().Root {
		b.Fatal("the follower caught up to a different root")
	}
	b.ReportMetric(catchUp.Seconds(), "catchup-s")
	b.ReportMetric(float64(b.N)/loadTime.Seconds(), "load-entries/s")
	b.ReportMetric(snapTime.Seconds(), "snapshot-s")
	b.ReportMetric(float64(snapBytes)/(1<<20), "snapshot-MiB")
	b.ReportMetric(float64(retries.Load()), "retries")
	b.Logf("%d entries behind (+20,000 after the snapshot): caught up in %v; leader's raft log starts at %d, follower's snapshot index %s; snapshot %.0f MiB taken in %v; loaded at %.0f entries/s",
		b.N, catchUp, first, lag.node.Raft().Stats()["last_snapshot_index"], float64(snapBytes)/(1<<20), snapTime, float64(b.N)/loadTime.Seconds())
}
