package ledgerbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// Fill grows l to at least n entries of payloadSize bytes, appending in large
// requests with several in flight, as a bulk import would. progress, if not
// nil, is called after each request with the log size.
func Fill(ctx context.Context, l *ledger.Appender, n int64, payloadSize int, progress func(size int64)) error {
	const per, inflight = 5000, 4
	payload := make([]byte, payloadSize)
	var window []*ledger.Pending
	for added := l.Size(); added < n; {
		k := int(min(per, n-added))
		batch := make([]ledger.Entry, k)
		for i := range batch {
			batch[i] = ledger.Entry{Kind: ledger.KindSegment, Tenant: "bench", Encounter: fmt.Sprintf("enc-%d", (added+int64(i))%1000), Actor: "bench", Payload: payload}
		}
		p, err := l.AppendAsync(ctx, batch)
		if err != nil {
			return err
		}
		added += int64(k)
		window = append(window, p)
		if len(window) == inflight {
			if _, err := window[0].Wait(); err != nil {
				return err
			}
			window = window[1:]
			if progress != nil {
				progress(l.Size())
			}
		}
	}
	for _, p := range window {
		if _, err := p.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// Latency summarises a set of timings.
type Latency struct {
	N             int
	P50, P99, Max time.Duration
}

func (l Latency) String() string {
	return fmt.Sprintf("p50 %v, p99 %v, max %v over %d", l.P50, l.P99, l.Max, l.N)
}

func summarise(d []time.Duration) Latency {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	if len(d) == 0 {
		return Latency{}
	}
	return Latency{N: len(d), P50: d[len(d)/2], P99: d[len(d)*99/100], Max: d[len(d)-1]}
}

// ProofLatency times n inclusion proofs of random entries and n consistency
// proofs from random earlier sizes, all against the current tree.
func ProofLatency(l *ledger.Log, n int, seed uint64) (inclusion, consistency Latency, err error) {
	size := l.Size()
	if size == 0 {
		return Latency{}, Latency{}, fmt.Errorf("empty log")
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	inc := make([]time.Duration, 0, n)
	con := make([]time.Duration, 0, n)
	for range n {
		idx := rng.Int64N(size)
		t0 := time.Now()
		if _, err := l.InclusionProof(idx, size); err != nil {
			return Latency{}, Latency{}, err
		}
		inc = append(inc, time.Since(t0))
		old := 1 + rng.Int64N(size)
		t0 = time.Now()
		if _, err := l.ConsistencyProof(old, size); err != nil {
			return Latency{}, Latency{}, err
		}
		con = append(con, time.Since(t0))
	}
	return summarise(inc), summarise(con), nil
}

// Reopen times opening the store in dir and the log on it, n times, and
// returns the median. The log must be closed.
func Reopen(open func(dir string) (storage.Store, error), dir string, opts ledger.Options, n int) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		t0 := time.Now()
		s, err := open(dir)
		if err != nil {
			return 0, err
		}
		l, err := ledger.Open(s, opts)
		if err != nil {
			s.Close()
			return 0, err
		}
		ds = append(ds, time.Since(t0))
		l.Close()
		s.Close()
	}
	return summarise(ds).P50, nil
}
