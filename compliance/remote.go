package compliance

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/evidenceledger/evidence/ledger"
)

// LogSource is what VerifyLog reads: a log's latest checkpoint, its stored
// checkpoints and its entries, as a server serves them. Nothing it returns
// is trusted.
type LogSource interface {
	// Checkpoints calls fn with every stored signed checkpoint, oldest
	// first, with the tree size the source says it is for.
	Checkpoints(ctx context.Context, fn func(size int64, signed []byte) error) error
	// Entries calls fn with the leaf data of entries 0, 1, ... below size,
	// in order, with the index and leaf hash the source claims for each.
	Entries(ctx context.Context, size int64, fn func(index int64, data, claimedHash []byte) error) error
}

// LogCheckOptions configure VerifyLog.
type LogCheckOptions struct {
	// Verifier is the trusted checkpoint key.
	Verifier note.Verifier
	// Latest is the signed checkpoint to check the log against, already
	// verified by the caller against its trusted state (see
	// grpcapi/client.Client.LatestCheckpoint).
	Latest []byte
	// TrustedSize and TrustedRoot, when TrustedSize > 0, are a checkpoint
	// trusted before; the recomputed tree must extend it.
	TrustedSize int64
	TrustedRoot []byte
	// Progress, if not nil, is called now and then with entries checked
	// and the total.
	Progress func(done, total int64)
	// MaxProblems stops the check after this many problems (default 100).
	MaxProblems int
}

// LogReport is the outcome of VerifyLog: the ledger's own report (leaves,
// checkpoints, encounters and problems; no payloads) and notes on what a
// remote check cannot cover.
type LogReport struct {
	ledger.VerifyReport
	Notes []string `json:"notes"`
}

// VerifyLog checks a log through a LogSource, trusting only the verifier
// key and the caller's trusted checkpoint: it recomputes every leaf hash
// from the leaf data and the whole tree (with transparency-dev compact
// ranges), checks that it hashes to the latest checkpoint's root and
// extends the trusted checkpoint, checks every stored checkpoint's
// signature and root against the tree at its size (which also proves each
// consistent with the ones before), and walks every encounter chain.
// Payloads are not served remotely, so they are not checked: VerifyLog says
// so in Notes; evidencectl verify --data-dir checks them offline.
//
// It returns an error only when the source fails; a damaged log is a report
// with problems.
func VerifyLog(ctx context.Context, src LogSource, opts LogCheckOptions) (*LogReport, error) {
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 100
	}
	rep := &LogReport{VerifyReport: ledger.VerifyReport{Problems: []ledger.Problem{}}, Notes: []string{
		"payloads are not readable remotely: their commitments were not checked (run evidencectl verify --data-dir on the server's data directory)",
		"tile hashes are the server's internal copy of the tree: the tree was recomputed from the entries instead",
	}}
	v := &logChecker{rep: rep, max: opts.MaxProblems, chains: map[string]*chainHead{}}
	err := v.run(ctx, src, opts)
	if errors.Is(err, errEnough) {
		err = nil
	}
	return rep, err
}

var errEnough = errors.New("too many problems")

type chainHead struct {
	count uint64
	last  ledger.Hash
}

type logChecker struct {
	rep    *LogReport
	max    int
	chains map[string]*chainHead
}

func (v *logChecker) problem(check string, index int64, detail string, expected, found []byte) error {
	p := ledger.Problem{Check: check, Index: index, Detail: detail}
	if expected != nil || found != nil {
		p.Expected, p.Found = hex.EncodeToString(expected), hex.EncodeToString(found)
	}
	v.rep.Problems = append(v.rep.Problems, p)
	if len(v.rep.Problems) >= v.max {
		return errEnough
	}
	return nil
}

type sizedRoot struct {
	size int64
	root []byte
}

func (v *logChecker) run(ctx context.Context, src LogSource, opts LogCheckOptions) error {
	latest, _, _, err := log.ParseCheckpoint(opts.Latest, opts.Verifier.Name(), opts.Verifier)
	if err != nil {
		return v.problem("checkpoint", -1, "the latest checkpoint does not verify: "+err.Error(), nil, nil)
	}
	size := int64(latest.Size)
	v.rep.TreeSize, v.rep.RootHash = size, hex.EncodeToString(latest.Hash)
	if opts.TrustedSize > size {
		return v.problem("checkpoint", -1, fmt.Sprintf("the log has %d entries, fewer than the %d of the trusted checkpoint", size, opts.TrustedSize), nil, nil)
	}

	// Every stored checkpoint's signature, kept by size for the tree walk.
	var cps []sizedRoot
	err = src.Checkpoints(ctx, func(claimed int64, signed []byte) error {
		v.rep.Checkpoints++
		cp, _, _, err := log.ParseCheckpoint(signed, opts.Verifier.Name(), opts.Verifier)
		if err != nil {
			return v.problem("checkpoint", claimed, fmt.Sprintf("stored checkpoint of size %d does not verify: %v", claimed, err), nil, nil)
		}
		if int64(cp.Size) != claimed {
			return v.problem("checkpoint", claimed, fmt.Sprintf("checkpoint listed for size %d says size %d", claimed, cp.Size), nil, nil)
		}
		if int64(cp.Size) <= size {
			cps = append(cps, sizedRoot{int64(cp.Size), cp.Hash})
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(cps, func(i, j int) bool { return cps[i].size < cps[j].size })
	if opts.TrustedSize > 0 {
		cps = append(cps, sizedRoot{opts.TrustedSize, opts.TrustedRoot})
	}
	cps = append(cps, sizedRoot{size, latest.Hash})
	sort.SliceStable(cps, func(i, j int) bool { return cps[i].size < cps[j].size })

	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	at := 0
	checkRoots := func(n int64) error {
		for at < len(cps) && cps[at].size <= n {
			c := cps[at]
			at++
			if c.size < n {
				continue
			}
			root := rfc6962.DefaultHasher.EmptyRoot()
			if n > 0 {
				if root, err = rng.GetRootHash(nil); err != nil {
					return err
				}
			}
			if !bytes.Equal(root, c.root) {
				what := "stored checkpoint"
				switch {
				case c.size == size && bytes.Equal(c.root, latest.Hash):
					what = "latest checkpoint"
				case c.size == opts.TrustedSize && bytes.Equal(c.root, opts.TrustedRoot):
					what = "trusted checkpoint"
				}
				if err := v.problem("checkpoint", c.size, fmt.Sprintf("the %s of size %d does not match the tree recomputed from the entries", what, c.size), root, c.root); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := checkRoots(0); err != nil {
		return err
	}
	next := int64(0)
	err = src.Entries(ctx, size, func(idx int64, data, claimed []byte) error {
		if idx != next {
			if err := v.problem("leaf", next, fmt.Sprintf("the server sent entry %d where %d was due: missing, reordered, or hidden from this identity (a whole-log check needs an operator identity, which sees every tenant's leaves)", idx, next), nil, nil); err != nil {
				return err
			}
			return errEnough
		}
		lh := rfc6962.DefaultHasher.HashLeaf(data)
		if claimed != nil && !bytes.Equal(lh, claimed) {
			if err := v.problem("leaf", idx, "the leaf hash the server sent differs from the hash of the leaf data", lh, claimed); err != nil {
				return err
			}
		}
		if err := rng.Append(lh, nil); err != nil {
			return err
		}
		v.rep.Leaves++
		next++
		if err := v.chain(idx, data, ledger.Hash(lh)); err != nil {
			return err
		}
		if err := checkRoots(next); err != nil {
			return err
		}
		if opts.Progress != nil && next%10_000 == 0 {
			opts.Progress(next, size)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return err
	}
	if opts.Progress != nil {
		opts.Progress(next, size)
	}
	if next < size && !errors.Is(err, errEnough) {
		return v.problem("leaf", next, fmt.Sprintf("the server sent %d entries, the latest checkpoint covers %d (a tenant identity is not sent other tenants' leaves)", next, size), nil, nil)
	}
	return err
}

// chain checks one leaf's encoding and its link in its encounter's chain.
func (v *logChecker) chain(idx int64, data []byte, lh ledger.Hash) error {
	leaf, err := ledger.DecodeLeaf(data)
	if err != nil {
		return v.problem("leaf", idx, "leaf data does not decode: "+err.Error(), nil, nil)
	}
	k := leaf.Tenant + "\x00" + leaf.Encounter
	c := v.chains[k]
	if c == nil {
		c = &chainHead{}
		v.chains[k] = c
		v.rep.Encounters++
	}
	var perr error
	switch {
	case leaf.Seq != c.count:
		perr = v.problem("chain", idx, fmt.Sprintf("encounter chain position %d, want %d (an entry is missing, added or reordered)", leaf.Seq, c.count), nil, nil)
	case leaf.Prev != c.last:
		perr = v.problem("chain", idx, "previous-leaf hash does not match the encounter's previous entry", c.last[:], leaf.Prev[:])
	}
	c.count, c.last = leaf.Seq+1, lh
	return perr
}
