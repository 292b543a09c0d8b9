package persist

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// `caddy persist account <action>` creates or changes the ACME account
// every published record names. It asks the running Caddy (POST
// /persist/account/<action>), whose storage holds the account and whose
// issuers must pick the change up; it never falls back to changing the
// account in its own process, which happens only with --local.

// accountCommand is `caddy persist account` and its subcommands.
func accountCommand() *cobra.Command {
	account := &cobra.Command{
		Use:   "account",
		Short: "Creates or changes the ACME account the records name",
		Long: `
Creates or changes the ACME account the persist issuers use, which every
published record names: register creates it, rollover gives it a new key,
replace moves to a new account, and import brings one another ACME client
registered. Each asks the running Caddy, through its admin endpoint, which
accepts these changes only from this machine (a loopback or unix socket
admin address) or through admin.remote, and makes the change in its
storage. When no Caddy answers, nothing changes unless --local asks to load
the config here and change the account in the config's storage, which must
belong to the user running the command. With several CAs, --ca picks one
CA's account. The output is zone file lines (remarks start with ;) or, with
--format json, an array of objects, one per account. See docs/accounts.md,
"The account's life".
`,
	}
	account.AddCommand(registerCommand(), rolloverCommand(), replaceCommand())
	addImportCommand(account)
	return account
}

func registerCommand() *cobra.Command {
	return accountSubcommand("register", "Creates the ACME account the records name, if there is none", `
Registers the ACME account the persist issuers use, if there is none yet,
and prints its URL; an account there is stays as it is.

'caddy persist records' does this the first time it runs, since reading the
records (GET /persist/records) never registers an account. Run it yourself
where records cannot: a config whose names are all served on demand, before
its first tenant publishes a record. With account_key in the config, the
account is the key's: it is registered only if the CA knows none for the
key.
`, func(fl caddycmd.Flags) (int, error) {
		scope := accountScopeOf(fl)
		return runAccountCommand(fl, "register", &scope, os.Stdout, os.Stderr)
	})
}

func rolloverCommand() *cobra.Command {
	cmd := accountSubcommand("rollover", "Gives the ACME account a new key; its URL stays", `
Gives the ACME account a new key; the account URL stays.

The CA is told (an RFC 8555 key change), then storage, under the lock
instances sharing the storage register accounts with, so the key changes
once; the others pick the new key up from storage without a restart. Records
of draft -01 CAs name the account URL, and stay as they are. Records of draft -02 CAs hash the
key: the command prints the new ones to publish, and the old ones keep
passing meanwhile (caddy persist check says "ok (made with a previous
account key; republish to follow the draft)"). The old key is not kept (the
CA no longer accepts it), only its thumbprint. With account_key in the
config, the key lives there, and the command refuses.
`, func(fl caddycmd.Flags) (int, error) {
		scope := accountScopeOf(fl)
		return runAccountCommand(fl, "rollover", &scope, os.Stdout, os.Stderr)
	})
	return cmd
}

func replaceCommand() *cobra.Command {
	cmd := accountSubcommand("replace", "Moves to a new ACME account, in three runs", `
Moves to a new ACME account, for a key that may have leaked.

It takes three runs; certificates already obtained stay served throughout.

Without flags, it registers a new account (once: later runs show the same
one) and prints its records, with --caa its CAA records too. Publish them
beside the current ones: orders go on with the current account meanwhile.

With --switch, it checks the new account's records (and CAA) as caddy
persist check does, and if every one passes, moves to the new account:
orders use it from then on, on every instance sharing the storage. If any
does not pass, it prints them, changes nothing and exits 1. The old account
still works at the CA, and its files are kept.

With --deactivate-old (alone, or with --switch), it deactivates the old
account at the CA, so its key can obtain nothing more, sets its files aside
(never deleted), and prints the old records, which may then be removed.

Each step that fails leaves a state the same command completes when run
again. With account_key in the config, the command refuses.
`, func(fl caddycmd.Flags) (int, error) {
		req := replaceRequest{accountScope: accountScopeOf(fl), CAA: fl.Bool("caa"), Switch: fl.Bool("switch"), DeactivateOld: fl.Bool("deactivate-old")}
		return runAccountCommand(fl, "replace", &req, os.Stdout, os.Stderr)
	})
	cmd.Use += " [--caa] [--switch] [--deactivate-old]"
	cmd.Flags().Bool("caa", false, "Also print the CAA records that lock each domain to the new account and method")
	cmd.Flags().Bool("switch", false, "Move to the new account, if its records pass everywhere")
	cmd.Flags().Bool("deactivate-old", false, "Deactivate the old account at the CA, after the switch")
	return cmd
}

// accountSubcommand is a subcommand of `caddy persist account`, with the
// flags every one takes.
func accountSubcommand(name, short, long string, run caddycmd.CommandFunc) *cobra.Command {
	cmd := persistSubcommand(name, short, long, run)
	cmd.Use += " [--ca <directory>]"
	cmd.Flags().String("ca", "", "The CA directory whose account to change, when the config's persist issuers use several")
	return cmd
}

func accountScopeOf(fl caddycmd.Flags) accountScope {
	domains, _ := fl.GetStringArray("domain")
	return accountScope{CA: fl.String("ca"), Domains: domains}
}

// runAccountCommand runs the account action with the request req, in the
// running Caddy, or here with --local, and prints what it did.
func runAccountCommand(fl caddycmd.Flags, action string, req scopedRequest, stdout, stderr io.Writer) (int, error) {
	format, err := formatFlag(fl)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	changes, err := fromCaddy(fl, false,
		func(addr string, cfgJSON []byte) ([]AccountChange, error) {
			return askAccountChange(addr, cfgJSON, action, req, stderr)
		},
		func(here loadedHere) ([]AccountChange, error) {
			return localAccountChange(fl, action, req, stderr, here)
		})
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if format == "json" {
		if err := printJSON(stdout, changes); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	} else {
		for _, c := range changes {
			printAccountChange(stdout, c, len(changes) > 1)
		}
	}
	for _, c := range changes {
		if c.State == stateNotSwitched {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("not switched: the records of the replacement account %s do not all pass yet, or CAA forbids it; publish the records shown and run --switch again", c.ReplacementURL)
		}
	}
	return caddy.ExitCodeSuccess, nil
}

// askAccountChange asks the running Caddy at addr to run the action, for
// the names of the config file cfgJSON when the command can load it (see
// fileGroups).
func askAccountChange(addr string, cfgJSON []byte, action string, req scopedRequest, stderr io.Writer) ([]AccountChange, error) {
	if err := findRunningCaddy(addr); err != nil {
		return nil, err
	}
	var running []issuerReport
	if err := adminRequest(addr, http.MethodGet, "/persist/issuers", nil, &running); err != nil {
		return nil, err
	}
	groups, err := fileGroups(addr, cfgJSON, req.scope().Domains, running, stderr)
	if err != nil {
		return nil, err
	}
	req.setNames(groups)
	if check, ok := req.(checkedBeforeSending); ok {
		if err := check.beforeSending(addr, running); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var changes []AccountChange
	return changes, adminRequest(addr, http.MethodPost, "/persist/account/"+action, body, &changes)
}

// checkedBeforeSending is a request that must be checked against the
// running Caddy before it is sent.
type checkedBeforeSending interface {
	beforeSending(addr string, running []issuerReport) error
}

// localAccountChange loads the config here and runs the action on its
// storage, which must be this user's.
func localAccountChange(fl caddycmd.Flags, action string, req scopedRequest, stderr io.Writer, here loadedHere) ([]AccountChange, error) {
	ctx, sets, err := loadLocally(fl, req.scope().Domains, here, stderr)
	if err != nil {
		return nil, err
	}
	if err := ownStorage(sets, os.Getuid()); err != nil {
		return nil, err
	}
	return runOnSets(ctx, accountActions[action], sets, sets, req)
}

// printAccountChange prints a change as zone file lines: remarks as
// comments, so that what is printed pastes into a zone as it is.
func printAccountChange(w io.Writer, c AccountChange, withCA bool) {
	remark := func(format string, args ...any) { fmt.Fprintf(w, "; "+format+"\n", args...) }
	switch c.State {
	case stateRegistered:
		remark("registered the ACME account %s at %s; the records the config needs name it: caddy persist records prints them", c.AccountURL, c.CADirectory)
		return
	case stateExisting:
		remark("the ACME account %s at %s is there already; nothing changed", c.AccountURL, c.CADirectory)
		return
	case stateRolledOver, stateResumed:
		if c.State == stateResumed {
			remark("completed the rollover an earlier run left unfinished")
		}
		remark("rolled the ACME account %s at %s over to a new key; the account URL is unchanged", c.AccountURL, c.CADirectory)
		if len(c.Records) == 0 {
			remark("%s records name the account URL: nothing to republish", c.Draft)
		} else {
			remark("%s records hash the account key: publish these in place of the current ones, which keep passing meanwhile", c.Draft)
		}
	case statePending:
		if c.Registered {
			remark("registered the replacement ACME account %s at %s", c.ReplacementURL, c.CADirectory)
		} else {
			remark("the replacement ACME account %s at %s awaits the switch", c.ReplacementURL, c.CADirectory)
		}
		remark("orders go on with %s; publish these records beside the current ones, then run `caddy persist account replace --switch`", c.AccountURL)
	case stateNotSwitched:
		remark("not switched: orders go on with %s, because the records of the replacement %s do not all pass yet:", c.AccountURL, c.ReplacementURL)
		for _, r := range c.Records {
			fmt.Fprintln(w, "; "+recordLine(r, withCA))
			if line := caaLine(r.Domain, "", r.CAACheck); line != "" {
				fmt.Fprintln(w, "; "+line)
			}
		}
		return
	case stateSwitched:
		remark("switched to the replacement ACME account %s at %s; the old account %s still works at the CA: run `caddy persist account replace --deactivate-old` to deactivate it", c.AccountURL, c.CADirectory, c.OldAccountURL)
		return
	case stateDone, stateDeactivated:
		if c.State == stateDone {
			remark("the replacement is complete: orders use %s at %s, and the old account %s is deactivated; nothing is left to do", c.AccountURL, c.CADirectory, c.OldAccountURL)
		} else {
			remark("deactivated the old ACME account %s at %s; orders use %s", c.OldAccountURL, c.CADirectory, c.AccountURL)
		}
		if len(c.Remove) > 0 {
			remark("records naming the old account no longer authorize anything, and may be removed:")
		}
		for _, line := range c.Remove {
			remark("remove: %s", line)
		}
		return
	}
	for _, r := range c.Records {
		fmt.Fprintln(w, r.ZoneLine+notServedNote(r, " ; "))
		for _, line := range r.CAA {
			fmt.Fprintln(w, line)
		}
	}
	if c.State == statePending && len(c.Records) > 0 && len(c.Records[0].CAA) > 0 {
		remark("keep the current account's CAA records until the switch: orders use it until then")
	}
}
