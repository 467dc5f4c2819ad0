package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/evidenceledger/evidence/auth"
	"github.com/evidenceledger/evidence/grpcapi/client"
	pb "github.com/evidenceledger/evidence/grpcapi/gen/evidence/v1"
)

// TestNoSecretsOrPHIInLogs runs the real server at debug level through a
// session that uses tokens and PHI, good and bad requests over gRPC and
// HTTP, and the metrics endpoint; then it looks for every token and every
// piece of PHI in the server's log, in the metrics and in the error
// messages the clients got.
func TestNoSecretsOrPHIInLogs(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	phi := []string{"Wilhelmina Quatermass", "Hemoglobin 7.2 after the Zyxtra infusion", "MRN-00417733"}
	badToken := auth.GenerateToken()
	badJWT := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJNUk4tMDA0MTc3MzMifQ.c2lnbmF0dXJl"
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	pipe := s.client(t, "", "pipeline")
	created, err := pipe.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: "Visit of " + phi[0], PatientRef: phi[2]})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetEncounter().GetEncounterId()
	_, err = pipe.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
		{SegmentId: "g1", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: phi[1], StartMs: 0, EndMs: 1000}}})
	note(err)
	// Rejected requests that carry PHI.
	_, err = pipe.Encounters.RecordSegments(ctx, &pb.RecordSegmentsRequest{EncounterId: id, Segments: []*pb.Segment{
		{SegmentId: "g2", SpeakerRole: pb.SpeakerRole_SPEAKER_ROLE_PATIENT, Text: phi[1], StartMs: 5, EndMs: 1}}})
	note(err)
	_, err = pipe.Encounters.GetNote(ctx, &pb.GetNoteRequest{EncounterId: id}) // PermissionDenied
	note(err)
	_, err = pipe.Encounters.CreateEncounter(ctx, &pb.CreateEncounterRequest{Title: strings.Repeat(phi[0], 40)})
	note(err)
	// Bad credentials, over gRPC and HTTP.
	for _, tok := range []string{badToken, badJWT, "Basic " + phi[2]} {
		c, err := client.Dial(s.grpcAddr, client.Options{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Encounters.ListEncounters(ctx, &pb.ListEncountersRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("bad token: %v", err)
		}
		note(err)
		c.Close()
		resp, err := do("GET", "http://"+s.httpAddr+"/api/v1/encounters", tok, "")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		errs = append(errs, string(b))
	}
	// Good reads over HTTP, audio included, and a failing edit with PHI.
	for _, p := range []string{"/api/v1/encounters/" + id + "/note", "/api/v1/encounters/" + id + "/transcript", "/api/v1/search?q=Zyxtra", "/api/v1/encounters/" + id + "/audio"} {
		resp, err := do("GET", "http://"+s.httpAddr+p, s.tokens["clinician"], "")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, b)
		}
	}
	resp, err := do("POST", "http://"+s.httpAddr+"/api/v1/encounters/"+id+"/edits", s.tokens["clinician"], `{"action":"EDIT_ACTION_REPLACE","sentence_id":"nope","text":"`+phi[1]+`","reason":"`+phi[0]+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	errs = append(errs, string(b))
	// Metrics, as the operator.
	metrics, err := getAs("http://"+s.httpAddr+"/metrics", s.tokens["operator"])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), "evidence_grpc_requests_total") {
		t.Fatal("no RPC metrics")
	}
	s.stop()

	secrets := map[string]string{"bad token": badToken, "bad JWT": badJWT}
	for role, tok := range s.tokens {
		secrets[role+" token"] = tok
		secrets[role+" token's secret part"] = strings.TrimPrefix(tok, auth.TokenPrefix)
	}
	for i, p := range phi {
		secrets["PHI "+string(rune('A'+i))] = p
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"code":"Unauthenticated"`) || !strings.Contains(logs, `"code":"PermissionDenied"`) {
		t.Fatal("the log does not show the refusals it was meant to show")
	}
	for what, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s", what)
		}
		if strings.Contains(string(metrics), secret) {
			t.Errorf("the metrics hold the %s", what)
		}
		for _, e := range errs {
			if strings.Contains(e, secret) {
				t.Errorf("an error message holds the %s: %.200s", what, e)
			}
		}
	}
	// The tokens file holds hashes only.
	tf, _ := readFile(filepath.Join(data, auth.TokensFileName))
	for role, tok := range s.tokens {
		if strings.Contains(tf, strings.TrimPrefix(tok, auth.TokenPrefix)) {
			t.Errorf("the tokens file holds the %s token", role)
		}
	}
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
