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

	opened   *Opened
	openedAt time.Time
	actor    string

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
		s.opened, s.openedAt, s.actor = p, e.Leaf.Time, e.Leaf.Actor
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
	// Access entries (ledger.KindAccess) change nothing the state holds.
	s.head = e.Index
	s.count++
	return nil
}

// forget drops everything decoded, so that the next refresh starts over.
func (s *state) forget() {
	s.head, s.count = -1, 0
	s.opened, s.actor = nil, ""
	s.segments, s.audio, s.events = nil, nil, nil
	s.segmentIDs = make(map[string]bool)
	s.added = 0
}

// stateCache keeps recently used encounter states, bounded in number.
type stateCache struct {
	mu struct {
		sync.Mutex
		lru   *list.List // of *state, front = most recent
		items map[string]*list.Element
	}
	max int
}

func newStateCache(max int) *stateCache {
	c := &stateCache{max: max}
	c.mu.lru = list.New()
	c.mu.items = make(map[string]*list.Element)
	return c
}

// get returns the state object for an encounter, creating an empty one.
// The caller locks it and calls refresh.
func (c *stateCache) get(tenant, id string) *state {
	k := tenant + "\x00" + id
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.mu.items[k]; ok {
		c.mu.lru.MoveToFront(el)
		return el.Value.(*state)
	}
	s := &state{tenant: tenant, id: id, head: -1, segmentIDs: make(map[string]bool)}
	c.mu.items[k] = c.mu.lru.PushFront(s)
	for c.mu.lru.Len() > c.max {
		old := c.mu.lru.Remove(c.mu.lru.Back()).(*state)
		delete(c.mu.items, old.tenant+"\x00"+old.id)
	}
	return s
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
	for _, x := range idx {
		p, e, err := l.Payload(x)
		if errors.Is(err, ledger.ErrRedacted) {
			// Shredded, perhaps through another node: drop what was
			// decoded before, so that nothing of it stays in memory.
			s.forget()
			return fmt.Errorf("%w: the encounter's payloads were destroyed", ledger.ErrRedacted)
		}
		if err != nil {
			return err
		}
		if err := s.apply(e, p); err != nil {
			return err
		}
	}
	return nil
}
