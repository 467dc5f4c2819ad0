package pb

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/evidenceledger/evidence/ledger/storage"
	pebblestore "github.com/evidenceledger/evidence/ledger/storage/pebble"
	"github.com/evidenceledger/evidence/pipeline/proxy/proxybench"
)

func pebble(dir string) (storage.Store, error) { return pebblestore.Open(dir, pebblestore.Options{}) }

func TestOne(t *testing.T) {
	clients, _ := strconv.Atoi(os.Getenv("C"))
	n, _ := strconv.Atoi(os.Getenv("N"))
	cfg := proxybench.Config{Dir: t.TempDir(), Protocol: os.Getenv("P"), Requests: n, Clients: clients, Note: os.Getenv("NOTE") == "1", Stream: os.Getenv("S") == "1"}
	if os.Getenv("PEB") == "1" {
		cfg.Open = pebble
	}
	res, err := proxybench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%+v\n%v\n", cfg, res)
}
