package persist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/dnspersist/caddy-persist/internal/account"
)

// The commands ask the running Caddy for the account the records name:
// its storage holds it. The config file given (or ./Caddyfile) decides
// which names they report: after an edit, before `caddy reload`, it has
// names the running config does not serve yet, which the reports mark.
// A file whose persist issuers would use another account than the
// running Caddy's (another CA, email, account_key or storage) is refused:
// no record is printed for an account that will not be used.

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

// adminRequest sends a request to the admin API at addr and decodes its
// JSON answer into out.
func adminRequest(addr, method, path string, body []byte, out any) error {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, nil, reader)
	if err != nil {
		return fmt.Errorf("asking the running Caddy at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the running Caddy's answer at %s%s: %v", addr, path, err)
	}
	return nil
}

// askRunningCaddy gets the reports from the admin API at addr: for the
// names of the config file cfgJSON, by persist issuer, when there is one
// the command can load, else for the running config's names. Showing
// records registers the account first if there is none; checking does
// not.
func askRunningCaddy(addr string, cfgJSON []byte, check, withCAA bool, domains []string, stderr io.Writer) ([]RecordReport, error) {
	if err := findRunningCaddy(addr); err != nil {
		return nil, err
	}
	var running []issuerReport
	if err := adminRequest(addr, http.MethodGet, "/persist/issuers", nil, &running); err != nil {
		return nil, err
	}
	groups, err := fileGroups(addr, cfgJSON, domains, running, stderr)
	if err != nil {
		return nil, err
	}
	if !check {
		if err := registerIfNone(addr, groups, running, stderr); err != nil {
			return nil, err
		}
	}
	path := "/persist/records"
	if check {
		path = "/persist/check"
	}
	ask := func(query url.Values) ([]RecordReport, error) {
		if withCAA {
			query.Set("caa", "1")
		}
		var reports []RecordReport
		return reports, adminRequest(addr, http.MethodGet, path+"?"+query.Encode(), nil, &reports)
	}
	if groups == nil {
		return ask(url.Values{"domain": domains})
	}
	var all []RecordReport
	for _, g := range groups {
		query := url.Values{"domain": g.Domains}
		g.Issuer.query(query)
		reports, err := ask(query)
		if err != nil {
			return nil, err
		}
		all = append(all, reports...)
	}
	return all, nil
}

// fileGroups are the names of the config file cfgJSON, with domains
// added, by persist issuer, once the file is known to use the running
// Caddy's accounts and storage. Names the running Caddy serves that the
// file lacks are said once on stderr. Without a file, or with one the
// command cannot load (a placeholder of an environment only Caddy's has,
// say), they are nil: the running config's names are reported, and
// stderr says why.
func fileGroups(addr string, cfgJSON []byte, domains []string, running []issuerReport, stderr io.Writer) ([]issuerNames, error) {
	if cfgJSON == nil {
		return nil, nil
	}
	sets, err := namesOfFile(cfgJSON, domains)
	if errors.Is(err, errNoPersistIssuer) {
		return nil, err
	}
	if err != nil {
		fmt.Fprintf(stderr, "The config file could not be loaded here (%v), so these are the names of the running Caddy's config, which may lack the file's newest sites.\n", err)
		return nil, nil
	}
	if err := sameStorage(addr, cfgJSON); err != nil {
		return nil, err
	}
	var groups []issuerNames
	fileNames := make(map[string]bool)
	for _, set := range sets {
		id := identityOf(set.Issuer)
		if !slices.ContainsFunc(running, func(r issuerReport) bool { return r.sameAccount(id) }) {
			var have []string
			for _, r := range running {
				if name := r.issuerIdentity.String(); !slices.Contains(have, name) {
					have = append(have, name)
				}
			}
			return nil, &noSuchAccountError{want: id, running: have}
		}
		for _, name := range set.Names {
			fileNames[name] = true
		}
		if i := slices.IndexFunc(groups, func(g issuerNames) bool { return g.Issuer == id }); i >= 0 {
			groups[i].Domains = append(groups[i].Domains, set.Names...)
			continue
		}
		groups = append(groups, issuerNames{Issuer: id, Domains: slices.Clone(set.Names)})
	}
	var notInFile []string
	for _, r := range running {
		for _, name := range r.Names {
			if !fileNames[name] && !slices.Contains(notInFile, name) {
				notInFile = append(notInFile, name)
			}
		}
	}
	if len(notInFile) > 0 {
		fmt.Fprintf(stderr, "The running Caddy also serves %s, which this config file does not: after a reload with it, no persist issuer obtains their certificates.\n", strings.Join(notInFile, ", "))
	}
	return groups, nil
}

// namesOfFile finds the persist issuers of the config file cfgJSON and
// the names each serves, with domains added, as loadConfigHere does, but
// with the file's storage swapped for a folder of its own, removed after:
// loading a config writes to its storage (Caddy's local CA, for one),
// and asking which names a file has must change nothing.
func namesOfFile(cfgJSON []byte, domains []string) ([]servedSet, error) {
	scratch, err := os.MkdirTemp("", "caddy-persist-names-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %v", err)
	}
	if cfg["storage"], err = json.Marshal(map[string]string{"module": "file_system", "root": scratch}); err != nil {
		return nil, err
	}
	swapped, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	_, sets, err := loadConfigHere(swapped, domains)
	return sets, err
}

// sameAccount reports whether the running issuer r uses the account id
// names.
func (r issuerReport) sameAccount(id issuerIdentity) bool {
	return account.SameDirectory(r.CA, id.CA) && strings.EqualFold(r.Email, id.Email) && r.AccountKey == id.AccountKey
}

// sameStorage refuses a config file whose storage is not the running
// config's: the account the records name lives in storage. Both are
// compared as configured, since the file, once loaded, runs in the
// running Caddy's process (where a default storage is its own).
func sameStorage(addr string, cfgJSON []byte) error {
	var file, running struct {
		Storage json.RawMessage `json:"storage"`
	}
	if err := json.Unmarshal(cfgJSON, &file); err != nil {
		return fmt.Errorf("decoding config: %v", err)
	}
	if err := adminRequest(addr, http.MethodGet, "/config/", nil, &running); err != nil {
		return err
	}
	if !sameJSON(file.Storage, running.Storage) {
		return errors.New("the config file sets another storage than the running Caddy's, and the account the records name lives in storage: no record is printed for an account the file will not use; reload Caddy with the file first, or give --local to load the file here with its own storage")
	}
	return nil
}

// sameJSON compares two JSON values as values: key order and spacing
// aside, and an absent value as null.
func sameJSON(a, b json.RawMessage) bool {
	canonical := func(raw json.RawMessage) string {
		var v any
		if len(raw) > 0 && json.Unmarshal(raw, &v) != nil {
			return string(raw)
		}
		out, _ := json.Marshal(v)
		return string(out)
	}
	return canonical(a) == canonical(b)
}

// registerIfNone registers, through the running Caddy, the account the
// reports will name when there is none yet: a report never registers
// one, and the first `caddy persist records` is what creates it. It says
// so on stderr.
func registerIfNone(addr string, groups []issuerNames, running []issuerReport, stderr io.Writer) error {
	needed := false
	for _, r := range running {
		used := groups == nil && len(r.Names) > 0 || slices.ContainsFunc(groups, func(g issuerNames) bool { return r.sameAccount(g.Issuer) })
		needed = needed || used && r.AccountURL == "" && r.AccountError == ""
	}
	if !needed {
		return nil
	}
	var changes []AccountChange
	if err := adminRequest(addr, http.MethodPost, "/persist/account/register", []byte("{}"), &changes); err != nil {
		return err
	}
	for _, c := range changes {
		if c.State == stateRegistered {
			fmt.Fprintf(stderr, "Registered a new ACME account at %s: %s\nThe running Caddy stores it. The records below name this account.\n", c.CADirectory, c.AccountURL)
		}
	}
	return nil
}
