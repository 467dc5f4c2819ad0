package index

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

// noteState is an encounter's current note as the index tracks it: for
// each current sentence id, the leaf of its current version and its
// section. It follows encounter's projection: a model output replaces the
// whole note, an edit replaces, adds or deletes one sentence.
type noteState struct {
	Sentences map[string]version `json:"sentences"`
}

type version struct {
	Leaf    int64  `json:"leaf"`
	Section string `json:"section,omitempty"`
}

func noteKey(tenant, enc string) string { return noteKeyPrefix + tenant + "\x00" + enc }

// maxCachedNotes bounds the note state cache; past it the cache is
// cleared and states are read back from the index as needed.
const maxCachedNotes = 10_000

// batch accumulates the changes one run of log entries makes to one
// tenant index.
type batch struct {
	x       *Index
	t       *tenantIndex
	docs    map[string]*doc
	deletes map[string]bool
	notes   map[string]*noteState // states changed by this batch
	// payloads caches the decoded payloads the run read (shared by the
	// run's batches), to rebuild superseded sentence documents.
	payloads map[int64]decoded
}

type decoded struct {
	entry   *ledger.StoredEntry
	payload any
}

func (x *Index) newBatch(t *tenantIndex, payloads map[int64]decoded) *batch {
	return &batch{x: x, t: t, docs: map[string]*doc{}, deletes: map[string]bool{}, notes: map[string]*noteState{}, payloads: payloads}
}

// note returns the state of an encounter for modification by b.
func (b *batch) note(tenant, enc string) (*noteState, error) {
	key := noteKey(tenant, enc)
	if st, ok := b.notes[key]; ok {
		return st, nil
	}
	st, ok := b.t.notes[key]
	if !ok {
		v, err := b.t.bleve.GetInternal([]byte(key))
		if err != nil {
			return nil, fmt.Errorf("index: read note state: %w", err)
		}
		st = &noteState{Sentences: map[string]version{}}
		if len(v) > 0 {
			if err := json.Unmarshal(v, st); err != nil {
				return nil, &DivergedError{Detail: "malformed note state"}
			}
			if st.Sentences == nil {
				st.Sentences = map[string]version{}
			}
		}
	}
	c := &noteState{Sentences: maps.Clone(st.Sentences)}
	b.notes[key] = c
	return c, nil
}

func (b *batch) add(d *doc) {
	id := d.id()
	b.docs[id] = d
	delete(b.deletes, id)
}

// apply adds the documents of entry e with payload p to b.
func (b *batch) apply(e *ledger.StoredEntry, p any) error {
	l := e.Leaf
	base := doc{leaf: e.Index, tenant: l.Tenant, encounter: l.Encounter, kind: l.Kind, time: l.Time}
	switch p := p.(type) {
	case *encounter.Segment:
		d := base
		d.speaker, d.text = p.Role, p.Text
		b.add(&d)
	case *encounter.ModelOutput:
		if p.Error != "" || p.Note == nil {
			return nil // no note: the projection keeps the current one
		}
		st, err := b.note(l.Tenant, l.Encounter)
		if err != nil {
			return err
		}
		for id, v := range st.Sentences {
			if err := b.supersede(id, v); err != nil {
				return err
			}
		}
		clear(st.Sentences)
		for _, sec := range p.Note.Sections {
			for _, s := range sec.Sentences {
				d := base
				d.model, d.sentenceID, d.section, d.text = p.Model.Name, s.ID, sec.Name, s.Text
				b.add(&d)
				st.Sentences[s.ID] = version{Leaf: e.Index, Section: sec.Name}
			}
		}
	case *encounter.Edit:
		switch p.Action {
		case encounter.ActionReplace, encounter.ActionAdd, encounter.ActionDelete:
		default:
			return nil // the projection ignores it too
		}
		st, err := b.note(l.Tenant, l.Encounter)
		if err != nil {
			return err
		}
		cur, isCurrent := st.Sentences[p.SentenceID]
		if isCurrent {
			if err := b.supersede(p.SentenceID, cur); err != nil {
				return err
			}
		}
		d := base
		d.sentenceID, d.text, d.section = p.SentenceID, p.Text, p.Section
		switch p.Action {
		case encounter.ActionDelete:
			delete(st.Sentences, p.SentenceID)
			return nil
		case encounter.ActionReplace:
			if !isCurrent {
				// The projection ignores a replacement of a sentence the
				// note does not hold, but its text is in the log.
				d.superseded = true
				b.add(&d)
				return nil
			}
			d.section = cur.Section
		}
		b.add(&d)
		st.Sentences[p.SentenceID] = version{Leaf: e.Index, Section: d.section}
	}
	return nil
}

// supersede marks sentence version v of id as no longer current, by
// indexing its document again with the flag set. A document of this batch
// is updated in place; an earlier one is rebuilt from the log.
func (b *batch) supersede(id string, v version) error {
	did := docID(v.Leaf, id)
	if d, ok := b.docs[did]; ok {
		d.superseded = true
		return nil
	}
	p, e, err := b.payload(v.Leaf)
	if errors.Is(err, ledger.ErrRedacted) {
		b.deletes[did] = true
		return nil
	}
	if err != nil {
		return err
	}
	l := e.Leaf
	d := &doc{leaf: v.Leaf, tenant: l.Tenant, encounter: l.Encounter, kind: l.Kind, time: l.Time,
		sentenceID: id, section: v.Section, superseded: true}
	switch p := p.(type) {
	case *encounter.ModelOutput:
		d.model = p.Model.Name
		text, ok := draftSentence(p, id)
		if !ok {
			return nil
		}
		d.text = text
	case *encounter.Edit:
		d.text = p.Text
	default:
		return nil
	}
	b.add(d)
	return nil
}

func draftSentence(p *encounter.ModelOutput, id string) (string, bool) {
	if p.Note == nil {
		return "", false
	}
	for _, sec := range p.Note.Sections {
		for _, s := range sec.Sentences {
			if s.ID == id {
				return s.Text, true
			}
		}
	}
	return "", false
}

// payload reads and decodes the payload of an earlier leaf.
func (b *batch) payload(leaf int64) (any, *ledger.StoredEntry, error) {
	if d, ok := b.payloads[leaf]; ok {
		return d.payload, d.entry, nil
	}
	raw, e, err := b.x.src.Payload(leaf)
	if err != nil {
		return nil, e, err
	}
	p, err := encounter.DecodePayload(e.Leaf.Kind, raw)
	if err != nil {
		// It decoded when it was indexed; the error is not echoed, as
		// decoder messages may quote the payload.
		return nil, e, fmt.Errorf("index: entry %d: payload no longer decodes", leaf)
	}
	b.payloads[leaf] = decoded{e, p}
	return p, e, nil
}

// indexed reports whether entries of kind k produce documents.
func indexed(k ledger.Kind) bool {
	return k == ledger.KindSegment || k == ledger.KindModelOutput || k == ledger.KindEdit
}

// CatchUp applies every entry the log holds when it is called, in batches,
// and returns the number of entries applied. Each batch is durable before
// the next starts; if CatchUp is interrupted (ctx, an error, a crash), the
// index holds exactly the batches that completed.
func (x *Index) CatchUp(ctx context.Context) (int64, error) {
	target := x.src.Size()
	for {
		applied, err := x.step(target)
		if err != nil || applied >= target {
			return applied, err
		}
		if err := ctx.Err(); err != nil {
			return applied, err
		}
	}
}

// Follow applies the log's entries as they are appended, until ctx is done
// or the log is closed; it then returns the reason (ctx.Err() or
// ledger.ErrClosed), or the first error that stopped indexing.
func (x *Index) Follow(ctx context.Context) error {
	for {
		applied, err := x.CatchUp(ctx)
		if err != nil {
			return err
		}
		if _, err := x.src.Wait(ctx, applied); err != nil {
			return err
		}
	}
}

// step applies one batch of at most BatchEntries entries below target and
// returns the new applied count. It writes one bleve batch to each tenant
// index the entries touch, each recording the new count with its
// documents, then records the count for the whole index.
func (x *Index) step(target int64) (int64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.mu.closed {
		return x.mu.applied, errors.New("index: closed")
	}
	from := x.mu.applied
	to := min(target, from+int64(x.opts.BatchEntries))
	if to <= from {
		return from, nil
	}
	// Entries are read (and their payloads opened, checked and decoded)
	// by several goroutines, and the next run is read while this one is
	// written; see prefetch.
	var items []readItem
	if pf := x.mu.prefetch; pf != nil && pf.from == from && pf.to <= target && pf.epoch == x.mu.epoch {
		<-pf.done
		items, to = pf.items, pf.to
	} else {
		x.waitPrefetch()
		items = readRange(x.src, from, to)
	}
	x.mu.prefetch = nil
	batches := map[string]*batch{}
	payloads := map[int64]decoded{}
	last := x.mu.lastHash
	skipped := 0
	for i := from; i < to; i++ {
		it := &items[i-from]
		e, err := it.entry, it.err
		if e == nil {
			return from, fmt.Errorf("index: entry %d: %w", i, err)
		}
		last = e.Hash
		if !indexed(e.Leaf.Kind) {
			continue
		}
		b, ok := batches[e.Leaf.Tenant]
		if !ok {
			t, err := x.tenantForWrite(e.Leaf.Tenant)
			if err != nil {
				return from, err
			}
			b = x.newBatch(t, payloads)
			batches[e.Leaf.Tenant] = b
		}
		if i < b.t.applied {
			continue // this tenant index holds it already (a crash came between its batch and the state)
		}
		if errors.Is(err, ledger.ErrRedacted) {
			skipped++
			continue
		}
		if err != nil {
			return from, fmt.Errorf("index: entry %d: %w", i, err)
		}
		p := it.payload
		if p == nil {
			// A payload this version cannot read holds nothing it can
			// index; it is skipped the same way by every rebuild.
			skipped++
			x.opts.Logger.Warn("index: payload not indexed", "leaf", i, "kind", e.Leaf.Kind.String())
			continue
		}
		payloads[i] = decoded{e, p}
		if err := b.apply(e, p); err != nil {
			return from, fmt.Errorf("index: entry %d: %w", i, err)
		}
	}
	if to < target {
		x.startPrefetch(to, min(target, to+int64(x.opts.BatchEntries)))
	}
	tenants := make([]string, 0, len(batches))
	for t := range batches {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, tenant := range tenants {
		if err := batches[tenant].commit(from, to); err != nil {
			return from, err
		}
	}
	if err := x.writeState(to, last); err != nil {
		return from, err
	}
	x.mu.applied, x.mu.lastHash = to, last
	x.applied.Store(to)
	if skipped > 0 {
		x.opts.Logger.Debug("index: entries without indexable payload", "from", from, "to", to, "skipped", skipped)
	}
	if x.opts.OnBatch != nil {
		x.opts.OnBatch(to, target)
	}
	return to, nil
}

// commit writes b to its tenant index in one atomic bleve batch, with the
// tenant's new applied count.
func (b *batch) commit(from, to int64) error {
	t := b.t
	bb := t.bleve.NewBatch()
	for _, d := range b.docs {
		if err := bb.IndexAdvanced(d.document()); err != nil {
			return fmt.Errorf("index: leaf %d: %w", d.leaf, err)
		}
	}
	for id := range b.deletes {
		bb.Delete(id)
	}
	for key, st := range b.notes {
		if len(st.Sentences) == 0 {
			bb.DeleteInternal([]byte(key))
			continue
		}
		v, err := json.Marshal(st)
		if err != nil {
			return err
		}
		bb.SetInternal([]byte(key), v)
	}
	bb.SetInternal(keyApplied, binary.BigEndian.AppendUint64(nil, uint64(to)))
	if b.x.beforeCommit != nil {
		b.x.beforeCommit(from, to)
	}
	if err := t.bleve.Batch(bb); err != nil {
		return fmt.Errorf("index: write batch: %w", err)
	}
	t.applied = to
	if len(t.notes)+len(b.notes) > maxCachedNotes {
		clear(t.notes)
	}
	maps.Copy(t.notes, b.notes)
	return nil
}

// readItem is one entry read from the log, with its decoded payload (nil
// if it has none this version can decode).
type readItem struct {
	entry   *ledger.StoredEntry
	err     error // from Payload
	payload any
}

// readWorkers is the number of goroutines reading one run of entries.
const readWorkers = 4

// readRange reads entries [from, to) with readWorkers goroutines.
func readRange(src Source, from, to int64) []readItem {
	items := make([]readItem, to-from)
	var wg sync.WaitGroup
	for w := range int64(readWorkers) {
		wg.Go(func() {
			for i := from + w; i < to; i += readWorkers {
				it := &items[i-from]
				var raw []byte
				raw, it.entry, it.err = src.Payload(i)
				if it.err == nil && indexed(it.entry.Leaf.Kind) {
					it.payload, _ = encounter.DecodePayload(it.entry.Leaf.Kind, raw)
				}
			}
		})
	}
	wg.Wait()
	return items
}

// prefetch is a run of entries being read ahead while the previous run is
// written. It is used only if no DeleteEncounter ran since it started
// (epoch), so a payload read before a redaction never re-enters the index
// after it.
type prefetch struct {
	from, to int64
	epoch    uint64
	done     chan struct{}
	items    []readItem
}

// startPrefetch starts reading [from, to). The caller holds mu.
func (x *Index) startPrefetch(from, to int64) {
	pf := &prefetch{from: from, to: to, epoch: x.mu.epoch, done: make(chan struct{})}
	x.mu.prefetch = pf
	go func() {
		defer close(pf.done)
		pf.items = readRange(x.src, from, to)
	}()
}

// waitPrefetch waits for and drops a prefetch. The caller holds mu.
func (x *Index) waitPrefetch() {
	if pf := x.mu.prefetch; pf != nil {
		<-pf.done
		x.mu.prefetch = nil
	}
}
