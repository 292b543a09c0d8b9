package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	persist "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// recordJSON is what the commands and the admin API print per record.
type recordJSON = persist.RecordReport

func decodeRecords(t *testing.T, out string) []recordJSON {
	t.Helper()
	var recs []recordJSON
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("output is not a JSON array of records: %v\n%s", err, out)
	}
	return recs
}

func TestRecordsRegistersOnceAndPrintsWhatTheCAAccepts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.persistSite("*.records.test, records.test", "", "hello from {host}")
	first := e.caddy("persist", "records", "--config", cfg)
	if first.code != 0 {
		t.Fatalf("records failed (%d):\n%s", first.code, first.stderr)
	}
	if !strings.Contains(first.stderr, "Registered a new ACME account") {
		t.Errorf("the first run did not say it registered:\n%s", first.stderr)
	}
	// loading the config here is the command's business: Caddy's own
	// info lines are not the user's, as caddy adapt keeps them out too
	for _, caddys := range []string{`"level":"info"`, "enabling automatic HTTP->HTTPS redirects", "started background certificate maintenance"} {
		if strings.Contains(first.stderr, caddys) {
			t.Errorf("records printed Caddy's info logs (%s) on stderr:\n%s", caddys, first.stderr)
		}
	}
	lines := strings.Split(strings.TrimSpace(first.stdout), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], `_validation-persist.records.test. IN TXT "pebble.letsencrypt.org; accounturi=https://`) || !strings.HasSuffix(lines[0], `; policy=wildcard"`) {
		t.Fatalf("records printed:\n%s", first.stdout)
	}

	second := e.caddy("persist", "records", "--config", cfg, "--format", "json")
	if second.code != 0 || strings.Contains(second.stderr, "Registered a new ACME account") {
		t.Fatalf("second run (%d) registered again or failed:\n%s", second.code, second.stderr)
	}
	recs := decodeRecords(t, second.stdout)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Domain != "records.test" || r.RecordName != "_validation-persist.records.test" || !r.Wildcard ||
		r.IssuerDomainName != acmetest.DefaultIssuerName || r.CADirectory != e.ca.URL || r.Draft != "draft-01" ||
		!strings.Contains(r.Value, "accounturi="+r.AccountURL) || r.ZoneLine != lines[0] ||
		strings.Join(r.Names, ",") != "*.records.test,records.test" {
		t.Errorf("record = %+v", r)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations at the CA = %d, want 1", n)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("records placed %d orders", n)
	}

	// publish the zone line as an operator pasting it into a zone file
	// would (TestCaddyfileFlow publishes the JSON value); the record it
	// makes passes the check
	if got := zoneLineValue(t, lines[0]); got != r.Value {
		t.Errorf("the zone line holds %q, the JSON value is %q", got, r.Value)
	}
	if err := acmetest.SetTXT(r.RecordName, zoneLineValue(t, lines[0])); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(r.RecordName) })
	if res := e.caddy("persist", "check", "--config", cfg); res.code != 0 {
		t.Errorf("the published zone line does not pass the check:\n%s", res.stdout)
	}
}

// zoneLineValue reads the TXT value of a zone file line the way a DNS
// server does: the quoted strings, unescaped and joined.
func zoneLineValue(t *testing.T, line string) string {
	t.Helper()
	rr, err := dns.NewRR(line)
	if err != nil {
		t.Fatalf("the zone line does not parse: %v", err)
	}
	txt, ok := rr.(*dns.TXT)
	if !ok {
		t.Fatalf("the zone line is a %T", rr)
	}
	return strings.Join(txt.Txt, "")
}

func TestCheckReportsEachStatusAndGatesOnIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	sites := []string{"ok.check.test", "missing.check.test", "mismatch.check.test", "servfail.check.test", "expiring.check.test"}
	cfg := e.persistSite(strings.Join(sites, ", "), "", "hi")
	recs := decodeRecords(t, e.caddy("persist", "records", "--config", cfg, "--format", "json").stdout)
	if len(recs) != len(sites) {
		t.Fatalf("%d records for %d sites", len(recs), len(sites))
	}
	acct := recs[0].AccountURL
	ours := "pebble.letsencrypt.org; accounturi=" + acct
	soon := time.Now().Add(10 * 24 * time.Hour).Unix()
	publish := map[string]string{
		"ok.check.test":       ours,
		"mismatch.check.test": "pebble.letsencrypt.org; accounturi=https://other.example/acct/9",
		"expiring.check.test": fmt.Sprintf("%s; persistUntil=%d", ours, soon),
	}
	for name, value := range publish {
		name := "_validation-persist." + name
		if err := acmetest.SetTXT(name, value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { acmetest.SetTXT(name) })
	}
	dns, _, _ := acmetest.DNS()
	dns.AddDNSServFailRecord("_validation-persist.servfail.check.test")
	t.Cleanup(func() { dns.DeleteDNSServFailRecord("_validation-persist.servfail.check.test") })

	res := e.caddy("persist", "check", "--config", cfg)
	if res.code != 1 {
		t.Errorf("exit status %d, want 1 when a record is not ok", res.code)
	}
	want := map[string]string{
		"ok.check.test":       "_validation-persist.ok.check.test: ok",
		"missing.check.test":  "_validation-persist.missing.check.test: missing: no TXT record at the name; publish: _validation-persist.missing.check.test. IN TXT",
		"mismatch.check.test": "_validation-persist.mismatch.check.test: mismatch: accounturi is \"https://other.example/acct/9\"",
		"servfail.check.test": "_validation-persist.servfail.check.test: dns-error: ",
		"expiring.check.test": "_validation-persist.expiring.check.test: expiring: persistUntil in 9 days",
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != len(want) {
		t.Fatalf("check printed %d lines:\n%s", len(lines), res.stdout)
	}
	for site, prefix := range want {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line for %s starting %q in:\n%s", site, prefix, res.stdout)
		}
	}
	if !strings.Contains(res.stdout, "SERVFAIL") {
		t.Errorf("the dns-error line does not say why:\n%s", res.stdout)
	}

	// json carries the same statuses
	statuses := map[string]string{}
	for _, r := range decodeRecords(t, e.caddy("persist", "check", "--config", cfg, "--format", "json").stdout) {
		statuses[r.Domain] = string(r.Status)
	}
	wantStatus := map[string]string{"ok.check.test": "ok", "missing.check.test": "missing", "mismatch.check.test": "mismatch", "servfail.check.test": "dns-error", "expiring.check.test": "expiring"}
	for d, s := range wantStatus {
		if statuses[d] != s {
			t.Errorf("json status of %s = %q, want %q", d, statuses[d], s)
		}
	}

	// a config whose only record is fine passes the gate
	okOnly := e.write("Caddyfile.ok", e.globals("")+`ok.check.test {
	tls {
		`+e.issuerBlock("")+`
	}
}
`)
	if res := e.caddy("persist", "check", "--config", okOnly, "--adapter", "caddyfile"); res.code != 0 || strings.TrimSpace(res.stdout) != "_validation-persist.ok.check.test: ok" {
		t.Errorf("check of a good record: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	// --domain asks about names outside the config
	res = e.caddy("persist", "check", "--config", okOnly, "--adapter", "caddyfile", "--domain", "tenant.check.test")
	if res.code != 1 || !strings.Contains(res.stdout, "_validation-persist.tenant.check.test: missing") {
		t.Errorf("check --domain: exit %d\n%s", res.code, res.stdout)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("check placed %d orders", n)
	}
}

func TestAdminAPIServesRecordsAndCheckReadOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.persistSite("admin-site.test", "", "hi")
	srv := e.start("--config", cfg)
	// no read creates the account, and Caddy's first order may not have
	// yet: create it as the docs say, so the reads below have one to name
	if res := e.caddy("persist", "account", "register", "--config", cfg); res.code != 0 {
		t.Fatalf("account register (%d):\n%s", res.code, res.stderr)
	}
	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + e.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}

	code, body := get("/persist/records")
	if code != 200 {
		t.Fatalf("GET /persist/records: %d %s", code, body)
	}
	recs := decodeRecords(t, string(body))
	if len(recs) != 1 || recs[0].Domain != "admin-site.test" || recs[0].Wildcard {
		t.Errorf("records = %+v", recs)
	}

	code, body = get("/persist/records?domain=customer.example&domain=*.customer.example")
	recs = decodeRecords(t, string(body))
	if code != 200 || len(recs) != 2 {
		t.Fatalf("records with domains: %d %s", code, body)
	}
	var tenant recordJSON
	for _, r := range recs {
		if r.Domain == "customer.example" {
			tenant = r
		}
	}
	if !tenant.Wildcard || tenant.RecordName != "_validation-persist.customer.example" || tenant.AccountURL != recs[0].AccountURL {
		t.Errorf("tenant record = %+v", tenant)
	}

	// only=1: the names asked about alone, marked as not served by the
	// running config
	code, body = get("/persist/records?domain=customer.example&only=1")
	if recs = decodeRecords(t, string(body)); code != 200 || len(recs) != 1 || recs[0].Domain != "customer.example" || strings.Join(recs[0].NotServed, ",") != "customer.example" {
		t.Errorf("records of only customer.example: %d %s", code, body)
	}

	code, body = get("/persist/check?domain=customer.example")
	recs = decodeRecords(t, string(body))
	statuses := map[string]string{}
	for _, r := range recs {
		statuses[r.Domain] = string(r.Status)
	}
	if code != 200 || statuses["customer.example"] != "missing" || statuses["admin-site.test"] != "missing" {
		t.Errorf("check: %d %s", code, body)
	}

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		req, _ := http.NewRequest(method, "http://"+e.admin+"/persist/records", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /persist/records = %d, want 405", method, resp.StatusCode)
		}
	}
	if code, body := get("/persist/records?domain=192.0.2.1"); code != http.StatusBadRequest || !strings.Contains(string(body), "IP address") {
		t.Errorf("GET /persist/records?domain=<IP>: %d %s, want 400", code, body)
	}
	if code, body := get("/persist/"); code != 200 || !strings.Contains(string(body), "policy=wildcard") || !strings.Contains(string(body), "persistUntil") {
		t.Errorf("GET /persist/ help: %d %s", code, body)
	}
	if code, body := get("/persist/nope"); code != http.StatusNotFound || !strings.Contains(string(body), "GET /persist/records, /persist/check and /persist/issuers") {
		t.Errorf("GET /persist/nope: %d %s, want 404 naming the endpoints", code, body)
	}
	_ = srv
}

// A record that passes by Let's Encrypt's rules only (the issuer in
// another spelling) or by rules laxer than the RFC's (a tag outside its
// syntax, a signed persistUntil) is ok, with warnings, in each place a
// check is shown, and the gate stays open.
func TestCheckWarnsOfLenientRecordsAndPasses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.persistSite("lenient.check.test", "", "hi")
	recs := decodeRecords(t, e.caddy("persist", "records", "--config", cfg, "--format", "json").stdout)
	acct := recs[0].AccountURL
	until := fmt.Sprint(time.Now().AddDate(1, 0, 0).Unix())
	// Pebble accepts this one, so the running server gets its certificate
	lenient := "pebble.letsencrypt.org; accounturi=" + acct + "; x_y=1; persistUntil=+" + until
	// and refuses this one, which Let's Encrypt accepts
	spelled := "PEBBLE.LetsEncrypt.org.; accounturi=" + acct
	for name, value := range map[string]string{"lenient.check.test": lenient, "spelled.check.test": spelled} {
		name := "_validation-persist." + name
		if err := acmetest.SetTXT(name, value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { acmetest.SetTXT(name) })
	}

	res := e.caddy("persist", "check", "--config", cfg, "--domain", "spelled.check.test")
	if res.code != 0 {
		t.Errorf("exit status %d, want 0 for records that pass with warnings:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	want := map[string][]string{
		"_validation-persist.lenient.check.test: ok (warning: ": {`"x_y=1"`, `has a sign`, `; publish "pebble.letsencrypt.org; accounturi=` + acct + `; persistUntil=` + until + `" instead)`},
		"_validation-persist.spelled.check.test: ok (warning: ": {`"PEBBLE.LetsEncrypt.org."`, "Pebble", `; publish "pebble.letsencrypt.org; accounturi=` + acct + `" instead)`},
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != len(want) {
		t.Fatalf("check printed:\n%s", res.stdout)
	}
	for prefix, parts := range want {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				found = true
				for _, p := range parts {
					if !strings.Contains(l, p) {
						t.Errorf("line %q lacks %q", l, p)
					}
				}
			}
		}
		if !found {
			t.Errorf("no line starting %q in:\n%s", prefix, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "passes by Let's Encrypt's rules") || !strings.Contains(res.stderr, `"published_value":"`+spelled+`"`) {
		t.Errorf("the command logged no warning naming the published value:\n%s", res.stderr)
	}

	warnings := map[string]int{}
	for _, r := range decodeRecords(t, e.caddy("persist", "check", "--config", cfg, "--domain", "spelled.check.test", "--format", "json").stdout) {
		if r.Status == "ok" {
			warnings[r.Domain] = len(r.Warnings)
		}
	}
	if warnings["lenient.check.test"] != 2 || warnings["spelled.check.test"] != 1 {
		t.Errorf("json warnings per ok record = %v, want 2 and 1", warnings)
	}

	e.start("--config", cfg)
	resp, err := http.Get("http://" + e.admin + "/persist/check?domain=spelled.check.test")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	warnings = map[string]int{}
	for _, r := range decodeRecords(t, string(body)) {
		if r.Status == "ok" {
			warnings[r.Domain] = len(r.Warnings)
		}
	}
	if resp.StatusCode != 200 || warnings["lenient.check.test"] != 2 || warnings["spelled.check.test"] != 1 || !strings.Contains(string(body), `"warnings":[`) {
		t.Errorf("GET /persist/check: %d %s", resp.StatusCode, body)
	}
}
