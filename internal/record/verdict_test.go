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
		{name: "uppercase issuer", values: []string{"LetsEncrypt.org; accounturi=https://ca/acct/1"}, status: StatusOK},
		{name: "another spelling of another CA", values: []string{"OtherCA.example.; accounturi=https://ca/acct/1"}, status: StatusMismatch, kind: MismatchIssuer, contains: `"OtherCA.example." is not one this CA offers`},
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

func TestEvaluateWarnsOfLenientPasses(t *testing.T) {
	now := time.Unix(1800000000, 0)
	exp := testExpectation()
	exp.Wildcard = true
	const canonical = "letsencrypt.org; accounturi=https://ca/acct/1; policy=wildcard; persistUntil=1827662400"
	cases := []struct {
		value string
		kinds []WarningKind
	}{
		{canonical, nil},
		{"LetsEncrypt.ORG.; accounturi=https://ca/acct/1; policy=wildcard; persistUntil=1827662400", []WarningKind{WarningIssuerSpelling}},
		{"letsencrypt.org; x_y=1; accounturi=https://ca/acct/1; policy=wildcard; persistUntil=1827662400", []WarningKind{WarningTagSyntax}},
		{"letsencrypt.org; accounturi=https://ca/acct/1; policy=wildcard; persistUntil=+1827662400", []WarningKind{WarningPersistUntilSign}},
		{"Letsencrypt.org; accounturi=https://ca/acct/1; bad tag=; policy=WILDCARD; persistUntil=+1827662400", []WarningKind{WarningIssuerSpelling, WarningTagSyntax, WarningPersistUntilSign}},
	}
	for _, c := range cases {
		v := Evaluate(exp, []string{c.value}, now)
		if v.Status != StatusOK || v.MatchedValue != c.value {
			t.Fatalf("%q: status %s (%s), matched %q", c.value, v.Status, v.Reason(), v.MatchedValue)
		}
		if len(v.Warnings) != len(c.kinds) {
			t.Fatalf("%q: warnings %+v, want kinds %v", c.value, v.Warnings, c.kinds)
		}
		for i, w := range v.Warnings {
			if w.Kind != c.kinds[i] || !strings.Contains(w.Detail, "refuse") || !strings.HasSuffix(w.Detail, `; publish "`+canonical+`" instead`) {
				t.Errorf("%q: warning %+v, want %s, what is refused and the canonical value", c.value, w, c.kinds[i])
			}
		}
	}

	// a record that passes everywhere wins over one that passes by Let's
	// Encrypt's rules alone, in whichever order they are published
	strict, lenient := canonical, "LETSENCRYPT.ORG; accounturi=https://ca/acct/1; policy=wildcard; persistUntil=1827662400"
	for _, values := range [][]string{{lenient, strict}, {strict, lenient}} {
		if v := Evaluate(exp, values, now); v.Status != StatusOK || v.MatchedValue != strict || len(v.Warnings) != 0 {
			t.Errorf("%q: matched %q with warnings %+v", values, v.MatchedValue, v.Warnings)
		}
	}
	// of two lenient passes, the first is reported
	other := "letsencrypt.org.; accounturi=https://ca/acct/1; policy=wildcard; persistUntil=1827662400"
	if v := Evaluate(exp, []string{lenient, other}, now); v.MatchedValue != lenient || !strings.Contains(v.Warnings[0].Detail, `"LETSENCRYPT.ORG"`) {
		t.Errorf("matched %q with warnings %+v", v.MatchedValue, v.Warnings)
	}
	// the year-1 persistUntil Let's Encrypt reads as none
	v := Evaluate(testExpectation(), []string{"letsencrypt.org; accounturi=https://ca/acct/1; persistUntil=-62135596800"}, now)
	if v.Status != StatusOK || len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0].Detail, "year 1") ||
		!strings.HasSuffix(v.Warnings[0].Detail, `publish "letsencrypt.org; accounturi=https://ca/acct/1" instead`) {
		t.Errorf("year-1 persistUntil: %s, %+v", v.Status, v.Warnings)
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
	if got := Evaluate(exp, []string{"CA.Example.; accounturi=https://ca/acct/7"}, time.Now()).IssuerDomainName; got != "ca.example" {
		t.Errorf("a record uses ca.example in another spelling: issuer %q", got)
	}
	exp.Preferred = "letsencrypt.org"
	if got := Evaluate(exp, published, time.Now()).IssuerDomainName; got != "letsencrypt.org" {
		t.Errorf("configured: issuer %q", got)
	}
}

func TestEvaluatePassesRecordsOfPreviousKeysFlagged(t *testing.T) {
	now := time.Unix(1800000000, 0)
	exp := testExpectation()
	exp.AccountURIs = []string{"h/new", "h/new-any"}
	exp.PreviousAccountURIs = []string{"h/old", "h/old-any"}
	current := "letsencrypt.org; accounturi=h/new"
	previous := "letsencrypt.org; accounturi=h/old-any"
	lenientCurrent := "LetsEncrypt.org; accounturi=h/new"

	v := Evaluate(exp, []string{previous}, now)
	if v.Status != StatusOK || !v.PreviousKey || v.MatchedValue != previous {
		t.Errorf("a record of a previous key: %s (%s), previous key %v", v.Status, v.Reason(), v.PreviousKey)
	}
	if want := exp.Want(v); want.AccountURI != "h/new" {
		t.Errorf("the record to publish names %q, want the current key's value", want.AccountURI)
	}
	// the current key's record wins in whichever order, even with warnings
	for _, values := range [][]string{{previous, current}, {current, previous}, {previous, lenientCurrent}} {
		if v := Evaluate(exp, values, now); v.Status != StatusOK || v.PreviousKey || v.MatchedValue == previous {
			t.Errorf("%q: matched %q, previous key %v", values, v.MatchedValue, v.PreviousKey)
		}
	}
	// a value no key of the account made is still a mismatch
	if v := Evaluate(exp, []string{"letsencrypt.org; accounturi=h/other"}, now); v.Status != StatusMismatch || !v.Has(MismatchAccount) {
		t.Errorf("another account's value: %s", v.Status)
	}
	// a previous key's record must still say what the names need
	exp.Wildcard = true
	if v := Evaluate(exp, []string{previous}, now); v.Status != StatusMismatch || !v.Has(MismatchPolicy) {
		t.Errorf("a previous key's record without policy=wildcard: %s", v.Status)
	}
}

// The apex of a config that also serves the wildcard passes without
// policy=wildcard, as the CA would let it, but the record it asks for is
// the one the wildcard needs too: one record at the name serves both.
func TestPublishWildcardAsksForTheRecordBothNeed(t *testing.T) {
	now := time.Unix(1800000000, 0)
	exp := testExpectation()
	exp.PublishWildcard = true
	plain := "letsencrypt.org; accounturi=https://ca/acct/1"
	if v := Evaluate(exp, []string{plain}, now); v.Status != StatusOK {
		t.Errorf("the apex alone with a record without policy=wildcard: %s (%s), want ok", v.Status, v.Reason())
	}
	for _, v := range []Verdict{Evaluate(exp, nil, now), {}} {
		value, err := exp.Want(v).Value()
		if err != nil {
			t.Fatal(err)
		}
		if value != plain+"; policy=wildcard" {
			t.Errorf("the record to publish is %q, want the one with policy=wildcard", value)
		}
	}
	exp.PublishWildcard = false
	if value, _ := exp.Want(Verdict{}).Value(); value != plain {
		t.Errorf("without a wildcard to serve the record to publish is %q, want %q", value, plain)
	}
}
