package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evidenceledger/evidence/auth"
)

// tokenCmd manages the server's bearer tokens. It works on the tokens file
// itself, on the server's machine: managing tokens needs write access to
// the data directory, which is what the admin role is in practice. The
// server picks up changes within a second.
func tokenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Create, list and revoke bearer tokens (on the server's data directory)"}
	var dataDir, file string
	c.PersistentFlags().StringVar(&dataDir, "data-dir", envOr("EVIDENCE_DATA_DIR", "data"), "the server's data directory (EVIDENCE_DATA_DIR)")
	c.PersistentFlags().StringVar(&file, "tokens-file", "", "the tokens file (default <data-dir>/tokens.json)")
	path := func() string {
		if file != "" {
			return file
		}
		return filepath.Join(dataDir, auth.TokensFileName)
	}
	c.AddCommand(tokenCreateCmd(g, path), tokenListCmd(g, path), tokenRevokeCmd(g, path))
	return c
}

func tokenCreateCmd(g *globals, path func() string) *cobra.Command {
	var id auth.Identity
	var ttl time.Duration
	var label string
	c := &cobra.Command{
		Use:   "create --tenant T --role R --subject S",
		Short: "Create a token and print it once; the file keeps only its SHA-256",
		Long: "Create a bearer token for a tenant, role and subject, add its SHA-256 to the tokens file (mode 0600) and print the token.\n" +
			"It is shown only now: store it in a secret manager. Roles: pipeline, clinician, auditor, admin; --tenant '*' with\n" +
			"auditor or admin makes an operator token (leaf metadata of every tenant, entry bundles, metrics; no PHI).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id.Tenant == "" || id.Role == "" || id.Subject == "" {
				return usageError{"--tenant, --role and --subject are required"}
			}
			if err := id.Validate(); err != nil {
				return usageError{fmt.Sprintf("invalid identity: %v", err)}
			}
			tok, rec, err := auth.CreateToken(path(), id, auth.TokenOptions{TTL: ttl, Label: label})
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(g.stdout).Encode(map[string]any{"token": tok, "record": rec})
			}
			fmt.Fprintln(g.stdout, tok)
			fmt.Fprintf(cmd.ErrOrStderr(), "created %s for %s/%s/%s in %s; the token is shown only once\n", rec.ID, rec.Tenant, rec.Role, rec.Subject, path())
			return nil
		},
	}
	c.Flags().StringVar(&id.Tenant, "tenant", "", "tenant (or '*' for an operator auditor or admin)")
	c.Flags().StringVar(&id.Role, "role", "", "pipeline, clinician, auditor or admin")
	c.Flags().StringVar(&id.Subject, "subject", "", "who holds it, e.g. dr.lee@st-marys.example or svc:asr")
	c.Flags().DurationVar(&ttl, "ttl", 0, "expire after this long (default: never)")
	c.Flags().StringVar(&label, "label", "", "a note for listings")
	return c
}

func tokenListCmd(g *globals, path func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens' ids, identities and expiry (never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			recs, err := auth.ListTokens(path())
			if err != nil {
				return err
			}
			if recs == nil {
				recs = []auth.TokenRecord{}
			}
			return g.print(recs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tTENANT\tROLE\tSUBJECT\tCREATED\tEXPIRES\tLABEL")
				for _, r := range recs {
					exp := "never"
					if r.Expires != nil {
						exp = r.Expires.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Tenant, r.Role, r.Subject, r.Created.Format(time.RFC3339), exp, r.Label)
				}
			})
		},
	}
}

func tokenRevokeCmd(g *globals, path func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token by its id (see token list); the server refuses it within a second",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := auth.RevokeToken(path(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "revoked %s (%s/%s/%s)\n", rec.ID, rec.Tenant, rec.Role, rec.Subject)
			return nil
		},
	}
}
