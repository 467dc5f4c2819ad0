// Package tlogtiles serves a ledger.Log over HTTP as the C2SP tlog-tiles
// specification describes (https://c2sp.org/tlog-tiles), so that standard
// transparency-log clients and witnesses can check it:
//
//	GET /checkpoint                    the latest signed checkpoint
//	GET /tile/<L>/<N>[.p/<W>]          a hash tile
//	GET /tile/entries/<N>[.p/<W>]      an entry bundle (leaf data)
//
// Hash tiles and checkpoints hold no PHI. Entry bundles hold leaf data,
// which names tenants and encounters, so they pass an authorization check
// first.
package tlogtiles

import (
	"errors"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/evidenceledger/evidence/ledger"
)

// Handler serves the tlog-tiles read API of a log.
type Handler struct {
	Log *ledger.Log
	// AuthorizeEntries, if not nil, must return nil for a request to read
	// entry bundles; its error is reported with the given status code.
	AuthorizeEntries func(r *http.Request) (code int, err error)
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /checkpoint", h.checkpoint)
	mux.HandleFunc("GET /tile/", h.tile)
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(h.Log.Checkpoint().Note)
}

// tile parses a C2SP tile path, which is Go's sumdb tile path without the
// height element, and serves the tile.
func (h *Handler) tile(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/tile/")
	entries := strings.HasPrefix(rest, "entries/")
	if entries {
		rest = "data/" + strings.TrimPrefix(rest, "entries/")
	}
	t, err := tlog.ParseTilePath("tile/8/" + rest)
	if err != nil || t.L > 63/ledger.TileHeight {
		http.Error(w, "malformed tile path", http.StatusBadRequest)
		return
	}
	if entries {
		if h.AuthorizeEntries != nil {
			if code, err := h.AuthorizeEntries(r); err != nil {
				http.Error(w, http.StatusText(code), code)
				return
			}
		}
	}
	var data []byte
	if entries {
		data, err = h.Log.EntryBundle(t.N, t.W)
	} else {
		data, err = h.Log.Tile(t.L, t.N, t.W)
	}
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		http.Error(w, "tile not found", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "cannot read tile", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == ledger.TileWidth {
		// A full tile never changes.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(data)
}
