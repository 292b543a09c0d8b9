package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// The commands answer for the config file given: a site added to it is
// reported (marked not served yet) before `caddy reload`, with the
// running Caddy's account; a file that would use another account is
// refused. Reading the records registers nothing: `caddy persist
// records` creates the account the first time, through a POST.

// sites writes a Caddyfile named name with the test globals and one site
// per name, each with the persist issuer (with extra subdirectives).
func (e *env) sites(name, globals, issuerExtra string, names ...string) string {
	body := e.globals(globals)
	for _, n := range names {
		body += n + " {\n\ttls {\n\t\t" + e.issuerBlock(issuerExtra) + "\n\t}\n\trespond \"" + n + "\"\n}\n"
	}
	return e.write(name, body)
}

// TestReadingTheRecordsRegistersNothingAndRecordsDoes: on a running
// Caddy without an account yet, the GET endpoints answer 409 and
// register nothing; `caddy persist records` registers the account, once,
// through the running Caddy, and prints the record naming it.
func TestReadingTheRecordsRegistersNothingAndRecordsDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.onDemandSite()
	e.start("--config", cfg)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + e.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	for _, path := range []string{"/persist/records?domain=first.read.test", "/persist/check?domain=first.read.test"} {
		if code, body := get(path); code != http.StatusConflict || !strings.Contains(body, "caddy persist records") {
			t.Errorf("GET %s with no account yet: %d %s, want 409 saying how to create it", path, code, body)
		}
	}
	if code, body := get("/persist/issuers"); code != http.StatusOK || strings.Contains(body, "account_url") {
		t.Errorf("GET /persist/issuers: %d %s, want 200 with no account", code, body)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Fatalf("reading sent %d newAccount requests", n)
	}
	if files, _ := filepath.Glob(filepath.Join(e.storage, "acme", "*", "users", "*", "*")); len(files) != 0 {
		t.Fatalf("reading wrote %v", files)
	}

	// with no name to print a record for, records registers nothing,
	// and says what creates the account
	none := e.caddy("persist", "records", "--config", cfg)
	if none.code != 0 || none.stdout != "" || !strings.Contains(none.stderr, "caddy persist account register creates the account") || strings.Contains(none.stderr, "Registered") {
		t.Errorf("records of an on-demand config (%d):\n%s\n%s", none.code, none.stdout, none.stderr)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Fatalf("records without names sent %d newAccount requests", n)
	}

	res := e.caddy("persist", "records", "--config", cfg, "--domain", "first.read.test", "--format", "json")
	if res.code != 0 || !strings.Contains(res.stderr, "Registered a new ACME account") || strings.Contains(res.stderr, "loaded the config here") {
		t.Fatalf("records (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	recs := decodeRecords(t, res.stdout)
	if len(recs) != 1 || recs[0].Domain != "first.read.test" || !strings.Contains(recs[0].Value, "accounturi="+recs[0].AccountURL) {
		t.Errorf("records = %+v", recs)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
	if code, body := get("/persist/records?domain=first.read.test"); code != http.StatusOK || !strings.Contains(body, recs[0].AccountURL) {
		t.Errorf("GET /persist/records once the account exists: %d %s", code, body)
	}
	if again := e.caddy("persist", "records", "--config", cfg, "--domain", "first.read.test"); again.code != 0 || strings.Contains(again.stderr, "Registered") {
		t.Errorf("a second records (%d) registered again:\n%s", again.code, again.stderr)
	}
}

// TestCommandsAnswerForTheConfigFileGiven: Caddy runs a Caddyfile; the
// file then gains a site on a new base domain. `records --config` prints
// its record, naming the running account and marked not served yet;
// `check` reports it missing; once published and reloaded, the
// certificate comes with no new registration. A file naming another
// email, or another storage, is refused; a file lacking a served name
// says so once.
func TestCommandsAnswerForTheConfigFileGiven(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.sites("Caddyfile", "", "", "a.file.test")
	recs := e.publishFromRecords(t, "--config", cfg)
	if len(recs) != 1 {
		t.Fatalf("records = %+v", recs)
	}
	account := recs[0].AccountURL
	srv := e.start("--config", cfg)
	e.handshake(t, "a.file.test", time.Minute)

	e.sites("Caddyfile", "", "", "a.file.test", "b.file.test")
	res := e.caddy("persist", "records", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 2 || strings.Contains(res.stderr, "loaded the config here") {
		t.Fatalf("records with the new site (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	const note = " ; not served by the running Caddy yet (b.file.test): reload to use it"
	if strings.Contains(lines[0], "not served") || !strings.HasPrefix(lines[1], `_validation-persist.b.file.test. IN TXT "pebble.letsencrypt.org; accounturi=`+account+`"`) || !strings.HasSuffix(lines[1], note) {
		t.Errorf("records:\n%s\nwant a.file.test's line, then b.file.test's naming %s and ending %q", res.stdout, account, note)
	}
	var b recordJSON
	for _, r := range decodeRecords(t, e.caddy("persist", "records", "--config", cfg, "--format", "json").stdout) {
		if r.Domain == "b.file.test" {
			b = r
		} else if len(r.NotServed) != 0 {
			t.Errorf("%s is marked not served: %v", r.Domain, r.NotServed)
		}
	}
	if b.AccountURL != account || strings.Join(b.NotServed, ",") != "b.file.test" {
		t.Errorf("b.file.test's record = %+v", b)
	}

	check := e.caddy("persist", "check", "--config", cfg)
	if check.code == 0 || !strings.Contains(check.stdout, "_validation-persist.b.file.test: missing") || !strings.Contains(check.stdout, "not served by the running Caddy yet (b.file.test)") {
		t.Errorf("check (%d):\n%s", check.code, check.stdout)
	}

	if err := acmetest.SetTXT(b.RecordName, b.Value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(b.RecordName) })
	if reload := e.caddy("reload", "--config", cfg); reload.code != 0 {
		t.Fatalf("reload (%d):\n%s", reload.code, reload.stderr)
	}
	if leaf, body := e.handshake(t, "b.file.test", time.Minute); len(leaf.DNSNames) != 1 || body != "b.file.test" {
		t.Errorf("b.file.test: certificate for %v, body %q", leaf.DNSNames, body)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want the 1 the first records made", n)
	}

	// a file whose issuer names another email, or another storage, would
	// use another account: refused, and nothing registered
	other := e.write("other-email.Caddyfile", strings.ReplaceAll(mustRead(t, cfg), "email ops@example.test", "email other@example.test"))
	if res := e.caddy("persist", "records", "--config", other); res.code == 0 || !strings.Contains(res.stderr, "no persist issuer of the running Caddy uses the account of") || res.stdout != "" {
		t.Errorf("records for a file with another email (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	storage := filepath.Join(e.dir, "other-storage")
	otherStorage := e.write("other-storage.Caddyfile", strings.Replace(mustRead(t, cfg), "storage file_system "+e.storage, "storage file_system "+storage, 1))
	if res := e.caddy("persist", "records", "--config", otherStorage); res.code == 0 || !strings.Contains(res.stderr, "another storage than the running Caddy's") {
		t.Errorf("records for a file with another storage (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount); n != 1 {
		t.Errorf("%d newAccount requests, want only the first registration's", n)
	}
	if _, err := os.Stat(storage); !os.IsNotExist(err) {
		var found []string
		filepath.Walk(storage, func(path string, info os.FileInfo, err error) error { found = append(found, path); return nil })
		t.Errorf("the refused file's storage was written: %v %v", err, found)
	}

	// a file that drops a name the running Caddy serves says so, once
	fewer := e.sites("fewer.Caddyfile", "", "", "b.file.test")
	res = e.caddy("persist", "records", "--config", fewer)
	if res.code != 0 || strings.Count(res.stderr, "also serves a.file.test") != 1 || strings.Contains(res.stdout, "a.file.test") {
		t.Errorf("records for a file without a.file.test (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}

	// the records of a replacement are the file's too
	withC := e.sites("with-c.Caddyfile", "", "", "a.file.test", "b.file.test", "c.file.test")
	change := decodeChanges(t, e.caddy("persist", "account", "replace", "--config", withC, "--format", "json"))[0]
	var domains []string
	for _, r := range change.Records {
		domains = append(domains, r.Domain+"="+strings.Join(r.NotServed, ","))
		if !strings.Contains(r.Value, "accounturi="+change.ReplacementURL) {
			t.Errorf("the replacement's record %s names another account than %s", r.Value, change.ReplacementURL)
		}
	}
	if strings.Join(domains, " ") != "a.file.test= b.file.test= c.file.test=c.file.test" {
		t.Errorf("the replacement's records are for %v, want the file's three names, c.file.test not served yet", domains)
	}
	srv.stop()
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
