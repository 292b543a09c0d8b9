package persist

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/dnspersist/caddy-persist/internal/account"
)

// The commands ask the running Caddy first, as `caddy reload` does: its
// storage holds the account the published records must name. Loading the
// config in the command's own process is the fallback, and the one way to
// go wrong: run as another user, Caddy's default storage is another
// folder, and the command would register (and print records for) a
// second account.

// gatherReports asks the running Caddy for the reports, unless --local;
// when no Caddy answers (and no --address insists on one), it loads the
// config here and says so on stderr.
func gatherReports(fl caddycmd.Flags, check, withCAA bool, domains []string, stderr io.Writer) ([]RecordReport, error) {
	return fromCaddy(fl,
		func(addr string) ([]RecordReport, error) { return askRunningCaddy(addr, check, withCAA, domains) },
		func(here loadedHere) ([]RecordReport, error) {
			return localReports(fl, check, withCAA, domains, stderr, here)
		})
}

// fromCaddy gets a command's result from the running Caddy through ask,
// unless --local; when no Caddy answers (and no --address insists on
// one), or the config turns the admin API off, it gets it here, saying
// why.
func fromCaddy[T any](fl caddycmd.Flags, ask func(addr string) (T, error), here func(loadedHere) (T, error)) (T, error) {
	var none T
	address := fl.String("address")
	if fl.Bool("local") {
		if address != "" {
			return none, errors.New("--local and --address contradict each other: give one")
		}
		return here(loadedHere{})
	}
	cfgJSON, _, _, err := caddycmd.LoadConfig(fl.String("config"), fl.String("adapter"))
	if err != nil {
		return none, err
	}
	if address == "" && adminDisabled(cfgJSON) {
		return here(loadedHere{why: "the config turns the admin API off", cfgJSON: cfgJSON})
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(address, cfgJSON, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return none, err
	}
	got, err := ask(addr)
	if err == nil || address != "" || !errors.Is(err, errNoRunningCaddy) {
		return got, err
	}
	return here(loadedHere{why: fmt.Sprintf("no Caddy with this plugin answers at %s", addr), cfgJSON: cfgJSON})
}

// loadedHere says why a command loads the config in this process (empty
// when asked to with --local), with the config when finding the running
// Caddy read it already: a large Caddyfile takes long to adapt.
type loadedHere struct {
	why     string
	cfgJSON []byte
}

// adminDisabled reports whether a config turns the admin API off.
func adminDisabled(cfgJSON []byte) bool {
	var cfg struct {
		Admin struct {
			Disabled bool `json:"disabled"`
		} `json:"admin"`
	}
	return json.Unmarshal(cfgJSON, &cfg) == nil && cfg.Admin.Disabled
}

// errNoRunningCaddy is a Caddy that does not answer, or does not serve
// the persist API.
var errNoRunningCaddy = errors.New("no running Caddy with the persist admin API")

// findRunningCaddy returns errNoRunningCaddy unless a Caddy serving the
// persist API answers at addr.
func findRunningCaddy(addr string) error {
	help, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, "/persist/", nil, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoRunningCaddy, err)
	}
	help.Body.Close()
	return nil
}

// askRunningCaddy gets the reports from the admin API at addr.
func askRunningCaddy(addr string, check, withCAA bool, domains []string) ([]RecordReport, error) {
	if err := findRunningCaddy(addr); err != nil {
		return nil, err
	}

	query := url.Values{"domain": domains}
	if withCAA {
		query.Set("caa", "1")
	}
	path := "/persist/records"
	if check {
		path = "/persist/check"
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("asking the running Caddy at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	var reports []RecordReport
	if err := json.NewDecoder(resp.Body).Decode(&reports); err != nil {
		return nil, fmt.Errorf("reading the running Caddy's answer at %s%s: %v", addr, path, err)
	}
	return reports, nil
}

// localReports loads the config in this process and inspects it, saying
// why on stderr (unless asked to with --local) and which storage it uses.
func localReports(fl caddycmd.Flags, check, withCAA bool, domains []string, stderr io.Writer, here loadedHere) ([]RecordReport, error) {
	ctx, sets, err := loadLocally(fl, domains, here, stderr)
	if err != nil {
		return nil, err
	}
	reports, err := inspectAll(ctx, sets, inspectOptions{check: check, caa: withCAA})
	for _, set := range sets {
		if url := set.Issuer.accounts.Registered(); url != "" {
			fmt.Fprintf(stderr, "Registered a new ACME account at %s: %s\nIt is stored in %s: make sure Caddy runs with this storage. The records below name this account.\n",
				set.Issuer.CA, url, account.DescribeStorage(set.Issuer.store.get()))
		}
	}
	return reports, err
}

// loadLocally loads and provisions the config in this process, as
// `caddy run` would, and finds its persist issuers and the names each
// serves, with domains added. It says on stderr why it loads the config
// here, unless here.why is empty, and warns, for a config that sets no
// storage, as storageOwnerWarning does.
func loadLocally(fl caddycmd.Flags, domains []string, here loadedHere, stderr io.Writer) (caddy.Context, []servedSet, error) {
	cfgJSON := here.cfgJSON
	if cfgJSON == nil {
		var err error
		if cfgJSON, _, _, err = caddycmd.LoadConfig(fl.String("config"), fl.String("adapter")); err != nil {
			return caddy.Context{}, nil, err
		}
	}
	if cfgJSON == nil {
		return caddy.Context{}, nil, errors.New("no config found: give --config, or run where a Caddyfile is")
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return caddy.Context{}, nil, fmt.Errorf("decoding config: %v", err)
	}
	automate, err := automateNames(cfgJSON)
	if err != nil {
		return caddy.Context{}, nil, err
	}
	ctx, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		return caddy.Context{}, nil, fmt.Errorf("loading config: %v", err)
	}
	sets, err := servedNames(ctx, automate, domains)
	if err != nil {
		return caddy.Context{}, nil, err
	}
	if here.why != "" {
		fmt.Fprintf(stderr, "%s; loaded the config here instead, with %s\n", here.why, account.DescribeStorage(sets[0].Issuer.store.get()))
	}
	if cfg.StorageRaw == nil {
		if warning := storageOwnerWarning(usualDataDirs(), os.Getuid()); warning != "" {
			fmt.Fprintln(stderr, warning)
		}
	}
	return ctx, sets, nil
}

// usualDataDirs are where packaged Caddy keeps its data: the home of the
// Debian package's caddy user.
func usualDataDirs() []string {
	return []string{"/var/lib/caddy"}
}

// storageOwnerWarning warns when a usual Caddy data directory belongs to
// another user than uid: Caddy then runs as that user, with default
// storage in its home, and this command's default storage is another one.
func storageOwnerWarning(dirs []string, uid int) string {
	for _, dir := range dirs {
		info, err := os.Stat(dir)
		if err != nil {
			continue
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || int(st.Uid) == uid {
			continue
		}
		return fmt.Sprintf("warning: the config sets no storage, and %s belongs to another user (uid %d), as when Caddy runs as its own user: its account is in %s, not in this command's storage. Start Caddy so this command can ask it, or run as that user (sudo -u <user> caddy persist ...)",
			dir, st.Uid, filepath.Join(dir, ".local", "share", "caddy"))
	}
	return ""
}
