package index

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"

	"github.com/evidenceledger/evidence/ledger"
)

// Source is the log an Index is derived from. *ledger.Log implements it.
type Source interface {
	// Size returns the number of entries in the log.
	Size() int64
	// Wait blocks until the log holds more than size entries.
	Wait(ctx context.Context, size int64) (*ledger.Checkpoint, error)
	// Entry returns entry i, checked against the tree.
	Entry(i int64) (*ledger.StoredEntry, error)
	// Payload returns entry i and its payload, checked against its
	// commitment; an error wrapping ledger.ErrRedacted once destroyed.
	// The entry is returned whenever it could be read.
	Payload(i int64) ([]byte, *ledger.StoredEntry, error)
}

// Options configure an Index.
type Options struct {
	// BatchEntries caps the log entries applied in one index batch.
	// Default 2,048.
	BatchEntries int
	// Logger receives operational messages: leaf indexes and counts,
	// never text. Default: discard.
	Logger *slog.Logger
	// OnBatch, when set, is called after each batch is durable with the
	// number of entries applied so far and the log size being caught up
	// to. It runs on the indexing goroutine and must be quick.
	OnBatch func(applied, target int64)
}

func (o *Options) setDefaults() {
	if o.BatchEntries <= 0 {
		o.BatchEntries = 2048
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// formatVersion names the layout, document schema and analysis. An index
// written in another format is a DivergedError: it is rebuilt, never
// migrated.
const formatVersion = "evidence-index-4"

// Internal (non-document) keys of a tenant index, written in the same
// batch as the documents they describe.
var (
	keyFormat  = []byte("format")
	keyApplied = []byte("applied") // count(8): this tenant's entries below it are applied
)

// noteKeyPrefix prefixes the internal key holding an encounter's current
// note sentences: "note/" tenant 0x00 encounter.
const noteKeyPrefix = "note/"

// stateFile records the entries applied to every tenant index.
const stateFile = "applied.json"

// state is the content of stateFile.
type state struct {
	Format   string `json:"format"`
	Applied  int64  `json:"applied"`
	LastHash string `json:"last_leaf_hash"` // hex leaf hash of entry applied-1
}

// Index is the full-text index of one log: a derived view that can be
// dropped and rebuilt from the log at any time, giving the same answers.
//
// Each tenant has its own bleve index under dir/tenants, so a search can
// only ever read its tenant's documents, and relevance statistics are the
// tenant's own. A tenant index records how many log entries it has applied
// in the same atomic batch as the documents they produced; dir/applied.json
// records the position every tenant index has reached. After a crash,
// indexing resumes from that position and each tenant index skips the
// entries it already holds, so nothing is skipped or applied twice.
//
// It is safe for concurrent use: one goroutine applies entries (CatchUp,
// Follow) while any number search. Writes (batches, DeleteEncounter) are
// serialized.
type Index struct {
	src  Source
	dir  string
	opts Options

	// applied mirrors mu.applied for searches, which do not take mu.
	applied atomic.Int64

	// mu serializes writes and guards the write state.
	mu struct {
		sync.Mutex
		applied  int64       // entries [0, applied) are in the tenant indexes
		lastHash ledger.Hash // leaf hash of entry applied-1
		closed   bool
		// epoch counts DeleteEncounter calls; prefetch reads the next
		// run of entries while a batch is written.
		epoch    uint64
		prefetch *prefetch
	}

	// tenants holds the open tenant indexes. Writers add to it while
	// holding mu; searches read it.
	tenants struct {
		sync.RWMutex
		m map[string]*tenantIndex
	}

	// beforeCommit, when set (by tests), runs just before each batch is
	// handed to bleve.
	beforeCommit func(from, to int64)
}

// tenantIndex is one tenant's bleve index. applied and notes are guarded
// by Index.mu.
type tenantIndex struct {
	tenant  string
	bleve   bleve.Index
	applied int64
	// notes caches persisted note states by noteKey. It only receives
	// states a successful batch wrote.
	notes map[string]*noteState
}

// Open opens the index kept in dir, creating an empty one if dir does not
// exist, and checks that it is a view of src: it must not record more
// entries than src holds, and its last applied entry must be src's entry
// at that index. If not, Open returns a *DivergedError and the caller drops
// the index (Remove) and opens it again to rebuild it.
func Open(dir string, src Source, opts Options) (*Index, error) {
	opts.setDefaults()
	x := &Index{src: src, dir: dir, opts: opts}
	x.tenants.m = map[string]*tenantIndex{}
	if err := os.MkdirAll(filepath.Join(dir, "tenants"), 0o700); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if err := x.load(); err != nil {
		x.closeTenants()
		return nil, err
	}
	return x, nil
}

// load reads the applied position, checks it against the log and opens
// the tenant indexes.
func (x *Index) load() error {
	var st state
	b, err := os.ReadFile(filepath.Join(x.dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// A new index, or one that crashed before its first batch
		// completed: every tenant index skips what it already holds.
		st = state{Format: formatVersion}
	case err != nil:
		return fmt.Errorf("index: %w", err)
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return &DivergedError{Detail: "malformed " + stateFile}
		}
	}
	if st.Format != formatVersion {
		return &DivergedError{Detail: fmt.Sprintf("format %q, want %q", st.Format, formatVersion)}
	}
	var last ledger.Hash
	if st.Applied > 0 {
		h, err := hex.DecodeString(st.LastHash)
		if err != nil || len(h) != ledger.HashSize {
			return &DivergedError{Detail: "malformed " + stateFile}
		}
		copy(last[:], h)
	}
	size := x.src.Size()
	if st.Applied < 0 || st.Applied > size {
		return &DivergedError{Detail: fmt.Sprintf("the index has applied %d entries, the log holds %d", st.Applied, size)}
	}
	if st.Applied > 0 {
		e, err := x.src.Entry(st.Applied - 1)
		if err != nil {
			return fmt.Errorf("index: check entry %d: %w", st.Applied-1, err)
		}
		if e.Hash != last {
			return &DivergedError{Detail: fmt.Sprintf("entry %d of the log is not the entry the index applied", st.Applied-1)}
		}
	}
	x.mu.applied, x.mu.lastHash = st.Applied, last
	x.applied.Store(st.Applied)

	names, err := os.ReadDir(filepath.Join(x.dir, "tenants"))
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	for _, n := range names {
		if !n.IsDir() || strings.HasSuffix(n.Name(), ".new") {
			continue
		}
		tb, err := hex.DecodeString(n.Name())
		if err != nil {
			return &DivergedError{Detail: "unexpected directory in tenants/"}
		}
		t, err := openTenant(filepath.Join(x.dir, "tenants", n.Name()), string(tb), size)
		if err != nil {
			return err
		}
		x.tenants.m[t.tenant] = t
	}
	return nil
}

func (x *Index) tenantDir(tenant string) string {
	return filepath.Join(x.dir, "tenants", hex.EncodeToString([]byte(tenant)))
}

// openTenant opens (or creates) a tenant index and reads its position.
func openTenant(dir, tenant string, logSize int64) (*tenantIndex, error) {
	b, err := openOrCreate(dir)
	if err != nil {
		return nil, err
	}
	t := &tenantIndex{tenant: tenant, bleve: b, notes: map[string]*noteState{}}
	fail := func(err error) (*tenantIndex, error) {
		b.Close()
		return nil, err
	}
	f, err := b.GetInternal(keyFormat)
	if err != nil {
		return fail(fmt.Errorf("index: read format: %w", err))
	}
	if string(f) != formatVersion {
		return fail(&DivergedError{Detail: fmt.Sprintf("tenant index format %q, want %q", f, formatVersion)})
	}
	v, err := b.GetInternal(keyApplied)
	if err != nil {
		return fail(fmt.Errorf("index: read applied position: %w", err))
	}
	switch len(v) {
	case 0:
	case 8:
		t.applied = int64(binary.BigEndian.Uint64(v))
	default:
		return fail(&DivergedError{Detail: "malformed tenant applied position"})
	}
	if t.applied < 0 || t.applied > logSize {
		return fail(&DivergedError{Detail: fmt.Sprintf("a tenant index has applied %d entries, the log holds %d", t.applied, logSize)})
	}
	return t, nil
}

// openOrCreate opens the bleve index at dir, creating an empty one if dir
// does not exist.
func openOrCreate(dir string) (bleve.Index, error) {
	b, err := bleve.Open(dir)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		if errors.Is(err, bleve.ErrorIndexMetaMissing) || errors.Is(err, bleve.ErrorIndexMetaCorrupt) {
			return nil, &DivergedError{Detail: "an index directory is incomplete: " + err.Error()}
		}
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	// Build the empty index beside dir and rename it into place, so a
	// crash never leaves a half-created index at dir.
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	nb, err := bleve.NewUsing(tmp, newMapping(), scorch.Name, scorch.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("index: create: %w", err)
	}
	err = nb.SetInternal(keyFormat, []byte(formatVersion))
	if cerr := nb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("index: create: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("index: create: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	b, err = bleve.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	return b, nil
}

// tenantForWrite returns the tenant's index, creating it if needed. The
// caller holds mu.
func (x *Index) tenantForWrite(tenant string) (*tenantIndex, error) {
	if t := x.tenant(tenant); t != nil {
		return t, nil
	}
	t, err := openTenant(x.tenantDir(tenant), tenant, x.src.Size())
	if err != nil {
		return nil, err
	}
	x.tenants.Lock()
	x.tenants.m[tenant] = t
	x.tenants.Unlock()
	return t, nil
}

// tenant returns the tenant's open index, or nil if it has none.
func (x *Index) tenant(tenant string) *tenantIndex {
	x.tenants.RLock()
	defer x.tenants.RUnlock()
	return x.tenants.m[tenant]
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("index: sync %s: %w", dir, err)
	}
	return nil
}

// writeState records the applied position durably: a temporary file,
// fsync, rename, fsync of the directory.
func (x *Index) writeState(applied int64, last ledger.Hash) error {
	st := state{Format: formatVersion, Applied: applied}
	if applied > 0 {
		st.LastHash = hex.EncodeToString(last[:])
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	path := filepath.Join(x.dir, stateFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("index: write %s: %w", stateFile, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return syncDir(x.dir)
}

// Remove drops the index kept in dir. The index must be closed.
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("index: remove: %w", err)
	}
	return nil
}

// Applied returns the number of log entries the index has applied: every
// entry below it, and none at or above it, is reflected in searches.
func (x *Index) Applied() int64 { return x.applied.Load() }

// Close closes the index. Stop CatchUp and Follow first. Close may be
// called more than once.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.mu.closed {
		return nil
	}
	x.mu.closed = true
	x.waitPrefetch()
	return x.closeTenants()
}

func (x *Index) closeTenants() error {
	x.tenants.Lock()
	defer x.tenants.Unlock()
	var errs []error
	for _, t := range x.tenants.m {
		errs = append(errs, t.bleve.Close())
	}
	clear(x.tenants.m)
	return errors.Join(errs...)
}

// DocCount returns the number of documents in the index.
func (x *Index) DocCount() (uint64, error) {
	x.tenants.RLock()
	defer x.tenants.RUnlock()
	var n uint64
	for _, t := range x.tenants.m {
		c, err := t.bleve.DocCount()
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// tenantNames returns the tenants with an index, sorted.
func (x *Index) tenantNames() []string {
	x.tenants.RLock()
	defer x.tenants.RUnlock()
	names := make([]string, 0, len(x.tenants.m))
	for n := range x.tenants.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Stats describe the index's storage, summed over the tenant indexes.
type Stats struct {
	Tenants   int
	Documents uint64
	// Segments is the number of segments searches read; fewer is faster.
	Segments  int
	DiskBytes uint64
	// Settling reports that bleve is still merging or persisting
	// segments in the background after recent batches.
	Settling bool
}

// Stats returns the index's current storage statistics.
func (x *Index) Stats() (Stats, error) {
	x.tenants.RLock()
	defer x.tenants.RUnlock()
	st := Stats{Tenants: len(x.tenants.m)}
	for _, t := range x.tenants.m {
		n, err := t.bleve.DocCount()
		if err != nil {
			return st, err
		}
		st.Documents += n
		adv, err := t.bleve.Advanced()
		if err != nil {
			return st, err
		}
		sm, ok := adv.(interface{ StatsMap() map[string]any })
		if !ok {
			continue
		}
		m := sm.StatsMap()
		u := func(k string) uint64 { v, _ := m[k].(uint64); return v }
		st.Segments += int(u("num_root_memorysegments") + u("num_root_filesegments"))
		st.DiskBytes += u("CurOnDiskBytes")
		if active, _ := m["index_bgthreads_active"].(bool); active {
			st.Settling = true
		}
	}
	return st, nil
}
