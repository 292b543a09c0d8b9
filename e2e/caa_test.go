package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

func TestCAAForbiddingPolicyThenTheOneRecordsPrints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	site := "www.lock.caa.test"
	cfg := e.persistSite(site, "", "locked")
	res := e.caddy("persist", "records", "--config", cfg, "--format", "json", "--caa")
	recs := decodeRecords(t, res.stdout)
	if len(recs) != 1 || len(recs[0].CAA) != 1 {
		t.Fatalf("records --caa: %+v\n%s", recs, res.stderr)
	}
	zone := e.caddy("persist", "records", "--config", cfg, "--caa").stdout
	if want := recs[0].ZoneLine + "\n" + recs[0].CAA[0] + "\n"; zone != want {
		t.Errorf("records --caa printed\n%s\nwant\n%s", zone, want)
	}
	if err := acmetest.SetTXT(recs[0].RecordName, recs[0].Value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(recs[0].RecordName) })
	srv, _, _ := acmetest.DNS()
	// another CA, at the parent
	srv.AddDNSCAARecord("lock.caa.test", []challtestsrv.CAAPolicy{{Tag: "issue", Value: "pki.goog"}})
	t.Cleanup(func() { srv.DeleteDNSCAARecord("lock.caa.test") })

	check := e.caddy("persist", "check", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(check.stdout), "\n")
	if check.code != 1 || len(lines) != 2 || lines[0] != recs[0].RecordName+": ok" ||
		!strings.HasPrefix(lines[1], site+": caa: forbidden: ") || !strings.Contains(lines[1], `found at lock.caa.test: lock.caa.test. IN CAA 0 issue "pki.goog"`) ||
		!strings.HasSuffix(lines[1], "publish: "+recs[0].CAA[0]) {
		t.Errorf("check: exit %d\n%s", check.code, check.stdout)
	}

	server := e.start("--config", cfg)
	server.waitLog(t, "CAA forbids this CA", 30*time.Second)
	entry := logEntry(server.logs.String(), "CAA forbids this CA")
	if entry["found_at"] != "lock.caa.test" || !strings.Contains(entry["reason"].(string), "pki.goog") {
		t.Errorf("the log entry does not say why: %v", entry)
	}
	server.stop()
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders against a CAA policy that forbids them", n)
	}

	// the printed record, at the name, hides the parent's policy
	rr, err := dns.NewRR(recs[0].CAA[0])
	if err != nil {
		t.Fatal(err)
	}
	c := rr.(*dns.CAA)
	srv.AddDNSCAARecord(site, []challtestsrv.CAAPolicy{{Tag: c.Tag, Value: c.Value}})
	t.Cleanup(func() { srv.DeleteDNSCAARecord(site) })
	if check := e.caddy("persist", "check", "--config", cfg); check.code != 0 || strings.TrimSpace(check.stdout) != recs[0].RecordName+": ok" {
		t.Errorf("check after publishing: exit %d\n%s", check.code, check.stdout)
	}
	e.start("--config", cfg)
	if _, body := e.handshake(t, site, time.Minute); body != "locked" {
		t.Errorf("body %q", body)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
}
