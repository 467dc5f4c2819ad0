// Package web serves the clinician's page: the visit list, the AI-drafted
// note next to its transcript, click-to-hear evidence, provenance, inline
// edits and a "verified" badge whose checks run in the browser (RFC 6962 /
// RFC 9162 inclusion and consistency proofs with WebCrypto SHA-256, and the
// C2SP signed-note Ed25519 signature of the checkpoint). docs/web.md
// describes the page and its stable automation hooks.
//
// The page is plain HTML, CSS and ES modules embedded in the binary: there
// is no front-end build step. It reads and writes through the JSON gateway
// (package grpcapi/gateway); this package adds only the page routes and the
// audio route, which the gateway cannot serve because audio is a byte range
// of a blob, not a protobuf message:
//
//	GET /                                       the visit list
//	GET /encounters/{id}                        one visit (a deep link)
//	GET /assets/{file}[?v=version]              the embedded page assets
//	GET /demo/attribution                       the demo visit's licence notice
//	GET /api/v1/encounters/{id}/audio[?leaf=N]  a recording, with HTTP Range
//
// The audio route supports single and multiple byte ranges, suffix ranges,
// If-Range and HEAD (RFC 9110 section 14, through http.ServeContent); a
// range that cannot be satisfied is answered 416 with "Content-Range:
// bytes */size". The Content-Type is the recording's media type as it was
// recorded (Ogg/Opus, WAV or MP3). Audio is PHI: responses are marked
// no-store, and a failed request is logged with its encounter id, status
// and error code only.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
)

//go:embed static
var staticFS embed.FS

// AudioSource opens an encounter's recording for reading: the one recorded
// at leaf, or the latest when leaf is negative. *encounter.Service
// implements it.
type AudioSource interface {
	AudioBlob(ctx context.Context, c encounter.Caller, encounterID string, leaf int64) (*blob.Blob, encounter.Audio, error)
}

// CallerFunc establishes who makes an HTTP request. It returns an error
// wrapping ErrUnauthenticated when the request carries no acceptable
// credentials.
type CallerFunc func(r *http.Request) (encounter.Caller, error)

// ErrUnauthenticated marks a request without acceptable credentials; the
// audio route answers it with 401.
var ErrUnauthenticated = errors.New("web: unauthenticated")

// Options configure a Handler.
type Options struct {
	// Audio serves recordings. Required.
	Audio AudioSource
	// Caller authenticates audio requests. Nil means HeaderCaller.
	Caller CallerFunc
	// Logger receives one line per failed audio request (ids, status and
	// error class only). Nil discards.
	Logger *slog.Logger
}

// Handler serves the page, its assets and the audio route.
type Handler struct {
	audio  AudioSource
	caller CallerFunc
	logger *slog.Logger
	assets map[string]asset
	page   asset
	csp    string // the page's Content-Security-Policy
	mux    *http.ServeMux

	attrOnce sync.Once
	attr     asset
}

// asset is an embedded file with its validator and version.
type asset struct {
	body        []byte
	etag        string
	version     string // a content hash, for ?v= in versioned URLs
	contentType string
}

// New returns a Handler. It panics if the embedded assets are missing,
// which only a broken build can cause.
func New(opts Options) *Handler {
	if opts.Audio == nil {
		panic("web: Options.Audio is required")
	}
	h := &Handler{audio: opts.Audio, caller: opts.Caller, logger: opts.Logger, assets: map[string]asset{}}
	if h.caller == nil {
		h.caller = HeaderCaller
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		h.assets[p] = newAsset(b, contentType(p))
		return nil
	})
	if err != nil {
		panic(err)
	}
	page, ok := h.assets["index.html"]
	if !ok {
		panic("web: static/index.html is not embedded")
	}
	h.page, h.csp = versionedPage(page.body, h.assets)
	h.mux = http.NewServeMux()
	h.Register(h.mux)
	return h
}

func newAsset(b []byte, ct string) asset {
	sum := sha256.Sum256(b)
	v := hex.EncodeToString(sum[:12])
	return asset{body: b, etag: `"` + v + `"`, version: v, contentType: ct}
}

// assetRef is a reference to an asset in the page's HTML.
var assetRef = regexp.MustCompile(`"/assets/([A-Za-z0-9._-]+)"`)

// versionedPage rewrites the page so that a browser can cache the assets
// for good and load a visit without a single asset request: every asset
// URL in the HTML gets ?v=<content hash>, and an import map sends each
// module's imports ("./api.js" resolves to /assets/api.js) to the same
// versioned URLs. The import map is the page's only inline script; the
// returned Content-Security-Policy allows it by its hash.
func versionedPage(raw []byte, assets map[string]asset) (asset, string) {
	versioned := func(name string) string { return "/assets/" + name + "?v=" + assets[name].version }
	imports := map[string]string{}
	for name, a := range assets {
		if strings.HasPrefix(a.contentType, "text/javascript") {
			imports["/assets/"+name] = versioned(name)
		}
	}
	m, err := json.Marshal(map[string]any{"imports": imports})
	if err != nil {
		panic(err)
	}
	html := assetRef.ReplaceAllFunc(raw, func(ref []byte) []byte {
		name := string(ref[len(`"/assets/`) : len(ref)-1])
		if _, ok := assets[name]; !ok {
			panic("web: index.html refers to a missing asset " + name)
		}
		return []byte(`"` + versioned(name) + `"`)
	})
	const marker = "<!-- importmap -->"
	if !bytes.Contains(html, []byte(marker)) {
		panic("web: index.html has no " + marker)
	}
	html = bytes.Replace(html, []byte(marker), []byte(`<script type="importmap">`+string(m)+`</script>`), 1)
	sum := sha256.Sum256(m)
	csp := strings.Replace(contentSecurityPolicy, "script-src 'self'", "script-src 'self' 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'", 1)
	return newAsset(html, "text/html; charset=utf-8"), csp
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Register adds the handler's routes to mux. The page routes match exactly
// "/" and "/encounters/{id}", so that unknown paths (an API route that
// does not exist yet, for example) still get the mux's 404.
func (h *Handler) Register(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET /{$}", h.servePage)
	mux.HandleFunc("GET /encounters/{id}", h.servePage)
	mux.HandleFunc("GET /assets/{file...}", h.serveAsset)
	mux.HandleFunc("GET /demo/attribution", h.serveAttribution)
	mux.HandleFunc("GET /api/v1/encounters/{id}/audio", h.serveAudio)
}

// ServeHTTP serves the handler's routes on their own.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// contentSecurityPolicy allows only the page's own scripts, styles, media
// and API. The one inline script, the import map, is added by its hash
// (versionedPage); there is no inline style.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func securityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	// Visit URLs carry encounter ids; do not leak them to other sites.
	hd.Set("Referrer-Policy", "no-referrer")
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	w.Header().Set("Content-Security-Policy", h.csp)
	writeAsset(w, r, h.page, "no-cache")
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.PathValue("file")]
	if !ok || r.PathValue("file") == "index.html" {
		http.NotFound(w, r)
		return
	}
	securityHeaders(w)
	// A URL with the current version never changes content: cache it for
	// good. Any other is revalidated, so a new binary never serves a stale
	// module.
	cache := "no-cache"
	if r.URL.Query().Get("v") == a.version {
		cache = "public, max-age=31536000, immutable"
	}
	writeAsset(w, r, a, cache)
}

func (h *Handler) serveAttribution(w http.ResponseWriter, r *http.Request) {
	h.attrOnce.Do(func() {
		text := "The demo visit is adapted from PriMock57 (CC BY 4.0).\n"
		if v, err := demo.Load(); err == nil {
			text = v.Attribution
		}
		h.attr = newAsset([]byte(text), "text/plain; charset=utf-8")
	})
	securityHeaders(w)
	writeAsset(w, r, h.attr, "no-cache")
}

// noModTime makes http.ServeContent rely on ETags alone.
var noModTime time.Time

func writeAsset(w http.ResponseWriter, r *http.Request, a asset, cacheControl string) {
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", noModTime, bytes.NewReader(a.body))
}

// HeaderCaller is the development CallerFunc, until token authentication
// lands: it takes the tenant and actor from the X-Evidence-Tenant and
// X-Evidence-Actor headers, defaulting to "demo" and "anonymous", as the
// gRPC server's development authenticator does with the same metadata.
func HeaderCaller(r *http.Request) (encounter.Caller, error) {
	c := encounter.Caller{Tenant: "demo", Actor: "anonymous"}
	if v := r.Header.Get("X-Evidence-Tenant"); v != "" {
		c.Tenant = v
	}
	if v := r.Header.Get("X-Evidence-Actor"); v != "" {
		c.Actor = v
	}
	if ledger.CheckID("tenant", c.Tenant, ledger.MaxTenantLen) != nil || ledger.CheckID("actor", c.Actor, ledger.MaxActorLen) != nil {
		return c, fmt.Errorf("%w: bad identity headers", ErrUnauthenticated)
	}
	return c, nil
}

// mediaType is the Content-Type for a recording: the media type recorded
// with it, or one inferred from its codec for recordings that named none.
func mediaType(a encounter.Audio) string {
	if a.MediaType != "" {
		if _, _, err := mime.ParseMediaType(a.MediaType); err == nil {
			return a.MediaType
		}
	}
	switch strings.ToLower(a.Codec) {
	case "opus", "vorbis":
		return "audio/ogg"
	case "mp3":
		return "audio/mpeg"
	case "pcm_s16le", "pcm", "wav":
		return "audio/wav"
	}
	return "application/octet-stream"
}

func (h *Handler) serveAudio(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	leaf := int64(-1)
	if v := r.URL.Query().Get("leaf"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			h.audioError(w, r, http.StatusBadRequest, "InvalidArgument", "invalid leaf: must be a non-negative integer")
			return
		}
		leaf = n
	}
	caller, err := h.caller(r)
	if err != nil {
		status := http.StatusUnauthorized
		if !errors.Is(err, ErrUnauthenticated) {
			status = http.StatusForbidden
		}
		code := "Unauthenticated"
		if status == http.StatusForbidden {
			code = "PermissionDenied"
		}
		h.audioError(w, r, status, code, "authentication required")
		return
	}
	b, meta, err := h.audio.AudioBlob(r.Context(), caller, id, leaf)
	if err != nil {
		var invalid *ledger.InvalidError
		switch {
		case errors.As(err, &invalid):
			h.audioError(w, r, http.StatusBadRequest, "InvalidArgument", "invalid "+invalid.Field+": "+invalid.Reason)
		case errors.Is(err, ledger.ErrNotFound), errors.Is(err, blob.ErrNotFound):
			// The same answer for another tenant's encounter as for none.
			h.audioError(w, r, http.StatusNotFound, "NotFound", "no such recording")
		case errors.Is(err, ledger.ErrRedacted):
			h.audioError(w, r, http.StatusGone, "FailedPrecondition", "the recording was destroyed (redacted)")
		case errors.Is(err, context.Canceled):
		default:
			h.audioError(w, r, http.StatusInternalServerError, "Internal", "cannot read the recording")
		}
		return
	}
	hd := w.Header()
	securityHeaders(w)
	hd.Set("Content-Type", mediaType(meta))
	hd.Set("Cache-Control", "no-store")
	// The blob's hash is a strong validator, so If-Range works.
	hd.Set("ETag", `"`+meta.BlobSHA256+`"`)
	if meta.DurationMS > 0 {
		hd.Set("X-Content-Duration", strconv.FormatFloat(float64(meta.DurationMS)/1000, 'f', 3, 64))
	}
	if !dropEmptySuffixRanges(r) {
		hd.Set("Content-Range", fmt.Sprintf("bytes */%d", b.Size()))
		http.Error(w, "requested range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	http.ServeContent(w, r, "", noModTime, io.NewSectionReader(b, 0, b.Size()))
}

// dropEmptySuffixRanges removes "-0" from a Range header: a suffix range
// of length zero is unsatisfiable (RFC 9110 section 14.1.1), but
// http.ServeContent answers it 206 with an empty, invalid Content-Range.
// It reports false when no range is left, for a 416.
func dropEmptySuffixRanges(r *http.Request) bool {
	h := r.Header.Get("Range")
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return true
	}
	var keep []string
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if digits, ok := strings.CutPrefix(part, "-"); ok && digits != "" && strings.Trim(digits, "0") == "" {
			continue
		}
		keep = append(keep, part)
	}
	if len(keep) == 0 {
		return false
	}
	r.Header.Set("Range", "bytes="+strings.Join(keep, ","))
	return true
}

// audioError writes an error as the gateway does: {"code","message"}, with
// the gRPC code name. The log line carries the id, status and code only.
func (h *Handler) audioError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	h.logger.LogAttrs(r.Context(), slog.LevelWarn, "audio request failed",
		slog.String("encounter_id", r.PathValue("id")), slog.Int("status", status), slog.String("code", code))
	hd := w.Header()
	securityHeaders(w)
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}
