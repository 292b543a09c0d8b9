package e2e

import (
	"crypto/tls"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// twoCAEnv is an env whose site has two persist issuers, for the env's CA
// and for a second CA with another issuer domain name. The first waits up
// to two minutes for its record, so a test that finishes sooner shows
// nothing waited for it in vain.
func twoCAEnv(t *testing.T, sites string) (*env, *acmetest.CA, string) {
	t.Helper()
	e := newEnv(t, acmetest.Options{})
	second, err := acmetest.StartCA(acmetest.Options{IssuerNames: []string{"second-ca.test"}}, testDNSAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Close)
	e.otherCAs = append(e.otherCAs, second)
	cfg := e.write("Caddyfile", e.globals("")+sites+` {
	tls {
		`+e.issuerBlock("propagation_timeout 2m")+`
		`+issuerBlockFor(second, "")+`
	}
	respond "two CAs"
}
`)
	return e, second, cfg
}

// storedUnder reports whether a certificate is stored under the issuer
// key of the CA at dirURL: certmagic names the folder after its host,
// port and path.
func (e *env) storedUnder(t *testing.T, dirURL string) bool {
	t.Helper()
	u, err := url.Parse(dirURL)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(e.storage, "certificates"))
	for _, entry := range entries {
		if strings.Contains(entry.Name(), u.Port()) {
			return true
		}
	}
	return false
}

func TestTwoCAsRecordsCheckAndFailover(t *testing.T) {
	t.Parallel()
	e, second, cfg := twoCAEnv(t, "*.two.test, two.test")

	res := e.caddy("persist", "records", "--config", cfg, "--format", "json")
	recs := decodeRecords(t, res.stdout)
	if res.code != 0 || len(recs) != 2 || recs[0].RecordName != recs[1].RecordName ||
		recs[0].CADirectory != e.ca.URL || recs[1].CADirectory != second.URL ||
		recs[0].IssuerDomainName != acmetest.DefaultIssuerName || recs[1].IssuerDomainName != "second-ca.test" {
		t.Fatalf("records (exit %d) = %+v, want one per CA at the same name\n%s", res.code, recs, res.stderr)
	}
	zone := e.caddy("persist", "records", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(zone.stdout), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "; ca "+e.ca.URL) || !strings.HasSuffix(lines[1], "; ca "+second.URL) {
		t.Errorf("zone lines do not name their CAs:\n%s", zone.stdout)
	}

	// only the second CA's record: not every CA is ok, but one is
	name := recs[0].RecordName
	if err := acmetest.SetTXT(name, recs[1].Value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(name) })
	check := e.caddy("persist", "check", "--config", cfg)
	// the first CA sees only the second CA's record, for an issuer it
	// does not offer
	if check.code == 0 || !strings.Contains(check.stdout, "(ca "+e.ca.URL+"): mismatch: issuer domain name \"second-ca.test\" is not one this CA offers") || !strings.Contains(check.stdout, "(ca "+second.URL+"): ok") {
		t.Errorf("check with one CA's record: exit %d\n%s", check.code, check.stdout)
	}
	if anyCA := e.caddy("persist", "check", "--any", "--config", cfg); anyCA.code != 0 {
		t.Errorf("check --any with the second CA's record: exit %d\n%s%s", anyCA.code, anyCA.stdout, anyCA.stderr)
	}
	if err := acmetest.SetTXT(name, recs[0].Value, recs[1].Value); err != nil {
		t.Fatal(err)
	}
	if both := e.caddy("persist", "check", "--config", cfg); both.code != 0 {
		t.Errorf("check with both records: exit %d\n%s", both.code, both.stdout)
	}

	// the first CA goes down: the certificates come from the second
	e.ca.Close()
	start := time.Now()
	srv := e.start("--config", cfg)
	e.handshake(t, "www.two.test", time.Minute)
	e.handshake(t, "two.test", time.Minute)
	t.Logf("first CA down: both certificates from the second CA %s after `caddy run`", time.Since(start).Round(time.Millisecond))
	if !e.storedUnder(t, second.URL) || e.storedUnder(t, e.ca.URL) {
		t.Errorf("certificates are not (only) under the second CA's folder")
	}
	if n := second.Counts.Get(acmetest.KindNewOrder); n != 2 {
		t.Errorf("the second CA received %d orders, want 2 (wildcard and apex)", n)
	}
	srv.stop()
}

func TestTwoCAsMissingFirstRecordCostsNoWait(t *testing.T) {
	t.Parallel()
	e, second, cfg := twoCAEnv(t, "solo.two.test")
	recs := decodeRecords(t, e.caddy("persist", "records", "--config", cfg, "--format", "json").stdout)
	if len(recs) != 2 {
		t.Fatalf("records = %+v", recs)
	}
	if err := acmetest.SetTXT(recs[1].RecordName, recs[1].Value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(recs[1].RecordName) })

	start := time.Now()
	srv := e.start("--config", cfg)
	// well within the first issuer's two-minute propagation_timeout
	e.handshake(t, "solo.two.test", time.Minute)
	t.Logf("first CA's record missing: the certificate came from the second CA %s after `caddy run`", time.Since(start).Round(time.Millisecond))
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the first CA received %d orders", n)
	}
	if n := second.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("the second CA received %d orders, want 1", n)
	}
	srv.waitLog(t, "leaving the names to it", 5*time.Second)
}

func TestTwoCAsOnDemandAuthorizesByEitherRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	second, err := acmetest.StartCA(acmetest.Options{IssuerNames: []string{"second-ca.test"}}, testDNSAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Close)
	e.otherCAs = append(e.otherCAs, second)
	cfg := e.write("Caddyfile", e.globals(`on_demand_tls {
		permission persist
	}`)+`https:// {
	tls {
		on_demand
		`+e.issuerBlock("propagation_timeout 2m")+`
		`+issuerBlockFor(second, "")+`
	}
	respond "tenant {host}"
}
`)
	// the tenants ask the control panel what to publish, one record per CA
	recs := decodeRecords(t, e.caddy("persist", "records", "--config", cfg, "--format", "json",
		"--domain", "first.tenant.test", "--domain", "second.tenant.test").stdout)
	valueFor := func(domain, ca string) string {
		for _, r := range recs {
			if r.Domain == domain && r.CADirectory == ca {
				return r.Value
			}
		}
		t.Fatalf("no record for %s at %s in %+v", domain, ca, recs)
		return ""
	}
	// one tenant publishes for the first CA, one for the second, one not
	for domain, ca := range map[string]string{"first.tenant.test": e.ca.URL, "second.tenant.test": second.URL} {
		name := "_validation-persist." + domain
		if err := acmetest.SetTXT(name, valueFor(domain, ca)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { acmetest.SetTXT(name) })
	}

	srv := e.start("--config", cfg)
	if _, body := e.handshake(t, "first.tenant.test", time.Minute); body != "tenant first.tenant.test" {
		t.Errorf("first tenant: %q", body)
	}
	if _, body := e.handshake(t, "second.tenant.test", time.Minute); body != "tenant second.tenant.test" {
		t.Errorf("second tenant: %q", body)
	}
	e.refusedHandshake(t, "neither.tenant.test")
	firstOrders, secondOrders := e.ca.Counts.Ordered(), second.Counts.Ordered()
	if firstOrders["first.tenant.test"] != 1 || firstOrders["second.tenant.test"] != 0 || secondOrders["second.tenant.test"] != 1 || secondOrders["first.tenant.test"] != 0 {
		t.Errorf("orders at the first CA %v and at the second %v, want each tenant ordered once at its own CA", firstOrders, secondOrders)
	}
	if firstOrders["neither.tenant.test"]+secondOrders["neither.tenant.test"] != 0 {
		t.Error("the tenant without a record got an order")
	}
	srv.stop()
}

// refusedHandshake fails the test unless a TLS handshake with SNI fails,
// as Caddy fails it for a name the on-demand permission denies.
func (e *env) refusedHandshake(t *testing.T, sni string) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(e.https), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatalf("Caddy completed a handshake for %s", sni)
	}
}
