package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/ledger/storage"
	"github.com/evidenceledger/evidence/ledger/tree"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	Origin   string
	Verifier note.Verifier
	// Sealer opens payloads; nil means they are stored as they are.
	Sealer Sealer
	// Progress, if not nil, is called now and then with the entries
	// checked so far and the total.
	Progress func(done, total int64)
	// MaxProblems stops the check after this many problems (default 100).
	MaxProblems int
	// Anchors are checkpoints the log is known to have published (the
	// high-water checkpoint, one a client or a witness kept): the store
	// must hold each one's tree, at least as many entries with the same
	// root at its size. One it does not hold is a "rollback" problem
	// (the store is behind it: rolled back or truncated) or a "fork"
	// problem (another tree of that size).
	Anchors []Anchor
}

// Anchor is a signed checkpoint that Verify holds the store to.
type Anchor struct {
	Name string // for the report, e.g. "the high-water checkpoint"
	Note []byte // the signed checkpoint note; extra signatures are ignored
}

// anchor is a verified Anchor.
type anchor struct {
	name string
	cp   *Checkpoint
}

// Problem is one failed check: which check, where, and what was expected
// and found.
type Problem struct {
	Check    string `json:"check"`
	Index    int64  `json:"index"` // the leaf index, or -1
	Detail   string `json:"detail"`
	Expected string `json:"expected,omitempty"`
	Found    string `json:"found,omitempty"`
}

func (p Problem) String() string {
	s := p.Check
	if p.Index >= 0 {
		s += fmt.Sprintf(" at leaf %d", p.Index)
	}
	s += ": " + p.Detail
	if p.Expected != "" || p.Found != "" {
		s += fmt.Sprintf(" (expected %s, found %s)", p.Expected, p.Found)
	}
	return s
}

// VerifyReport is the outcome of Verify. The log is intact when Problems is
// empty.
type VerifyReport struct {
	TreeSize    int64     `json:"tree_size"`
	RootHash    string    `json:"root_hash"`
	Leaves      int64     `json:"leaves"`
	Checkpoints int       `json:"checkpoints"`
	Encounters  int       `json:"encounters"`
	Payloads    int64     `json:"payloads"`
	Redacted    int64     `json:"redacted"`
	Problems    []Problem `json:"problems"`
}

// Verify checks a whole log in store from scratch, trusting nothing stored
// but the verifier key: it recomputes every leaf hash and the whole tree
// (with transparency-dev's compact ranges, not the log's own tree code),
// compares every stored tile hash with it, checks every stored checkpoint's
// signature, origin and root against the recomputed tree (which also proves
// each consistent with the one before), walks every encounter chain, and
// checks every payload against its commitment, counting destroyed payloads
// as redacted rather than as problems.
//
// It reads the store directly and needs no Log, so it can run on a stopped
// server's data directory. It returns an error only when it cannot read the
// store; a damaged log is a report with problems.
func Verify(ctx context.Context, store storage.Store, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Sealer == nil {
		opts.Sealer = plainSealer{}
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 100
	}
	v := &verifier{store: store, opts: opts, rep: &VerifyReport{}, chains: make(map[string]*chainState),
		destroyed: make(map[string]int64), redactions: make(map[string]bool)}
	err := v.run(ctx)
	if errors.Is(err, errTooManyProblems) {
		err = nil
	}
	return v.rep, err
}

var errTooManyProblems = errors.New("too many problems")

type chainState struct {
	count uint64
	last  Hash
	index int64
}

type verifier struct {
	store  storage.Store
	opts   VerifyOptions
	rep    *VerifyReport
	chains map[string]*chainState
	// destroyed lists, per encounter, the first entry whose payload was
	// found destroyed; redactions marks encounters with a redaction entry.
	// A payload may be destroyed only by a recorded redaction.
	destroyed  map[string]int64
	redactions map[string]bool
	tiles      map[tileID]*tree.Tile // stored tiles being compared, one per level
}

func (v *verifier) problem(check string, index int64, detail string, expected, found []byte) error {
	p := Problem{Check: check, Index: index, Detail: detail}
	if expected != nil || found != nil {
		p.Expected, p.Found = hex.EncodeToString(expected), hex.EncodeToString(found)
	}
	v.rep.Problems = append(v.rep.Problems, p)
	if len(v.rep.Problems) >= v.opts.MaxProblems {
		return errTooManyProblems
	}
	return nil
}

type storedCheckpoint struct {
	size int64
	note []byte
}

func (v *verifier) run(ctx context.Context) error {
	// The latest checkpoint fixes the size the log claims.
	state, err := v.store.Get([]byte(keyState))
	if errors.Is(err, storage.ErrNotFound) {
		return v.problem("checkpoint", -1, "the log has no checkpoint", nil, nil)
	}
	if err != nil {
		return err
	}
	latest, err := OpenCheckpoint(state, v.opts.Origin, v.opts.Verifier)
	if err != nil {
		if err := v.problem("checkpoint", -1, "the latest checkpoint does not verify: "+err.Error(), nil, nil); err != nil {
			return err
		}
	}
	var cps []storedCheckpoint
	err = v.store.Scan([]byte{prefixCheckpoint}, []byte{prefixCheckpoint + 1}, func(k, val []byte) error {
		if len(k) != 9 {
			return v.problem("checkpoint", -1, "malformed checkpoint key", nil, nil)
		}
		cps = append(cps, storedCheckpoint{int64(binary.BigEndian.Uint64(k[1:])), bytes.Clone(val)})
		return nil
	})
	if err != nil {
		return err
	}
	v.rep.Checkpoints = len(cps)
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	var anchors []anchor
	for _, a := range v.opts.Anchors {
		if a.Note == nil {
			if latest != nil && latest.Size > 0 {
				if err := v.problem("anchor", -1, a.Name+" is missing: nothing shows whether the store holds every entry the log published", nil, nil); err != nil {
					return err
				}
			}
			continue
		}
		cp, err := OpenCheckpoint(a.Note, v.opts.Origin, v.opts.Verifier)
		if err != nil {
			if err := v.problem("anchor", -1, a.Name+" does not verify with the log's key: "+err.Error(), nil, nil); err != nil {
				return err
			}
			continue
		}
		anchors = append(anchors, anchor{a.Name, cp})
	}
	checkAnchors := func(n int64) error {
		for _, a := range anchors {
			if a.cp.Size != n {
				continue
			}
			root, err := rootOf(rng)
			if err != nil {
				return err
			}
			if root != a.cp.Root {
				if err := v.problem("fork", -1, fmt.Sprintf("the store's tree of size %d is not the one %s signs: the log was rolled back and rewritten, or this is another log", n, a.name), a.cp.Root[:], root[:]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	size := int64(-1)
	if latest != nil {
		size = latest.Size
		v.rep.TreeSize, v.rep.RootHash = latest.Size, hex.EncodeToString(latest.Root[:])
		if len(cps) == 0 || cps[len(cps)-1].size != latest.Size || !bytes.Equal(cps[len(cps)-1].note, state) {
			if err := v.problem("checkpoint", -1, "the latest checkpoint is not the last one stored", nil, nil); err != nil {
				return err
			}
		}
	}

	v.tiles = make(map[tileID]*tree.Tile)
	next := int64(0)
	cpAt := 0
	checkCheckpoints := func(n int64) error {
		for cpAt < len(cps) && cps[cpAt].size <= n {
			c := cps[cpAt]
			cpAt++
			if c.size < n {
				continue // handled when the tree had that size
			}
			root, err := rootOf(rng)
			if err != nil {
				return err
			}
			if err := v.checkCheckpoint(c, root); err != nil {
				return err
			}
		}
		return nil
	}
	if err := checkCheckpoints(0); err != nil {
		return err
	}
	if err := checkAnchors(0); err != nil {
		return err
	}
	visit := func(id compact.NodeID, h []byte) {
		v.compareNode(int(id.Level), int64(id.Index), h)
	}
	err = v.store.Scan([]byte{prefixLeaf}, []byte{prefixLeaf + 1}, func(k, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(k) != 9 {
			return v.problem("leaf", -1, "malformed leaf key", nil, nil)
		}
		idx := int64(binary.BigEndian.Uint64(k[1:]))
		if idx != next {
			// A gap: the tree cannot be recomputed past it.
			if err := v.problem("leaf", next, "leaf data is missing (a deleted entry)", nil, nil); err != nil {
				return err
			}
			return errStopLeaves
		}
		lh := tlog.RecordHash(data)
		if err := rng.Append(lh[:], visit); err != nil {
			return err
		}
		v.rep.Leaves++
		next = idx + 1
		v.checkEntry(idx, bytes.Clone(data), lh)
		if len(v.rep.Problems) >= v.opts.MaxProblems {
			return errTooManyProblems
		}
		if err := checkCheckpoints(next); err != nil {
			return err
		}
		if err := checkAnchors(next); err != nil {
			return err
		}
		if v.opts.Progress != nil && next%10_000 == 0 {
			v.opts.Progress(next, max(size, next))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopLeaves) {
		return err
	}
	if v.opts.Progress != nil {
		v.opts.Progress(next, max(size, next))
	}
	if size >= 0 && next < size {
		if err := v.problem("leaf", next, fmt.Sprintf("the log is truncated: %d entries stored, the signed checkpoint covers %d", next, size), nil, nil); err != nil {
			return err
		}
	}
	if size >= 0 && next > size {
		if err := v.problem("leaf", size, fmt.Sprintf("%d entries are stored beyond the signed checkpoint", next-size), nil, nil); err != nil {
			return err
		}
	}
	for _, a := range anchors {
		if a.cp.Size > next {
			if err := v.problem("rollback", -1, fmt.Sprintf("the store holds %d entries but %s covers %d: the log was rolled back or truncated, and %d acknowledged entries are missing", next, a.name, a.cp.Size, a.cp.Size-next), nil, nil); err != nil {
				return err
			}
		}
	}
	for ; cpAt < len(cps); cpAt++ {
		if err := v.problem("checkpoint", -1, fmt.Sprintf("checkpoint of size %d is beyond the stored entries", cps[cpAt].size), nil, nil); err != nil {
			return err
		}
	}
	if err := v.checkRedactions(); err != nil {
		return err
	}
	return v.checkHeads()
}

var errStopLeaves = errors.New("stop")

func rootOf(r *compact.Range) (Hash, error) {
	if r.End() == 0 {
		return emptyRoot, nil
	}
	b, err := r.GetRootHash(nil)
	if err != nil {
		return Hash{}, err
	}
	return Hash(b), nil
}

func (v *verifier) checkCheckpoint(c storedCheckpoint, root Hash) error {
	cp, err := OpenCheckpoint(c.note, v.opts.Origin, v.opts.Verifier)
	if err != nil {
		return v.problem("checkpoint", c.size, fmt.Sprintf("checkpoint of size %d does not verify: %v", c.size, err), nil, nil)
	}
	if cp.Size != c.size {
		return v.problem("checkpoint", c.size, fmt.Sprintf("checkpoint stored under size %d says size %d", c.size, cp.Size), nil, nil)
	}
	if cp.Root != root {
		return v.problem("checkpoint", c.size, fmt.Sprintf("checkpoint of size %d does not match the recomputed tree", c.size), root[:], cp.Root[:])
	}
	return nil
}

// compareNode checks one recomputed tree node against the stored tile that
// holds it.
func (v *verifier) compareNode(level int, n int64, h []byte) {
	id, row, pos := tree.Locate(level, n)
	t, ok := v.tiles[id]
	if !ok {
		// Moving on to a new tile at this tile level: the previous one is
		// complete.
		for old := range v.tiles {
			if old.L == id.L {
				delete(v.tiles, old)
			}
		}
		data, err := v.store.Get(tileKey(id))
		if errors.Is(err, storage.ErrNotFound) && id.L == 0 && id.N == v.rep.TreeSize/TileWidth {
			// The last bottom tile is not stored until it is full.
			v.tiles[id] = nil
			return
		}
		if err != nil {
			v.problem("tile", -1, fmt.Sprintf("tile %d/%d is missing", id.L, id.N), nil, nil)
			v.tiles[id] = nil
			return
		}
		t, err = decodeTile(id, data)
		if err != nil {
			v.problem("tile", -1, err.Error(), nil, nil)
		}
		v.tiles[id] = t
	}
	if t == nil {
		return
	}
	stored, ok := t.Hash(row, pos)
	if !ok {
		v.problem("tile", -1, fmt.Sprintf("tile %d/%d lacks node %d of level %d", id.L, id.N, n, level), nil, nil)
		return
	}
	if !bytes.Equal(stored[:], h) {
		if level == 0 {
			v.problem("leaf", n, "leaf data does not hash to the leaf hash stored in the tree", stored[:], h)
			return
		}
		v.problem("tile", -1, fmt.Sprintf("stored hash of node %d at level %d (tile %d/%d) differs from the recomputed one", n, level, id.L, id.N), h, stored[:])
	}
}

// checkEntry checks one leaf's encoding, chain link and payload.
func (v *verifier) checkEntry(idx int64, data []byte, lh Hash) {
	leaf, err := DecodeLeaf(data)
	if err != nil {
		v.problem("leaf", idx, "leaf data does not decode: "+err.Error(), nil, nil)
		return
	}
	k := leaf.Tenant + "\x00" + leaf.Encounter
	c := v.chains[k]
	if c == nil {
		c = &chainState{}
		v.chains[k] = c
		v.rep.Encounters++
	}
	switch {
	case leaf.Seq != c.count:
		v.problem("chain", idx, fmt.Sprintf("encounter chain position %d, want %d (an entry is missing, added or reordered)", leaf.Seq, c.count), nil, nil)
	case leaf.Prev != c.last:
		v.problem("chain", idx, "previous-leaf hash does not match the encounter's previous entry", c.last[:], leaf.Prev[:])
	}
	c.count, c.last, c.index = leaf.Seq+1, lh, idx
	if leaf.Kind == KindRedaction {
		v.redactions[k] = true
	}
	if _, err := v.store.Get(encounterIndexKey(leaf.Tenant, leaf.Encounter, idx)); err != nil {
		v.problem("chain", idx, "the encounter index lacks this entry", nil, nil)
	}

	rec, err := v.store.Get(payloadKey(leaf.Commitment))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		v.problem("payload", idx, "payload record is missing", nil, nil)
		return
	case err != nil:
		v.problem("payload", idx, "payload record cannot be read", nil, nil)
		return
	case len(rec) == 1 && rec[0] == payloadRedacted:
		v.rep.Redacted++
		v.noteDestroyed(k, idx)
		return
	case len(rec) < 1+SaltSize || rec[0] != payloadPresent:
		v.problem("payload", idx, "payload record is malformed", nil, nil)
		return
	}
	salt, sealed := rec[1:1+SaltSize], rec[1+SaltSize:]
	plain, err := v.opts.Sealer.Open(leaf.Tenant, leaf.Encounter, leaf.Commitment, sealed)
	if errors.Is(err, ErrRedacted) {
		v.rep.Redacted++
		v.noteDestroyed(k, idx)
		return
	}
	if err != nil {
		v.problem("payload", idx, "payload does not open: "+err.Error(), nil, nil)
		return
	}
	if !checkCommitment(leaf.Commitment, salt, plain) {
		got := Commit(salt, plain)
		v.problem("payload", idx, "payload does not match its commitment", leaf.Commitment[:], got[:])
		return
	}
	v.rep.Payloads++
}

func (v *verifier) noteDestroyed(encounter string, idx int64) {
	if _, ok := v.destroyed[encounter]; !ok {
		v.destroyed[encounter] = idx
	}
}

// checkRedactions reports destroyed payloads of encounters whose chain
// records no redaction: only a recorded shred may destroy a payload.
func (v *verifier) checkRedactions() error {
	for enc, idx := range v.destroyed {
		if !v.redactions[enc] {
			if err := v.problem("payload", idx, "payload destroyed but the encounter has no redaction entry", nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkHeads compares the stored chain heads with the walked chains.
func (v *verifier) checkHeads() error {
	seen := 0
	err := v.store.Scan([]byte{prefixHead}, []byte{prefixHead + 1}, func(k, val []byte) error {
		name := string(k[1:])
		h, err := decodeHead(val)
		if err != nil {
			return v.problem("chain", -1, "malformed chain head", nil, nil)
		}
		c := v.chains[name]
		if c == nil {
			return v.problem("chain", h.Index, "a chain head names an encounter with no entries", nil, nil)
		}
		seen++
		if h.Count != c.count || h.Index != c.index || h.Hash != c.last {
			return v.problem("chain", h.Index, fmt.Sprintf("chain head says %d entries ending at leaf %d; the log has %d ending at %d", h.Count, h.Index, c.count, c.index), nil, nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(v.chains) {
		return v.problem("chain", -1, fmt.Sprintf("%d encounters have entries but no chain head", len(v.chains)-seen), nil, nil)
	}
	return nil
}
