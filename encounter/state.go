package encounter

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/ledger"
)

// state is the decoded chain of one encounter: a view derived from the log.
// It records the last leaf it applied and catches up from the log before
// every use, so it is never stale and can be dropped at any time.
type state struct {
	mu sync.Mutex // held for every read or write of the encounter

	tenant, id string
	head       int64 // index of the last applied entry, -1 before the first
	count      uint64
	// updated is the time of the latest entry that is not an access entry:
	// when the encounter was last written.
	updated time.Time
	// bytes estimates the memory the decoded entries hold (see sizeOf).
	bytes int64

	opened     *Opened
	openedAt   time.Time
	openedLeaf int64
	actor      string

	segments   []storedSegment
	segmentIDs map[string]bool
	audio      []storedAudio
	events     []event // model outputs, edits, alignments, resolutions and sign-offs, in chain order
	added      int     // sentences added by edits so far
}

type meta struct {
	Index int64
	Actor string
	Time  time.Time
}

type storedSegment struct {
	Segment
	meta
}

type storedAudio struct {
	Audio
	meta
}

// event is one note-affecting entry; exactly one field is set.
type event struct {
	meta
	output     *ModelOutput
	edit       *Edit
	alignment  *Alignment
	signoff    *Signoff
	resolution *Resolution
}

// apply decodes one entry of the chain into s.
func (s *state) apply(e *ledger.StoredEntry, payload []byte) error {
	var v any
	switch e.Leaf.Kind {
	case ledger.KindAccess, ledger.KindRedaction:
		// Nothing the state holds comes from their payloads.
	default:
		var err error
		if v, err = DecodePayload(e.Leaf.Kind, payload); err != nil {
			return fmt.Errorf("entry %d: %w", e.Index, err)
		}
	}
	return s.applyValue(e, v)
}

// applyValue applies one entry whose payload is already decoded (nil for
// kinds whose payload the state does not use).
func (s *state) applyValue(e *ledger.StoredEntry, v any) error {
	m := meta{Index: e.Index, Actor: e.Leaf.Actor, Time: e.Leaf.Time}
	switch p := v.(type) {
	case *Opened:
		s.opened, s.openedAt, s.openedLeaf, s.actor = p, e.Leaf.Time, e.Index, e.Leaf.Actor
	case *Segment:
		s.segments = append(s.segments, storedSegment{*p, m})
		s.segmentIDs[p.ID] = true
	case *Audio:
		s.audio = append(s.audio, storedAudio{*p, m})
	case *ModelOutput:
		s.events = append(s.events, event{meta: m, output: p})
	case *Edit:
		s.events = append(s.events, event{meta: m, edit: p})
		if p.Action == ActionAdd {
			s.added++
		}
	case *Alignment:
		s.events = append(s.events, event{meta: m, alignment: p})
	case *Signoff:
		s.events = append(s.events, event{meta: m, signoff: p})
	case *Resolution:
		s.events = append(s.events, event{meta: m, resolution: p})
	}
	if e.Leaf.Kind == ledger.KindRedaction {
		// The encounter was shredded: what this state decoded before must
		// not be served from memory either.
		s.forget()
		return fmt.Errorf("%w: the encounter's payloads were destroyed (leaf %d)", ledger.ErrRedacted, e.Index)
	}
	// Access entries (ledger.KindAccess) change nothing the state holds
	// but its position: a read is not a change of the record.
	if e.Leaf.Kind != ledger.KindAccess {
		s.updated = e.Leaf.Time
	}
	s.head = e.Index
	s.count++
	s.bytes += sizeOf(v)
	return nil
}

// forget drops everything decoded, so that the next refresh starts over.
func (s *state) forget() {
	s.head, s.count = -1, 0
	s.updated, s.bytes = time.Time{}, 0
	s.opened, s.actor, s.openedLeaf = nil, "", -1
	s.segments, s.audio, s.events = nil, nil, nil
	s.segmentIDs = make(map[string]bool)
	s.added = 0
}

// stateCache keeps recently used encounter states within a memory budget:
// the estimated bytes of every state it holds (sizeOf) stay under max,
// except for states in use, which are never evicted (their lock is the
// encounter's write lock, so a second state object for the same encounter
// must not appear while one is held).
type stateCache struct {
	max int64
	mu  struct {
		sync.Mutex
		lru   *list.List // of *cached, front = most recent
		items map[string]*list.Element
		bytes int64 // sum of the accounted bytes of the items
		stats CacheStats
	}
}

// cached is a state in the cache, with what the cache knows of it.
type cached struct {
	s         *state
	inUse     int   // acquire calls not yet released
	accounted int64 // s.bytes when last released
}

// CacheStats count the state cache's lookups since the Service started.
// A hit finds the encounter's decoded chain in memory and reads at most
// the entries appended since; a miss decodes the whole chain from the log.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	// States and Bytes are what the cache holds now; MaxBytes its budget.
	States          int
	Bytes, MaxBytes int64
}

// DefaultStateCacheBytes is the state cache's default budget.
const DefaultStateCacheBytes = 256 << 20

func newStateCache(maxBytes int64) *stateCache {
	c := &stateCache{max: maxBytes}
	c.mu.lru = list.New()
	c.mu.items = make(map[string]*list.Element)
	return c
}

func cacheKey(tenant, id string) string { return tenant + "\x00" + id }

// acquire returns the state object for an encounter, creating an empty one,
// and pins it until release. The caller locks it and calls refresh.
func (c *stateCache) acquire(tenant, id string) *state {
	k := cacheKey(tenant, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.mu.items[k]; ok {
		c.mu.lru.MoveToFront(el)
		e := el.Value.(*cached)
		e.inUse++
		c.mu.stats.Hits++
		return e.s
	}
	c.mu.stats.Misses++
	s := &state{tenant: tenant, id: id, head: -1, openedLeaf: -1, segmentIDs: make(map[string]bool)}
	c.mu.items[k] = c.mu.lru.PushFront(&cached{s: s, inUse: 1})
	return s
}

// release unpins s, accounts for its current size and evicts the least
// recently used states that are not in use until the cache is within its
// budget. The caller holds s.mu (so s.bytes is stable) or owns s.
func (c *stateCache) release(s *state) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.mu.items[cacheKey(s.tenant, s.id)]
	if !ok || el.Value.(*cached).s != s {
		return // dropped meanwhile
	}
	e := el.Value.(*cached)
	e.inUse--
	c.mu.bytes += s.bytes - e.accounted
	e.accounted = s.bytes
	for el := c.mu.lru.Back(); el != nil && c.mu.bytes > c.max; {
		prev := el.Prev()
		if old := el.Value.(*cached); old.inUse == 0 {
			c.removeLocked(el)
			c.mu.stats.Evictions++
		}
		el = prev
	}
}

func (c *stateCache) removeLocked(el *list.Element) {
	e := c.mu.lru.Remove(el).(*cached)
	delete(c.mu.items, cacheKey(e.s.tenant, e.s.id))
	c.mu.bytes -= e.accounted
}

// stats returns the cache's counters and occupancy.
func (c *stateCache) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.mu.stats
	st.States, st.Bytes, st.MaxBytes = c.mu.lru.Len(), c.mu.bytes, c.max
	return st
}

// sizeOf estimates the bytes an applied payload keeps in memory: its
// strings and slices plus a fixed overhead per value, which is what
// bounds the cache, not an exact accounting.
func sizeOf(v any) int64 {
	const overhead = 96
	n := int64(overhead)
	switch p := v.(type) {
	case *Opened:
		n += int64(len(p.Title) + len(p.PatientRef))
	case *Segment:
		// The segment, its words and its entry in segmentIDs.
		n += int64(len(p.ID)*2+len(p.Text)+len(p.SpeakerLabel)+len(p.ASRModel)) + 64
		for _, w := range p.Words {
			n += int64(len(w.Text)) + 40
		}
	case *Audio:
		n += int64(len(p.BlobSHA256) + len(p.MediaType) + len(p.Codec))
	case *ModelOutput:
		n += int64(len(p.Model.Name) + len(p.Model.Version) + len(p.Backend) + len(p.PromptSHA256) + len(p.Error) + 8*len(p.Inputs))
		for k, v := range p.Parameters {
			n += int64(len(k)+len(v)) + 32
		}
		if p.Note != nil {
			for _, sec := range p.Note.Sections {
				n += int64(len(sec.Name)) + 48
				for _, t := range sec.Sentences {
					n += int64(len(t.ID)+len(t.Text)) + 32
				}
			}
		}
	case *Edit:
		n += int64(len(p.Action) + len(p.SentenceID) + len(p.Section) + len(p.After) + len(p.Text) + len(p.Reason))
	case *Alignment:
		n += int64(len(p.Method))
		for _, sa := range p.Sentences {
			n += int64(len(sa.SentenceID)) + 48
			for _, sp := range sa.Spans {
				n += int64(len(sp.SegmentID)) + 56
			}
		}
	case *Signoff:
		n += int64(len(p.NoteHash) + len(p.Statement))
		for _, a := range p.Acknowledged {
			n += int64(len(a)) + 16
		}
	}
	return n
}

// refresh catches s up with the log. It returns an error wrapping
// ledger.ErrNotFound when the encounter does not exist. s.mu must be held.
//
// The log is the truth and the state only a view of it: entries of the
// encounter may come from other writers, and in a cluster from other
// nodes, whose appends this node applies without the Service seeing them.
// So the state is checked against the chain's head (its last index and its
// entry count) before every use, and caught up from the chain when it is
// behind; a state that does not match the chain at all is rebuilt from the
// chain's start.
func (s *state) refresh(l *ledger.Log) error {
	h, err := l.EncounterHead(s.tenant, s.id)
	if err != nil {
		return err
	}
	if h.Index == s.head && h.Count == s.count {
		return nil
	}
	if h.Index < s.head || h.Count < s.count {
		s.forget()
	}
	if err := s.catchUp(l); err != nil {
		return err
	}
	if s.head == h.Index && s.count != h.Count {
		// Same last entry, another count: the view is not of this chain.
		s.forget()
		if err := s.catchUp(l); err != nil {
			return err
		}
	}
	if s.opened == nil {
		return &ledger.CorruptionError{What: "chain", Index: -1, Detail: "encounter has no opening entry"}
	}
	return nil
}

// catchUp applies the chain's entries after s.head.
func (s *state) catchUp(l *ledger.Log) error {
	idx, err := l.EncounterIndexesFrom(s.tenant, s.id, s.head+1)
	if err != nil {
		return err
	}
	for _, f := range readChain(l, idx) {
		if errors.Is(f.err, ledger.ErrRedacted) {
			// Shredded, perhaps through another node: drop what was
			// decoded before, so that nothing of it stays in memory.
			s.forget()
			return fmt.Errorf("%w: the encounter's payloads were destroyed", ledger.ErrRedacted)
		}
		if f.err != nil {
			return f.err
		}
		if err := s.apply(f.entry, f.payload); err != nil {
			return err
		}
	}
	return nil
}

// chainEntry is an entry of a chain read by readChain.
type chainEntry struct {
	entry   *ledger.StoredEntry
	payload []byte // nil for kinds whose payload the state does not use
	err     error
}

// readChain reads the entries idx, each checked against the tree, with
// the payloads the state uses: not those of access and redaction entries,
// which hold nothing it needs (a visit read often has many access
// entries).
func readChain(l *ledger.Log, idx []int64) []chainEntry {
	out := make([]chainEntry, len(idx))
	for i, x := range idx {
		f := &out[i]
		if f.entry, f.err = l.Entry(x); f.err != nil {
			continue
		}
		switch f.entry.Leaf.Kind {
		case ledger.KindAccess, ledger.KindRedaction:
			continue
		}
		f.payload, f.entry, f.err = l.Payload(x)
	}
	return out
}
