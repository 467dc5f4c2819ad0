package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/ledger"
	memstore "github.com/evidenceledger/evidence/ledger/storage/memory"
	"github.com/evidenceledger/evidence/web"
)

// recording is an encounter with one stored recording.
type recording struct {
	id   string
	leaf int64
	data []byte
	meta encounter.Audio
}

type audioServer struct {
	url  string
	svc  *encounter.Service
	recs map[string]recording
}

// newAudioServer serves only the web handler, over a service holding an
// Ogg/Opus (the demo's), a WAV and an MP3 recording, each spanning several
// blob chunks.
func newAudioServer(t *testing.T) *audioServer {
	t.Helper()
	key, err := ledger.LoadOrCreateKey(t.TempDir(), "evidence.localhost/log")
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); store.Close() })
	svc := encounter.New(l.Log, l, blob.New(store, nil))
	v, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(prefix string, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return append([]byte(prefix), b...)
	}
	caller := encounter.Caller{Tenant: "demo", Actor: "test"}
	s := &audioServer{svc: svc, recs: map[string]recording{}}
	for name, r := range map[string]struct {
		meta encounter.Audio
		data []byte
	}{
		"opus": {encounter.Audio{MediaType: demo.MediaType, Codec: "opus", DurationMS: v.Audio.DurationMS}, v.Audio.Data},
		"wav":  {encounter.Audio{MediaType: "audio/wav", Codec: "pcm_s16le", DurationMS: 3000}, noise("RIFF", 3*blob.ChunkSize+123)},
		"mp3":  {encounter.Audio{MediaType: "audio/mpeg", Codec: "mp3", DurationMS: 3000}, noise("ID3", 2*blob.ChunkSize+7)},
	} {
		info, _, err := svc.Create(context.Background(), caller, name, "")
		if err != nil {
			t.Fatal(err)
		}
		a, meta, err := svc.RecordAudio(context.Background(), caller, info.ID, r.meta, bytes.NewReader(r.data))
		if err != nil {
			t.Fatal(err)
		}
		s.recs[name] = recording{id: info.ID, leaf: a.First, data: r.data, meta: meta}
	}
	hs := httptest.NewServer(web.New(web.Options{Audio: svc}))
	t.Cleanup(hs.Close)
	s.url = hs.URL
	return s
}

func (s *audioServer) do(t *testing.T, method, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func audioPath(id string) string { return "/api/v1/encounters/" + id + "/audio" }

func TestAudioRanges(t *testing.T) {
	s := newAudioServer(t)
	for name, wantType := range map[string]string{"opus": "audio/ogg; codecs=opus", "wav": "audio/wav", "mp3": "audio/mpeg"} {
		rec := s.recs[name]
		data, size := rec.data, len(rec.data)
		path := audioPath(rec.id)
		t.Run(name, func(t *testing.T) {
			resp, body := s.do(t, "GET", path)
			if resp.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Fatalf("GET: %d, %d bytes; want 200 and %d bytes", resp.StatusCode, len(body), size)
			}
			for k, want := range map[string]string{
				"Content-Type":           wantType,
				"Accept-Ranges":          "bytes",
				"Content-Length":         fmt.Sprint(size),
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
				"ETag":                   `"` + rec.meta.BlobSHA256 + `"`,
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}

			for _, c := range []struct {
				rng        string
				start, end int // inclusive
			}{
				{"bytes=0-99", 0, 99},
				{"bytes=1-1", 1, 1},
				{fmt.Sprintf("bytes=%d-%d", blob.ChunkSize-10, blob.ChunkSize+10), blob.ChunkSize - 10, blob.ChunkSize + 10}, // across chunks
				{fmt.Sprintf("bytes=%d-", size-1000), size - 1000, size - 1},                                                 // open-ended
				{"bytes=-500", size - 500, size - 1},                                                                         // suffix
				{fmt.Sprintf("bytes=-%d", size+100), 0, size - 1},                                                            // suffix longer than the file
				{fmt.Sprintf("bytes=%d-%d", size-10, size+1000), size - 10, size - 1},                                        // end past the file
			} {
				resp, body := s.do(t, "GET", path, "Range", c.rng)
				want := data[c.start : c.end+1]
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want) {
					t.Errorf("%s: %d, %d bytes; want 206 and %d bytes", c.rng, resp.StatusCode, len(body), len(want))
					continue
				}
				if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size); got != want {
					t.Errorf("%s: Content-Range %q, want %q", c.rng, got, want)
				}
				if got := resp.Header.Get("Content-Type"); got != wantType {
					t.Errorf("%s: Content-Type %q, want %q", c.rng, got, wantType)
				}
			}

			// Unsatisfiable ranges.
			for _, rng := range []string{fmt.Sprintf("bytes=%d-", size), fmt.Sprintf("bytes=%d-%d", size+10, size+20), "bytes=-0", "bytes=-0,-00"} {
				resp, _ := s.do(t, "GET", path, "Range", rng)
				if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
					t.Errorf("%s: %d, want 416", rng, resp.StatusCode)
				}
				if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", size); got != want {
					t.Errorf("%s: Content-Range %q, want %q", rng, got, want)
				}
			}
			// A malformed Range header is not satisfiable either.
			if resp, _ := s.do(t, "GET", path, "Range", "bytes=abc"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
				t.Errorf("malformed range: %d, want 416", resp.StatusCode)
			}

			// Several ranges: multipart/byteranges. The empty suffix range
			// is unsatisfiable and left out.
			resp, body = s.do(t, "GET", path, "Range", "bytes=0-9,-0,100-119")
			mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if resp.StatusCode != 206 || err != nil || mt != "multipart/byteranges" {
				t.Fatalf("multi-range: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			for _, want := range []struct{ start, end int }{{0, 9}, {100, 119}, {-1, -1}} {
				p, err := mr.NextPart()
				if want.start < 0 {
					if err != io.EOF {
						t.Errorf("multi-range: a part beyond the two satisfiable ranges (%v)", err)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(p)
				if !bytes.Equal(got, data[want.start:want.end+1]) || p.Header.Get("Content-Type") != wantType ||
					p.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", want.start, want.end, size) {
					t.Errorf("part %v: %q %q, %d bytes", want, p.Header.Get("Content-Type"), p.Header.Get("Content-Range"), len(got))
				}
			}

			// HEAD: the headers of a GET, no body.
			resp, body = s.do(t, "HEAD", path)
			if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != fmt.Sprint(size) || resp.Header.Get("Content-Type") != wantType {
				t.Errorf("HEAD: %d, %d body bytes, length %q, type %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"), resp.Header.Get("Content-Type"))
			}
			resp, body = s.do(t, "HEAD", path, "Range", "bytes=10-19")
			if resp.StatusCode != 206 || len(body) != 0 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", size) {
				t.Errorf("HEAD with Range: %d, %d body bytes, %q", resp.StatusCode, len(body), resp.Header.Get("Content-Range"))
			}

			// If-Range: a range only while the recording is unchanged.
			etag := resp.Header.Get("ETag")
			if resp, _ := s.do(t, "GET", path, "Range", "bytes=0-9", "If-Range", etag); resp.StatusCode != 206 {
				t.Errorf("If-Range with the current ETag: %d, want 206", resp.StatusCode)
			}
			if resp, body := s.do(t, "GET", path, "Range", "bytes=0-9", "If-Range", `"other"`); resp.StatusCode != 200 || len(body) != size {
				t.Errorf("If-Range with another ETag: %d, %d bytes; want 200 and the whole recording", resp.StatusCode, len(body))
			}
		})
	}
}

func TestAudioSelectsRecording(t *testing.T) {
	s := newAudioServer(t)
	rec := s.recs["wav"]
	second := []byte("RIFF-second-recording")
	a, _, err := s.svc.RecordAudio(context.Background(), encounter.Caller{Tenant: "demo", Actor: "test"}, rec.id,
		encounter.Audio{MediaType: "audio/wav", StartMS: 5000}, bytes.NewReader(second))
	if err != nil {
		t.Fatal(err)
	}
	path := audioPath(rec.id)
	if _, body := s.do(t, "GET", path); !bytes.Equal(body, second) {
		t.Error("without ?leaf the latest recording is not served")
	}
	if _, body := s.do(t, "GET", fmt.Sprintf("%s?leaf=%d", path, rec.leaf)); !bytes.Equal(body, rec.data) {
		t.Error("?leaf= of the first recording does not serve it")
	}
	if _, body := s.do(t, "GET", fmt.Sprintf("%s?leaf=%d", path, a.First)); !bytes.Equal(body, second) {
		t.Error("?leaf= of the second recording does not serve it")
	}
}

func TestAudioErrors(t *testing.T) {
	s := newAudioServer(t)
	rec := s.recs["opus"]
	for _, c := range []struct {
		name   string
		path   string
		header []string
		status int
		code   string
	}{
		{"bad leaf", audioPath(rec.id) + "?leaf=x", nil, 400, "InvalidArgument"},
		{"negative leaf", audioPath(rec.id) + "?leaf=-1", nil, 400, "InvalidArgument"},
		{"leaf that is not a recording", audioPath(rec.id) + "?leaf=0", nil, 404, "NotFound"},
		{"unknown encounter", audioPath("enc_nosuchencounter"), nil, 404, "NotFound"},
		{"bad encounter id", audioPath("bad%20id"), nil, 400, "InvalidArgument"},
		{"another tenant", audioPath(rec.id), []string{"X-Evidence-Tenant", "other"}, 404, "NotFound"},
		{"bad identity", audioPath(rec.id), []string{"X-Evidence-Tenant", "no spaces allowed"}, 401, "Unauthenticated"},
	} {
		resp, body := s.do(t, "GET", c.path, c.header...)
		if resp.StatusCode != c.status || !strings.Contains(string(body), `"code":"`+c.code+`"`) {
			t.Errorf("%s: %d %s; want %d %s", c.name, resp.StatusCode, body, c.status, c.code)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: error Content-Type %q", c.name, resp.Header.Get("Content-Type"))
		}
	}
}

func TestAudioCaller(t *testing.T) {
	// A CallerFunc replaces the header identity: here one that refuses.
	key, _ := ledger.LoadOrCreateKey(t.TempDir(), "evidence.localhost/log")
	store := memstore.New()
	l, err := ledger.Open(store, ledger.Options{Origin: "evidence.localhost/log", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	svc := encounter.New(l.Log, l, blob.New(store, nil))
	h := web.New(web.Options{Audio: svc, Caller: func(r *http.Request) (encounter.Caller, error) {
		if r.Header.Get("Authorization") == "" {
			return encounter.Caller{}, fmt.Errorf("%w: no token", web.ErrUnauthenticated)
		}
		return encounter.Caller{}, fmt.Errorf("token for another purpose")
	}})
	for auth, want := range map[string]int{"": 401, "Bearer x": 403} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/encounters/enc_x/audio", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %q: %d, want %d", auth, rec.Code, want)
		}
	}
}

func TestPageRoutes(t *testing.T) {
	s := newAudioServer(t)
	for _, path := range []string{"/", "/encounters/enc_anything"} {
		resp, body := s.do(t, "GET", path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte(`<audio id="audio"`)) {
			t.Errorf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if bytes.Count(body, []byte("<audio")) != 1 {
			t.Errorf("%s: the page must have exactly one <audio>", path)
		}
	}
	// The page versions its asset URLs and maps module imports to them
	// with an import map, which the CSP allows by its exact hash.
	_, page := s.do(t, "GET", "/")
	resp0, _ := s.do(t, "GET", "/")
	m := regexp.MustCompile(`<script type="importmap">([^<]*)</script>`).FindSubmatch(page)
	if m == nil {
		t.Fatal("the page has no import map")
	}
	sum := sha256.Sum256(m[1])
	if csp := resp0.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("the CSP %q does not allow the import map", csp)
	}
	var imports struct{ Imports map[string]string }
	if err := json.Unmarshal(m[1], &imports); err != nil || imports.Imports["/assets/api.js"] == "" {
		t.Fatalf("import map %s: %v", m[1], err)
	}
	for _, ref := range regexp.MustCompile(`(?:href|src)="(/assets/[^"]+)"`).FindAllSubmatch(page, -1) {
		u := string(ref[1])
		if !strings.Contains(u, "?v=") {
			t.Errorf("unversioned asset URL %s in the page", u)
			continue
		}
		resp, _ := s.do(t, "GET", u)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d, Cache-Control %q", u, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
	if resp, _ := s.do(t, "GET", "/assets/app.js?v=stale"); resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("a stale version is cached: %q", resp.Header.Get("Cache-Control"))
	}
	for path, wantType := range map[string]string{"/assets/app.js": "text/javascript", "/assets/app.css": "text/css", "/assets/icon.svg": "image/svg+xml"} {
		resp, _ := s.do(t, "GET", path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), wantType) {
			t.Errorf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		// Revalidation by ETag.
		resp, _ = s.do(t, "GET", path, "If-None-Match", resp.Header.Get("ETag"))
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", path, resp.StatusCode)
		}
	}
	// Unknown paths are not the page: an API route that does not exist
	// must stay a 404, so the page can tell (the search feature check).
	for _, path := range []string{"/assets/nope.js", "/assets/index.html", "/api/v1/search?q=x", "/encounters/a/b", "/other"} {
		if resp, _ := s.do(t, "GET", path); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, body := s.do(t, "GET", "/demo/attribution")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("PriMock57")) || !bytes.Contains(body, []byte("CC BY 4.0")) {
		t.Errorf("attribution: %d %q", resp.StatusCode, body)
	}
}
