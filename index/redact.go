package index

import (
	"fmt"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/evidenceledger/evidence/ledger"
)

// DeleteEncounter removes every document of an encounter from the index,
// and its note state. It is the index's part of crypto-shredding: call it
// once the encounter's payloads are destroyed in the log, so that neither
// this index nor a rebuild can hold the text again. (Called earlier, a
// rebuild, or entries appended to the encounter later, index text the log
// still holds.)
func (x *Index) DeleteEncounter(tenant, enc string) error {
	if err := ledger.CheckID("tenant", tenant, ledger.MaxTenantLen); err != nil {
		return invalid("tenant", "is not a valid tenant id")
	}
	if err := ledger.CheckID("encounter_id", enc, ledger.MaxEncounterLen); err != nil {
		return invalid("encounter_id", "is not a valid encounter id")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mu.epoch++ // entries read ahead may predate the redaction
	t := x.tenant(tenant)
	if t == nil {
		return nil
	}
	q := query.NewTermQuery(enc)
	q.SetField(fieldEncounter)
	key := noteKey(tenant, enc)
	for {
		req := bleve.NewSearchRequestOptions(q, 1000, 0, false)
		req.SortBy([]string{"_id"})
		req.Score = "none"
		res, err := t.bleve.Search(req)
		if err != nil {
			return fmt.Errorf("index: delete encounter: %w", err)
		}
		b := t.bleve.NewBatch()
		for _, h := range res.Hits {
			b.Delete(h.ID)
		}
		last := len(res.Hits) < 1000
		if last {
			b.DeleteInternal([]byte(key))
		}
		if err := t.bleve.Batch(b); err != nil {
			return fmt.Errorf("index: delete encounter: %w", err)
		}
		if last {
			delete(t.notes, key)
			return nil
		}
	}
}
