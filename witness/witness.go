// Package witness makes the log witnessed the standard way: it submits
// checkpoints to C2SP tlog-witness witnesses (https://c2sp.org/tlog-witness)
// with consistency proofs, keeps the cosignatures they return
// (https://c2sp.org/tlog-cosignature, cosignature/v1), and checks a
// cosigned checkpoint against a policy of pinned witness keys.
//
// A witness cosigns a checkpoint only if it is consistent with the last
// one it cosigned for the log, so a log that was rolled back, or forked
// (shows different trees to different parties), cannot obtain
// cosignatures for its new history from an honest witness: clients that
// require cosignatures (Policy) refuse it.
package witness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	f_note "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Witness is one witness: where it is and the key it cosigns with.
type Witness struct {
	// URL is the witness's prefix; add-checkpoint is URL + "/add-checkpoint".
	URL string
	// Verifier checks its cosignatures (a cosignature/v1 vkey).
	Verifier note.Verifier
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
}

// Parse reads a witness given as "vkey=URL".
func Parse(s string) (Witness, error) {
	vkey, url, ok := strings.Cut(s, "=")
	if !ok || url == "" {
		return Witness{}, fmt.Errorf("witness: %q is not VKEY=URL", s)
	}
	v, err := f_note.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return Witness{}, fmt.Errorf("witness: key %q: %w", vkey, err)
	}
	return Witness{URL: strings.TrimSuffix(url, "/"), Verifier: v}, nil
}

// ConflictError is a witness's answer that the old size sent is not the
// size of the last checkpoint it cosigned for the log (409 Conflict). Size
// is the witness's size.
type ConflictError struct{ Size int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: the witness's latest cosigned size is %d", e.Size)
}

// RefusedError is any other refusal. Status 422 means the checkpoint is not
// consistent with what the witness cosigned before (a rolled-back or forked
// log); 400 an old size larger than the checkpoint's; 403 no valid log
// signature; 404 a log the witness does not know.
type RefusedError struct{ Status int }

func (e *RefusedError) Error() string {
	reason := map[int]string{
		http.StatusUnprocessableEntity: "the checkpoint is not consistent with the one it cosigned last (the log was rolled back or forked)",
		http.StatusBadRequest:          "the request was malformed, or its old size exceeds the checkpoint's",
		http.StatusForbidden:           "the checkpoint carries no signature it trusts for this log",
		http.StatusNotFound:            "it does not witness this log",
		http.StatusTooManyRequests:     "it is overloaded",
	}[e.Status]
	if reason == "" {
		reason = "unexpected status"
	}
	return fmt.Sprintf("witness: refused with %d: %s", e.Status, reason)
}

// AddCheckpoint submits a signed checkpoint with the consistency proof from
// oldSize, the size of the last checkpoint the witness cosigned (0 if none),
// and returns the witness's cosignature lines, each checked with
// w.Verifier against the checkpoint.
func (w Witness) AddCheckpoint(ctx context.Context, oldSize int64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	var body bytes.Buffer
	fmt.Fprintf(&body, "old %d\n", oldSize)
	for _, h := range proof {
		body.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	body.WriteString("\n")
	body.Write(checkpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL+"/add-checkpoint", &body)
	if err != nil {
		return nil, err
	}
	c := w.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil || n < 0 {
			return nil, &RefusedError{Status: resp.StatusCode}
		}
		return nil, &ConflictError{Size: n}
	default:
		return nil, &RefusedError{Status: resp.StatusCode}
	}
	return checkCosignatures(checkpoint, data, w.Verifier)
}

// checkCosignatures returns the signature lines of resp that v verifies on
// the checkpoint's body; it is an error if none does.
func checkCosignatures(checkpoint, resp []byte, v note.Verifier) ([]byte, error) {
	text, _, ok := bytes.Cut(checkpoint, []byte("\n\n"))
	if !ok {
		return nil, errors.New("witness: the checkpoint is not a signed note")
	}
	var out []byte
	sc := bufio.NewScanner(bytes.NewReader(resp))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		n, err := note.Open(append(append(append([]byte(nil), text...), "\n\n"...), line+"\n"...), note.VerifierList(v))
		if err != nil || len(n.Sigs) != 1 {
			continue
		}
		out = append(out, line+"\n"...)
	}
	if len(out) == 0 {
		return nil, errors.New("witness: the response holds no valid cosignature from the witness's key")
	}
	return out, nil
}

// Policy is a client's requirement: at least Quorum cosignatures from the
// pinned witness keys.
type Policy struct {
	Verifiers []note.Verifier
	Quorum    int
}

// NewPolicy parses cosignature/v1 vkeys. A quorum of 0 means all of them.
func NewPolicy(vkeys []string, quorum int) (*Policy, error) {
	p := &Policy{Quorum: quorum}
	for _, k := range vkeys {
		v, err := f_note.NewVerifierForCosignatureV1(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("witness: key %q: %w", k, err)
		}
		p.Verifiers = append(p.Verifiers, v)
	}
	if p.Quorum <= 0 || p.Quorum > len(p.Verifiers) {
		if quorum > len(p.Verifiers) {
			return nil, fmt.Errorf("witness: a quorum of %d from %d witness keys", quorum, len(p.Verifiers))
		}
		p.Quorum = len(p.Verifiers)
	}
	return p, nil
}

// PolicyError reports a checkpoint without enough cosignatures.
type PolicyError struct{ Have, Want int }

func (e *PolicyError) Error() string {
	return fmt.Sprintf("witness: the checkpoint is cosigned by %d of the pinned witnesses; %d required", e.Have, e.Want)
}

// Check counts the distinct pinned witnesses whose cosignature verifies on
// the signed checkpoint, and returns a *PolicyError when they are fewer
// than the quorum. It does not check the log's own signature.
func (p *Policy) Check(signed []byte) error {
	have := 0
	for _, v := range p.Verifiers {
		if n, err := note.Open(signed, note.VerifierList(v)); err == nil && len(n.Sigs) > 0 {
			have++
		}
	}
	if have < p.Quorum {
		return &PolicyError{Have: have, Want: p.Quorum}
	}
	return nil
}
