package persist

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// A site serving an apex and its wildcard is two certificates to Caddy,
// but one record at the name. The log asks for that record once, the
// value `caddy persist records` prints; publishing what it asked for
// gives both certificates.
func TestTheLogAsksForTheOneRecordApexAndWildcardNeed(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	running := provisionCaddyfile(t, `{
	storage file_system `+t.TempDir()+`
	admin off
}

logdup.test, *.logdup.test {
	tls {
		issuer persist `+ca.URL+` {
			email ops@example.test
			trusted_roots `+ca.TLSRootsFile+`
			resolvers `+testDNSAddr+`
			propagation_timeout 300ms
		}
	}
}
`)
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	iss := sets[0].Issuer
	logs := observeLogs(iss)
	ctx := context.Background()

	for _, names := range [][]string{{"logdup.test"}, {"*.logdup.test"}} {
		if _, err := iss.Issue(ctx, newCSR(t, names...)); err == nil {
			t.Fatalf("%v issued without a record", names)
		}
	}
	asked := logs.FilterMessageSnippet("record missing").All()
	if len(asked) != 1 {
		t.Fatalf("the log asked %d times for the record (%v), want once", len(asked), loggedValues(asked))
	}
	value, _ := asked[0].ContextMap()["record_value"].(string)
	reports, err := iss.inspect(ctx, sets[0].Names, false)
	if err != nil || len(reports) != 1 {
		t.Fatalf("records: %v, %v", reports, err)
	}
	if value != reports[0].Value || !strings.HasSuffix(value, "; policy=wildcard") {
		t.Fatalf("the log asks for %q, caddy persist records prints %q: want one value, with policy=wildcard", value, reports[0].Value)
	}

	setTXT(t, record.Name("logdup.test"), value)
	for _, names := range [][]string{{"logdup.test"}, {"*.logdup.test"}} {
		issued, err := iss.Issue(ctx, newCSR(t, names...))
		if err != nil {
			t.Fatalf("%v with the record the log asked for: %v", names, err)
		}
		verifyIssued(t, ca, issued.Certificate, names...)
	}
}

// A record that fails is logged with a message that says what its reason
// says: the most relevant mismatch of what is published.
func TestTheLoggedMismatchSaysWhatTheReasonSays(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.PersistUntil = "2100-01-01T00:00:00Z"
	})
	account := iss.accountURL(t)
	ours := acmetest.DefaultIssuerName + "; accounturi=" + account
	until := "; persistUntil=4102444800"
	cases := []struct {
		published string
		wildcard  bool
		kind      record.MismatchKind
		says      string
	}{
		{ours + "; policy=wildcard" + until + "; accounturi", false, record.MismatchMalformed, "is malformed"},
		{acmetest.DefaultIssuerName + "; accounturi=https://ca.example/acct/other" + until, false, record.MismatchAccount, "names another ACME account"},
		{ours + until, true, record.MismatchPolicy, "lacks policy=wildcard"},
		{ours + "; persistUntil=1500000000", false, record.MismatchExpired, "past its persistUntil"},
		{ours, false, record.MismatchPersistUntil, "not the configured persist_until"},
		{"ca.other.example; accounturi=" + account + until, false, record.MismatchIssuer, "issuer domain name this CA does not offer"},
		// an old account's record beside ours, which lacks the policy:
		// the message is about ours
		{acmetest.DefaultIssuerName + "; accounturi=https://ca.example/acct/old" + until + "\x00" + ours + until, true, record.MismatchAccount, "lacks policy=wildcard"},
	}
	for i, c := range cases {
		base := "mismatch" + string(rune('a'+i)) + ".test"
		setTXT(t, record.Name(base), strings.Split(c.published, "\x00")...)
		in, err := iss.recordInputs(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		j, err := iss.judge.Record(context.Background(), in.Inputs, base, c.wildcard, judge.Fresh)
		if err != nil {
			t.Fatal(err)
		}
		if j.Passed() || len(j.Verdict.Mismatches) == 0 || j.Verdict.Mismatches[0].Kind != c.kind {
			t.Errorf("%q: verdict %s (%s), want the mismatch %s first", c.published, j.Verdict.Status, j.Verdict.Reason(), c.kind)
			continue
		}
		iss.notices.failure(recordFailure(j))
		logged := iss.logs.FilterField(zap.String("record_name", record.Name(base))).All()
		if len(logged) != 1 || !strings.Contains(logged[0].Message, c.says) {
			t.Errorf("%q: logged %v, want a message saying %q", c.published, logged, c.says)
		}
	}
	// the other messages of a failed record are for other statuses
	if got := mismatchMessage(nil); !strings.Contains(got, "does not authorize this order") {
		t.Errorf("a mismatch without a kind: %q", got)
	}
}

func loggedValues(entries []observer.LoggedEntry) []any {
	var out []any
	for _, e := range entries {
		out = append(out, e.ContextMap()["record_value"])
	}
	return out
}

// An issuer whose persist_until has passed prints no record (every CA
// refuses it) and places no order; the error says what to set.
func TestAPassedPersistUntilIsNeverRecommended(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.PersistUntil = "2020-01-01T00:00:00Z"
	})
	ctx := context.Background()
	iss.accountURL(t)
	orders := ca.Counts.Get(acmetest.KindNewOrder)

	reports, err := iss.inspect(ctx, []string{"passed.test"}, true)
	if err == nil || !strings.Contains(err.Error(), "persist_until 2020-01-01T00:00:00Z has passed") || !strings.Contains(err.Error(), "set a later persist_until") {
		t.Errorf("records: %v, %v; want the error that persist_until has passed", reports, err)
	}
	if err := iss.PreCheck(ctx, []string{"passed.test"}, false); err == nil {
		t.Error("PreCheck let an issuer whose persist_until has passed go on to order")
	}
	if _, err := iss.Issue(ctx, newCSR(t, "passed.test")); err == nil || !strings.Contains(err.Error(), "has passed") {
		t.Errorf("Issue: %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder) - orders; n != 0 {
		t.Errorf("%d orders placed with a passed persist_until", n)
	}
	if got, ok := apiError(err).(caddy.APIError); !ok || got.HTTPStatus != http.StatusConflict {
		t.Errorf("the admin API answers %v, want 409: the config, not the CA, is at fault", apiError(err))
	}
}

// The names of a config file decide the record the commands print for it:
// the running config serves *.filewild.test, the file no longer does, so
// the record of filewild.test is printed without policy=wildcard; the
// running config's own report asks for it, and says so in `wildcard`.
func TestAFilesRecordsFollowItsNamesNotTheRunningConfigs(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	running := provisionCaddyfile(t, persistSiteCaddyfile(t.TempDir(), ca, "filewild.test, *.filewild.test"))
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	ctx := context.Background()
	if _, err := sets[0].Issuer.accounts.Get(ctx, true); err != nil {
		t.Fatal(err)
	}
	report := func(sets []servedSet) RecordReport {
		t.Helper()
		reports, err := inspectAll(ctx, sets, inspectOptions{})
		if err != nil || len(reports) != 1 {
			t.Fatalf("reports %v, %v", reports, err)
		}
		return reports[0]
	}
	if r := report(sets); !strings.HasSuffix(r.Value, "; policy=wildcard") || !r.Wildcard {
		t.Errorf("the running config's record: %q, wildcard %v", r.Value, r.Wildcard)
	}
	file, err := setsFor(running, []issuerNames{{Issuer: identityOf(sets[0].Issuer), Domains: []string{"filewild.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := report(file); strings.Contains(r.Value, "policy=wildcard") || r.Wildcard {
		t.Errorf("the record of a file without the wildcard: %q, wildcard %v", r.Value, r.Wildcard)
	}
	// the apex alone, asked of the running config, still gets the one
	// record the wildcard needs too
	apex, err := servedNames(running, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	apex[0].Names = []string{"filewild.test"}
	if r := report(apex); !strings.HasSuffix(r.Value, "; policy=wildcard") || !r.Wildcard {
		t.Errorf("the running config's record asked for the apex alone: %q, wildcard %v", r.Value, r.Wildcard)
	}
}
