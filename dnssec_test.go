package persist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/metrics"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// signedNameservers is twoNameservers for a zone signed with keys made for
// the test (a KSK and a ZSK), each server signing as sign says, and its
// DS record at the recursive server. Pebble still validates through the
// test DNS server, without DNSSEC: what is judged here is the check.
func signedNameservers(t *testing.T, iss *testIssuer, zone string, sign func(i int, sg *fakedns.Signing)) ([]*fakedns.Server, *fakedns.Server) {
	t.Helper()
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 2)
	fakedns.ServeZone(recursive, zone, group...)
	fakedns.SignedZone(t, recursive, zone, group, sign)
	_, port, _ := net.SplitHostPort(group[0].Addr)
	iss.judge.Resolver = dnslookup.New(dnslookup.Options{Recursive: []string{recursive.Addr}, NameserverPort: port, QueryTimeout: iss.queryTimeout, Logger: iss.logger, Now: iss.now})
	return group, recursive
}

// publishSigned serves value at the record name of base from every
// server of the group and from the test DNS Pebble validates through.
func publishSigned(t *testing.T, group []*fakedns.Server, base, value string) {
	t.Helper()
	setTXT(t, record.Name(base), value)
	for _, s := range group {
		s.SetTXT(record.Name(base), value)
	}
}

func TestSignedZoneWithAValidChainIssues(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	group, _ := signedNameservers(t, iss, "signed-ok.test", nil)
	publishSigned(t, group, "signed-ok.test", iss.recordValue(t, false))

	chain, err := iss.Issue(context.Background(), newCSR(t, "signed-ok.test"))
	if err != nil {
		t.Fatalf("a signed zone whose chain verifies: %v", err)
	}
	verifyIssued(t, ca, chain.Certificate, "signed-ok.test")
}

func TestExpiredSignaturesAtOneNameserverHoldTheOrder(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	expired := iss.now().Add(-time.Hour).Truncate(time.Second)
	group, _ := signedNameservers(t, iss, "signed-expired.test", func(i int, sg *fakedns.Signing) {
		if i == 1 {
			sg.Inception, sg.Expiration = expired.Add(-24*time.Hour), expired
		}
	})
	publishSigned(t, group, "signed-expired.test", iss.recordValue(t, false))

	_, err := iss.Issue(context.Background(), newCSR(t, "signed-expired.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) {
		t.Fatalf("error = %v, want a RecordError", err)
	}
	ns2 := "ns2.signed-expired.test (" + group[1].Addr + ")"
	want := fmt.Sprintf("_validation-persist.signed-expired.test: dnssec: at %s: the RRSIG over _validation-persist.signed-expired.test TXT expired at %s; the CA's resolver will answer SERVFAIL; re-sign signed-expired.test on that server, and check its signer runs: signatures expire", ns2, expired.UTC().Format(time.RFC3339))
	if recErr.Status() != record.StatusDNSSEC || !slices.Equal(recErr.Servers(), []string{ns2}) || recErr.Error() != want {
		t.Errorf("error = %q (status %s, servers %v),\nwant %q", recErr, recErr.Status(), recErr.Servers(), want)
	}
	var sec *dnslookup.DNSSECError
	if !errors.As(recErr, &sec) || sec.Link != "rrsig" {
		t.Errorf("the error does not unwrap to the broken link: %v", err)
	}
	// ns2's CAA answers are as stale: the CA would refuse them too
	var caaErr *CAAError
	if !errors.As(err, &caaErr) || caaErr.Status() != caaDNSSEC || !strings.Contains(caaErr.Error(), "signed-expired.test: caa: dnssec: at "+ns2) {
		t.Errorf("CAA error = %v, want ns2's dnssec failure", caaErr)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA was asked to validate %d times while ns2's signatures had expired", n)
	}
	if n := iss.logs.FilterMessageSnippet("CAA answer fails DNSSEC validation").Len(); n != 1 {
		t.Errorf("logged %d CAA DNSSEC notices over the wait, want 1 (once an hour)", n)
	}
	logged := iss.logs.FilterMessageSnippet("dns-persist-01 record fails DNSSEC validation").All()
	if len(logged) != 1 {
		t.Fatalf("logged %d record DNSSEC notices over the wait, want 1 (once an hour)", len(logged))
	}
	if f := logged[0].ContextMap(); f["status"] != "dnssec" || f["dnssec_link"] != "rrsig" || f["dnssec_zone"] != "signed-expired.test" || fmt.Sprint(f["servers"]) != "["+ns2+"]" {
		t.Errorf("log fields = %v", f)
	}
}

func TestDSMismatchIsReportedAsDNSSEC(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	group, recursive := signedNameservers(t, iss, "signed-ds.test", nil)
	publishSigned(t, group, "signed-ds.test", iss.recordValue(t, false))
	// a key rollover that left the DS at the parent naming a key the
	// zone no longer publishes
	recursive.SetDS("signed-ds.test", fakedns.NewZoneKey(t, "signed-ds.test", true).DS())

	reports, err := iss.inspect(context.Background(), []string{"signed-ds.test"}, true)
	if err != nil {
		t.Fatal(err)
	}
	r := reports[0]
	if r.Status != record.StatusDNSSEC || !strings.Contains(r.Reason, "no DNSKEY of signed-ds.test") || !strings.Contains(r.Reason, "ns1.signed-ds.test") || !strings.Contains(r.Reason, "ns2.signed-ds.test") {
		t.Errorf("report = %+v, want dnssec at both servers, naming the DS", r)
	}
	line := recordLine(r, false)
	if !strings.HasPrefix(line, "_validation-persist.signed-ds.test: dnssec: at ns1.signed-ds.test") || strings.Contains(line, "publish:") {
		t.Errorf("check line %q, want dnssec, without a record to publish: the record is right", line)
	}
	// the CAA answers within the zone are judged the same way
	if c := r.CAACheck; c == nil || c.Status != caaDNSSEC || !strings.Contains(c.Reason, "no DNSKEY of signed-ds.test") {
		t.Errorf("CAA check = %+v, want dnssec", c)
	}
	if line := caaLine(r.Domain, "", r.CAACheck); !strings.HasPrefix(line, "signed-ds.test: caa: dnssec: at ns1.signed-ds.test") || strings.Contains(line, "publish:") {
		t.Errorf("CAA line %q", line)
	}
	if err := checkOutcome(reports, false); err == nil {
		t.Error("`caddy persist check` would exit 0 on a dnssec status")
	}
}

func TestPermissionDeniesARecordDNSSECRefuses(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	group, _ := signedNameservers(t, iss, "signed-deny.test", func(i int, sg *fakedns.Signing) {
		if i == 0 {
			sg.SignAnswersWith = fakedns.NewZoneKey(t, "signed-deny.test", false)
		}
	})
	publishSigned(t, group, "signed-deny.test", iss.recordValue(t, false))
	p, reg, _ := newTestPermission(t, iss.Issuer, nil)

	err := p.CertificateAllowed(context.Background(), "signed-deny.test")
	if !errors.Is(err, caddytls.ErrPermissionDenied) || !strings.Contains(err.Error(), "dnssec: at ns1.signed-deny.test") {
		t.Fatalf("err = %v, want a denial naming ns1's broken signatures", err)
	}
	if n := checkCount(t, reg, metrics.OutcomeDeniedDNSSEC); n != 1 {
		t.Errorf("outcome %s counted %d, want 1", metrics.OutcomeDeniedDNSSEC, n)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders placed", n)
	}
}
