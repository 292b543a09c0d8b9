package persist

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func TestSolverChecksAgainstTheChallengesIssuerNames(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{Wrap: stripIssuerNames})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)

	_, err := iss.Issue(context.Background(), newCSR(t, "solver.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
		t.Fatalf("error = %v, want a missing RecordError", err)
	}
	if !strings.Contains(err.Error(), "pebble.letsencrypt.org; accounturi="+acctURL) {
		t.Errorf("error %q lacks the record with the challenge's issuer name", err)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("orders = %d; without directory names the order is needed to learn them", n)
	}

	iss.publish(t, "solver.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "solver.test")); err != nil {
		t.Fatal(err)
	}
}
