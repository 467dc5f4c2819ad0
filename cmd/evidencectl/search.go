package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/index"
	"github.com/evidenceledger/evidence/index/indexbench"
	"github.com/evidenceledger/evidence/ledger"
)

// searchCmd is "evidencectl search QUERY": full-text search over gRPC.
func searchCmd(g *globals) *cobra.Command {
	var enc, speaker, from, to, token, order string
	var kinds []string
	var pageSize int32
	var current, facets bool
	c := &cobra.Command{
		Use:   "search QUERY [--encounter E] [--speaker S] [--kind K] [--from T --to T]",
		Short: "Search transcripts and notes (query syntax: docs/search.md)",
		Long: `Search the tenant's transcript segments and note sentences.

QUERY is words (all must match), "quoted phrases", OR, NOT or -word, +word
and parentheses; "" matches everything the filters allow. Times are RFC 3339
(2025-03-01T09:00:00Z) or dates (2025-03-01, midnight UTC); --to is
exclusive. Kinds: segment, model_output, edit, or note (model_output and
edit).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{`search takes one QUERY argument (quote it; "" for filters only)`}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pb.SearchRequest{Query: args[0], EncounterId: enc, CurrentOnly: current, IncludeFacets: facets, PageSize: pageSize, PageToken: token}
			switch speaker {
			case "":
			case "clinician":
				req.SpeakerRole = pb.SpeakerRole_SPEAKER_ROLE_CLINICIAN
			case "patient":
				req.SpeakerRole = pb.SpeakerRole_SPEAKER_ROLE_PATIENT
			case "other":
				req.SpeakerRole = pb.SpeakerRole_SPEAKER_ROLE_OTHER
			default:
				return usageError{"--speaker must be clinician, patient or other"}
			}
			for _, k := range kinds {
				switch k {
				case "segment":
					req.Kinds = append(req.Kinds, pb.EntryKind_ENTRY_KIND_SEGMENT)
				case "model_output":
					req.Kinds = append(req.Kinds, pb.EntryKind_ENTRY_KIND_MODEL_OUTPUT)
				case "edit":
					req.Kinds = append(req.Kinds, pb.EntryKind_ENTRY_KIND_EDIT)
				case "note":
					req.Kinds = append(req.Kinds, pb.EntryKind_ENTRY_KIND_MODEL_OUTPUT, pb.EntryKind_ENTRY_KIND_EDIT)
				default:
					return usageError{"--kind must be segment, model_output, edit or note"}
				}
			}
			switch order {
			case "relevance":
				req.Order = pb.SearchOrder_SEARCH_ORDER_RELEVANCE
			case "oldest":
				req.Order = pb.SearchOrder_SEARCH_ORDER_OLDEST
			case "newest":
				req.Order = pb.SearchOrder_SEARCH_ORDER_NEWEST
			default:
				return usageError{"--order must be relevance, oldest or newest"}
			}
			for _, t := range []struct {
				flag, v string
				dst     **timestamppb.Timestamp
			}{{"--from", from, &req.StartTime}, {"--to", to, &req.EndTime}} {
				if t.v == "" {
					continue
				}
				ts, err := parseTime(t.v)
				if err != nil {
					return usageError{t.flag + ": " + err.Error()}
				}
				*t.dst = timestamppb.New(ts)
			}
			conn, err := g.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := pb.NewSearchServiceClient(conn.Conn()).Search(g.ctx(cmd.Context()), req)
			if err != nil {
				return err
			}
			return g.printProto(res, func(w *tabwriter.Writer) { searchTable(w, res) })
		},
	}
	f := c.Flags()
	f.StringVar(&enc, "encounter", "", "only this encounter")
	f.StringVar(&speaker, "speaker", "", "only segments of this speaker: clinician, patient or other")
	f.StringSliceVar(&kinds, "kind", nil, "only these kinds: segment, model_output, edit, note (repeatable)")
	f.StringVar(&from, "from", "", "recorded at or after this time")
	f.StringVar(&to, "to", "", "recorded before this time")
	f.BoolVar(&current, "current", false, "leave out sentence versions no longer in the current note")
	f.BoolVar(&facets, "facets", false, "also count matches by speaker, kind and encounter")
	f.StringVar(&order, "order", "relevance", "relevance, oldest or newest")
	f.Int32Var(&pageSize, "page-size", 0, "hits per page (server default 20, at most 100)")
	f.StringVar(&token, "page-token", "", "continue from a previous page's next_page_token")
	return c
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want RFC 3339 (2025-03-01T09:00:00Z) or a date (2025-03-01)")
}

// marked returns text with its highlights between [ and ].
func marked(h *pb.SearchHit) string {
	text := h.GetText()
	var b strings.Builder
	pos := 0
	for _, hl := range h.GetHighlights() {
		s, e := int(hl.GetByteStart()), int(hl.GetByteEnd())
		if s < pos || e > len(text) || s > e {
			continue
		}
		b.WriteString(text[pos:s])
		b.WriteString("[" + text[s:e] + "]")
		pos = e
	}
	b.WriteString(text[pos:])
	return strings.Join(strings.Fields(b.String()), " ")
}

func searchTable(w *tabwriter.Writer, res *pb.SearchResponse) {
	fmt.Fprintln(w, "LEAF\tENCOUNTER\tKIND\tWHO/WHERE\tAUDIO\tSCORE\tTEXT")
	for _, h := range res.GetHits() {
		who, audio := "", ""
		switch h.GetKind() {
		case pb.EntryKind_ENTRY_KIND_SEGMENT:
			who = strings.ToLower(strings.TrimPrefix(h.GetSpeakerRole().String(), "SPEAKER_ROLE_"))
			audio = fmt.Sprintf("%s-%s", clock(h.GetStartMs()), clock(h.GetEndMs()))
		default:
			who = h.GetSection() + "/" + h.GetSentenceId()
			if h.GetSuperseded() {
				who += " (superseded)"
			}
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%.3f\t%s\n", h.GetLeafIndex(), h.GetEncounterId(), kindName(h.GetKind()), who, audio, h.GetScore(), marked(h))
	}
	fmt.Fprintf(w, "\n%d of %d hits (log size %d)\n", len(res.GetHits()), res.GetTotalSize(), res.GetTreeSize())
	if f := res.GetFacets(); f != nil {
		for _, fc := range []struct {
			name string
			vs   []*pb.FacetCount
		}{{"speaker", f.GetSpeakerRoles()}, {"kind", f.GetKinds()}, {"encounter", f.GetEncounters()}} {
			var parts []string
			for _, v := range fc.vs {
				parts = append(parts, fmt.Sprintf("%s %d", v.GetValue(), v.GetCount()))
			}
			if fc.name == "encounter" && f.GetOtherEncounters() > 0 {
				parts = append(parts, fmt.Sprintf("others %d", f.GetOtherEncounters()))
			}
			fmt.Fprintf(w, "%s:\t%s\n", fc.name, strings.Join(parts, ", "))
		}
	}
	if t := res.GetNextPageToken(); t != "" {
		fmt.Fprintf(w, "next page: --page-token %s\n", t)
	}
}

// clock formats milliseconds as m:ss.
func clock(ms int64) string {
	s := ms / 1000
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// indexCmd is "evidencectl index": offline index maintenance.
func indexCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "index", Short: "Maintain the full-text index (offline, server stopped)"}
	c.AddCommand(indexRebuildCmd(g))
	return c
}

func indexRebuildCmd(g *globals) *cobra.Command {
	var dataDir, backend, origin string
	var batch int
	c := &cobra.Command{
		Use:   "rebuild --data-dir DIR",
		Short: "Drop the full-text index and rebuild it from the log (the server must be stopped)",
		Long: `Rebuild <data-dir>/index from the log in <data-dir>. The server must be
stopped: the storage engine's lock refuses a second opener. The new index is
built beside the old one and replaces it only when complete, so an
interrupted rebuild leaves the old index in place.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return usageError{"--data-dir is required"}
			}
			l, closeLog, err := openStoppedLog(dataDir, backend, origin)
			if err != nil {
				return err
			}
			defer closeLog()

			final := filepath.Join(dataDir, "index")
			tmp := final + ".rebuild"
			if err := index.Remove(tmp); err != nil {
				return err
			}
			start := time.Now()
			x, err := index.Open(tmp, l, index.Options{BatchEntries: batch, OnBatch: rebuildProgress(cmd.ErrOrStderr(), start)})
			if err != nil {
				return err
			}
			applied, err := x.CatchUp(cmd.Context())
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				x.Close()
				return err
			}
			docs, err := x.DocCount()
			if cerr := x.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := replaceView(index.Remove, tmp, final); err != nil {
				return err
			}
			el := time.Since(start)
			out := map[string]any{"data_dir": dataDir, "entries": applied, "documents": docs, "seconds": el.Seconds(),
				"entries_per_sec": float64(applied) / el.Seconds()}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "index\t%s\nentries\t%d\ndocuments\t%d\ntime\t%v (%.0f entries/s)\n", final, applied, docs, el.Round(time.Millisecond), out["entries_per_sec"])
			})
		},
	}
	f := c.Flags()
	f.StringVar(&dataDir, "data-dir", "", "the server's data directory")
	f.StringVar(&backend, "storage", "pebble", "storage engine: pebble or badger")
	f.StringVar(&origin, "origin", "", "log origin (default: read from the data directory's log.pub)")
	f.IntVar(&batch, "batch", 0, "log entries per index batch (default 2048)")
	return c
}

// rebuildProgress returns an OnBatch callback that draws a progress bar on w, at most
// twice a second and once at the end.
func rebuildProgress(w io.Writer, start time.Time) func(applied, target int64) {
	var last time.Time
	return func(applied, target int64) {
		if time.Since(last) < 500*time.Millisecond && applied < target {
			return
		}
		last = time.Now()
		fmt.Fprint(w, "\r"+progressBar(applied, target, time.Since(start)))
	}
}

// replaceView puts the view rebuilt in tmp in place of final, removing the old one with remove.
func replaceView(remove func(string) error, tmp, final string) error {
	if err := remove(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// openStoppedLog opens the log of a stopped server's data directory (the storage engine's
// lock refuses it while the server runs) with its signing key, and with its keyring, since
// payloads are encrypted at rest. An empty origin is read from the directory's log.pub.
func openStoppedLog(dataDir, backend, origin string) (*ledger.Appender, func(), error) {
	open, err := opener(backend)
	if err != nil {
		return nil, nil, err
	}
	if origin == "" {
		if origin, err = logOrigin(dataDir); err != nil {
			return nil, nil, err
		}
	}
	key, err := ledger.LoadOrCreateKey(dataDir, origin)
	if err != nil {
		return nil, nil, err
	}
	store, err := open(filepath.Join(dataDir, backend))
	if err != nil {
		return nil, nil, fmt.Errorf("open the log (is the server still running?): %w", err)
	}
	sealer, _, err := offlineSealer(dataDir, "", store)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	l, err := ledger.Open(store, ledger.Options{Origin: origin, Key: key, Sealer: sealer})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return l, func() { l.Close(); store.Close() }, nil
}

// logOrigin reads the origin (the key name) from the data directory's
// verifier key.
func logOrigin(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "log.pub"))
	if err != nil {
		return "", fmt.Errorf("no log in %s: %w", dataDir, err)
	}
	name, _, ok := strings.Cut(strings.TrimSpace(string(b)), "+")
	if !ok || name == "" {
		return "", fmt.Errorf("%s/log.pub is not a verifier key", dataDir)
	}
	return name, nil
}

// progressBar renders "[=====>    ] 52% 123456/234567 entries, 9876/s, ETA 1m2s".
func progressBar(done, total int64, el time.Duration) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	rate := float64(done) / max(el.Seconds(), 1e-9)
	eta := "-"
	if done > 0 && done < total {
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %3.0f%% %d/%d entries, %.0f/s, ETA %s   ", bar, 100*frac, done, total, rate, eta)
}

func benchSearchCmd(g *globals) *cobra.Command {
	var dataDir, dir string
	var segments, runs, appenders int
	var rebuild bool
	c := &cobra.Command{
		Use:   "search --data DIR [--segments N] [--dir DIR]",
		Short: "Index a corpus of real transcripts through a real ledger, then time queries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, cleanup, err := scratch(dir)
			if err != nil {
				return err
			}
			defer cleanup()
			r, err := indexbench.Run(cmd.Context(), indexbench.Config{DataDir: dataDir, Dir: d, Segments: segments, Runs: runs,
				Appenders: appenders, Rebuild: rebuild, Progress: func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) }})
			if err != nil {
				return err
			}
			return g.print(r, func(w *tabwriter.Writer) {
				mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
				fmt.Fprintf(w, "corpus\t%d segments and %d note sentences in %d visits (%d log entries, %d index documents)\n", r.Segments, r.Sentences, r.Visits, r.Entries, r.Documents)
				fmt.Fprintf(w, "indexing\t%.0f segments/s end to end (%.0fs; appends took %.0fs); %.0f CPU-s, %.0f CPU-µs per segment with the appends\n",
					r.SegmentsPerSec, r.IndexSeconds, r.IngestSeconds, r.IndexCPUSeconds, r.CPUPerSegmentUS)
				if r.RebuildSeconds > 0 {
					fmt.Fprintf(w, "rebuild\t%.0f segments/s (%.0fs, index only; %.0f CPU-s)\n", r.RebuildSegPerSec, r.RebuildSeconds, r.RebuildCPUSeconds)
				}
				fmt.Fprintf(w, "queries\tp50 %.2f ms, p99 %.2f ms over %d queries; %.2f CPU-ms per query\n", r.QueryP50MS, r.QueryP99MS, len(r.Queries), r.QueryCPUMS)
				fmt.Fprintf(w, "index size\t%s in %d segments after %.0fs of background merging (log %s)\n", mib(r.IndexBytes), r.IndexSegments, r.SettleSeconds, mib(r.LogBytes))
				fmt.Fprintf(w, "memory\tpeak RSS %s, peak Go heap %s, heap after GC %s\n", mib(r.PeakRSSBytes), mib(int64(r.PeakHeapBytes)), mib(int64(r.HeapAfterGC)))
				fmt.Fprintf(w, "machine\t%d CPUs, load %s before, %s after\n\n", r.CPUs, r.LoadBefore, r.LoadAfter)
				fmt.Fprintln(w, "QUERY\tTEXT\tHITS\tP50 MS\tP99 MS")
				for _, q := range r.Queries {
					fmt.Fprintf(w, "%s\t%s\t%d\t%.2f\t%.2f\n", q.Name, q.Query, q.Hits, q.P50MS, q.P99MS)
				}
			})
		},
	}
	f := c.Flags()
	f.StringVar(&dataDir, "data", "../shared/data", "the shared data folder (align-dev, primock57, aci-bench)")
	f.StringVar(&dir, "dir", "", "empty scratch directory (default: a temporary one, removed after)")
	f.IntVar(&segments, "segments", 1_000_000, "segments to ingest, at least")
	f.IntVar(&runs, "runs", 30, "timed runs of each query")
	f.IntVar(&appenders, "appenders", 8, "concurrent appenders")
	f.BoolVar(&rebuild, "rebuild", true, "also time a rebuild of the index from the finished log")
	return c
}
