package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// printProto prints a message as protojson with --json, else calls table.
func (g *globals) printProto(m proto.Message, table func(w *tabwriter.Writer)) error {
	if g.json {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.stdout, "%s\n", b)
		return err
	}
	return g.print(nil, table)
}

func encounterCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "encounter", Short: "Create, list and show encounters"}
	c.AddCommand(encounterListCmd(g), encounterCreateCmd(g), encounterShowCmd(g))
	return c
}

func encounterListCmd(g *globals) *cobra.Command {
	var pageSize int32
	var all, unresolved bool
	var status, patient, from, to, token string
	c := &cobra.Command{
		Use:   "list [--status S] [--unresolved] [--patient-ref R] [--updated-from T --updated-to T]",
		Short: "List encounters, the most recently written first",
		Long: `List the tenant's encounters, the most recently written first, one page at
a time (--all follows the pages to the end). Filters: the note's status
(none, drafted, signed), unresolved flagged sentences, the patient
reference, and the time of the last write (RFC 3339 or a date, midnight
UTC; --updated-to is exclusive). Without --all, a following page is
announced on stderr with its --page-token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pb.ListEncountersRequest{PageSize: pageSize, PageToken: token, HasUnresolvedFlags: unresolved, PatientRef: patient}
			if status != "" {
				st, ok := pb.NoteStatus_value["NOTE_STATUS_"+strings.ToUpper(status)]
				if !ok || st == 0 {
					return usageError{"--status must be none, drafted or signed"}
				}
				req.NoteStatus = pb.NoteStatus(st)
			}
			for _, t := range []struct {
				flag, v string
				dst     **timestamppb.Timestamp
			}{{"--updated-from", from, &req.UpdateTimeStart}, {"--updated-to", to, &req.UpdateTimeEnd}} {
				if t.v == "" {
					continue
				}
				ts, err := parseTime(t.v)
				if err != nil {
					return usageError{t.flag + ": " + err.Error()}
				}
				*t.dst = timestamppb.New(ts)
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp := &pb.ListEncountersResponse{}
			for {
				page, err := c.Encounters.ListEncounters(g.ctx(cmd.Context()), req)
				if err != nil {
					return err
				}
				resp.Encounters = append(resp.Encounters, page.GetEncounters()...)
				resp.NextPageToken, resp.TreeSize = page.GetNextPageToken(), page.GetTreeSize()
				if !all || page.GetNextPageToken() == "" {
					break
				}
				req.PageToken = page.GetNextPageToken()
			}
			if !all && resp.GetNextPageToken() != "" && !g.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: --page-token %s\n", resp.GetNextPageToken())
			}
			return g.printProto(resp, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ENCOUNTER\tTITLE\tUPDATED\tNOTE\tFLAGGED\tUNRESOLVED\tENTRIES")
				for _, e := range resp.GetEncounters() {
					title := e.GetTitle()
					if e.GetRedacted() {
						title = "(shredded)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", e.GetEncounterId(), title, e.GetUpdateTime().AsTime().Format("2006-01-02 15:04"),
						strings.ToLower(strings.TrimPrefix(e.GetNoteStatus().String(), "NOTE_STATUS_")), e.GetFlaggedSentences(), e.GetUnresolvedSentences(), e.GetEntryCount())
				}
			})
		},
	}
	f := c.Flags()
	f.StringVar(&status, "status", "", "only notes in this status: none, drafted or signed")
	f.BoolVar(&unresolved, "unresolved", false, "only encounters with unresolved flagged sentences")
	f.StringVar(&patient, "patient-ref", "", "only encounters of this patient reference")
	f.StringVar(&from, "updated-from", "", "only encounters last written at or after this time")
	f.StringVar(&to, "updated-to", "", "only encounters last written before this time")
	f.Int32Var(&pageSize, "page-size", 0, "encounters per page (server default 50, at most 500)")
	f.StringVar(&token, "page-token", "", "continue from a previous page")
	f.BoolVar(&all, "all", false, "follow page tokens to the end")
	return c
}

func encounterCreateCmd(g *globals) *cobra.Command {
	var title, patientRef string
	c := &cobra.Command{
		Use:   "create --title T",
		Short: "Open a new encounter",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Encounters.CreateEncounter(g.ctx(cmd.Context()), &pb.CreateEncounterRequest{Title: title, PatientRef: patientRef})
			if err != nil {
				return err
			}
			return g.printProto(resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "encounter\t%s\nleaf\t%v\n", resp.GetEncounter().GetEncounterId(), resp.GetReceipt().GetLeafIndexes())
			})
		},
	}
	c.Flags().StringVar(&title, "title", "", "title")
	c.Flags().StringVar(&patientRef, "patient-ref", "", "opaque patient reference")
	return c
}

func encounterShowCmd(g *globals) *cobra.Command {
	var id string
	c := &cobra.Command{
		Use:   "show --encounter E",
		Short: "Show an encounter's summary and transcript",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			tr, err := c.Encounters.GetTranscript(g.ctx(cmd.Context()), &pb.GetTranscriptRequest{EncounterId: id})
			if err != nil {
				return err
			}
			return g.printProto(tr, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "LEAF\tSEGMENT\tSPEAKER\tSTART\tEND\tTEXT")
				for _, s := range tr.GetSegments() {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", s.GetLeafIndex(), s.GetSegmentId(), roleName(s.GetSpeakerRole()), ms(s.GetStartMs()), ms(s.GetEndMs()), s.GetText())
				}
			})
		},
	}
	c.Flags().StringVar(&id, "encounter", "", "encounter id")
	c.MarkFlagRequired("encounter")
	return c
}

func roleName(r pb.SpeakerRole) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "SPEAKER_ROLE_"))
}

func ms(v int64) string { return fmt.Sprintf("%d:%02d.%03d", v/60000, v/1000%60, v%1000) }

func noteCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "note", Short: "Show the current note"}
	var id string
	show := &cobra.Command{
		Use:   "show --encounter E",
		Short: "Show the current note with evidence and provenance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := c.Encounters.GetNote(g.ctx(cmd.Context()), &pb.GetNoteRequest{EncounterId: id})
			if err != nil {
				return err
			}
			n := resp.GetNote()
			return g.printProto(n, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "encounter\t%s\nmodel\t%s %s\nnote hash\t%s\nsigned\t%v\n\n", n.GetEncounterId(), n.GetModel().GetName(), n.GetModel().GetVersion(), hex.EncodeToString(n.GetNoteHash()), n.GetSigned())
				fmt.Fprintln(w, "SECTION\tID\tEVIDENCE\tTEXT")
				for _, sec := range n.GetSections() {
					for _, s := range sec.GetSentences() {
						ev := "UNSUPPORTED"
						if len(s.GetEvidence()) > 0 {
							e := s.GetEvidence()[0]
							ev = fmt.Sprintf("%s %s-%s (%d)", e.GetSegmentId(), ms(e.GetStartMs()), ms(e.GetEndMs()), len(s.GetEvidence()))
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", sec.GetName(), s.GetSentenceId(), ev, s.GetText())
					}
				}
			})
		},
	}
	show.Flags().StringVar(&id, "encounter", "", "encounter id")
	show.MarkFlagRequired("encounter")
	c.AddCommand(show, noteGenerateCmd(g))
	return c
}

// segmentLine is one line of a segments file for "segments record".
type segmentLine struct {
	SegmentID string  `json:"segment_id"`
	Speaker   string  `json:"speaker"`
	StartMS   int64   `json:"start_ms"`
	EndMS     int64   `json:"end_ms"`
	Text      string  `json:"text"`
	ASRModel  string  `json:"asr_model"`
	Conf      float64 `json:"confidence"`
}

func segmentsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "segments", Short: "Record transcript segments"}
	var id, file string
	var batch int
	rec := &cobra.Command{
		Use:   "record --encounter E --file segments.jsonl",
		Short: `Record segments from JSON Lines: {"segment_id","speaker","start_ms","end_ms","text"}`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			var segs []*pb.Segment
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for line := 1; sc.Scan(); line++ {
				if strings.TrimSpace(sc.Text()) == "" {
					continue
				}
				var s segmentLine
				dec := json.NewDecoder(strings.NewReader(sc.Text()))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&s); err != nil {
					return usageError{fmt.Sprintf("%s:%d: %v", file, line, err)}
				}
				role, ok := pb.SpeakerRole_value["SPEAKER_ROLE_"+strings.ToUpper(s.Speaker)]
				if !ok {
					return usageError{fmt.Sprintf("%s:%d: speaker must be clinician, patient or other", file, line)}
				}
				segs = append(segs, &pb.Segment{SegmentId: s.SegmentID, SpeakerRole: pb.SpeakerRole(role), StartMs: s.StartMS, EndMs: s.EndMS, Text: s.Text, AsrModel: s.ASRModel, Confidence: s.Conf})
			}
			if err := sc.Err(); err != nil {
				return err
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			var leaves []int64
			for start := 0; start < len(segs); start += batch {
				resp, err := c.Encounters.RecordSegments(g.ctx(cmd.Context()), &pb.RecordSegmentsRequest{EncounterId: id, Segments: segs[start:min(start+batch, len(segs))]})
				if err != nil {
					return err
				}
				leaves = append(leaves, resp.GetReceipt().GetLeafIndexes()...)
			}
			return g.print(map[string]any{"recorded": len(leaves), "leaf_indexes": leaves}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "recorded\t%d segments\n", len(leaves))
			})
		},
	}
	rec.Flags().StringVar(&id, "encounter", "", "encounter id")
	rec.Flags().StringVar(&file, "file", "", "JSON Lines file of segments")
	rec.Flags().IntVar(&batch, "batch", 100, "segments per request")
	rec.MarkFlagRequired("encounter")
	rec.MarkFlagRequired("file")
	c.AddCommand(rec)
	return c
}
