package persist

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/dnspersist/caddy-persist/internal/record"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "persist",
		Short: "Shows and checks the dns-persist-01 records to publish",
		Long: `
Shows the TXT records the persist issuer needs, and checks what is published,
without placing an order at the CA.
` + recordHelp,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(persistSubcommand("records", `
Loads the config as 'caddy run' would (the same adapter rules and the config's
own storage), finds every name a persist issuer manages, adds the --domain
names, and prints the records to publish: as zone file lines, or with
--format json as an array of objects. An apex and its wildcard share one record.

It loads the issuer's ACME account from storage, or registers it (once, and
says so on stderr) if there is none. It never places an order.
`+recordHelp, cmdPersistRecords))
			cmd.AddCommand(persistSubcommand("check", `
Looks up each record the way the issuer does and prints one line per record:
ok, missing, mismatch: <reason>, dns-error: <reason>, or expiring: persistUntil
in N days, with the record to publish when it is not ok. A record that passes
by Let's Encrypt's rules but not a stricter CA's is "ok (warning: ...)", with
the canonical record to publish. Every record of a CA that was seen offering
no dns-persist-01 challenge is "not-offered: ...", with when, what the CA
offered instead, and what to do. The exit status is 0 only when every record
is ok, so it can gate a deploy.
`+recordHelp, cmdPersistCheck))
		},
	})
}

func persistSubcommand(name, long string, run caddycmd.CommandFunc) *cobra.Command {
	sub := &cobra.Command{
		Use:   name + " [--config <path>] [--adapter <name>] [--domain <name>...] [--format zone|json]",
		Short: strings.TrimSpace(strings.SplitN(strings.TrimSpace(long), "\n", 2)[0]),
		Long:  long,
		RunE:  caddycmd.WrapCommandFuncForCobra(run),
	}
	sub.Flags().StringP("config", "c", "", "Configuration file (default: ./Caddyfile)")
	sub.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	sub.Flags().StringArrayP("domain", "d", nil, "A name to include, even if the config does not list it (repeatable)")
	sub.Flags().StringP("format", "f", "zone", "Output format: zone or json")
	return sub
}

func cmdPersistRecords(fl caddycmd.Flags) (int, error) {
	return runPersistCommand(fl, false, os.Stdout, os.Stderr)
}

func cmdPersistCheck(fl caddycmd.Flags) (int, error) {
	return runPersistCommand(fl, true, os.Stdout, os.Stderr)
}

func runPersistCommand(fl caddycmd.Flags, check bool, stdout, stderr io.Writer) (int, error) {
	format := fl.String("format")
	if format != "zone" && format != "json" {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--format must be zone or json, not %q", format)
	}
	domains, err := fl.GetStringArray("domain")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	cfgJSON, _, _, err := caddycmd.LoadConfig(fl.String("config"), fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if cfgJSON == nil {
		return caddy.ExitCodeFailedStartup, errors.New("no config found: give --config, or run where a Caddyfile is")
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("decoding config: %v", err)
	}
	automate, err := automateNames(cfgJSON)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	ctx, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("loading config: %v", err)
	}
	sets, err := servedNames(ctx, automate, domains)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	reports, err := inspectAll(ctx, sets, check)
	for _, set := range sets {
		if url := set.Issuer.accounts.registeredURL(); url != "" {
			fmt.Fprintf(stderr, "Registered a new ACME account at %s: %s\nIt is stored in %s: make sure Caddy runs with this storage. The records below name this account.\n",
				set.Issuer.CA, url, describeStorage(set.Issuer.accounts.storage()))
		}
	}
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if len(reports) == 0 {
		fmt.Fprintln(stderr, "No names are managed by a persist issuer; give --domain to ask about one.")
	}

	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	} else {
		for _, r := range reports {
			if check {
				fmt.Fprintln(stdout, checkLine(r))
			} else {
				fmt.Fprintln(stdout, r.ZoneLine)
			}
		}
	}
	if check {
		notOK := 0
		for _, r := range reports {
			if r.Status != record.StatusOK {
				notOK++
			}
		}
		if notOK > 0 {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("%d of %d dns-persist-01 records are not ok", notOK, len(reports))
		}
	}
	return caddy.ExitCodeSuccess, nil
}

// checkLine is the one-line form of a checked record.
func checkLine(r RecordReport) string {
	line := r.RecordName + ": " + string(r.Status)
	if r.Reason != "" {
		line += ": " + r.Reason
	}
	for _, w := range r.Warnings {
		line += " (warning: " + w + ")"
	}
	if itself := cmp.Or(r.RecordStatus, r.Status); itself != record.StatusOK {
		line += "; publish: " + r.ZoneLine
	}
	return line
}

// automateNames returns the names of the TLS app's `automate` certificate
// loader, which the provisioned app does not expose.
func automateNames(cfgJSON []byte) ([]string, error) {
	var cfg struct {
		Apps struct {
			TLS struct {
				Certificates struct {
					Automate []string `json:"automate"`
				} `json:"certificates"`
			} `json:"tls"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %v", err)
	}
	return cfg.Apps.TLS.Certificates.Automate, nil
}
