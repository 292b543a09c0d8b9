package persist

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestAccountChangesOnlyFromThisMachine: POST /persist/account/ is
// served to a unix socket, a loopback connection and Caddy's remote admin
// endpoint (a verified client certificate), and refused, saying how to
// get through, to anyone else.
func TestAccountChangesOnlyFromThisMachine(t *testing.T) {
	t.Parallel()
	admin := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 2019}
	verified := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	cases := []struct {
		name    string
		remote  string
		local   net.Addr
		tls     *tls.ConnectionState
		header  string
		allowed bool
	}{
		{"loopback", "127.0.0.1:40000", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2019}, nil, "", true},
		{"IPv6 loopback", "[::1]:40000", &net.TCPAddr{IP: net.IPv6loopback, Port: 2019}, nil, "", true},
		{"unix socket", "@", &net.UnixAddr{Name: "/run/caddy/admin.sock", Net: "unix"}, nil, "", true},
		{"another machine", "192.0.2.7:40000", admin, nil, "", false},
		{"this machine's own address", "192.0.2.2:40000", admin, nil, "", false},
		{"a sidecar relaying from loopback to the pod's address", "127.0.0.6:40000", admin, nil, "", false},
		{"a proxy on this machine, over loopback", "127.0.0.1:40000", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2019}, nil, "X-Forwarded-For", false},
		{"a proxy on this machine, to the unix socket", "@", &net.UnixAddr{Name: "/run/caddy/admin.sock", Net: "unix"}, nil, "Forwarded", false},
		{"another machine through admin.remote", "192.0.2.7:40000", admin, verified, "", true},
		{"another machine over TLS without a verified certificate", "192.0.2.7:40000", admin, &tls.ConnectionState{}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/persist/account/rollover", nil)
			r.RemoteAddr, r.TLS = c.remote, c.tls
			if c.header != "" {
				r.Header.Set(c.header, "192.0.2.7")
			}
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, c.local))
			err := allowAccountChange(r)
			if c.allowed {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			var apiErr caddy.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusForbidden {
				t.Fatalf("error = %v, want 403", err)
			}
			for _, hint := range []string{c.remote, c.header, "caddy persist account", "admin.remote", "docs/accounts.md"} {
				if !strings.Contains(err.Error(), hint) {
					t.Errorf("the refusal does not say %q: %v", hint, err)
				}
			}
		})
	}
}

// TestAccountRoutesTakePOSTAndTheOthersStayReadOnly: the account actions
// answer POST only, an unknown one names those there are, and the read
// endpoints still refuse everything but GET.
func TestAccountRoutesTakePOSTAndTheOthersStayReadOnly(t *testing.T) {
	t.Parallel()
	handlers := map[string]caddy.AdminHandler{}
	for _, route := range (adminAPI{}).Routes() {
		handlers[route.Pattern] = route.Handler
	}
	call := func(method, path string) (caddy.APIError, http.Header) {
		t.Helper()
		pattern := "/persist/"
		if strings.HasPrefix(path, "/persist/account/") {
			pattern = "/persist/account/"
		}
		r := httptest.NewRequest(method, path, strings.NewReader("{}"))
		r.RemoteAddr = "127.0.0.1:40000"
		w := httptest.NewRecorder()
		var apiErr caddy.APIError
		if err := handlers[pattern].ServeHTTP(w, r); !errors.As(err, &apiErr) {
			t.Fatalf("%s %s: %v, want an API error", method, path, err)
		}
		return apiErr, w.Header()
	}

	for _, action := range []string{"rollover", "replace"} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			apiErr, header := call(method, "/persist/account/"+action)
			if apiErr.HTTPStatus != http.StatusMethodNotAllowed || header.Get("Allow") != http.MethodPost {
				t.Errorf("%s /persist/account/%s: %d, Allow %q; want 405, POST", method, action, apiErr.HTTPStatus, header.Get("Allow"))
			}
		}
	}
	if apiErr, _ := call(http.MethodPost, "/persist/account/nope"); apiErr.HTTPStatus != http.StatusNotFound || !strings.Contains(apiErr.Err.Error(), "/persist/account/replace or /persist/account/rollover") {
		t.Errorf("POST /persist/account/nope: %d %v", apiErr.HTTPStatus, apiErr.Err)
	}
	for _, path := range []string{"/persist/records", "/persist/check", "/persist/"} {
		apiErr, header := call(http.MethodPost, path)
		if apiErr.HTTPStatus != http.StatusMethodNotAllowed || header.Get("Allow") != http.MethodGet {
			t.Errorf("POST %s: %d, Allow %q; want 405, GET", path, apiErr.HTTPStatus, header.Get("Allow"))
		}
	}
}

// TestAccountRequestsRefuseFieldsTheyDoNotTake: a misspelt option, or one
// of another action, is a 400 before anything changes, rather than a
// request for the defaults (a replace asked to "swtich" would register).
func TestAccountRequestsRefuseFieldsTheyDoNotTake(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		action, body string
		ok           bool
	}{
		{"replace", `{"switch":true,"domain":["a.test"]}`, true},
		{"replace", `{"swtich":true}`, false},
		{"rollover", `{"switch":true}`, false},
		{"rollover", `{"ca":"https://ca.example/dir"}`, true},
		{"rollover", ``, true},
		{"replace", `[]`, false},
	} {
		_, err := decodeAccountRequest(accountActions[c.action], []byte(c.body))
		var badInput *inputError
		switch {
		case c.ok && err != nil:
			t.Errorf("%s %s: %v", c.action, c.body, err)
		case !c.ok && !errors.As(err, &badInput):
			t.Errorf("%s %s: %v, want a refusal of the input", c.action, c.body, err)
		}
	}
	req, err := decodeAccountRequest(accountActions["replace"], []byte(`{"switch":true,"domain":["a.test"]}`))
	if r, ok := req.(*replaceRequest); err != nil || !ok || !r.Switch || len(r.scope().Domains) != 1 {
		t.Errorf("replace request decoded as %+v, %v", req, err)
	}
}

// TestAccountChangesRefuseEveryForwardingHeader: a proxy on this machine
// says it forwarded a request with any of the forwarding headers, or with
// one that has no value.
func TestAccountChangesRefuseEveryForwardingHeader(t *testing.T) {
	t.Parallel()
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2019}
	for _, h := range []struct{ name, value string }{
		{"X-Forwarded-For", ""},
		{"Forwarded", ""},
		{"X-Real-Ip", ""},
		{"Via", ""},
		{"X-Forwarded-Host", "admin.example"},
		{"X-Forwarded-Proto", "https"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/persist/account/rollover", nil)
		r.RemoteAddr = "127.0.0.1:40000"
		r.Header[h.name] = []string{h.value}
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, loopback))
		var apiErr caddy.APIError
		if err := allowAccountChange(r); !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusForbidden || !strings.Contains(err.Error(), h.name) {
			t.Errorf("%s: %q: %v, want 403 naming it", h.name, h.value, err)
		}
	}
}

// TestAccountRequestsAreJSONAsCaddysLoadIs: the account actions take a
// JSON body as Caddy's own /load does: of that content type, one object
// and nothing after it, with the fields' exact names, and no larger than
// a request can be (413, not a body cut short).
func TestAccountRequestsAreJSONAsCaddysLoadIs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, contentType, body string
		status                  int
	}{
		{"JSON", "application/json", `{"switch":true}`, http.StatusOK},
		{"JSON with a charset", "application/json; charset=utf-8", `{}`, http.StatusOK},
		{"no content type", "", `{}`, http.StatusUnsupportedMediaType},
		{"a form", "application/x-www-form-urlencoded", `{}`, http.StatusUnsupportedMediaType},
		{"text", "text/plain", `{"switch":true}`, http.StatusUnsupportedMediaType},
		{"text after the object", "application/json", `{"switch":true} {"deactivate_old":true}`, http.StatusBadRequest},
		{"a field spelt in another case", "application/json", `{"Switch":true}`, http.StatusBadRequest},
		{"a nested field spelt in another case", "application/json", `{"names":[{"Issuer":{"ca":"https://ca.test/dir"},"domain":["a.test"]}]}`, http.StatusBadRequest},
		{"a field given twice", "application/json", `{"switch":false,"switch":true}`, http.StatusBadRequest},
		{"a body over 1 MiB", "application/json", `{"domain":["` + strings.Repeat("a", maxAccountRequest) + `"]}`, http.StatusRequestEntityTooLarge},
	} {
		r := httptest.NewRequest(http.MethodPost, "/persist/account/replace", strings.NewReader(c.body))
		if c.contentType != "" {
			r.Header.Set("Content-Type", c.contentType)
		}
		// what serveAccount does before it looks at the running config
		body, err := readAccountRequest(r)
		if err == nil {
			_, err = decodeAccountRequest(accountActions["replace"], body)
		}
		status := http.StatusOK
		var apiErr caddy.APIError
		if err != nil && errors.As(apiError(err), &apiErr) {
			status = apiErr.HTTPStatus
		}
		if status != c.status {
			t.Errorf("%s: %d (%v), want %d", c.name, status, err, c.status)
		}
	}
}
