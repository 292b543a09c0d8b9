package persist

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func TestIssueWildcardAndApexWithOneRecord(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "wild.test", true)

	cert, err := iss.Issue(context.Background(), newCSR(t, "*.wild.test", "wild.test"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyIssued(t, ca, cert.Certificate, "*.wild.test", "wild.test")
	if err := leaf.VerifyHostname("anything.wild.test"); err != nil {
		t.Error(err)
	}
	if got := ca.Counts.Get(acmetest.KindChallenge); got != 2 {
		t.Errorf("challenge POSTs = %d, want 2 (apex and wildcard authorizations)", got)
	}
}

func TestIssueRecordAbsentPostsNoChallenge(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)

	_, err := iss.Issue(context.Background(), newCSR(t, "*.absent.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) {
		t.Fatalf("error = %v, want a RecordError", err)
	}
	if recErr.Status() != record.StatusMissing {
		t.Errorf("status = %s", recErr.Status())
	}
	want := `_validation-persist.absent.test. IN TXT "pebble.letsencrypt.org; accounturi=` + acctURL + `; policy=wildcard"`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the record %q", err, want)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the CA received %d orders", n)
	}
}
