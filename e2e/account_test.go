package e2e

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	persist "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// onDemandSite writes a Caddyfile whose every name is served on demand by
// the persist issuer, once the persist permission finds its record: new
// names, and so new orders, come with handshakes.
func (e *env) onDemandSite() string {
	return e.write("Caddyfile", e.globals(`on_demand_tls {
		permission persist
	}`)+`https:// {
	tls {
		on_demand
		`+e.issuerBlock("")+`
	}
	respond "{host}"
}
`)
}

// accountKey reads the key stored at the account file with the suffix
// given ("" for the account's own key), found by a glob.
func (e *env) accountKey(t *testing.T, suffix string) crypto.Signer {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(e.storage, "acme", "*", "users", "ops@example.test", "ops"+suffix))
	if err != nil || len(matches) != 1 {
		t.Fatalf("account key files ops%s: %v %v", suffix, matches, err)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := certmagic.PEMDecodePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// acmeClient is an ACME client of the env's CA, for the test to speak to
// it as a client holding some key would.
func (e *env) acmeClient() *acme.Client {
	return &acme.Client{Directory: e.ca.URL, HTTPClient: e.ca.HTTPClient()}
}

// problemType is the type of the ACME problem err carries, if any.
func problemType(err error) string {
	var problem acme.Problem
	if errors.As(err, &problem) {
		return problem.Type
	}
	return ""
}

func decodeChanges(t *testing.T, res result) []persist.AccountChange {
	t.Helper()
	var changes []persist.AccountChange
	if err := json.Unmarshal([]byte(res.stdout), &changes); err != nil || len(changes) != 1 {
		t.Fatalf("not one account change (exit %d): %v\n%s\n%s", res.code, err, res.stdout, res.stderr)
	}
	return changes
}

// TestRolloverKeepsTheAccountAndItsRecords: `caddy persist account
// rollover`, answered by the running Caddy, gives the account a new key;
// the CA refuses the old one, while the account URL, and so the published
// -01 record, stay: a new name gets its certificate with no registration
// and no change in DNS.
func TestRolloverKeepsTheAccountAndItsRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.onDemandSite()
	recs := e.publishFromRecords(t, "--config", cfg, "--domain", "before.rollover.test", "--domain", "after.rollover.test")
	url := recs[0].AccountURL
	writes := map[string]int{}
	for _, r := range recs {
		writes[r.RecordName] = acmetest.TXTWrites(r.RecordName)
	}
	srv := e.start("--config", cfg)
	e.handshake(t, "before.rollover.test", time.Minute)
	oldKey := e.accountKey(t, ".key")

	res := e.caddy("persist", "account", "rollover", "--config", cfg)
	if res.code != 0 {
		t.Fatalf("rollover: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if want := "; rolled the ACME account " + url + " at " + e.ca.URL + " over to a new key; the account URL is unchanged\n; draft-01 records name the account URL: nothing to republish\n"; res.stdout != want {
		t.Errorf("rollover printed:\n%s\nwant:\n%s", res.stdout, want)
	}
	if strings.Contains(res.stderr, "loaded the config here") {
		t.Errorf("the command did not ask the running Caddy:\n%s", res.stderr)
	}
	srv.waitLog(t, "rolled the ACME account over to a new key", 10*time.Second)
	newKey := e.accountKey(t, ".key")
	if newKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(oldKey.Public()) {
		t.Fatal("the stored key did not change")
	}

	// a POST-as-GET of the account URL signed with the old key (acmez's
	// GetOrder sends one to the URL it is given), refused for its
	// signature; the same request with the new key is answered
	ctx := context.Background()
	client := e.acmeClient()
	if _, err := client.GetOrder(ctx, acme.Account{Location: url, PrivateKey: oldKey}, acme.Order{Location: url}); problemType(err) != acme.ProblemTypeMalformed {
		t.Errorf("the CA on a request signed with the old key: %v, want malformed", err)
	}
	if _, err := client.GetOrder(ctx, acme.Account{Location: url, PrivateKey: newKey}, acme.Order{Location: url}); err != nil {
		t.Errorf("the CA on the same request signed with the new key: %v", err)
	}
	if _, err := client.GetAccount(ctx, acme.Account{PrivateKey: oldKey}); problemType(err) != acme.ProblemTypeAccountDoesNotExist {
		t.Errorf("the CA on the old key's account: %v, want accountDoesNotExist", err)
	}

	e.handshake(t, "after.rollover.test", time.Minute)
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
	if n := e.ca.Counts.Get(acmetest.KindKeyChange + " 200"); n != 1 {
		t.Errorf("%d key changes, want 1", n)
	}
	for name, n := range writes {
		if got := acmetest.TXTWrites(name); got != n {
			t.Errorf("%s was written %d times after the rollover", name, got-n)
		}
	}
}

// orderSigners records which account signed each name's new orders, from
// the kid of the requests' JWS.
type orderSigners struct {
	mu   sync.Mutex
	kids map[string][]string
}

func (o *orderSigners) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if acmetest.KindOf(r) == acmetest.KindNewOrder {
			order := acmetest.ReadNewOrder(r)
			o.mu.Lock()
			for _, id := range order.Identifiers {
				o.kids[id.Value] = append(o.kids[id.Value], order.Account)
			}
			o.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// of returns the accounts whose orders named name.
func (o *orderSigners) of(name string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.kids[name]...)
}

// TestReplaceMovesToANewAccountOnceItsRecordsPass: `caddy persist account
// replace` registers a new account once; orders go on with the old one
// until the new records are published and --switch moves to it; the old
// certificates stay served; --deactivate-old deactivates the old account,
// which the CA then refuses, and lists its records, while its key is set
// aside.
func TestReplaceMovesToANewAccountOnceItsRecordsPass(t *testing.T) {
	t.Parallel()
	signers := &orderSigners{kids: map[string][]string{}}
	e := newEnv(t, acmetest.Options{Wrap: signers.wrap})
	cfg := e.onDemandSite()
	names := []string{"first.replace.test", "second.replace.test", "third.replace.test"}
	args := []string{"--config", cfg}
	for _, n := range names {
		args = append(args, "--domain", n)
	}
	old := e.publishFromRecords(t, args...)
	oldURL := old[0].AccountURL
	srv := e.start("--config", cfg)
	first, _ := e.handshake(t, names[0], time.Minute)

	res := e.caddy(append([]string{"persist", "account", "replace", "--format", "json"}, args...)...)
	change := decodeChanges(t, res)[0]
	newURL := change.ReplacementURL
	if res.code != 0 || change.State != "pending" || !change.Registered || newURL == "" || newURL == oldURL || change.AccountURL != oldURL || len(change.Records) != len(names) {
		t.Fatalf("replace: exit %d, %+v\n%s", res.code, change, res.stderr)
	}
	for _, r := range change.Records {
		if r.AccountURL != newURL || !strings.Contains(r.Value, "accounturi="+newURL) {
			t.Errorf("the replacement's record %+v does not name it", r)
		}
	}
	res = e.caddy(append([]string{"persist", "account", "replace"}, args...)...)
	if res.code != 0 || !strings.Contains(res.stdout, "; the replacement ACME account "+newURL+" at "+e.ca.URL+" awaits the switch\n") || strings.Count(res.stdout, "accounturi="+newURL) != len(names) {
		t.Errorf("replace run again: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 2 {
		t.Errorf("%d registrations, want the old account and one replacement", n)
	}

	// before the new records are published, orders use the old account,
	// and the switch is refused
	e.handshake(t, names[1], time.Minute)
	if got := signers.of(names[1]); len(got) != 1 || got[0] != oldURL {
		t.Errorf("%s was ordered by %v before the switch, want %s", names[1], got, oldURL)
	}
	res = e.caddy(append([]string{"persist", "account", "replace", "--switch", "--format", "json"}, args...)...)
	refused := decodeChanges(t, res)[0]
	if res.code != 1 || refused.State != "not-switched" || !strings.Contains(res.stderr, "not switched") || refused.Records[0].Status != "mismatch" {
		t.Errorf("switch before publishing: exit %d, %+v\n%s", res.code, refused, res.stderr)
	}

	for i, r := range change.Records {
		if err := acmetest.SetTXT(r.RecordName, old[i].Value, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	res = e.caddy(append([]string{"persist", "account", "replace", "--switch"}, args...)...)
	if want := "; switched to the replacement ACME account " + newURL + " at " + e.ca.URL + "; the old account " + oldURL + " still works at the CA"; res.code != 0 || !strings.HasPrefix(res.stdout, want) {
		t.Fatalf("switch: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	e.handshake(t, names[2], time.Minute)
	if got := signers.of(names[2]); len(got) != 1 || got[0] != newURL {
		t.Errorf("%s was ordered by %v after the switch, want %s", names[2], got, newURL)
	}
	if again, _ := e.handshake(t, names[0], time.Minute); again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("%s is served another certificate after the switch", names[0])
	}

	res = e.caddy(append([]string{"persist", "account", "replace", "--deactivate-old"}, args...)...)
	if res.code != 0 || !strings.HasPrefix(res.stdout, "; deactivated the old ACME account "+oldURL+" at "+e.ca.URL+"; orders use "+newURL+"\n") ||
		!strings.Contains(res.stdout, "; remove: "+old[0].ZoneLine+"\n") {
		t.Fatalf("deactivate: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	oldKey := e.accountKey(t, ".replaced.key.deactivated-*")
	if _, err := e.acmeClient().GetAccount(context.Background(), acme.Account{PrivateKey: oldKey}); problemType(err) != acme.ProblemTypeUnauthorized {
		t.Errorf("the CA on the old account: %v, want unauthorized", err)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 2 {
		t.Errorf("%d registrations, want 2", n)
	}
	srv.waitLog(t, "deactivated the old ACME account", 10*time.Second)

	// the work is done: each step says so, and exits 0
	for _, step := range []string{"--deactivate-old", "--switch"} {
		res = e.caddy(append([]string{"persist", "account", "replace", step}, args...)...)
		if res.code != 0 || !strings.HasPrefix(res.stdout, "; the replacement is complete: orders use "+newURL+" at "+e.ca.URL+", and the old account "+oldURL+" is deactivated; nothing is left to do\n") {
			t.Errorf("replace %s once done: exit %d\n%s\n%s", step, res.code, res.stdout, res.stderr)
		}
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 2 {
		t.Errorf("%d registrations after the steps of a finished replacement, want 2", n)
	}
}

// nonLoopbackIP is an address of this machine other machines could
// reach, if it has one.
func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.To4() != nil && !ipnet.IP.IsLoopback() && !ipnet.IP.IsLinkLocalUnicast() {
			return ipnet.IP.String()
		}
	}
	return ""
}

// TestAccountChangesRefusedOverANonLoopbackAdminEndpoint: an admin
// endpoint on an address other machines reach serves the read-only GET
// endpoints, but refuses to change the account, saying how to.
func TestAccountChangesRefusedOverANonLoopbackAdminEndpoint(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP()
	if ip == "" {
		t.Skip("this machine has no address but loopback, so no request to its admin endpoint can come from elsewhere")
	}
	e := newEnv(t, acmetest.Options{})
	e.admin = net.JoinHostPort(ip, strconv.Itoa(acmetest.FreePortForTest(t)))
	cfg := e.persistSite("remote-admin.test", "", "hi")
	// the account exists before Caddy starts, so the GET below has one to
	// name; this endpoint refuses to create it
	if res := e.caddy("persist", "account", "register", "--config", cfg, "--local"); res.code != 0 {
		t.Fatalf("account register --local (%d):\n%s", res.code, res.stderr)
	}
	e.start("--config", cfg)

	resp, err := http.Post("http://"+e.admin+"/persist/account/rollover", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "admin.remote") || !strings.Contains(string(body), "loopback or unix socket") {
		t.Errorf("POST from %s: %d %s, want 403 saying how to", ip, resp.StatusCode, body)
	}
	res := e.caddy("persist", "account", "rollover", "--config", cfg)
	if res.code == 0 || !strings.Contains(res.stderr, "403") {
		t.Errorf("the command through the non-loopback endpoint: exit %d\n%s", res.code, res.stderr)
	}
	resp, err = http.Get("http://" + e.admin + "/persist/account/rollover")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET /persist/account/rollover: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp, err := http.Get("http://" + e.admin + "/persist/records"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /persist/records: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := e.ca.Counts.Get(acmetest.KindKeyChange); n != 0 {
		t.Errorf("%d key changes reached the CA", n)
	}
}
