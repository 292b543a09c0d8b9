package persist

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/dnspersist/caddy-persist/internal/account"
)

// addImportCommand adds `import` to parent, the `caddy persist account`
// command.
func addImportCommand(parent *cobra.Command) {
	sub := &cobra.Command{
		Use:   "import --from lego|acme.sh|certbot [--config <path>] [--adapter <name>] [--ca <directory URL>] [--address <admin>] [--local] <folder>",
		Short: "Makes the account of another ACME client the persist issuer's",
		Long: `
Reads the ACME account another client keeps in <folder> (lego's --path,
~/.acme.sh, or certbot's /etc/letsencrypt; or the folder of one account in
them) and makes it the account of the config's persist issuer for the same
CA: the records already published for it keep working, and nothing changes
in DNS.

It asks the CA for the account of the key (newAccount with
onlyReturnExisting), so it never registers an account, and imports nothing
when the CA knows no account for the key or names another account URL than
the client recorded. It stores the account where the issuer keeps it, for
the issuer's CA and email, and never over another account stored there.
Run it before Caddy first needs an account, or Caddy registers one of its
own.

The running Caddy stores it, in its storage: the command sends it the
account, key included, through its admin endpoint, which takes account
changes only from this machine. When no Caddy answers, --local loads the
config here and stores the account in the config's storage, which must be
this user's. With several persist issuers, the account goes to the one
whose CA the client's folders name; --ca chooses among issuers for several
CAs.
`,
		Args: cobra.ExactArgs(1),
		RunE: caddycmd.WrapCommandFuncForCobra(quietly(cmdPersistAccountImport)),
	}
	sub.Flags().String("from", "", "The client whose storage <folder> is: "+strings.Join(account.Clients(), ", "))
	sub.Flags().StringP("config", "c", "", "Configuration file (default: ./Caddyfile)")
	sub.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	sub.Flags().String("ca", "", "The directory URL of the persist issuer to import for, when the config has several CAs")
	sub.Flags().String("address", "", "The admin API address of the running Caddy to ask (default: the config's admin address, else localhost:2019)")
	sub.Flags().Bool("local", false, "Load the config here and store the account in its storage, instead of asking the running Caddy")
	parent.AddCommand(sub)
}

func cmdPersistAccountImport(fl caddycmd.Flags) (int, error) {
	if err := runAccountImport(fl, os.Stdout, os.Stderr); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

func runAccountImport(fl caddycmd.Flags, stdout, stderr io.Writer) error {
	found, err := account.FindForeign(fl.String("from"), fl.Arg(0))
	if err != nil {
		return err
	}
	req := &importRequest{accountScope: accountScope{CA: fl.String("ca")}, Accounts: found}
	changes, err := fromCaddy(fl, false,
		func(addr string, cfgJSON []byte) ([]AccountChange, error) {
			return askAccountChange(addr, cfgJSON, "import", req, stderr)
		},
		func(here loadedHere) ([]AccountChange, error) {
			return localAccountChange(fl, "import", req, stderr, here)
		})
	if err != nil {
		return err
	}
	for _, c := range changes {
		printImport(stdout, c)
	}
	return nil
}

// importRequest is the body of POST /persist/account/import.
type importRequest struct {
	accountScope
	// Accounts are those found in the other client's folder, with their
	// keys: one of them is imported.
	Accounts []account.Foreign `json:"accounts"`
}

// beforeSending keeps the accounts that may belong to a CA of the running
// Caddy's persist issuers (and the one --ca names), and refuses to send
// them, keys included, anywhere but to this machine: the admin endpoint
// takes account changes only from it, and would refuse them only once
// they had crossed the network.
func (r *importRequest) beforeSending(addr string, running []issuerReport) error {
	if !onThisMachine(addr) {
		return fmt.Errorf("the import sends the account's key to the running Caddy, and its admin endpoint %s is not on this machine's loopback or a unix socket, where Caddy takes account changes: nothing was sent; give --address with such an endpoint, or --local to store the account here", addr)
	}
	var kept []account.Foreign
	for _, f := range r.Accounts {
		if slices.ContainsFunc(running, func(iss issuerReport) bool {
			return f.Matches(iss.CA) && (r.CA == "" || account.SameDirectory(iss.CA, r.CA))
		}) {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		var cas []string
		for _, iss := range running {
			cas = append(cas, iss.CA)
		}
		return &inputError{fmt.Errorf("the accounts found are for other CAs than the running Caddy's persist issuers (%s), and an account belongs to one CA (a staging account is not a production account): import one registered at the issuer's CA, or let the issuer register its own; nothing was sent", strings.Join(slices.Compact(slices.Sorted(slices.Values(cas))), ", "))}
	}
	r.Accounts = kept
	return nil
}

// onThisMachine reports whether an admin address is a unix socket or a
// loopback address.
func onThisMachine(addr string) bool {
	parsed, err := caddy.ParseNetworkAddress(addr)
	if err != nil {
		return false
	}
	if parsed.IsUnixNetwork() {
		return true
	}
	if parsed.Host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(parsed.Host)
	return err == nil && ip.IsLoopback()
}

// importAccount makes one of found the account of the persist issuer
// whose CA its folders name.
func importAccount(ctx context.Context, sets []servedSet, found []account.Foreign, ca string) (AccountChange, error) {
	for _, f := range found {
		if !slices.Contains(account.Clients(), f.Client) {
			return AccountChange{}, &inputError{fmt.Errorf("client must be one of %s, not %q", strings.Join(account.Clients(), ", "), f.Client)}
		}
	}
	iss, src, err := pickImport(sets, found, ca)
	if err != nil {
		return AccountChange{}, &inputError{err}
	}
	out, err := iss.accounts.Import(ctx, src)
	if err != nil {
		return AccountChange{}, err
	}
	change := AccountChange{Action: "import", CADirectory: iss.CA, Email: iss.Email, AccountURL: out.Account.Location, State: stateImported,
		Import: &AccountImport{Client: src.Client, Folder: src.Dir, StoredAt: fmt.Sprintf("%s, as %s", account.DescribeStorage(iss.store.get()), out.StoredAt), AccountKey: out.Pinned}}
	if out.AlreadyStored {
		change.State = stateExisting
	} else {
		iss.metrics.AccountChanged("import")
	}
	return change, nil
}

// printImport says what an import did.
func printImport(w io.Writer, c AccountChange) {
	in := c.Import
	if c.State == stateExisting {
		fmt.Fprintf(w, "The %s account %s is already the persist issuer's account for %s (%s); nothing changed.\n", in.Client, c.AccountURL, c.CADirectory, in.StoredAt)
	} else {
		fmt.Fprintf(w, "Imported the %s account %s from %s for %s into %s.\n", in.Client, c.AccountURL, in.Folder, c.CADirectory, in.StoredAt)
		if in.AccountKey {
			fmt.Fprintln(w, "The config's account_key is this account's key, so the issuer used it already; the stored copy serves 'acme' issuers and later runs.")
		}
	}
	fmt.Fprintf(w, "Records naming %s keep working: nothing changes in DNS. 'caddy persist check' confirms them.\n", c.AccountURL)
}

// pickImport pairs the account to import with the persist issuer whose CA
// the account's folders name: there must be exactly one such pair.
// Issuers sharing a CA and email share one account and count once.
func pickImport(sets []servedSet, found []account.Foreign, ca string) (*Issuer, account.Foreign, error) {
	var issuers []*Issuer
	seen := make(map[string]bool)
	var cas []string
	for _, set := range sets {
		iss := set.Issuer
		if !slices.Contains(cas, iss.CA) {
			cas = append(cas, iss.CA)
		}
		storedAt := iss.accounts.StoredAt()
		if seen[storedAt] || ca != "" && !account.SameDirectory(iss.CA, ca) {
			continue
		}
		seen[storedAt] = true
		issuers = append(issuers, iss)
	}
	if len(issuers) == 0 {
		return nil, account.Foreign{}, fmt.Errorf("no persist issuer of the config uses the CA %s; its persist issuers use %s", ca, strings.Join(cas, ", "))
	}

	type pair struct {
		iss  *Issuer
		acct account.Foreign
	}
	var pairs []pair
	for _, iss := range issuers {
		for _, acct := range found {
			if acct.Matches(iss.CA) {
				pairs = append(pairs, pair{iss, acct})
			}
		}
	}
	switch len(pairs) {
	case 1:
		return pairs[0].iss, pairs[0].acct, nil
	case 0:
		var servers []string
		for _, acct := range found {
			servers = append(servers, fmt.Sprintf("%s (%s)", acct.Dir, acct.Server))
		}
		return nil, account.Foreign{}, fmt.Errorf("the %s accounts found are for other CAs than the config's persist issuers (%s): %s. An account belongs to one CA (a staging account is not a production account): import one registered at the issuer's CA, or let the issuer register its own",
			found[0].Client, strings.Join(cas, ", "), strings.Join(servers, "; "))
	}
	var choices []string
	for _, p := range pairs {
		choices = append(choices, fmt.Sprintf("%s for %s (email %q)", p.acct.Dir, p.iss.CA, p.iss.Email))
	}
	return nil, account.Foreign{}, fmt.Errorf("more than one account could be imported: %s. Give the folder of one account, or --ca", strings.Join(choices, "; "))
}
