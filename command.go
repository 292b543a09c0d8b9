package persist

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/dnspersist/caddy-persist/internal/record"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "persist",
		Short: "Shows and checks the dns-persist-01 records, and changes their account",
		Long: `
Shows the TXT records the persist issuer needs, and checks what is published,
without placing an order at the CA; 'caddy persist account' changes the ACME
account the records name.
` + recordHelp,
		CobraFunc: func(cmd *cobra.Command) {
			records := persistSubcommand("records", "Prints the dns-persist-01 records to publish", `
Asks the running Caddy, through the admin endpoint the config names (or
--address), for the records its persist issuers need: its storage holds the
account they must name. When no Caddy with this plugin answers (or with
--local), it loads the config as 'caddy run' would (the same adapter rules and
the config's own storage) and says so on stderr. Either way it finds every
name a persist issuer manages, adds the --domain names, and prints the records
to publish: as zone file lines, or with --format json as an array of objects.
An apex and its wildcard share one record.

It loads the issuer's ACME account from storage, or registers it (once, and
says so on stderr) if there is none. It never places an order.

With --caa it also prints, for each domain, the CAA records that lock it to
this account and to dns-persist-01 (in JSON, a caa array). Once they are
published, other CAs, other accounts and other validation methods are
refused: see docs/caa.md before publishing them.
`+recordHelp, cmdPersistRecords)
			addCAAFlag(records)
			cmd.AddCommand(records)
			check := persistSubcommand("check", "Checks the published records, and exits 0 only when all pass", `
Looks up each record the way the issuer does and prints one line per record:
ok, missing, mismatch: <reason>, dns-error: <reason>, dnssec: <reason> (the zone
is signed and the signatures of a server's answer do not verify, so the CA's
validating resolver would answer SERVFAIL), or expiring: persistUntil in N
days, with the record to publish when it is not ok and not dnssec. A record that passes
by Let's Encrypt's rules but not a stricter CA's is "ok (warning: ...)", with
the canonical record to publish; a draft -02 record made with the account's
key before 'caddy persist account rollover' is "ok (made with a previous
account key; republish to follow the draft)", with the record to publish. Every record of a CA that was seen offering
no dns-persist-01 challenge is "not-offered: ...", with when, what the CA
offered instead, and what to do. The exit status is 0 only when every record
is ok, so it can gate a deploy. The CAA policy of each domain is checked too: a
policy that forbids this CA, account or method (no order is placed then) adds a
line "caa: forbidden: ..." naming the records found and the ones to publish,
and fails the check; so does a CAA lookup that fails ("caa: dns-error") and
CAA answers whose signatures do not verify ("caa: dnssec").

With several persist issuers (one per CA) serving a name, each CA has its own
record at the same name, and each line names its CA. --any then exits 0 when,
for every domain, at least one CA's record is ok: enough for a certificate,
without the redundancy.
`+recordHelp, cmdPersistCheck)
			check.Use += " [--any]"
			check.Flags().Bool("any", false, "Exit 0 when one CA's record per domain is ok, not every CA's")
			addCAAFlag(check)
			cmd.AddCommand(check)
			cmd.AddCommand(publishCommand())
			cmd.AddCommand(accountCommand())
		},
	})
}

func persistSubcommand(name, short, long string, run caddycmd.CommandFunc) *cobra.Command {
	sub := &cobra.Command{
		Use:   name + " [--config <path>] [--adapter <name>] [--domain <name>...] [--format zone|json] [--address <admin>] [--local]",
		Short: short,
		Long:  long,
		RunE:  caddycmd.WrapCommandFuncForCobra(quietly(run)),
	}
	sub.Flags().StringP("config", "c", "", "Configuration file (default: ./Caddyfile)")
	sub.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	sub.Flags().StringArrayP("domain", "d", nil, "A name to include, even if the config does not list it (repeatable)")
	sub.Flags().StringP("format", "f", "zone", "Output format: zone or json")
	sub.Flags().String("address", "", "The admin API address of the running Caddy to ask (default: the config's admin address, else localhost:2019)")
	sub.Flags().Bool("local", false, "Load the config here instead of asking the running Caddy")
	return sub
}

// addCAAFlag gives records and check --caa, which prints the CAA records
// that lock each domain to the account and method.
func addCAAFlag(sub *cobra.Command) {
	sub.Use += " [--caa]"
	sub.Flags().Bool("caa", false, "Also print the CAA records that lock each domain to this account and method")
}

func cmdPersistRecords(fl caddycmd.Flags) (int, error) {
	return runPersistCommand(fl, false, os.Stdout, os.Stderr)
}

func cmdPersistCheck(fl caddycmd.Flags) (int, error) {
	return runPersistCommand(fl, true, os.Stdout, os.Stderr)
}

func runPersistCommand(fl caddycmd.Flags, check bool, stdout, stderr io.Writer) (int, error) {
	format, err := formatFlag(fl)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	domains, err := fl.GetStringArray("domain")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	withCAA := fl.Lookup("caa") != nil && fl.Bool("caa")
	reports, err := gatherReports(fl, check, withCAA, domains, stderr)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if len(reports) == 0 {
		fmt.Fprintln(stderr, noNamesAdvice)
	}

	if format == "json" {
		if err := printJSON(stdout, reports); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	} else {
		severalCAs := spansCAs(reports)
		for _, r := range reports {
			switch {
			case check:
				fmt.Fprintln(stdout, recordLine(r, severalCAs)+notServedNote(r, "; "))
				for _, stale := range r.Stale {
					if !stale.PreviousKey {
						fmt.Fprintf(stdout, "%s: stale: %q names the account %s, which is no longer used; remove it (caddy persist publish --remove-stale does)\n", r.RecordName, stale.Value, stale.AccountURL)
					}
				}
				ca := ""
				if severalCAs {
					ca = r.CADirectory
				}
				if line := caaLine(r.Domain, ca, r.CAACheck); line != "" {
					fmt.Fprintln(stdout, line)
				}
			case severalCAs:
				// a zone file comment: the line still pastes as is
				fmt.Fprintf(stdout, "%s ; ca %s%s\n", r.ZoneLine, r.CADirectory, notServedNote(r, "; "))
			default:
				fmt.Fprintln(stdout, r.ZoneLine+notServedNote(r, " ; "))
			}
			for _, line := range r.CAA {
				if severalCAs {
					line += " ; ca " + r.CADirectory
				}
				fmt.Fprintln(stdout, line)
			}
		}
	}
	if check {
		if err := checkOutcome(reports, fl.Lookup("any") != nil && fl.Bool("any")); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	return caddy.ExitCodeSuccess, nil
}

// noNamesAdvice is what records and check say of a config that lists no
// name, as one serving only on demand does: the account is created by
// its own command, and a name's record is printed when asked for.
const noNamesAdvice = "No names are managed by a persist issuer of this config (names served on demand are known only when asked for): give --domain NAME for the record a name needs; caddy persist account register creates the account without one."

// notServedNote says, after sep, that the running Caddy does not serve
// the report's names yet, when it does not: the record is for the config
// file, and takes effect once Caddy loads it.
func notServedNote(r RecordReport, sep string) string {
	if len(r.NotServed) == 0 {
		return ""
	}
	return sep + "not served by the running Caddy yet (" + strings.Join(r.NotServed, ", ") + "): reload to use it"
}

// formatFlag is --format: zone or json.
func formatFlag(fl caddycmd.Flags) (string, error) {
	format := fl.String("format")
	if format != "zone" && format != "json" {
		return "", fmt.Errorf("--format must be zone or json, not %q", format)
	}
	return format, nil
}

// printJSON prints v as indented JSON, the commands' --format json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// spansCAs reports whether the reports are for more than one CA, whose
// records then share names and must say which CA each is for.
func spansCAs(reports []RecordReport) bool {
	for _, r := range reports {
		if r.CADirectory != reports[0].CADirectory {
			return true
		}
	}
	return false
}

// checkOutcome is the verdict of `caddy persist check`: every record ok,
// or with anyCA, one ok record per domain.
func checkOutcome(reports []RecordReport, anyCA bool) error {
	notOK := 0
	okDomains := make(map[string]bool)
	for _, r := range reports {
		caaOK := r.CAACheck == nil || r.CAACheck.Status == caaAllowed
		if r.Status == record.StatusOK && caaOK {
			okDomains[r.Domain] = true
		} else {
			notOK++
		}
	}
	if !anyCA {
		if notOK > 0 {
			return fmt.Errorf("%d of %d dns-persist-01 records are not ok, or CAA forbids their domain", notOK, len(reports))
		}
		return nil
	}
	var lacking []string
	for _, r := range reports {
		if !okDomains[r.Domain] && !slices.Contains(lacking, r.Domain) {
			lacking = append(lacking, r.Domain)
		}
	}
	if len(lacking) > 0 {
		return fmt.Errorf("no CA's dns-persist-01 record is ok for %s", strings.Join(lacking, ", "))
	}
	return nil
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

// recordHelp explains the record to the people who publish it. The
// commands and the admin API print it.
const recordHelp = `
The record: dns-persist-01 lets a domain's owner publish ONE static TXT record,
_validation-persist.<domain>, that names a CA and an ACME account:

  _validation-persist.example.com. IN TXT "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123; policy=wildcard"

From then on, that account can obtain certificates for the domain, and the
record never changes between renewals: Caddy needs no DNS credentials. Publish
it once, by hand or with your DNS tooling.

- letsencrypt.org is the CA's issuer domain name; the CA says which names it
  accepts.
- accounturi is the ACME account the record authorizes (draft -01: the account
  URL itself; draft -02: a hash of the domain, the account key and the URL).
  Another account, including a staging account, does not match.
- policy=wildcard lets the record also authorize *.<domain>. Without it the
  record covers <domain> only, which is safer: it is printed only when a
  configured name needs it.
- persistUntil=<UNIX seconds>, when present, is when the record stops working;
  the CA refuses it afterwards. Set persist_until in the issuer to have it
  written for you, and republish before it passes.
`
