package persist

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/caddyserver/caddy/v2"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/judge"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves, read-only, the records the running config's persist
// issuers need and their published state, and the issuers themselves:
//
//	GET /persist/records[?domain=NAME...][&only=1][&caa=1]
//	GET /persist/check[?domain=NAME...][&only=1][&caa=1]
//	GET /persist/issuers
//
// The domain parameter asks about names the config does not list, e.g. a
// hosting control panel asking what a tenant must publish. No GET
// registers an account or writes to storage. It also creates and changes
// the account, for `caddy persist account`, for requests from this
// machine only (admin_account.go):
//
//	POST /persist/account/register
//	POST /persist/account/rollover
//	POST /persist/account/replace
//	POST /persist/account/import
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.persist",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the routes of the persist admin API.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/persist/", Handler: caddy.AdminHandlerFunc(a.serve)},
		{Pattern: "/persist/account/", Handler: caddy.AdminHandlerFunc(a.serveAccount)},
	}
}

func (adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed; %s is read-only (GET); only POST %s changes anything", r.Method, r.URL.Path, accountActionPaths())}
	}
	// admin modules are provisioned before apps, so the issuers of the
	// running config are only known now
	running := caddy.ActiveContext()
	q := r.URL.Query()
	var check bool
	switch r.URL.Path {
	case "/persist/", "/persist":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err := fmt.Fprint(w, adminHelp)
		return err
	case "/persist/issuers":
		issuers, err := issuerReports(r.Context(), running)
		if err != nil {
			return apiError(err)
		}
		return writeJSON(w, issuers)
	case "/persist/records":
	case "/persist/check":
		check = true
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such resource: %s; the persist API serves GET /persist/records, /persist/check and /persist/issuers, and its help at /persist/", r.URL.Path)}
	}

	sets, err := reportSets(running, q)
	if err != nil {
		return apiError(err)
	}
	opts := inspectOptions{check: check, caa: q.Get("caa") == "1"}
	reports, err := inspectAll(r.Context(), sets, opts)
	if err == nil {
		err = markNotServed(running, reports)
	}
	if err != nil {
		return apiError(err)
	}
	if reports == nil {
		reports = []RecordReport{}
	}
	return writeJSON(w, reports)
}

// reportSets are the names a report request covers: those of a config
// file's persist issuer, when the request names one (issuerIdentity), or
// else the running config's with the domain names added, or, with only=1,
// just the domain names.
func reportSets(running caddy.Context, q url.Values) ([]servedSet, error) {
	domains := q["domain"]
	if id, ok := identityFromQuery(q); ok {
		return setsFor(running, []issuerNames{{Issuer: id, Domains: domains}})
	}
	sets, err := servedNames(running, nil, domains)
	if err != nil || q.Get(paramOnly) != "1" {
		return sets, err
	}
	asked := normalizeNames(domains)
	for i := range sets {
		sets[i].Names = slices.DeleteFunc(sets[i].Names, func(name string) bool { return !slices.Contains(asked, name) })
	}
	return sets, nil
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// apiError gives an error the HTTP status that says whose problem it is.
func apiError(err error) error {
	var badInput *inputError
	var answered caddy.APIError
	switch {
	case errors.As(err, &answered):
		return answered
	case errors.As(err, &badInput):
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	case errors.Is(err, errNoPersistIssuer):
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	case errors.As(err, new(*noSuchAccountError)):
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
	case errors.Is(err, account.ErrNoAccountYet):
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
	case errors.As(err, new(*judge.PersistUntilPassedError)):
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
	}
	var state *account.StateError
	if errors.As(err, &state) {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
	}
	var storageErr *StorageError
	if errors.As(err, &storageErr) {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return caddy.APIError{HTTPStatus: http.StatusBadGateway, Err: err}
}

const adminHelp = `Persist admin API (GET is read-only: it registers no account and writes
nothing; POST /persist/account/ creates or changes the account)

GET /persist/records[?domain=NAME...][&only=1][&caa=1]
    The dns-persist-01 records the running config's persist issuers need,
    as JSON: one object per record and CA (ca_directory), since each CA
    of a policy with several persist issuers has its own record at the
    same name. domain= (repeatable) adds names the config does not list,
    such as a tenant's domain; only=1 reports those names alone. Each
    record's not_served lists its names the running config does not serve
    yet. caa=1 adds, in caa, the CAA records that lock each domain to this
    account and to dns-persist-01. 409 until the account exists (POST
    /persist/account/register creates it).
    ca=, email= and account_key_thumbprint= name a config file's persist
    issuer instead (for a file not loaded yet): the names are reported for
    the running issuer of that account (409 when none uses it), with the
    file's issuer_domain_name= and persist_until=.
GET /persist/check[?domain=NAME...][&only=1][&caa=1]
    The same, with the status of what is published: ok, missing,
    mismatch, dns-error, dnssec (a signed zone whose signatures do not
    verify at a server) or expiring, a reason, and warnings about a
    passing record that stricter CAs than Let's Encrypt refuse; or
    not-offered when the CA was seen offering no dns-persist-01 challenge.
    caa_check says whether the domain's CAA policy lets this CA, account
    and method through: allowed, forbidden (no order is placed),
    dns-error or dnssec, with the CAA records found and the ones to
    publish.
GET /persist/issuers
    The running config's persist issuers: the account each uses (ca,
    email, account_key_thumbprint, account_url once it exists), its
    storage and its names.
POST /persist/account/register
    Registers the ACME account if there is none yet; an account there is
    stays.
POST /persist/account/rollover
    Gives the ACME account a new key (RFC 8555 key change); the account
    URL stays. For draft -02 CAs, returns the records to publish.
POST /persist/account/replace
    Registers a replacement account and returns its records; with
    {"switch": true}, moves to it once its records pass; with
    {"deactivate_old": true}, deactivates the old account.
POST /persist/account/import
    Stores an account another ACME client registered, sent by
    'caddy persist account import'.
    All take a JSON body (Content-Type: application/json), with {"ca": URL}
    to pick one CA's account, and {"domain": [...]}, and answer only
    requests from this machine (loopback, unix socket) or through
    admin.remote. See "caddy persist account --help".
` + recordHelp

// Interface guard
var _ caddy.AdminRouter = (*adminAPI)(nil)
