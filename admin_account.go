package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// POST /persist/account/<action> changes the ACME accounts of the running
// config's persist issuers, as `caddy persist account <action>` asks. It
// is the one part of the persist admin API that changes anything, so it
// is served only to requests from this machine (see allowAccountChange).
// Every action reads the accountScope of the request's JSON body, and its
// own options from the same body.

// accountAction changes the account of one target, with the options of
// the request body.
type accountAction func(ctx context.Context, t accountTarget, body []byte) (AccountChange, error)

// accountActions are the actions, by the name the path and the command
// give them.
var accountActions = map[string]accountAction{
	"rollover": func(ctx context.Context, t accountTarget, _ []byte) (AccountChange, error) {
		return t.rollover(ctx)
	},
	"replace": func(ctx context.Context, t accountTarget, body []byte) (AccountChange, error) {
		var req replaceRequest
		if err := decodeAccountRequest(body, &req); err != nil {
			return AccountChange{}, err
		}
		return t.replace(ctx, req)
	},
}

// accountScope is what every account request may say: whose account to
// change, and more names to show records for.
type accountScope struct {
	// CA selects the account of the persist issuers of this CA directory,
	// when the config's persist issuers use several.
	CA string `json:"ca,omitempty"`
	// Domains are names to show records for besides the config's.
	Domains []string `json:"domain,omitempty"`
}

// decodeAccountRequest reads a request body; an empty one asks for the
// defaults.
func decodeAccountRequest(body []byte, into any) error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, into); err != nil {
		return &inputError{fmt.Errorf("the request body is not the JSON object of an account request: %v", err)}
	}
	return nil
}

// maxAccountRequest bounds the body of an account request.
const maxAccountRequest = 1 << 20

// serveAccount serves POST /persist/account/<action>.
func (adminAPI) serveAccount(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, "/persist/account/")
	action, ok := accountActions[name]
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such account action: %q; the persist API changes the account with POST %s", name, accountActionPaths())}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed; %s changes the ACME account and takes POST only", r.Method, r.URL.Path)}
	}
	if err := allowAccountChange(r); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAccountRequest))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the request body: %v", err)}
	}
	var scope accountScope
	if err := decodeAccountRequest(body, &scope); err != nil {
		return apiError(err)
	}

	sets, err := servedNames(caddy.ActiveContext(), nil, scope.Domains)
	if err != nil {
		return apiError(err)
	}
	targets, err := accountTargets(sets, scope.CA)
	if err != nil {
		return apiError(err)
	}
	// a change the CA has begun is seen through, whatever the client does
	ctx := context.WithoutCancel(r.Context())
	changes, err := runAccountAction(ctx, action, targets, body)
	if err != nil {
		return apiError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(changes)
}

// runAccountAction runs action for each target, and stops at the first
// that fails, naming its account; the accounts changed before stay
// changed, and their logs say so.
func runAccountAction(ctx context.Context, action accountAction, targets []accountTarget, body []byte) ([]AccountChange, error) {
	changes := []AccountChange{}
	for _, t := range targets {
		change, err := action(ctx, t, body)
		if err != nil {
			if len(targets) > 1 {
				err = fmt.Errorf("the account of %s: %w", t.issuer().CA, err)
			}
			return changes, err
		}
		changes = append(changes, change)
	}
	return changes, nil
}

// accountActionPaths lists the paths of the account actions.
func accountActionPaths() string {
	names := slices.Sorted(maps.Keys(accountActions))
	for i, name := range names {
		names[i] = "/persist/account/" + name
	}
	return strings.Join(names, " or ")
}

// allowAccountChange accepts a request that comes from this machine,
// through a unix socket or a loopback connection, or through Caddy's
// remote admin endpoint (admin.remote), which authenticates its clients
// by certificate and applies its own access control. Caddy gives admin
// API modules no config of their own, so this is the one rule: an admin
// endpoint reachable from elsewhere without authentication (admin
// 0.0.0.0:2019, as containers often have) cannot change the account.
func allowAccountChange(r *http.Request) error {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return nil
	}
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, unix := local.(*net.UnixAddr); unix {
			return nil
		}
	}
	if ip, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ip.Addr().Unmap().IsLoopback() {
		return nil
	}
	return caddy.APIError{HTTPStatus: http.StatusForbidden, Err: fmt.Errorf("%s %s changes the ACME account every published record names, so it is accepted only from this machine (a loopback or unix socket admin endpoint) or through Caddy's remote admin endpoint (admin.remote, which authenticates clients by certificate), and this request came from %s: run `caddy persist account` on the Caddy host (with --address set to a loopback or unix socket admin address), or configure admin.remote and send it there (see \"Changing the account through the admin API\" in docs/accounts.md)", r.Method, r.URL.Path, r.RemoteAddr)}
}
