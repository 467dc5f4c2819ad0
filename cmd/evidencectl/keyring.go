package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evidenceledger/evidence/envelope"
)

// keyringCmd manages the local keyring's tenant key-encryption keys
// (envelope.Keyring), on the server's data directory. A single server
// makes a tenant's key on the tenant's first write; cluster members never
// do (the others would not have it), so the operator adds every tenant's
// key to the bootstrap node's keyring and copies the file to every member
// before starting it. A running server reads its keyring at start.
func keyringCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "keyring", Short: "List and add tenants' key-encryption keys (on the server's data directory)"}
	var dataDir, file string
	c.PersistentFlags().StringVar(&dataDir, "data-dir", envOr("EVIDENCE_DATA_DIR", "data"), "the server's data directory (EVIDENCE_DATA_DIR)")
	c.PersistentFlags().StringVar(&file, "keyring", "", "the keyring file (default <data-dir>/keyring.json)")
	path := func() string {
		if file != "" {
			return file
		}
		return envelope.DefaultKeyringPath(dataDir)
	}
	c.AddCommand(&cobra.Command{
		Use:   "add --tenant T",
		Short: "Give a tenant a key-encryption key, unless it has one (creates the keyring, mode 0600, if missing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tenant, _ := cmd.Flags().GetString("tenant")
			if tenant == "" {
				return usageError{"--tenant is required"}
			}
			kr, err := envelope.OpenKeyring(path(), envelope.KeyringOptions{Create: true})
			if err != nil {
				return err
			}
			for _, k := range kr.Keys() {
				if k.Tenant == tenant && k.Primary {
					fmt.Fprintf(cmd.ErrOrStderr(), "tenant %s already has key %s in %s\n", tenant, k.ID, path())
					return nil
				}
			}
			id, err := kr.Rotate(tenant)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "added key %s for tenant %s to %s; copy the file to every cluster member and restart them\n", id, tenant, path())
			return nil
		},
	})
	c.Commands()[0].Flags().String("tenant", "", "the tenant")
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the keyring's keys: tenant, id, creation time, primary (never key material)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kr, err := envelope.OpenKeyring(path(), envelope.KeyringOptions{})
			if err != nil {
				return err
			}
			type keyOut struct {
				Tenant  string    `json:"tenant"`
				ID      string    `json:"id"`
				Created time.Time `json:"created"`
				Primary bool      `json:"primary"`
			}
			out := []keyOut{}
			for _, k := range kr.Keys() {
				out = append(out, keyOut{k.Tenant, k.ID, k.Created, k.Primary})
			}
			return g.print(out, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TENANT\tKEY\tCREATED\tPRIMARY")
				for _, k := range out {
					fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", k.Tenant, k.ID, k.Created.Format(time.RFC3339), k.Primary)
				}
			})
		},
	})
	return c
}
