package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/evidenceledger/evidence/compliance"
	"github.com/evidenceledger/evidence/envelope"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
	"github.com/evidenceledger/evidence/ledger"
	"github.com/evidenceledger/evidence/ledger/storage"
)

// complianceCmds are the compliance commands: provenance, verify-report,
// access and shred. (verify is in verify.go; its --server mode is here.)
func complianceCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{provenanceCmd(g), verifyReportCmd(g), accessCmd(g), shredCmd(g)}
}

var reportFormats = map[string]pb.ReportFormat{
	"json": pb.ReportFormat_REPORT_FORMAT_JSON,
	"html": pb.ReportFormat_REPORT_FORMAT_HTML,
	"fhir": pb.ReportFormat_REPORT_FORMAT_FHIR,
}

func provenanceCmd(g *globals) *cobra.Command {
	var encounterID, format, out string
	c := &cobra.Command{
		Use:   "provenance --encounter E [--format json|html|fhir] [--out FILE]",
		Short: "Export the provenance report of an encounter's current note (JSON is verified on receipt)",
		Long: `Export the provenance report of an encounter's current note: for each sentence its
origin (model and version, or the clinician), every edit, the sign-off, the evidence
spans with transcript text and audio times, and each entry's inclusion proof against
one signed checkpoint.

  json  the machine-readable report; evidencectl verifies it on receipt (signature,
        proofs, leaves, claims, and consistency with the trusted checkpoint) and
        "evidencectl verify-report" checks it again later, offline
  html  one printable page for people
  fhir  a FHIR R4 Bundle of Provenance and AuditEvent resources

Exporting is a read of PHI: the server records it in the access trail first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if encounterID == "" {
				return usageError{"--encounter is required"}
			}
			f, ok := reportFormats[format]
			if !ok {
				return usageError{"--format must be json, html or fhir"}
			}
			cl, err := g.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx := g.ctx(cmd.Context())
			resp, err := pb.NewComplianceServiceClient(cl.Conn()).ExportProvenance(ctx, &pb.ExportProvenanceRequest{EncounterId: encounterID, Format: f})
			if err != nil {
				return err
			}
			if format == "json" {
				if err := checkReceivedReport(ctx, cl, g, resp.GetContent(), cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if out == "" || out == "-" {
				_, err = g.stdout.Write(resp.GetContent())
				return err
			}
			if err := os.WriteFile(out, resp.GetContent(), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d bytes, %s)\n", out, len(resp.GetContent()), resp.GetContentType())
			return nil
		},
	}
	c.Flags().StringVar(&encounterID, "encounter", "", "the encounter id")
	c.Flags().StringVar(&format, "format", "json", "json, html or fhir")
	c.Flags().StringVar(&out, "out", "", "write the report to this file (mode 0600) instead of stdout")
	return c
}

// checkReceivedReport verifies a JSON report with the key this client
// trusts, and that its checkpoint is consistent with the latest checkpoint,
// itself verified against the trusted state.
func checkReceivedReport(ctx context.Context, cl *client.Client, g *globals, data []byte, stderr io.Writer) error {
	r, err := compliance.ParseReport(bytes.NewReader(data))
	if err != nil {
		return &client.VerificationError{What: err.Error()}
	}
	latest, err := cl.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	vkey, err := trustedKey(ctx, cl, g.verifierKey, g.state)
	if err != nil {
		return err
	}
	check := compliance.VerifyReport(r, vkey)
	if len(check.Problems) > 0 {
		for _, p := range check.Problems {
			fmt.Fprintln(stderr, "  problem:", p)
		}
		return verifyFailed{len(check.Problems)}
	}
	size := r.Log.Checkpoint.TreeSize
	root, _ := hex.DecodeString(r.Log.Checkpoint.RootHash)
	switch {
	case size > latest.TreeSize:
		return &client.VerificationError{What: "the report's checkpoint is newer than the server's latest"}
	case size == latest.TreeSize:
		if !bytes.Equal(root, latest.RootHash) {
			return &client.VerificationError{What: "the report's checkpoint and the latest one disagree on the root"}
		}
	default:
		p, err := cl.ConsistencyProof(ctx, size, latest.TreeSize)
		if err != nil {
			return err
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(size), uint64(latest.TreeSize), p.GetHashes(), root, latest.RootHash); err != nil {
			return &client.VerificationError{What: "the report's checkpoint is not consistent with the trusted log: " + err.Error()}
		}
	}
	fmt.Fprintf(stderr, "report verified: %d entries, %d sentences (%d flagged, %d resolutions), %d evidence spans against checkpoint %d\n",
		check.Entries, check.Sentences, check.Flagged, check.Resolutions, check.Evidence, size)
	return nil
}

// trustedKey returns the verifier key to trust: the pinned one
// (--verifier-key), else the state file's, else (trust on first use) the
// server's. The client checked the latest checkpoint with the same key.
func trustedKey(ctx context.Context, cl *client.Client, pinned, statePath string) (string, error) {
	if pinned != "" {
		return pinned, nil
	}
	if st := readState(statePath); st != nil && st.VerifierKey != "" {
		return st.VerifierKey, nil
	}
	info, err := cl.Ledger.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		return "", err
	}
	return info.GetVerifierKey(), nil
}

func readState(path string) *client.State {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var st client.State
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return &st
}

func verifyReportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify-report REPORT.json --verifier-key KEY",
		Short: "Check a JSON provenance report offline, with no server: signature, proofs, leaves and every claim",
		Long: `Check a JSON provenance report without a server and without trusting anything in it:
the checkpoint's signature with the verifier key you give (not the report's), every
entry's leaf hash from its leaf data, every leaf field against the report, every
payload against its leaf's commitment, every inclusion proof against the checkpoint,
and every claim (sentence texts, origins, edits, evidence, verdicts with their
conflicts and unsupported parts, resolutions and the verdict each clinician saw,
sign-offs, accesses) against the payloads, and that a signed note has no flagged
sentence left unresolved. Exit status 3 when anything fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.verifierKey == "" {
				return usageError{"--verifier-key is required: the key your organisation pinned, not the report's"}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r, err := compliance.ParseReport(f)
			if err != nil {
				return err
			}
			check := compliance.VerifyReport(r, g.verifierKey)
			err = g.print(check, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "report\t%s (%s)\nencounter\t%s\nlog\t%s\ncheckpoint\t%d %s\nentries\t%d\nsentences\t%d\nflagged sentences\t%d\nresolutions\t%d\nevidence spans\t%d\naccesses\t%d\n",
					args[0], check.Format, check.Encounter, check.Origin, check.TreeSize, check.RootHash, check.Entries, check.Sentences, check.Flagged, check.Resolutions, check.Evidence, check.Accesses)
				printResult(w, "VERIFIED", check.Problems)
			})
			if err != nil {
				return err
			}
			if len(check.Problems) > 0 {
				return verifyFailed{len(check.Problems)}
			}
			return nil
		},
	}
}

func accessCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "access", Short: "Read the access trail (who read which PHI, when, from where)"}
	c.AddCommand(accessListCmd(g))
	return c
}

var accessColumns = []string{"leaf_index", "time", "tenant", "encounter_id", "actor", "role", "action", "channel", "remote_addr", "forwarded_for", "head_index", "leaf_indexes", "encounter_ids", "count", "format"}

func accessListCmd(g *globals) *cobra.Command {
	var encounterID, user, from, to, format string
	c := &cobra.Command{
		Use:   "list [--encounter E] [--user U] [--from T] [--to T] [--format table|csv|jsonl]",
		Short: "List access events of the tenant: of an encounter, by a user, in a time range",
		Long: `List the tenant's access events in log order. --encounter selects the reads of one
encounter, including searches and listings that disclosed it; --user the reads by one
user or service; --from and --to a time range (RFC 3339 or a date; --to exclusive).
Auditor or admin role.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.json && format == "table" {
				format = "jsonl"
			}
			if format != "table" && format != "csv" && format != "jsonl" {
				return usageError{"--format must be table, csv or jsonl"}
			}
			req := &pb.ListAccessEventsRequest{EncounterId: encounterID, Actor: user}
			for _, tf := range []struct {
				flag, v string
				dst     **timestamppb.Timestamp
			}{{"--from", from, &req.StartTime}, {"--to", to, &req.EndTime}} {
				if tf.v == "" {
					continue
				}
				t, err := parseTime(tf.v)
				if err != nil {
					return usageError{tf.flag + ": " + err.Error()}
				}
				*tf.dst = timestamppb.New(t)
			}
			cl, err := g.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := pb.NewComplianceServiceClient(cl.Conn()).ListAccessEvents(g.ctx(cmd.Context()), req)
			if err != nil {
				return err
			}
			var tw *tabwriter.Writer
			var cw *csv.Writer
			switch format {
			case "table":
				tw = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "LEAF\tTIME\tACTOR\tROLE\tACTION\tENCOUNTER\tFROM")
			case "csv":
				cw = csv.NewWriter(g.stdout)
				cw.Write(accessColumns)
			}
			n := 0
			for {
				resp, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				ev := resp.GetEvent()
				n++
				switch format {
				case "table":
					what := ev.GetEncounterId()
					if len(ev.GetEncounterIds()) > 0 {
						what += " (" + strings.Join(ev.GetEncounterIds(), ",") + ")"
					}
					fromAddr := ev.GetRemoteAddr()
					if ev.GetForwardedFor() != "" {
						fromAddr += " for " + ev.GetForwardedFor()
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.GetLeafIndex(), ev.GetRecordTime().AsTime().Format(time.RFC3339), ev.GetActor(),
						ev.GetRole(), ev.GetAction()+optional(ev.GetFormat()), what, fromAddr+" "+ev.GetChannel())
				case "csv":
					cw.Write(accessRecord(ev))
				case "jsonl":
					b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
					if err != nil {
						return err
					}
					fmt.Fprintf(g.stdout, "%s\n", b)
				}
			}
			switch format {
			case "table":
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d access events\n", n)
			case "csv":
				cw.Flush()
				return cw.Error()
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&encounterID, "encounter", "", "only the accesses of this encounter")
	f.StringVar(&user, "user", "", "only the accesses by this actor")
	f.StringVar(&from, "from", "", "only accesses at or after this time")
	f.StringVar(&to, "to", "", "only accesses before this time")
	f.StringVar(&format, "format", "table", "table, csv or jsonl")
	return c
}

func optional(format string) string {
	if format == "" {
		return ""
	}
	return " (" + format + ")"
}

func accessRecord(ev *pb.AccessEvent) []string {
	ints := func(xs []int64) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = strconv.FormatInt(x, 10)
		}
		return strings.Join(s, " ")
	}
	return []string{strconv.FormatInt(ev.GetLeafIndex(), 10), ev.GetRecordTime().AsTime().Format(time.RFC3339Nano), ev.GetTenant(), ev.GetEncounterId(),
		ev.GetActor(), ev.GetRole(), ev.GetAction(), ev.GetChannel(), ev.GetRemoteAddr(), ev.GetForwardedFor(), strconv.FormatInt(ev.GetHeadIndex(), 10),
		ints(ev.GetLeafIndexes()), strings.Join(ev.GetEncounterIds(), " "), strconv.FormatInt(ev.GetCount(), 10), ev.GetFormat()}
}

func shredCmd(g *globals) *cobra.Command {
	var encounterID, reason string
	c := &cobra.Command{
		Use:   "shred --encounter E --reason R",
		Short: "Crypto-shred an encounter: destroy its key, payloads, recordings and index documents (admin)",
		Long: `Crypto-shred an encounter. The server destroys the encounter's data key (and
erases it from the storage engine's files), turns its payloads into tombstones,
deletes its recordings, removes it from the search index and appends a redaction
entry with the reason. This cannot be undone. Leaves and proofs stay valid: verify
still passes and reports the payloads as redacted; reads of the encounter fail with
FailedPrecondition. The access trail of the encounter is kept. Safe to repeat after a
failure. The reason is recorded in the log: do not put PHI in it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if encounterID == "" || strings.TrimSpace(reason) == "" {
				return usageError{"--encounter and --reason are required"}
			}
			cl, err := g.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			resp, err := pb.NewComplianceServiceClient(cl.Conn()).ShredEncounter(g.ctx(cmd.Context()), &pb.ShredEncounterRequest{EncounterId: encounterID, Reason: reason})
			if err != nil {
				return err
			}
			return g.printProto(resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "encounter\t%s\nredaction entry\t%v\ncheckpoint\t%d\npayloads destroyed\t%d\nrecordings destroyed\t%d\nkey erased from storage files\t%v\nindex documents removed\t%v\n",
					encounterID, resp.GetReceipt().GetLeafIndexes(), resp.GetReceipt().GetCheckpoint().GetTreeSize(), resp.GetPayloadsDestroyed(),
					resp.GetRecordingsDestroyed(), resp.GetKeyPurged(), resp.GetIndexCleared())
				if resp.GetAlreadyShredded() {
					fmt.Fprintln(w, "note\tthe key had been destroyed by an earlier call")
				}
			})
		},
	}
	c.Flags().StringVar(&encounterID, "encounter", "", "the encounter id")
	c.Flags().StringVar(&reason, "reason", "", "why (recorded in the log; no PHI)")
	return c
}

// offlineSealer opens the data directory's keyring read-only, for checking
// payloads offline. Without a keyring, payloads are checked as stored
// (a log written without encryption at rest).
func offlineSealer(dataDir, keyringPath string, store storage.Store) (ledger.Sealer, string, error) {
	if keyringPath == "" {
		keyringPath = envelope.DefaultKeyringPath(dataDir)
	}
	if _, err := os.Stat(keyringPath); errors.Is(err, os.ErrNotExist) {
		return nil, "no keyring at " + keyringPath + ": payloads are checked as stored, unencrypted", nil
	}
	sealer, _, err := envelope.OpenLocal(store, keyringPath, false)
	if err != nil {
		return nil, "", err
	}
	return sealer, "payloads opened with the keyring " + keyringPath, nil
}

// verifyRemote is "verify --server": the whole log through the API.
func verifyRemote(cmd *cobra.Command, g *globals) error {
	ctx := g.ctx(cmd.Context())
	// The trust state as it was before this run: the tree must extend it.
	before := readState(g.state)
	vkey := g.verifierKey
	if vkey == "" && before != nil {
		vkey = before.VerifierKey
	}
	tc, err := g.tlsConfig()
	if err != nil {
		return err
	}
	cl, err := client.Dial(g.server, client.Options{Token: g.bearer(), StatePath: g.state, VerifierKey: vkey, TLS: tc})
	if err != nil {
		return err
	}
	defer cl.Close()
	latest, err := cl.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	if vkey == "" {
		if vkey, err = trustedKey(ctx, cl, "", g.state); err != nil {
			return err
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: no pinned verifier key; trusting the server's on first use:", vkey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return &client.VerificationError{What: "malformed verifier key: " + err.Error()}
	}
	opts := compliance.LogCheckOptions{Verifier: v, Latest: latest.Note}
	if before != nil && before.TreeSize > 0 && before.VerifierKey == vkey {
		opts.TrustedSize, opts.TrustedRoot = before.TreeSize, before.RootHash
	}
	start := time.Now()
	opts.Progress = func(done, total int64) {
		if g.json || total == 0 {
			return
		}
		eta := "?"
		if done > 0 {
			eta = (time.Duration(float64(time.Since(start)) * float64(total-done) / float64(done))).Round(time.Second).String()
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "\rverifying %s %d/%d entries, ETA %s   ", bar(done, total), done, total, eta)
	}
	rep, err := compliance.VerifyLog(ctx, &grpcLogSource{api: cl.Ledger}, opts)
	if !g.json {
		fmt.Fprintln(cmd.ErrOrStderr())
	}
	if err != nil {
		return err
	}
	err = g.print(rep, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "server\t%s\nlog\t%s\ntree size\t%d\nroot hash\t%s\nentries checked\t%d\ncheckpoints checked\t%d\nencounters\t%d\n",
			g.server, v.Name(), rep.TreeSize, rep.RootHash, rep.Leaves, rep.Checkpoints, rep.Encounters)
		if opts.TrustedSize > 0 {
			fmt.Fprintf(w, "extends trusted checkpoint\t%d\n", opts.TrustedSize)
		}
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "note\t%s\n", n)
		}
		printResult(w, "INTACT", rep.Problems)
	})
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return verifyFailed{len(rep.Problems)}
	}
	return nil
}

// grpcLogSource reads a log through LedgerService.
type grpcLogSource struct {
	api pb.LedgerServiceClient
}

func (s *grpcLogSource) Checkpoints(ctx context.Context, fn func(int64, []byte) error) error {
	st, err := s.api.ListCheckpoints(ctx, &pb.ListCheckpointsRequest{})
	if err != nil {
		return err
	}
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(r.GetCheckpoint().GetTreeSize(), r.GetCheckpoint().GetNote()); err != nil {
			return err
		}
	}
}

func (s *grpcLogSource) Entries(ctx context.Context, size int64, fn func(int64, []byte, []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := s.api.StreamEntries(ctx, &pb.StreamEntriesRequest{})
	if err != nil {
		return err
	}
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		e := r.GetEntry()
		if e.GetLeafIndex() >= size {
			return nil // beyond the checkpoint being checked
		}
		if err := fn(e.GetLeafIndex(), e.GetLeafData(), e.GetLeafHash()); err != nil {
			return err
		}
	}
}
