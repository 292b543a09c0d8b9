package persist

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/dnspersist/caddy-persist/internal/account"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves, read-only, the records the running config's persist
// issuers need and their published state:
//
//	GET /persist/records[?domain=NAME...][&caa=1]
//	GET /persist/check[?domain=NAME...][&caa=1]
//
// The domain parameter asks about names the config does not list, e.g. a
// hosting control panel asking what a tenant must publish. It also
// changes the account, for `caddy persist account`, to requests from this
// machine only (admin_account.go):
//
//	POST /persist/account/rollover
//	POST /persist/account/replace
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
	var check bool
	switch r.URL.Path {
	case "/persist/", "/persist":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err := fmt.Fprint(w, adminHelp)
		return err
	case "/persist/records":
	case "/persist/check":
		check = true
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such resource: %s; the persist API serves GET /persist/records and /persist/check, and its help at /persist/", r.URL.Path)}
	}

	// admin modules are provisioned before apps, so the issuers of the
	// running config are only known now
	sets, err := servedNames(caddy.ActiveContext(), nil, r.URL.Query()["domain"])
	if err != nil {
		return apiError(err)
	}
	opts := inspectOptions{check: check, caa: r.URL.Query().Get("caa") == "1"}
	reports, err := inspectAll(r.Context(), sets, opts)
	if err != nil {
		return apiError(err)
	}
	if reports == nil {
		reports = []RecordReport{}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(reports)
}

// apiError gives an error the HTTP status that says whose problem it is.
func apiError(err error) error {
	var badInput *inputError
	switch {
	case errors.As(err, &badInput):
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	case errors.Is(err, errNoPersistIssuer):
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	case errors.Is(err, account.ErrNoAccountYet):
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("%w; GET /persist/records creates it", err)}
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

const adminHelp = `Persist admin API (GET is read-only; POST /persist/account/ changes the account)

GET /persist/records[?domain=NAME...][&caa=1]
    The dns-persist-01 records the running config's persist issuers need,
    as JSON: one object per record and CA (ca_directory), since each CA
    of a policy with several persist issuers has its own record at the
    same name. domain= (repeatable) adds names the config does not list,
    such as a tenant's domain. caa=1 adds, in caa, the CAA records that
    lock each domain to this account and to dns-persist-01.
GET /persist/check[?domain=NAME...][&caa=1]
    The same, with the status of what is published: ok, missing,
    mismatch, dns-error, dnssec (a signed zone whose signatures do not
    verify at a server) or expiring, a reason, and warnings about a
    passing record that stricter CAs than Let's Encrypt refuse; or
    not-offered when the CA was seen offering no dns-persist-01 challenge.
    caa_check says whether the domain's CAA policy lets this CA, account
    and method through: allowed, forbidden (no order is placed),
    dns-error or dnssec, with the CAA records found and the ones to
    publish.
POST /persist/account/rollover
    Gives the ACME account a new key (RFC 8555 key change); the account
    URL stays. For draft -02 CAs, returns the records to publish.
POST /persist/account/replace
    Registers a replacement account and returns its records; with
    {"switch": true}, moves to it once its records pass; with
    {"deactivate_old": true}, deactivates the old account.
    Both take {"ca": URL} to pick one CA's account, and {"domain": [...]},
    and answer only requests from this machine (loopback, unix socket)
    or through admin.remote. See "caddy persist account --help".
` + recordHelp

// Interface guard
var _ caddy.AdminRouter = (*adminAPI)(nil)
