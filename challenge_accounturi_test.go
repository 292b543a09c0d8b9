package persist

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// The CA double below is Pebble whose dns-persist-01 challenges carry
// accounturi (draft -01 §3.1), as Boulder's do when configured: the value
// named holds when the authorization is served.

func TestSolverJudgesTheChallengesAccountURI(t *testing.T) {
	t.Parallel()
	var named atomic.Pointer[string]
	ca := startCA(t, acmetest.Options{Wrap: acmetest.RewriteResponses(acmetest.KindAuthz, func(authz map[string]any) {
		challenges, _ := authz["challenges"].([]any)
		for _, c := range challenges {
			if m, _ := c.(map[string]any); m["type"] == acme.ChallengeTypeDNSPersist01 {
				if uri := *named.Load(); uri != "" {
					m["accounturi"] = uri
				} else {
					delete(m, "accounturi")
				}
			}
		}
	})})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)
	// the record printed for the account, which the check before the
	// order passes
	iss.publish(t, "chal-uri.test", false)

	other := "https://ca.example/acme/acct/7"
	named.Store(&other)
	_, err := iss.Issue(context.Background(), newCSR(t, "chal-uri.test"))
	var chalErr *ChallengeAccountError
	if !errors.As(err, &chalErr) || chalErr.ChallengeURI != other || chalErr.AccountURL != acctURL {
		t.Fatalf("error = %v, want a ChallengeAccountError naming %s and %s", err, other, acctURL)
	}
	var recErr *RecordError
	if !errors.As(err, &recErr) || recErr.Status() != record.StatusMismatch {
		t.Errorf("error = %v, want a mismatched RecordError within", err)
	}
	want := record.ZoneLine("chal-uri.test", acmetest.DefaultIssuerName+"; accounturi="+other)
	for _, s := range []string{other, acctURL, want} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the error lacks %s: %v", s, err)
		}
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}

	// the record the error names passes the check, before the order
	// too, and so it does for the issuer of a restart, which reads the
	// challenge's accounturi from storage: the challenge is answered.
	// (Pebble itself validates against the account URL, so here the CA
	// refuses what a CA that names another accounturi would accept.)
	setTXT(t, record.Name("chal-uri.test"), acmetest.DefaultIssuerName+"; accounturi="+other)
	restarted := newTestIssuer(t, ca, iss.storage.Path, nil)
	for i, ti := range []*testIssuer{iss, restarted} {
		_, err := ti.Issue(context.Background(), newCSR(t, "chal-uri.test"))
		var problem acme.Problem
		if errors.As(err, &recErr) || !errors.As(err, &problem) || problem.Type != acme.ProblemTypeUnauthorized {
			t.Errorf("issuer %d: %v, want the record to pass the check and Pebble to refuse it", i, err)
		}
		if n := ca.Counts.Get(acmetest.KindChallenge); n != i+1 {
			t.Errorf("issuer %d: challenge POSTs = %d, want %d", i, n, i+1)
		}
	}

	// a CA that stops naming another accounturi validates against the
	// account URL: its next challenge, naming none, makes the solver
	// forget the remembered one, here and in storage, and the record
	// naming it is refused with the record to publish, before any
	// challenge POST
	none := ""
	named.Store(&none)
	_, err = restarted.Issue(context.Background(), newCSR(t, "chal-uri.test"))
	if !errors.As(err, &recErr) || errors.As(err, &chalErr) || !strings.Contains(err.Error(), record.ZoneLine("chal-uri.test", iss.recordValue(t, false))) {
		t.Errorf("a challenge naming no accounturi: %v, want the record for the account URL to publish", err)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 2 {
		t.Errorf("challenge POSTs = %d, want 2", n)
	}

	// the record for the account URL then passes the check before the
	// order of an issuer that reads storage afresh, and a challenge
	// naming the account URL passes it too
	named.Store(&acctURL)
	iss.publish(t, "chal-uri.test", false)
	fresh := newTestIssuer(t, ca, iss.storage.Path, nil)
	if uri := fresh.accounts.ChallengeURI(context.Background(), acme.Account{Location: acctURL}); uri != "" {
		t.Errorf("storage still remembers accounturi %s", uri)
	}
	if _, err := fresh.Issue(context.Background(), newCSR(t, "chal-uri.test")); err != nil {
		t.Fatal(err)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 3 {
		t.Errorf("challenge POSTs = %d, want 3", n)
	}
}
