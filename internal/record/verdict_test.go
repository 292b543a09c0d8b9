package record

import (
	"strings"
	"testing"
	"time"
)

func testExpectation() Expectation {
	return Expectation{
		Domain:      "example.com",
		Offered:     []string{"letsencrypt.org", "ca.example"},
		AccountURIs: []string{"https://ca/acct/1"},
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Unix(1800000000, 0)
	ours := "letsencrypt.org; accounturi=https://ca/acct/1"
	cases := []struct {
		name     string
		mutate   func(*Expectation)
		values   []string
		status   Status
		kind     MismatchKind
		contains string
	}{
		{name: "match", values: []string{ours}, status: StatusOK},
		{name: "none", values: nil, status: StatusMissing},
		{name: "another CA's record beside ours", values: []string{"otherca.example; accounturi=https://o/1", ours}, status: StatusOK},
		{name: "only another CA", values: []string{"otherca.example; accounturi=https://o/1"}, status: StatusMismatch, kind: MismatchIssuer, contains: "not one this CA offers"},
		{name: "uppercase issuer", values: []string{"LetsEncrypt.org; accounturi=https://ca/acct/1"}, status: StatusMismatch, kind: MismatchIssuer, contains: "lowercase"},
		{name: "other account", values: []string{"letsencrypt.org; accounturi=https://ca/acct/2"}, status: StatusMismatch, kind: MismatchAccount, contains: "https://ca/acct/2"},
		{name: "wildcard without policy", mutate: func(e *Expectation) { e.Wildcard = true }, values: []string{ours}, status: StatusMismatch, kind: MismatchPolicy, contains: "*.example.com"},
		{name: "wildcard with policy", mutate: func(e *Expectation) { e.Wildcard = true }, values: []string{ours + "; policy=wildcard"}, status: StatusOK},
		{name: "policy wildcard serves the apex", values: []string{ours + "; policy=wildcard"}, status: StatusOK},
		{name: "expired", values: []string{ours + "; persistUntil=1700000000"}, status: StatusMismatch, kind: MismatchExpired, contains: "has passed"},
		{name: "persistUntil differs from config", mutate: func(e *Expectation) { e.PersistUntil = time.Unix(1900000000, 0) },
			values: []string{ours + "; persistUntil=1850000000"}, status: StatusMismatch, kind: MismatchPersistUntil, contains: "1900000000"},
		{name: "persistUntil as configured", mutate: func(e *Expectation) { e.PersistUntil = time.Unix(1900000000, 0) },
			values: []string{ours + "; persistUntil=1900000000"}, status: StatusOK},
		{name: "malformed", values: []string{ours + ";"}, status: StatusMismatch, kind: MismatchMalformed, contains: "trailing"},
		{name: "draft -02 any-domain hash accepted", mutate: func(e *Expectation) { e.AccountURIs = []string{"h/one", "h/any"} },
			values: []string{"letsencrypt.org; accounturi=h/any"}, status: StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exp := testExpectation()
			if c.mutate != nil {
				c.mutate(&exp)
			}
			v := Evaluate(exp, c.values, now)
			if v.Status != c.status {
				t.Fatalf("status = %s (%s), want %s", v.Status, v.Reason(), c.status)
			}
			if c.kind != "" && !v.Has(c.kind) {
				t.Errorf("mismatches %v lack %s", v.Mismatches, c.kind)
			}
			if !strings.Contains(v.Reason(), c.contains) {
				t.Errorf("reason %q lacks %q", v.Reason(), c.contains)
			}
		})
	}
}

func TestEvaluateOrdersMismatchesByRelevance(t *testing.T) {
	exp := testExpectation()
	v := Evaluate(exp, []string{
		"otherca.example; accounturi=https://o/1",
		"letsencrypt.org; accounturi=https://ca/acct/9",
		"letsencrypt.org; accounturi=https://ca/acct/1;",
	}, time.Now())
	if len(v.Mismatches) != 3 || v.Mismatches[0].Kind != MismatchMalformed || v.Mismatches[1].Kind != MismatchAccount || v.Mismatches[2].Kind != MismatchIssuer {
		t.Errorf("mismatches = %+v", v.Mismatches)
	}
}

func TestChooseIssuer(t *testing.T) {
	exp := testExpectation()
	if got := Evaluate(exp, nil, time.Now()).IssuerDomainName; got != "letsencrypt.org" {
		t.Errorf("no records: issuer %q, want the first offered", got)
	}
	published := []string{"ca.example; accounturi=https://ca/acct/7"}
	if got := Evaluate(exp, published, time.Now()).IssuerDomainName; got != "ca.example" {
		t.Errorf("a record uses ca.example: issuer %q", got)
	}
	exp.Preferred = "letsencrypt.org"
	if got := Evaluate(exp, published, time.Now()).IssuerDomainName; got != "letsencrypt.org" {
		t.Errorf("configured: issuer %q", got)
	}
}
