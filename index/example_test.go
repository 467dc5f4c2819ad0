package index_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
)

func ExampleIndex_Search() {
	dir, _ := os.MkdirTemp("", "index-example-")
	defer os.RemoveAll(dir)
	key, _ := ledger.LoadOrCreateKey(dir, "example.org/log")
	log, _ := ledger.Open(memstore.New(), ledger.Options{Origin: "example.org/log", Key: key})
	defer log.Close()

	// Two transcript segments of one visit.
	var entries []ledger.Entry
	for i, text := range []string{"Any shortness of breath?", "Yes, I get short of breath on the stairs."} {
		role := []string{encounter.RoleClinician, encounter.RolePatient}[i]
		p, _ := json.Marshal(encounter.Segment{V: 1, ID: fmt.Sprint("s", i), Role: role, Text: text, StartMS: int64(i) * 4000, EndMS: int64(i)*4000 + 3000})
		entries = append(entries, ledger.Entry{Kind: ledger.KindSegment, Tenant: "clinic", Encounter: "visit-1", Actor: "asr", Payload: p})
	}
	if _, err := log.Append(context.Background(), entries); err != nil {
		panic(err)
	}

	x, err := index.Open(filepath.Join(dir, "index"), log, index.Options{})
	if err != nil {
		panic(err)
	}
	defer x.Close()
	if _, err := x.CatchUp(context.Background()); err != nil {
		panic(err)
	}
	res, err := x.Search(context.Background(), index.Request{Tenant: "clinic", Query: `"short of breath" stairs`, Speaker: encounter.RolePatient})
	if err != nil {
		panic(err)
	}
	for _, h := range res.Hits {
		fmt.Printf("leaf %d, %s at %d-%d ms: %q\n", h.Leaf, h.Speaker, h.StartMS, h.EndMS, h.Text)
		for _, hl := range h.Highlights {
			fmt.Printf("  %q at bytes %d-%d, UTF-16 %d-%d\n", h.Text[hl.Start:hl.End], hl.Start, hl.End, hl.UTF16Start, hl.UTF16End)
		}
	}
	// Output:
	// leaf 1, patient at 4000-7000 ms: "Yes, I get short of breath on the stairs."
	//   "short" at bytes 11-16, UTF-16 11-16
	//   "breath" at bytes 20-26, UTF-16 20-26
	//   "stairs" at bytes 34-40, UTF-16 34-40
}
