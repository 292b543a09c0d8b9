package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

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
	if err := adminRequest(addr, http.MethodGet, "/persist/", nil, nil); err != nil {
		return fmt.Errorf("%w: %w", errNoRunningCaddy, err)
	}
	return nil
}

// adminError is the running Caddy refusing a request: its status, and
// the message of its JSON answer.
type adminError struct {
	status  int
	message string
}

func (e *adminError) Error() string {
	return fmt.Sprintf("%s (the running Caddy answered %d)", e.message, e.status)
}

// adminRequest sends a request to the admin API at addr, as
// caddycmd.AdminAPIRequest does (which keeps a refusal's status and
// message only as text), and decodes its JSON answer into out, unless out
// is nil. A refusal is an *adminError.
func adminRequest(addr, method, path string, body []byte, out any) error {
	parsed, err := caddy.ParseNetworkAddress(addr)
	if err != nil || parsed.PortRangeSize() > 1 {
		return fmt.Errorf("invalid admin address %s: %v", addr, err)
	}
	// as caddycmd does: a socket's address is no host, and the Host
	// header Caddy checks must then be 127.0.0.1
	origin := "http://" + parsed.JoinHostPort(0)
	local := parsed.IsUnixNetwork() || parsed.IsFdNetwork()
	if local {
		origin = "http://127.0.0.1"
		parsed.Host, _, _ = strings.Cut(parsed.Host, "|") // a unix socket's permission bits
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, origin+path, reader)
	if err != nil {
		return err
	}
	if !local {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, parsed.Network, parsed.JoinHostPort(0))
	}}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking the running Caddy at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAccountRequest))
		var answer struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &answer) != nil || answer.Error == "" {
			answer.Error = strings.TrimSpace(string(data))
		}
		return &adminError{status: resp.StatusCode, message: answer.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the running Caddy's answer at %s%s: %v", addr, path, err)
	}
	return nil
}

// runningReports opens the reports of the admin API at addr: for the
// names of the config file cfgJSON, by persist issuer, when there is one
// the command can load, else for the running config's names. The file's
// names are found once, however often the reports are asked for. Showing
// records registers the account first if there is none; checking does
// not.
func runningReports(addr string, cfgJSON []byte, domains []string, stderr io.Writer) (reportSource, error) {
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
	return func(check, withCAA bool, stderr io.Writer) ([]RecordReport, error) {
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
	}, nil
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
	issuers, err := namesOfFile(cfgJSON, domains)
	if errors.Is(err, errNoPersistIssuer) {
		return nil, err
	}
	if err != nil {
		fmt.Fprintf(stderr, "The config file could not be loaded here (%v), so these are the names of the running Caddy's config, which may lack the file's newest sites.\n", err)
		return nil, nil
	}
	if err := sameStorage(addr, cfgJSON, issuers, running); err != nil {
		return nil, err
	}
	var groups []issuerNames
	fileNames := make(map[string]bool)
	for _, fi := range issuers {
		id := identityOf(fi.Issuer)
		for _, name := range fi.Names {
			fileNames[name] = true
		}
		if i := slices.IndexFunc(groups, func(g issuerNames) bool { return g.Issuer == id }); i >= 0 {
			groups[i].Domains = append(groups[i].Domains, fi.Names...)
			continue
		}
		groups = append(groups, issuerNames{Issuer: id, Domains: slices.Clone(fi.Names)})
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

// runningIssuerOf is the persist issuer of the running Caddy that uses
// the account of a config file's issuer, or a noSuchAccountError.
func runningIssuerOf(iss *Issuer, running []issuerReport) (issuerReport, error) {
	id := identityOf(iss)
	if i := slices.IndexFunc(running, func(r issuerReport) bool { return r.sameAccount(id) }); i >= 0 {
		return running[i], nil
	}
	var have []string
	for _, r := range running {
		if name := r.issuerIdentity.String(); !slices.Contains(have, name) {
			have = append(have, name)
		}
	}
	return issuerReport{}, &noSuchAccountError{want: id, running: have}
}

// sameAccount reports whether the running issuer r uses the account id
// names.
func (r issuerReport) sameAccount(id issuerIdentity) bool {
	return account.SameDirectory(r.CA, id.CA) && strings.EqualFold(r.Email, id.Email) && r.AccountKey == id.AccountKey
}

// fileIssuer is a persist issuer of a config file, loaded here, with the
// names it serves and the storage its automation policy gives it: nil
// when it is the config's own.
type fileIssuer struct {
	servedSet
	policyStorage json.RawMessage
}

// namesOfFile finds the persist issuers of the config file cfgJSON and
// the names each serves, with domains added, as loadConfigHere does, but
// with the file's storage (and its policies') swapped for a folder of
// its own, removed after: loading a config writes to its storage
// (Caddy's local CA, for one), and asking which names a file has must
// change nothing.
func namesOfFile(cfgJSON []byte, domains []string) ([]fileIssuer, error) {
	scratch, err := os.MkdirTemp("", "caddy-persist-names-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	scratchStorage := map[string]any{"module": "file_system", "root": scratch}
	dec := json.NewDecoder(bytes.NewReader(cfgJSON))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %v", err)
	}
	cfg["storage"] = scratchStorage
	policies := automationPoliciesOf(cfg)
	storages := make([]json.RawMessage, len(policies))
	for i, p := range policies {
		if own, ok := p["storage"]; ok && own != nil {
			if storages[i], err = json.Marshal(own); err != nil {
				return nil, err
			}
			p["storage"] = scratchStorage
		}
	}
	swapped, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	ctx, sets, err := loadConfigHere(swapped, domains)
	if err != nil {
		return nil, err
	}
	automation, err := automationOf(ctx)
	if err != nil {
		return nil, err
	}
	issuers := make([]fileIssuer, len(sets))
	for i, set := range sets {
		issuers[i].servedSet = set
		for j, ap := range automation.Policies {
			if j < len(storages) && slices.Contains(persistIssuersOf(ap), set.Issuer) {
				issuers[i].policyStorage = storages[j]
				break
			}
		}
	}
	return issuers, nil
}

// automationPoliciesOf returns the automation policies of a decoded config.
func automationPoliciesOf(cfg map[string]any) []map[string]any {
	var policies []map[string]any
	apps, _ := cfg["apps"].(map[string]any)
	tls, _ := apps["tls"].(map[string]any)
	automation, _ := tls["automation"].(map[string]any)
	list, _ := automation["policies"].([]any)
	for _, p := range list {
		policy, _ := p.(map[string]any)
		policies = append(policies, policy)
	}
	return policies
}

// sameStorage refuses a config file whose persist issuers would keep
// their account in another storage than the running Caddy's issuers of
// the same account. Storage is compared as configured, since the file,
// once loaded, runs in the running Caddy's process (where a default
// storage is its own): the config's storage as JSON, and a policy's own
// by the folder of its file storage (the running Caddy tells no more of
// it). Only the storage configs travel, not the rest of the running
// config, whose secrets the command has no use for.
func sameStorage(addr string, cfgJSON []byte, issuers []fileIssuer, running []issuerReport) error {
	var file struct {
		Storage json.RawMessage `json:"storage"`
	}
	if err := json.Unmarshal(cfgJSON, &file); err != nil {
		return fmt.Errorf("decoding config: %v", err)
	}
	var runningStorage json.RawMessage
	if err := adminRequest(addr, http.MethodGet, "/config/storage", nil, &runningStorage); err != nil {
		return err
	}
	if !sameJSON(file.Storage, runningStorage) {
		return errors.New("the config file sets another storage than the running Caddy's, and the account the records name lives in storage: no record is printed for an account the file will not use; reload Caddy with the file first, or give --local to load the file here with its own storage")
	}
	return samePolicyStorage(issuers, running)
}

// samePolicyStorage refuses a config file's persist issuer whose
// automation policy gives it its own storage where the running issuer of
// its account has the config's, or the other way round, or another
// folder.
func samePolicyStorage(issuers []fileIssuer, running []issuerReport) error {
	for _, fi := range issuers {
		r, err := runningIssuerOf(fi.Issuer, running)
		if err != nil {
			return err
		}
		own, ok := describeStorageConfig(fi.policyStorage)
		if fi.policyStorage == nil && !r.OwnStorage || ok && r.OwnStorage && own == r.Storage {
			continue
		}
		return fmt.Errorf("the config file gives the persist issuer of %s its own storage (%s) where the running Caddy's keeps its account (%s), or the other way round, and the account lives in storage: no record is printed for an account the file will not use; reload Caddy with the file first, or give --local", r.CA, orNone(own, fi.policyStorage != nil), r.Storage)
	}
	return nil
}

// describeStorageConfig says which storage a storage config names, as
// account.DescribeStorage does for file storage; ok is false for other
// modules, which say nothing comparable.
func describeStorageConfig(raw json.RawMessage) (string, bool) {
	var cfg struct {
		Module string `json:"module"`
		Root   string `json:"root"`
	}
	if raw == nil || json.Unmarshal(raw, &cfg) != nil || cfg.Module != "file_system" {
		return "", false
	}
	return account.DescribeStorage(&certmagic.FileStorage{Path: cfg.Root}), true
}

// orNone names a policy's own storage for an error.
func orNone(described string, set bool) string {
	switch {
	case !set:
		return "none: the config's"
	case described == "":
		return "a storage module this command cannot compare"
	}
	return described
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
		// an issuer with no name to print a record for needs no
		// account yet: a config served only on demand registers it
		// with caddy persist account register
		used := groups == nil && len(r.Names) > 0 || slices.ContainsFunc(groups, func(g issuerNames) bool { return len(g.Domains) > 0 && r.sameAccount(g.Issuer) })
		needed = needed || used && r.AccountURL == "" && r.AccountError == ""
	}
	if !needed {
		return nil
	}
	body, err := json.Marshal(accountScope{Names: groups})
	if err != nil {
		return err
	}
	var changes []AccountChange
	if err := adminRequest(addr, http.MethodPost, "/persist/account/register", body, &changes); err != nil {
		return err
	}
	for _, c := range changes {
		if c.State == stateRegistered {
			fmt.Fprintf(stderr, "Registered a new ACME account at %s: %s\nThe running Caddy stores it. The records below name this account.\n", c.CADirectory, c.AccountURL)
		}
	}
	return nil
}
