package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/blob"
	"github.com/evidenceledger/evidence/demo"
	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/grpcapi"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
	"github.com/evidenceledger/evidence/ledger/storage/storagetest"
	"github.com/evidenceledger/evidence/pipeline/proxy"
	"github.com/evidenceledger/evidence/pipeline/upstreamtest"
)

// stack is the server's storage, log and services wired as run() wires
// them with encryption at rest (or without, for the control), serving
// gRPC on loopback.
type stack struct {
	cfg    config
	store  storage.Store
	log    *ledger.Appender
	sealer *envelope.Sealer
	index  *index.Index
	addr   string
	stop   func()
	// chatURL serves the recording chat proxy as the demo tenant's
	// pipeline.
	chatURL string
}

// proxiedNote is what the model behind the chat proxy answers: a note
// whose sentences are found nowhere else.
const proxiedNote = "Subjective: The proxied patient reports a marigold-coloured rash on both forearms since Tuesday.\nPlan: Apply the proxied emollient twice daily and return in fourteen days."

// proxiedTexts are distinctive parts of proxiedNote.
var proxiedTexts = []string{"marigold-coloured rash on both forearms", "proxied emollient twice daily"}

// waitSpooled waits until the proxy's spool holds something.
func waitSpooled(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && st.Size() > 0 {
				return
			}
		}
	}
	t.Fatal("nothing was spooled")
}

// proxyCalls sends n chat completions through the stack's recording proxy.
func proxyCalls(t *testing.T, s *stack, n int) {
	t.Helper()
	for range n {
		resp, err := http.Post(s.chatURL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"draft the note"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chat proxy: %s", resp.Status)
		}
	}
}

func startStack(t *testing.T, dataDir, engine string, encrypted bool) *stack {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	cfg := defaults()
	cfg.DataDir, cfg.Storage = dataDir, engine
	key, err := ledger.LoadOrCreateKey(dataDir, cfg.Origin)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{cfg: cfg}
	if s.store, err = openStore(cfg, logger); err != nil {
		t.Fatal(err)
	}
	opts := ledger.Options{Origin: cfg.Origin, Key: key, HighWater: ledger.HighWaterFile(filepath.Join(dataDir, ledger.HighWaterFileName))}
	var blobSealer blob.Sealer
	if encrypted {
		if s.sealer, err = setupEncryption(dataDir, "", s.store, logger); err != nil {
			t.Fatal(err)
		}
		opts.Sealer, blobSealer = s.sealer, s.sealer
	}
	if s.log, err = ledger.Open(s.store, opts); err != nil {
		t.Fatal(err)
	}
	blobs := blob.New(s.store, blobSealer)
	encOpts := []encounter.Option{encounter.WithAccessTrail()}
	var keys *envelope.Keys
	if encrypted {
		keys = envelope.NewKeys(s.sealer, s.store)
		encOpts = append(encOpts, encounter.WithKeys(keys))
	}
	svc := encounter.New(s.log.Log, s.log, blobs, encOpts...)
	idx, stopIndex, err := startIndex(context.Background(), dataDir, s.log.Log, logger)
	if err != nil {
		t.Fatal(err)
	}
	s.index = idx
	// A model server behind the chat proxy, whose replies are notes with
	// text of their own, so that proxied calls leave PHI to look for.
	upstream := httptest.NewServer(&upstreamtest.Chat{Content: proxiedNote})
	t.Cleanup(upstream.Close)
	icfg := defaultInference()
	icfg.OpenAIUpstream = upstream.URL
	var spoolSealer proxy.Sealer
	if encrypted {
		spoolSealer = s.sealer
	}
	inf, err := setupInference(icfg, dataDir, s.log.Log, svc, spoolSealer, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := auth.Identity{Tenant: "demo", Role: auth.RolePipeline, Subject: "svc:test"}
		inf.ChatProxy.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), id)))
	}))
	t.Cleanup(chat.Close)
	s.chatURL = chat.URL
	gcfg := grpcapi.Config{Log: s.log.Log, Encounters: svc, Auth: devAuthenticator, Search: idx, Inference: inf.Pipeline}
	if encrypted {
		if gcfg.Compliance, err = newCompliance(s.log.Log, svc, blobs, keys, idx); err != nil {
			t.Fatal(err)
		}
	}
	gs, _ := grpcapi.NewServer(gcfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	s.addr = lis.Addr().String()
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		gs.GracefulStop()
		inf.Close(context.Background())
		stopIndex()
		s.log.Close()
		if err := s.store.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// distinctive returns texts of the demo visit, its longest transcript
// segments and note sentences, to look for in the data directory's files.
func distinctive(t *testing.T, c *client.Client, id string) []string {
	t.Helper()
	v, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, s := range v.Segments {
		texts = append(texts, s.Text)
	}
	sort.Slice(texts, func(i, j int) bool { return len(texts[i]) > len(texts[j]) })
	texts = texts[:6]
	n, err := c.Encounters.GetNote(demoCtx(), &pb.GetNoteRequest{EncounterId: id})
	if err != nil {
		t.Fatal(err)
	}
	var sents []string
	for _, sec := range n.GetNote().GetSections() {
		for _, s := range sec.GetSentences() {
			sents = append(sents, s.GetText())
		}
	}
	sort.Slice(sents, func(i, j int) bool { return len(sents[i]) > len(sents[j]) })
	texts = append(texts, sents[:6]...)
	for i, s := range texts {
		// A distinctive middle part, shorter than a compressor's window of
		// literals is likely to split.
		if len(s) > 40 {
			texts[i] = s[len(s)/2-20 : len(s)/2+20]
		}
	}
	return texts
}

func demoCtx() context.Context {
	return client.WithMetadata(context.Background(), "x-evidence-tenant", "demo", "x-evidence-actor", "admin.test")
}

// found returns the texts found in some file under dir, with the file. It
// reads each file once.
func found(t *testing.T, dir string, texts []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, s := range texts {
			if _, ok := out[s]; !ok && bytes.Contains(b, []byte(s)) {
				out[s] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEncryptionAtRest loads the demo through the real gRPC server, stops
// it, and looks for the demo's transcript and note text in every file of
// the data directory. The control, without a keyring, shows that the scan
// finds the text when it is stored in plaintext.
func TestEncryptionAtRest(t *testing.T) {
	for _, engine := range []string{"pebble", "badger"} {
		t.Run(engine, func(t *testing.T) {
			var texts []string
			var controlIndexHits int
			for _, encrypted := range []bool{false, true} {
				dir := t.TempDir()
				s := startStack(t, dir, engine, encrypted)
				id, err := loadDemo(context.Background(), dir, s.addr, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				c, err := client.Dial(s.addr, client.Options{})
				if err != nil {
					t.Fatal(err)
				}
				texts = append(distinctive(t, c, id), proxiedTexts...)
				c.Close()
				proxyCalls(t, s, 5)
				waitApplied(t, s.index, s.log.Size())
				// Calls that cannot be recorded wait in the proxy's spool
				// (its active segment stays while the server runs): close
				// the log under the proxy and send more.
				s.log.Close()
				proxyCalls(t, s, 2)
				waitSpooled(t, filepath.Join(dir, "proxy-spool"))
				inSpool := found(t, filepath.Join(dir, "proxy-spool"), proxiedTexts)
				// Scan while the server runs (the engines' write-ahead logs
				// hold recent writes uncompressed) and again once stopped
				// (memtables flushed to compressed tables).
				storeDir := filepath.Join(dir, engine)
				inStore := found(t, storeDir, texts)
				inIndex := found(t, filepath.Join(dir, "index"), texts)
				s.stop()
				if !encrypted {
					if len(inStore) != len(texts) {
						t.Fatalf("control: only %d of %d texts found in the plaintext store: the scan cannot see them", len(inStore), len(texts))
					}
					if len(inSpool) != len(proxiedTexts) {
						t.Fatalf("control: the proxied calls' text is not in the plaintext spool (%d of %d): the scan cannot see it", len(inSpool), len(proxiedTexts))
					}
					controlIndexHits = len(inIndex)
					continue
				}
				for s, f := range inSpool {
					t.Errorf("plaintext %q is in %s while the server runs", s, f)
				}
				for s, f := range found(t, storeDir, texts) {
					inStore[s] = f
				}
				for s, f := range inStore {
					t.Errorf("plaintext %q is in %s", s, f)
				}
				// Every other file the server wrote: keys, keyring, the
				// high-water checkpoint, the proxy's spool, markers.
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if e.Name() == "index" || e.Name() == engine {
						continue
					}
					for s, f := range found(t, filepath.Join(dir, e.Name()), texts) {
						t.Errorf("plaintext %q is in %s", s, f)
					}
				}
				// The bleve index is not encrypted (docs/compliance.md).
				t.Logf("%s: %d of %d texts in the ledger's files (control: %d); %d in the bleve index (control: %d)",
					engine, len(inStore), len(texts), len(texts), len(inIndex), controlIndexHits)
			}
		})
	}
}

// TestShredLeavesNothing shreds the demo encounter through the real gRPC
// server and then looks for anything that could bring its text back: the
// text itself, the wrapped data key, and a payload that decrypts with the
// keyring.
func TestShredLeavesNothing(t *testing.T) {
	for _, engine := range []string{"pebble", "badger"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			s := startStack(t, dir, engine, true)
			id, err := loadDemo(context.Background(), dir, s.addr, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			c, err := client.Dial(s.addr, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			texts := distinctive(t, c, id)
			wrapped, err := s.sealer.WrappedKey("demo", id)
			if err != nil {
				t.Fatal(err)
			}
			// A sealed payload as stored, to try to open afterwards.
			tr, err := c.Encounters.GetTranscript(demoCtx(), &pb.GetTranscriptRequest{EncounterId: id})
			if err != nil {
				t.Fatal(err)
			}
			seg := tr.GetSegments()[0].GetLeafIndex()
			e, err := s.log.Entry(seg)
			if err != nil {
				t.Fatal(err)
			}
			record, err := s.store.Get(append([]byte{'p'}, e.Leaf.Commitment[:]...))
			if err != nil {
				t.Fatal(err)
			}
			if storagetest.FindInFiles(t, filepath.Join(dir, engine), wrapped) == "" {
				t.Fatal("the wrapped key is in no file before shredding: the scan cannot see it")
			}

			api := pb.NewComplianceServiceClient(c.Conn())
			res, err := api.ShredEncounter(demoCtx(), &pb.ShredEncounterRequest{EncounterId: id, Reason: "test: erasure request"})
			if err != nil {
				t.Fatal(err)
			}
			if !res.GetKeyPurged() || !res.GetIndexCleared() || res.GetPayloadsDestroyed() < int64(len(tr.GetSegments())) || res.GetRecordingsDestroyed() != 1 {
				t.Fatalf("shred %v", res)
			}
			_, err = c.Encounters.GetNote(demoCtx(), &pb.GetNoteRequest{EncounterId: id})
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("note after shredding: %v, want FailedPrecondition", err)
			}
			s.stop()

			// Nothing in the ledger's files: no text, no wrapped key.
			storeDir := filepath.Join(dir, engine)
			for s, f := range found(t, storeDir, texts) {
				t.Errorf("plaintext %q is still in %s", s, f)
			}
			if f := storagetest.FindInFiles(t, storeDir, wrapped); f != "" {
				t.Fatalf("the wrapped data key is still in %s", f)
			}
			if hits := found(t, filepath.Join(dir, "index"), texts); len(hits) > 0 {
				t.Logf("%d of %d texts remain in the bleve index's files after DeleteEncounter (deleted documents stay in segments until bleve merges them; docs/compliance.md)", len(hits), len(texts))
			}

			// With the keyring: nothing opens, and the log verifies.
			cfg := defaults()
			cfg.DataDir, cfg.Storage = dir, engine
			store, err := openStore(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			sealer, _, err := envelope.OpenLocal(store, envelope.DefaultKeyringPath(dir), false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sealer.Open("demo", id, e.Leaf.Commitment, record[1+ledger.SaltSize:]); !errors.Is(err, ledger.ErrRedacted) {
				t.Fatalf("opening a captured payload after shredding: %v, want ErrRedacted", err)
			}
			if _, err := sealer.WrappedKey("demo", id); !errors.Is(err, envelope.ErrNoKey) {
				t.Fatalf("wrapped key after shredding: %v", err)
			}
			vkey, _ := os.ReadFile(filepath.Join(dir, "log.pub"))
			v, _ := note.NewVerifier(strings.TrimSpace(string(vkey)))
			rep, err := ledger.Verify(context.Background(), store, ledger.VerifyOptions{Origin: cfg.Origin, Verifier: v, Sealer: sealer})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 0 || rep.Redacted != res.GetPayloadsDestroyed() || rep.Payloads == 0 {
				t.Fatalf("verify after shredding: %d payloads, %d redacted (want %d), problems %v", rep.Payloads, rep.Redacted, res.GetPayloadsDestroyed(), rep.Problems)
			}
		})
	}
}
