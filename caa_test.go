package persist

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/letsencrypt/challtestsrv"
	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/metrics"
)

// setCAA replaces the CAA records at name in the test DNS, until the test
// ends.
func setCAA(t *testing.T, name string, records ...challtestsrv.CAAPolicy) {
	t.Helper()
	srv, _, err := acmetest.DNS()
	if err != nil {
		t.Fatal(err)
	}
	srv.DeleteDNSCAARecord(name)
	if len(records) > 0 {
		srv.AddDNSCAARecord(name, records)
	}
	t.Cleanup(func() { srv.DeleteDNSCAARecord(name) })
}

// policiesOf reads CAA zone file lines as the test DNS takes them.
func policiesOf(t *testing.T, lines []string) []challtestsrv.CAAPolicy {
	t.Helper()
	var out []challtestsrv.CAAPolicy
	for _, line := range lines {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("%q is not a zone file line: %v", line, err)
		}
		c := rr.(*dns.CAA)
		out = append(out, challtestsrv.CAAPolicy{Tag: c.Tag, Value: c.Value})
	}
	return out
}

func TestCAAThatForbidsPlacesNoOrderAndThePrintedRecordsLetThrough(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "www.forbid.caa.test", true)
	// at the parent: the name itself has none
	setCAA(t, "forbid.caa.test", challtestsrv.CAAPolicy{Tag: "issue", Value: "pki.goog"})

	_, err := iss.Issue(context.Background(), newCSR(t, "*.www.forbid.caa.test", "www.forbid.caa.test"))
	var caaErr *CAAError
	if !errors.As(err, &caaErr) || caaErr.Status() != caaForbidden {
		t.Fatalf("err = %v, want CAA forbidding", err)
	}
	if caaErr.FoundAt != "forbid.caa.test" || len(caaErr.Found) != 1 || !strings.Contains(caaErr.Reason, "names another CA (pki.goog") {
		t.Errorf("the error does not name the record found: %+v", caaErr)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the CA received %d orders against a CAA policy that forbids them", n)
	}
	if logged := iss.logs.FilterMessageSnippet("CAA forbids").All(); len(logged) != 1 {
		t.Errorf("logged %d CAA entries, want 1", len(logged))
	}

	reports, err := iss.inspectWith(context.Background(), []string{"*.www.forbid.caa.test", "www.forbid.caa.test"}, inspectOptions{check: true, caa: true})
	if err != nil {
		t.Fatal(err)
	}
	r := reports[0]
	if r.Status != "ok" || r.CAACheck == nil || r.CAACheck.Status != caaForbidden {
		t.Fatalf("report = %+v, want the record ok and CAA forbidden", r)
	}
	if line := caaLine(r.Domain, "", r.CAACheck); !strings.HasPrefix(line, "www.forbid.caa.test: caa: forbidden: ") || !strings.Contains(line, "publish: "+r.CAA[0]) {
		t.Errorf("check line %q", line)
	}
	if err := checkOutcome(reports, false); err == nil {
		t.Error("check passes while CAA forbids issuance")
	}
	if len(r.CAA) != 2 || !strings.Contains(r.CAA[1], " issuewild ") || !strings.Contains(r.CAA[0], "validationmethods=dns-persist-01") {
		t.Fatalf("records to publish: %q, want issue and issuewild locked to dns-persist-01", r.CAA)
	}

	// publishing them at the name hides the parent's policy
	setCAA(t, "www.forbid.caa.test", policiesOf(t, r.CAA)...)
	cert, err := iss.Issue(context.Background(), newCSR(t, "*.www.forbid.caa.test", "www.forbid.caa.test"))
	if err != nil {
		t.Fatal(err)
	}
	verifyIssued(t, ca, cert.Certificate, "*.www.forbid.caa.test", "www.forbid.caa.test")
	reports, err = iss.inspectWith(context.Background(), []string{"www.forbid.caa.test"}, inspectOptions{check: true})
	if err != nil || reports[0].CAACheck.Status != caaAllowed || caaLine(reports[0].Domain, "", reports[0].CAACheck) != "" || checkOutcome(reports, false) != nil {
		t.Errorf("after publishing: %+v, %v", reports, err)
	}
}

func TestCAAForbiddingWildcardsOnlyLeavesTheApex(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "nowild.caa.test", false)
	setCAA(t, "nowild.caa.test",
		challtestsrv.CAAPolicy{Tag: "issue", Value: acmetest.DefaultIssuerName},
		challtestsrv.CAAPolicy{Tag: "issuewild", Value: ";"})

	if _, err := iss.Issue(context.Background(), newCSR(t, "nowild.caa.test")); err != nil {
		t.Fatalf("apex: %v", err)
	}
	iss.publish(t, "nowild.caa.test", true)
	_, err := iss.Issue(context.Background(), newCSR(t, "*.nowild.caa.test"))
	var caaErr *CAAError
	if !errors.As(err, &caaErr) || !strings.Contains(caaErr.Reason, "issuewild") {
		t.Fatalf("wildcard: err = %v, want issuewild forbidding it", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("orders = %d, want 1 (the apex only)", n)
	}
}

func TestCAAServfailIsADNSErrorAndPlacesNoOrder(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "servfail.caa.test", false)
	srv, _, _ := acmetest.DNS()
	srv.AddDNSServFailRecord("servfail.caa.test")
	t.Cleanup(func() { srv.DeleteDNSServFailRecord("servfail.caa.test") })

	_, err := iss.Issue(context.Background(), newCSR(t, "servfail.caa.test"))
	var caaErr *CAAError
	if !errors.As(err, &caaErr) || caaErr.Status() != caaDNSError || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Fatalf("err = %v, want a CAA dns-error", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("orders = %d, want 0", n)
	}
}

func TestPermissionDeniesWhatCAAForbids(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "tenant.caa.test", false)
	setCAA(t, "caa.test", challtestsrv.CAAPolicy{Tag: "issue", Value: acmetest.DefaultIssuerName + "; accounturi=https://other.example/acct/1"})
	p, reg, _ := newTestPermission(t, iss.Issuer, nil)

	err := p.CertificateAllowed(context.Background(), "tenant.caa.test")
	if !errors.Is(err, caddytls.ErrPermissionDenied) || !strings.Contains(err.Error(), "another account") {
		t.Fatalf("err = %v, want a denial naming the CAA account", err)
	}
	if n := checkCount(t, reg, metrics.OutcomeDeniedCAA); n != 1 {
		t.Errorf("denied_caa = %d, want 1", n)
	}
}
