package realdns

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// issuanceTimeout bounds the wait for a certificate once its record is out.
const issuanceTimeout = 90 * time.Second

// requireOneValidationEach fails the test unless the CA received exactly
// one order and one challenge POST for each of Caddy's certificates (one
// per name): a failed validation makes Caddy order again.
func requireOneValidationEach(t *testing.T, w *world, certs int) {
	t.Helper()
	orders, challenges := w.ca.Counts.Get(acmetest.KindNewOrder), w.ca.Counts.Get(acmetest.KindChallenge)
	if orders != certs || challenges != certs {
		t.Errorf("the CA received %d orders and %d challenge POSTs, want %d of each", orders, challenges, certs)
	}
}

// A record published at the primary, while the zone's second server does
// not have it yet, must not reach the CA: the CA's resolver may ask that
// server. Once the secondary transfers the zone, the certificates for the
// wildcard and the apex follow.
func TestLaggingSecondaryHoldsTheChallenge(t *testing.T) {
	inWorld(t, []zone{{name: "lag.test", servers: []string{primaryAddr, laggingAddr}}}, func(w *world) {
		cfg := w.caddyfile("*.lag.test, lag.test")
		rec := w.records(cfg)
		w.publish(rec.RecordName, rec.Value)
		if w.serves(laggingAddr, rec.RecordName, rec.Value) {
			t.Fatal("the secondary has the record before it was told to transfer")
		}

		asked := w.laggingQueries(dns.TypeTXT)
		srv := w.startCaddy(cfg)
		// several of the issuer's looks at the record pass while ns2 lags:
		// three for each certificate, each of which asks ns2
		const looks = 3 * 2
		w.until(fmt.Sprintf("%d looks at the record at ns2.lag.test", looks), func() bool {
			if n := w.ca.Counts.Get(acmetest.KindChallenge); n > 0 {
				t.Fatalf("%d challenge POSTs while ns2.lag.test (%s) lacked the record that ns1 (%s) served",
					n, laggingAddr, primaryAddr)
			}
			return w.laggingQueries(dns.TypeTXT)-asked >= looks
		}, func() string {
			return fmt.Sprintf("ns2 was asked for TXT records %d times", w.laggingQueries(dns.TypeTXT)-asked)
		})
		if !w.serves(primaryAddr, rec.RecordName, rec.Value) || w.serves(laggingAddr, rec.RecordName, rec.Value) {
			t.Fatal("the zone's servers changed during the hold")
		}
		// the log says who holds the order back, and only that server
		line := srv.WaitLog(t, 0, time.Second, "not yet served by every nameserver", "servers_behind")
		if !strings.Contains(line, "ns2.lag.test ("+laggingAddr+":53)") || strings.Contains(line, primaryAddr) {
			t.Errorf("the log does not name ns2 alone as behind: %s", line)
		}

		w.catchUp("lag.test")
		// Caddy keeps a certificate for each name of the site
		if leaf := w.certificate("www.lag.test", issuanceTimeout); !slices.Contains(leaf.DNSNames, "*.lag.test") {
			t.Errorf("the certificate for www.lag.test names %v, want *.lag.test", leaf.DNSNames)
		}
		if leaf := w.certificate("lag.test", issuanceTimeout); !slices.Contains(leaf.DNSNames, "lag.test") {
			t.Errorf("the certificate for lag.test names %v", leaf.DNSNames)
		}
		requireOneValidationEach(t, w, 2)
	})
}

// The record name may be an alias into a zone that another DNS host
// serves, where the record is then published.
func TestRecordCNAMEdIntoAnotherZone(t *testing.T) {
	inWorld(t, []zone{
		{name: "alias.test", servers: []string{primaryAddr},
			records: []string{"_validation-persist.alias.test. IN CNAME alias.test.persist-host.test."}},
		{name: "persist-host.test", servers: []string{otherAddr}},
	}, func(w *world) {
		cfg := w.caddyfile("alias.test")
		rec := w.records(cfg)
		if rec.RecordName != "_validation-persist.alias.test" {
			t.Fatalf("record name %s", rec.RecordName)
		}
		w.publish("alias.test.persist-host.test", rec.Value)

		w.startCaddy(cfg)
		w.certificate("alias.test", issuanceTimeout)
		requireOneValidationEach(t, w, 1)
	})
}

// A nameserver of the zone that never answers does not stop issuance: the
// other one serves the record.
func TestSilentNameserver(t *testing.T) {
	inWorld(t, []zone{{name: "dead.test", servers: []string{silentAddr, primaryAddr}}}, func(w *world) {
		cfg := w.caddyfile("dead.test")
		rec := w.records(cfg)
		w.publish(rec.RecordName, rec.Value)

		w.startCaddy(cfg)
		w.certificate("dead.test", issuanceTimeout)
		requireOneValidationEach(t, w, 1)
		if w.silentQueries.Load() == 0 {
			t.Error("nobody asked the silent nameserver, so this proves nothing")
		}
	})
}

// A zone signed inline by BIND, under the signed root, with Unbound
// validating: issuance works as for any zone. A zone whose DS matches no
// key shows the validation is real.
func TestSignedZone(t *testing.T) {
	inWorld(t, []zone{
		{name: "signed.test", servers: []string{primaryAddr}, signed: true},
		{name: "bogus.test", servers: []string{primaryAddr}, bogusDS: true},
	}, func(w *world) {
		if m, err := query(resolverAddr, "bogus.test.", dns.TypeSOA, true); err != nil || m.Rcode != dns.RcodeServerFailure {
			t.Fatalf("Unbound answered bogus.test, whose DS matches no key: %v %v", m, err)
		}

		cfg := w.caddyfile("signed.test")
		rec := w.records(cfg)
		w.publish(rec.RecordName, rec.Value)
		m := w.awaitRecursive(resolverAddr, rec.RecordName, dns.TypeTXT, "the record through Unbound", func(m *dns.Msg) bool {
			return slices.Contains(txtValues(m), rec.Value)
		})
		if !m.AuthenticatedData {
			t.Fatalf("Unbound did not validate the record of the signed zone:\n%v", m)
		}

		w.startCaddy(cfg)
		w.certificate("signed.test", issuanceTimeout)
		requireOneValidationEach(t, w, 1)
	})
}

// A record removed after issuance is reported by the daily check in the
// log and by `caddy persist check`, which exits 1.
func TestRemovedRecordIsReported(t *testing.T) {
	inWorld(t, []zone{{name: "gone.test", servers: []string{primaryAddr}}}, func(w *world) {
		cfg := w.caddyfile("gone.test")
		rec := w.records(cfg)
		w.publish(rec.RecordName, rec.Value)
		srv := w.startCaddy(cfg)
		w.certificate("gone.test", issuanceTimeout)
		if res := w.caddy("persist", "check", "--config", cfg); res.Code != 0 {
			t.Fatalf("persist check before the removal: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}

		removed := srv.Logs.Len()
		w.unpublish(rec.RecordName)
		res := w.caddy("persist", "check", "--config", cfg)
		if res.Code != 1 || !strings.Contains(res.Stdout, rec.RecordName+": missing") {
			t.Errorf("persist check after the removal: exit %d, want 1 and %q\n%s\n%s", res.Code, rec.RecordName+": missing", res.Stdout, res.Stderr)
		}
		// the first daily check runs a minute after the config loads
		srv.WaitLog(t, removed, 2*time.Minute, `"record_name":"`+rec.RecordName+`"`, `"status":"missing"`)
	})
}

// A CAA record at the zone apex naming another CA, published at the
// primary, keeps Caddy from ordering, and `caddy persist check` says so;
// the records `caddy persist records --caa` prints, published at the name,
// let the certificate through.
func TestCAAPublishedAtThePrimary(t *testing.T) {
	inWorld(t, []zone{{name: "caa.test", servers: []string{primaryAddr}}}, func(w *world) {
		cfg := w.caddyfile("www.caa.test")
		res := w.caddy("persist", "records", "--config", cfg, "--caa")
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		if res.Code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], "www.caa.test. IN CAA 0 issue ") {
			t.Fatalf("records --caa: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		rec := w.records(cfg)
		w.publish(rec.RecordName, rec.Value)
		w.publishCAA(`caa.test. IN CAA 0 issue "pki.goog"`)

		check := w.caddy("persist", "check", "--config", cfg)
		if check.Code != 1 || !strings.Contains(check.Stdout, "www.caa.test: caa: forbidden: ") || !strings.Contains(check.Stdout, `found at caa.test: caa.test. IN CAA 0 issue "pki.goog"`) {
			t.Errorf("check: exit %d\n%s\n%s", check.Code, check.Stdout, check.Stderr)
		}
		srv := w.startCaddy(cfg)
		srv.WaitLog(t, 0, 30*time.Second, "CAA forbids this CA", `"found_at":"caa.test"`)
		srv.Stop()
		if n := w.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
			t.Errorf("%d orders against a CAA policy that forbids them", n)
		}

		w.publishCAA(lines[1])
		if check := w.caddy("persist", "check", "--config", cfg); check.Code != 0 {
			t.Errorf("check after publishing the printed CAA record: exit %d\n%s\n%s", check.Code, check.Stdout, check.Stderr)
		}
		w.startCaddy(cfg)
		w.certificate("www.caa.test", issuanceTimeout)
		requireOneValidationEach(t, w, 1)
	})
}
