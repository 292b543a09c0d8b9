package persist

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/fileowner"
)

// The commands ask the running Caddy first, as `caddy reload` does: its
// storage holds the account the published records must name. Loading the
// config in the command's own process is the fallback for the reports,
// and the one way to go wrong: run as another user, Caddy's default
// storage is another folder, and the command would register (and print
// records for) a second account. So a change to the account never falls
// back: it is made here only with --local, and only by the user who owns
// the storage.

// reportSource gives the reports of the records a config needs, checked
// or not, with the CAA records or not, saying on stderr what the user
// needs to know.
type reportSource func(check, withCAA bool, stderr io.Writer) ([]RecordReport, error)

// gatherReports asks the running Caddy for the reports, unless --local;
// when no Caddy answers (and no --address insists on one), it loads the
// config here and says so on stderr.
func gatherReports(fl caddycmd.Flags, check, withCAA bool, domains []string, stderr io.Writer) ([]RecordReport, error) {
	reports, err := openReports(fl, domains, stderr)
	if err != nil {
		return nil, err
	}
	return reports(check, withCAA, stderr)
}

// openReports finds where the reports come from, as gatherReports does,
// once: a command that asks again and again (publish, waiting) neither
// reads the config file nor loads it each time.
func openReports(fl caddycmd.Flags, domains []string, stderr io.Writer) (reportSource, error) {
	return fromCaddy(fl, true,
		func(addr string, cfgJSON []byte) (reportSource, error) {
			return runningReports(addr, cfgJSON, domains, stderr)
		},
		func(here loadedHere) (reportSource, error) {
			return localReports(fl, domains, stderr, here)
		})
}

// fromCaddy gets a command's result from the running Caddy through ask,
// which gets the config file too (nil without one), unless --local. When
// no Caddy answers (and no --address insists on one), or the config
// turns the admin API off, it gets it here, saying why, if fallBack
// allows; else it says to give --local.
func fromCaddy[T any](fl caddycmd.Flags, fallBack bool, ask func(addr string, cfgJSON []byte) (T, error), here func(loadedHere) (T, error)) (T, error) {
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
		if !fallBack {
			return none, errors.New("the config turns the admin API off, so no running Caddy can make this change: give --local to make it here, in the config's storage, as the user Caddy runs as")
		}
		return here(loadedHere{why: "the config turns the admin API off", cfgJSON: cfgJSON})
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(address, cfgJSON, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return none, err
	}
	got, err := ask(addr, cfgJSON)
	if err == nil || address != "" || !errors.Is(err, errNoRunningCaddy) {
		return got, err
	}
	if !fallBack {
		return none, fmt.Errorf("no Caddy with this plugin answers at %s, and a change to the account is made where Caddy keeps it: start Caddy, give --address if its admin endpoint is elsewhere, or give --local to make the change here, in the config's storage, as the user Caddy runs as", addr)
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

// localReports loads the config in this process, once, to inspect it,
// saying why on stderr (unless asked to with --local) and which storage it
// uses.
func localReports(fl caddycmd.Flags, domains []string, stderr io.Writer, here loadedHere) (reportSource, error) {
	ctx, sets, err := loadLocally(fl, domains, here, stderr)
	if err != nil {
		return nil, err
	}
	return func(check, withCAA bool, stderr io.Writer) ([]RecordReport, error) {
		if !check {
			// records registers an account there is none of yet: in
			// this user's storage only, as the account commands change
			// one
			for _, set := range sets {
				if _, err := set.Issuer.accounts.Peek(ctx); errors.Is(err, account.ErrNoAccountYet) {
					if err := ownStorage([]servedSet{set}, os.Getuid()); err != nil {
						return nil, err
					}
				}
			}
		}
		reports, err := inspectAll(ctx, sets, inspectOptions{check: check, caa: withCAA, register: !check})
		for _, set := range sets {
			if url := set.Issuer.accounts.Registered(); url != "" {
				fmt.Fprintf(stderr, "Registered a new ACME account at %s: %s\nIt is stored in %s: make sure Caddy runs with this storage. The records below name this account.\n",
					set.Issuer.CA, url, account.DescribeStorage(set.Issuer.store.get()))
			}
		}
		return reports, err
	}, nil
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
	ctx, sets, err := loadConfigHere(cfgJSON, domains)
	if err != nil {
		return caddy.Context{}, nil, err
	}
	if here.why != "" {
		fmt.Fprintf(stderr, "%s; loaded the config here instead, with %s\n", here.why, account.DescribeStorage(sets[0].Issuer.store.get()))
	}
	if !setsStorage(cfgJSON) {
		if warning := storageOwnerWarning(usualDataDirs(), os.Getuid()); warning != "" {
			fmt.Fprintln(stderr, warning)
		}
	}
	return ctx, sets, nil
}

// loadConfigHere provisions the config cfgJSON in this process, as `caddy
// run` would, and finds its persist issuers and the names each serves,
// with domains added. The config's logs are the server's: the command
// logs as quietLogs sets, and opens none of the config's log files.
func loadConfigHere(cfgJSON []byte, domains []string) (caddy.Context, []servedSet, error) {
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return caddy.Context{}, nil, fmt.Errorf("decoding config: %v", err)
	}
	cfg.Logging = commandLogging()
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
	return ctx, sets, nil
}

// commandLogging is the logging of a command's own process: Caddy's
// default log on stderr, warnings and errors only, as `caddy adapt`
// prints them; what the server logs as it loads a config is not the
// command's to say.
func commandLogging() *caddy.Logging {
	return &caddy.Logging{Logs: map[string]*caddy.CustomLog{
		caddy.DefaultLoggerName: {BaseLog: caddy.BaseLog{WriterRaw: json.RawMessage(`{"output":"stderr"}`), Level: "WARN"}},
	}}
}

// quietLogs makes this process log as commandLogging says, before the
// command reads its config (reading it is logged at INFO).
func quietLogs() error {
	_, err := caddy.ProvisionContext(&caddy.Config{Logging: commandLogging()})
	return err
}

// quietly runs a command after quietLogs.
func quietly(run caddycmd.CommandFunc) caddycmd.CommandFunc {
	return func(fl caddycmd.Flags) (int, error) {
		if err := quietLogs(); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		return run(fl)
	}
}

// setsStorage reports whether a config names its storage.
func setsStorage(cfgJSON []byte) bool {
	var cfg struct {
		Storage json.RawMessage `json:"storage"`
	}
	return json.Unmarshal(cfgJSON, &cfg) == nil && len(cfg.Storage) > 0 && string(cfg.Storage) != "null"
}

// ownStorage refuses a change to the accounts of sets made here, by the
// user uid, when another user owns their storage's folder: the files it
// writes would be uid's, which Caddy, running as the owner, could not
// read.
func ownStorage(sets []servedSet, uid int) error {
	for _, set := range sets {
		fs, ok := set.Issuer.store.get().(*certmagic.FileStorage)
		if !ok {
			continue
		}
		if ownerID, ok := fileowner.Of(fs.Path); ok && ownerID != uid {
			owner := fileowner.Name(ownerID)
			return fmt.Errorf("the storage at %s belongs to %s, not to the user this command runs as: the account's files it wrote would be this user's, which Caddy, running as %s, could not read; nothing was changed: run as that user (sudo -u %s caddy persist ...)", fs.Path, owner, owner, owner)
		}
	}
	return nil
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
		owner, ok := fileowner.Of(dir)
		if !ok || owner == uid {
			continue
		}
		return fmt.Sprintf("warning: the config sets no storage, and %s belongs to another user (uid %d), as when Caddy runs as its own user: its account is in %s, not in this command's storage. Start Caddy so this command can ask it, or run as that user (sudo -u <user> caddy persist ...)",
			dir, owner, filepath.Join(dir, ".local", "share", "caddy"))
	}
	return ""
}
