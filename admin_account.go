package persist

import (
	"context"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/dnspersist/caddy-persist/internal/strictjson"
)

// POST /persist/account/<action> changes the ACME accounts of the running
// config's persist issuers, as `caddy persist account <action>` asks. It
// is the one part of the persist admin API that changes anything, so it
// is served only to requests from this machine (see allowAccountChange).
// Every action reads its own request type from the request's JSON body,
// which holds the accountScope every request may give.

// accountAction is one change to an account, run on every target.
type accountAction struct {
	// request makes what the request body decodes into.
	request func() scopedRequest
	// run changes the account of one target as req asks.
	run func(ctx context.Context, t accountTarget, req scopedRequest) (AccountChange, error)
	// runOnce, for an action on one account the request picks among
	// the config's, runs instead of run.
	runOnce func(ctx context.Context, sets []servedSet, req scopedRequest) ([]AccountChange, error)
	// changesKeyOrAccount marks an action that gives an account a new key
	// or moves to another, which an account_key in the config forbids:
	// the config would go on naming the old key.
	changesKeyOrAccount bool
}

// scopedRequest is an action's request, which always holds an
// accountScope.
type scopedRequest interface {
	scope() accountScope
	// setNames sets the scope's Names.
	setNames([]issuerNames)
}

// accountActions are the actions, by the name the path and the command
// give them.
var accountActions = map[string]accountAction{
	"register": {
		request: func() scopedRequest { return &accountScope{} },
		run: func(ctx context.Context, t accountTarget, _ scopedRequest) (AccountChange, error) {
			return t.register(ctx)
		},
	},
	"rollover": {
		request: func() scopedRequest { return &accountScope{} },
		run: func(ctx context.Context, t accountTarget, _ scopedRequest) (AccountChange, error) {
			return t.rollover(ctx)
		},
		changesKeyOrAccount: true,
	},
	"replace": {
		request: func() scopedRequest { return &replaceRequest{} },
		run: func(ctx context.Context, t accountTarget, req scopedRequest) (AccountChange, error) {
			return t.replace(ctx, *req.(*replaceRequest))
		},
		changesKeyOrAccount: true,
	},
	"import": {
		request: func() scopedRequest { return &importRequest{} },
		runOnce: func(ctx context.Context, sets []servedSet, req scopedRequest) ([]AccountChange, error) {
			r := req.(*importRequest)
			change, err := importAccount(ctx, sets, r.Accounts, r.CA)
			if err != nil {
				return nil, err
			}
			return []AccountChange{change}, nil
		},
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
	// Names, when given, are the names to show records for instead of
	// the running config's: those of a config file not loaded yet, by
	// persist issuer. Each group's account must be one a persist issuer
	// of the running config uses.
	Names []issuerNames `json:"names,omitempty"`
}

func (s accountScope) scope() accountScope { return s }

func (s *accountScope) setNames(names []issuerNames) { s.Names = names }

// decodeAccountRequest reads the request body of action; an empty one asks
// for the defaults. It is as strict as the JSON Caddy's /load takes: one
// object and nothing after it, whose fields, at every depth, are the
// request's, spelt as they are and each given once. A field the action
// does not take is refused, not ignored, so that a misspelt option never
// runs another step.
func decodeAccountRequest(action accountAction, body []byte) (scopedRequest, error) {
	req := action.request()
	if len(body) == 0 {
		return req, nil
	}
	if err := strictjson.Unmarshal(body, req); err != nil {
		return nil, &inputError{fmt.Errorf("the request body is not the JSON object of this account request: %v", err)}
	}
	return req, nil
}

// maxAccountRequest bounds the body of an account request.
const maxAccountRequest = 1 << 20

// readAccountRequest reads the body of an account request, which must be
// JSON, as Caddy's /load takes it, and no larger than maxAccountRequest.
func readAccountRequest(r *http.Request) ([]byte, error) {
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
		return nil, caddy.APIError{HTTPStatus: http.StatusUnsupportedMediaType, Err: fmt.Errorf("%s takes a JSON body: send it with Content-Type: application/json (this one is %q)", r.URL.Path, r.Header.Get("Content-Type"))}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAccountRequest+1))
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the request body: %v", err)}
	}
	if len(body) > maxAccountRequest {
		return nil, caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("the request body is larger than %d octets, more than any account request", maxAccountRequest)}
	}
	return body, nil
}

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
	body, err := readAccountRequest(r)
	if err != nil {
		return err
	}
	req, err := decodeAccountRequest(action, body)
	if err != nil {
		return apiError(err)
	}

	running := caddy.ActiveContext()
	config, err := servedNames(running, nil, nil)
	if err != nil {
		return apiError(err)
	}
	sets, err := scopeSets(running, req.scope())
	if err != nil {
		return apiError(err)
	}
	// a change the CA has begun is seen through, whatever the client does
	ctx := context.WithoutCancel(r.Context())
	changes, err := runOnSets(ctx, action, sets, config, req)
	if err != nil {
		return apiError(err)
	}
	for _, c := range changes {
		if err := markNotServed(running, c.Records); err != nil {
			return apiError(err)
		}
	}
	return writeJSON(w, changes)
}

// runOnSets runs action on the accounts of sets, which the request chose
// among config, all the persist issuers of the config.
func runOnSets(ctx context.Context, action accountAction, sets, config []servedSet, req scopedRequest) ([]AccountChange, error) {
	if action.runOnce != nil {
		return action.runOnce(ctx, sets, req)
	}
	targets, err := accountTargets(sets, req.scope().CA)
	if err != nil {
		return nil, err
	}
	return runAccountAction(ctx, action, targets, config, req)
}

// runAccountAction runs action for each target, and stops at the first
// that fails, naming its account. The accounts changed before stay
// changed, and so may the failing one, when only reporting on it failed:
// the error names them, so that nobody runs the change again for them.
func runAccountAction(ctx context.Context, action accountAction, targets []accountTarget, config []servedSet, req scopedRequest) ([]AccountChange, error) {
	changes := []AccountChange{}
	if action.changesKeyOrAccount {
		// a pinned account would refuse in its turn, after the others
		// changed: nothing changes unless every target may
		if err := refusePinned(targets, config); err != nil {
			return changes, err
		}
	}
	for _, t := range targets {
		change, err := action.run(ctx, t, req)
		if err == nil {
			changes = append(changes, change)
			continue
		}
		if len(targets) > 1 {
			err = fmt.Errorf("the account of %s: %w", t.issuer().CA, err)
		}
		if change.State != "" {
			changes = append(changes, change)
		}
		if len(changes) > 0 {
			var done []string
			for _, c := range changes {
				done = append(done, fmt.Sprintf("%s (%s at %s)", c.State, c.AccountURL, c.CADirectory))
			}
			err = fmt.Errorf("%w; done before this failed: %s; `caddy persist records` prints the records the accounts need now", err, strings.Join(done, ", "))
		}
		return changes, err
	}
	return changes, nil
}

// scopeSets are the names an account request covers: a config file's, by
// persist issuer, or else the running config's with Domains added.
func scopeSets(running caddy.Context, scope accountScope) ([]servedSet, error) {
	if len(scope.Names) > 0 {
		return setsFor(running, scope.Names)
	}
	return servedNames(running, nil, scope.Domains)
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
// through a unix socket or a connection whose two ends are loopback, or
// through Caddy's remote admin endpoint (admin.remote), which
// authenticates its clients by certificate and applies its own access
// control. Caddy gives admin API modules no config of their own, so this
// is the one rule: an admin endpoint reachable from elsewhere without
// authentication (admin 0.0.0.0:2019, as containers often have) cannot
// change the account. A loopback peer is not enough, since a sidecar
// proxy (Istio's connects from 127.0.0.6 to the pod's address) or a
// reverse proxy on this machine relays other machines' requests; so the
// local end must be loopback too, and a request a proxy says it forwarded
// is refused.
func allowAccountChange(r *http.Request) error {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return nil
	}
	forwarded := ""
	for _, header := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Via"} {
		// present, even empty, is a proxy's doing
		if _, ok := r.Header[header]; ok {
			forwarded = header
			break
		}
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if forwarded == "" && fromThisMachine(local, r.RemoteAddr) {
		return nil
	}
	from := r.RemoteAddr
	if forwarded != "" {
		from += ", which says (" + forwarded + ") it forwarded it"
	}
	return caddy.APIError{HTTPStatus: http.StatusForbidden, Err: fmt.Errorf("%s %s changes the ACME account every published record names, so it is accepted only from this machine (a loopback or unix socket admin endpoint, reached directly, not through a proxy) or through Caddy's remote admin endpoint (admin.remote, which authenticates clients by certificate), and this request came from %s: run `caddy persist account` on the Caddy host (with --address set to a loopback or unix socket admin address), or configure admin.remote and send it there (see \"Changing the account through the admin API\" in docs/accounts.md)", r.Method, r.URL.Path, from)}
}

// fromThisMachine reports whether a connection between local and remote
// stays on this machine: a unix socket, or loopback at both ends.
func fromThisMachine(local net.Addr, remote string) bool {
	switch local := local.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		peer, err := netip.ParseAddrPort(remote)
		return err == nil && peer.Addr().Unmap().IsLoopback() && local.IP.IsLoopback()
	}
	return false
}
