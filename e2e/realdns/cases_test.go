package realdns

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	persist "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
	"github.com/dnspersist/caddy-persist/internal/record"
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

// A zone signed by BIND's dnssec-policy at the primary and served by the
// NSD secondary too, under the signed root, with Unbound validating: the
// certificate comes as for an unsigned zone, with no hold for DNSSEC. The
// time from `caddy run` to each certificate is logged for both, from one
// Caddy that obtains them at once, so that the cost of the DNSSEC check
// shows beside the unsigned zone's.
func TestSignedZoneIssuesWithoutWait(t *testing.T) {
	inWorld(t, []zone{
		{name: "signed.test", servers: []string{primaryAddr, laggingAddr}, signed: true},
		{name: "plain.test", servers: []string{primaryAddr, laggingAddr}},
	}, func(w *world) {
		cfg := w.caddyfile("signed.test, plain.test")
		recs := w.recordsN(cfg, 2)
		for _, rec := range recs {
			w.publish(rec.RecordName, rec.Value)
			w.catchUp(rec.Domain)
			// the CA's resolver validates the signed zone's record, and
			// takes the other's as insecure
			m := w.awaitRecursive(resolverAddr, rec.RecordName, dns.TypeTXT, "the record through Unbound", func(m *dns.Msg) bool {
				return slices.Contains(txtValues(m), rec.Value)
			})
			if signed := rec.Domain == "signed.test"; m.AuthenticatedData != signed {
				t.Fatalf("Unbound validated %s: %v, want %v:\n%v", rec.RecordName, m.AuthenticatedData, signed, m)
			}
		}
		if res := w.caddy("persist", "check", "--config", cfg); res.Code != 0 {
			t.Fatalf("persist check: exit %d, want 0\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}

		start := time.Now()
		srv := w.startCaddy(cfg)
		took := make(map[string]time.Duration)
		for _, name := range []string{"signed.test", "plain.test"} {
			// the log's own time, as the certificates come in either order
			line := srv.WaitLog(t, 0, issuanceTimeout, "certificate obtained successfully", `"identifier":"`+name+`"`)
			var entry struct {
				TS float64 `json:"ts"`
			}
			if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.TS == 0 {
				t.Fatalf("no time in the log line %s (%v)", line, err)
			}
			took[name] = time.Unix(0, int64(entry.TS*float64(time.Second))).Sub(start)
		}
		t.Logf("from caddy run to the certificate: %s for signed.test, %s for plain.test (unsigned)",
			took["signed.test"].Round(time.Millisecond), took["plain.test"].Round(time.Millisecond))
		for _, rec := range recs {
			if line := caddytest.FindLine(srv.Logs.String(), `"level":"warn"`, `"record_name":"`+rec.RecordName+`"`); line != "" {
				t.Errorf("Caddy held %s back: %s", rec.RecordName, line)
			}
			w.certificate(rec.Domain, issuanceTimeout)
		}
		requireOneValidationEach(t, w, 2)
	})
}

// A secondary that serves the record under a signature that expired,
// while the primary's is valid: a validating resolver that asks the
// secondary refuses the answer, so the challenge waits, with the check
// naming that server alone, until the secondary serves a valid signature;
// then the certificate follows.
func TestExpiredSignatureAtTheSecondaryHoldsTheChallenge(t *testing.T) {
	inWorld(t, []zone{{name: "stale.test", servers: []string{primaryAddr, laggingAddr}, signed: true}}, func(w *world) {
		cfg := w.caddyfile("stale.test")
		rec := w.records(cfg)
		w.publish(rec.RecordName, rec.Value)
		w.expireAtSecondary(rec.RecordName)
		// what the CA's resolver answers when it asks ns2; the world's
		// Unbound is not asked for the record until the CA asks it, so
		// that it holds no refusal the CA would then meet
		w.probeResolver(laggingAddr, rec.RecordName)
		if m, err := query(probeAddr, rec.RecordName+".", dns.TypeTXT, true); err != nil || m.Rcode != dns.RcodeServerFailure {
			t.Fatalf("a validating resolver asking ns2.stale.test alone answered %v (%v), want SERVFAIL", m, err)
		}

		const ns2 = "ns2.stale.test (" + laggingAddr + ":53)"
		check := w.caddy("persist", "check", "--config", cfg)
		if detail := requireDNSSECCheck(t, check, rec, ns2); strings.Contains(detail, primaryAddr) {
			t.Errorf("persist check names ns1 too: %s", detail)
		}

		asked := w.laggingQueries(dns.TypeTXT)
		srv := w.startCaddy(cfg)
		// several of the issuer's looks at the record fail at ns2
		const looks = 3
		w.until(fmt.Sprintf("%d looks at the record at ns2.stale.test", looks), func() bool {
			if n := w.ca.Counts.Get(acmetest.KindChallenge); n > 0 {
				t.Fatalf("%d challenge POSTs while ns2.stale.test (%s) served the record under an expired signature",
					n, laggingAddr)
			}
			return w.laggingQueries(dns.TypeTXT)-asked >= looks
		}, func() string {
			return fmt.Sprintf("ns2 was asked for TXT records %d times", w.laggingQueries(dns.TypeTXT)-asked)
		})
		line := srv.WaitLog(t, 0, time.Second, `"status":"dnssec"`, `"record_name":"`+rec.RecordName+`"`)
		requireDNSSECLog(t, line, ns2, "stale.test", "rrsig")

		w.refreshAtSecondary(rec.RecordName)
		w.awaitRecursive(probeAddr, rec.RecordName, dns.TypeTXT, "the record validated through ns2", func(m *dns.Msg) bool {
			return m.AuthenticatedData && slices.Contains(txtValues(m), rec.Value)
		})
		w.certificate("stale.test", issuanceTimeout)
		requireOneValidationEach(t, w, 1)
	})
}

// A signed zone whose DS at the parent matches none of its keys, as after
// a key change the parent never heard of: every validating resolver
// refuses the zone's answers, the CA's too, whatever the record says. The
// check reports the record as dnssec, and Caddy logs why and orders
// nothing while its looks fail.
func TestDSMatchingNoKeyOrdersNothing(t *testing.T) {
	inWorld(t, []zone{{name: "bogus.test", servers: []string{primaryAddr}, signed: true, bogusDS: true}}, func(w *world) {
		cfg := w.caddyfile("bogus.test")
		rec := w.records(cfg)
		w.publish(rec.RecordName, rec.Value)
		if m, err := query(resolverAddr, rec.RecordName+".", dns.TypeTXT, true); err != nil || m.Rcode != dns.RcodeServerFailure {
			t.Fatalf("Unbound answered the record of bogus.test, whose DS matches no key: %v (%v), want SERVFAIL", m, err)
		}
		// the record is there: only DNSSEC stands in the way
		if m, err := queryUnchecked(resolverAddr, rec.RecordName+".", dns.TypeTXT); err != nil || !slices.Contains(txtValues(m), rec.Value) {
			t.Fatalf("Unbound, not validating, does not answer the record: %v (%v)", m, err)
		}

		const ns1 = "ns1.bogus.test (" + primaryAddr + ":53)"
		requireDNSSECCheck(t, w.caddy("persist", "check", "--config", cfg), rec, ns1)

		asked := w.bindQueries(primaryAddr, dns.TypeTXT)
		srv := w.startCaddy(cfg)
		const looks = 3
		w.until(fmt.Sprintf("%d looks at the record at ns1.bogus.test", looks), func() bool {
			if n := w.ca.Counts.Get(acmetest.KindNewOrder); n > 0 {
				t.Fatalf("%d orders while the DS of bogus.test matches no key", n)
			}
			return w.bindQueries(primaryAddr, dns.TypeTXT)-asked >= looks
		}, func() string {
			return fmt.Sprintf("ns1 was asked for TXT records %d times", w.bindQueries(primaryAddr, dns.TypeTXT)-asked)
		})
		line := srv.WaitLog(t, 0, time.Second, `"status":"dnssec"`, `"record_name":"`+rec.RecordName+`"`)
		requireDNSSECLog(t, line, ns1, "bogus.test", "ds")
		srv.Stop()
		if n := w.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
			t.Errorf("%d orders while the DS of bogus.test matches no key", n)
		}
	})
}

// requireDNSSECCheck fails the test unless `caddy persist check` exited 1
// with the line of a record whose answer at server does not validate:
//
//	<record>: dnssec: at <server>: <detail>; the CA's resolver will answer SERVFAIL; <remedy>
//
// and returns the detail. The line offers no record to publish: the
// record passes, and publishing it again mends nothing.
func requireDNSSECCheck(t *testing.T, res caddytest.Result, rec persist.RecordReport, server string) string {
	t.Helper()
	prefix := rec.RecordName + ": " + string(record.StatusDNSSEC) + ": "
	line := caddytest.FindLine(res.Stdout, prefix)
	detail, ok := dnssecDetail(strings.TrimPrefix(line, prefix), server)
	if res.Code != 1 || !strings.HasPrefix(line, prefix) || !ok {
		t.Fatalf("persist check: exit %d, want 1 and the line\n%sat %s: <detail>; the CA's resolver will answer SERVFAIL; <remedy>\n%s\n%s",
			res.Code, prefix, server, res.Stdout, res.Stderr)
	}
	return detail
}

// requireDNSSECLog fails the test unless line is Caddy's warning of a
// record whose answer at server alone does not validate, with the reason
// in the form of the check's line, the signed zone, and the broken link
// as dnslookup.DNSSECError names it ("ds", "dnskey", "rrsig", "denial").
func requireDNSSECLog(t *testing.T, line, server, zone, link string) {
	t.Helper()
	var entry struct {
		Level   string   `json:"level"`
		Status  string   `json:"status"`
		Reason  string   `json:"reason"`
		Servers []string `json:"servers"`
		Zone    string   `json:"dnssec_zone"`
		Link    string   `json:"dnssec_link"`
	}
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("the log line is not JSON (%v): %s", err, line)
	}
	_, ok := dnssecDetail(entry.Reason, server)
	if entry.Level != "warn" || entry.Status != string(record.StatusDNSSEC) || !ok ||
		!slices.Equal(entry.Servers, []string{server}) || entry.Zone != zone || entry.Link != link {
		t.Fatalf("want a warning with status %s, the reason \"at %s: <detail>; the CA's resolver will answer SERVFAIL; <remedy>\", servers [%s], dnssec_zone %s and dnssec_link %s:\n%s",
			record.StatusDNSSEC, server, server, zone, link, line)
	}
}

// dnssecDetail takes the detail out of the reason a record's answer at
// server does not validate, and reports whether the reason had that form.
func dnssecDetail(reason, server string) (string, bool) {
	rest, atServer := strings.CutPrefix(reason, "at "+server+": ")
	detail, remedy, servfail := strings.Cut(rest, "; the CA's resolver will answer SERVFAIL; ")
	return detail, atServer && servfail && detail != "" && remedy != ""
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
