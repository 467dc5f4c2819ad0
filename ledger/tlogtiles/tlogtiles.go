// Package tlogtiles serves a ledger.Log over HTTP as the C2SP tlog-tiles
// specification describes (https://c2sp.org/tlog-tiles), so that standard
// transparency-log clients and witnesses can check it:
//
//	GET /checkpoint                    the latest signed checkpoint
//	GET /tile/<L>/<N>[.p/<W>]          a hash tile
//	GET /tile/entries/<N>[.p/<W>]      an entry bundle (leaf data)
//
// Hash tiles and checkpoints hold no PHI. Entry bundles hold leaf data,
// which names tenants, encounters and actors, so each bundle passes an
// authorization check (AuthorizeEntries) before it is served; the entries
// route is registered apart ("GET /tile/entries/") so that a middleware
// can require credentials for it alone.
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
	// AuthorizeEntries, if not nil, must return nil for a request to be
	// served the entry bundle it asked for (bundle, in C2SP format); its
	// error is reported with the given status code. It is called after the
	// bundle is read, whether or not it will be served, so that the time
	// to refuse does not depend on whose leaves the bundle holds.
	AuthorizeEntries func(r *http.Request, bundle []byte) (code int, err error)
}

// Register adds the routes to mux (an *http.ServeMux, or a wrapper that
// guards each route).
func (h *Handler) Register(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET /checkpoint", h.checkpoint)
	mux.HandleFunc("GET /tile/", func(w http.ResponseWriter, r *http.Request) { h.tile(w, r, false) })
	mux.HandleFunc("GET /tile/entries/", func(w http.ResponseWriter, r *http.Request) { h.tile(w, r, true) })
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(h.Log.Checkpoint().Note)
}

// tile parses a C2SP tile path, which is Go's sumdb tile path without the
// height element, and serves the tile. Which route matched decides
// whether it serves entry bundles, not the path: a path that reaches the
// hash-tile route while naming entries (an escaped slash, as in
// /tile/entries%2F000, is one segment to the mux but two in r.URL.Path)
// is refused, so bundles are served on the entries route only.
func (h *Handler) tile(w http.ResponseWriter, r *http.Request, entries bool) {
	rest := strings.TrimPrefix(r.URL.Path, "/tile/")
	if strings.HasPrefix(rest, "entries") != entries {
		http.Error(w, "malformed tile path", http.StatusBadRequest)
		return
	}
	if entries {
		rest = "data/" + strings.TrimPrefix(rest, "entries/")
	}
	t, err := tlog.ParseTilePath("tile/8/" + rest)
	if err != nil || t.L > 63/ledger.TileHeight {
		http.Error(w, "malformed tile path", http.StatusBadRequest)
		return
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
	if entries && h.AuthorizeEntries != nil {
		if code, err := h.AuthorizeEntries(r, data); err != nil {
			http.Error(w, http.StatusText(code), code)
			return
		}
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
