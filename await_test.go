package persist

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func TestIssueRefusesEachKindOfMismatch(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)
	ours := "pebble.letsencrypt.org; accounturi=" + acctURL

	cases := []struct {
		name   string
		value  string
		kind   record.MismatchKind
		reason string
	}{
		{"accounturi", "pebble.letsencrypt.org; accounturi=https://elsewhere.example/acct/1; policy=wildcard", record.MismatchAccount, "accounturi is"},
		{"issuer", "letsencrypt.org; accounturi=" + acctURL + "; policy=wildcard", record.MismatchIssuer, "not one this CA offers"},
		{"policy", ours, record.MismatchPolicy, "policy=wildcard is absent"},
		{"expired", ours + "; policy=wildcard; persistUntil=1000000000", record.MismatchExpired, "has passed"},
		{"malformed", ours + "; policy=wildcard;", record.MismatchMalformed, "trailing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := "mismatch-" + c.name + ".test"
			setTXT(t, record.Name(base), c.value)
			_, err := iss.Issue(context.Background(), newCSR(t, "*."+base))
			var recErr *RecordError
			if !errors.As(err, &recErr) {
				t.Fatalf("error = %v, want a RecordError", err)
			}
			if recErr.Status() != record.StatusMismatch || !recErr.verdict.Has(c.kind) || len(recErr.verdict.Mismatches) != 1 {
				t.Fatalf("verdict = %+v, want only a %s mismatch", recErr.verdict, c.kind)
			}
			if !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), "publish: "+record.ZoneLine(base, ours+"; policy=wildcard")) {
				t.Errorf("error %q lacks the reason %q or the record to publish", err, c.reason)
			}
		})
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
}

func TestIssueAcceptsPublishedForms(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	ours := "pebble.letsencrypt.org; accounturi=" + iss.accountURL(t)

	t.Run("value split into two strings", func(t *testing.T) {
		// an unknown tag makes the value longer than one 255-octet string;
		// the test DNS server then serves it as two
		long := ours + "; note=" + strings.Repeat("x", 260)
		setTXT(t, record.Name("split.test"), long)
		ans, err := iss.judge.Resolver.LookupTXT(context.Background(), record.Name("split.test"))
		if err != nil || len(ans.Views) != 1 || !slices.Equal(ans.Views[0].Values, []string{long}) {
			t.Fatalf("lookup = %+v, %v", ans, err)
		}
		if _, err := iss.Issue(context.Background(), newCSR(t, "split.test")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another CA's record beside ours", func(t *testing.T) {
		setTXT(t, record.Name("two.test"), "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1", ours)
		if _, err := iss.Issue(context.Background(), newCSR(t, "two.test")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CNAME at the record name", func(t *testing.T) {
		dns, _, _ := acmetest.DNS()
		dns.AddDNSCNAMERecord(record.Name("alias.test"), "persist-target.delegated.test.")
		t.Cleanup(func() { dns.DeleteDNSCNAMERecord(record.Name("alias.test")) })
		setTXT(t, "persist-target.delegated.test", ours+"; policy=wildcard")
		ans, err := iss.judge.Resolver.LookupTXT(context.Background(), record.Name("alias.test"))
		if err != nil || len(ans.Views) != 1 || !slices.Equal(ans.Views[0].CNAMEs, []string{"persist-target.delegated.test"}) || len(ans.Views[0].Values) != 1 {
			t.Fatalf("lookup = %+v, %v", ans, err)
		}
		if _, err := iss.Issue(context.Background(), newCSR(t, "*.alias.test", "alias.test")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestIssueServfailIsADNSError(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	dns, _, _ := acmetest.DNS()
	dns.AddDNSServFailRecord(record.Name("servfail.test"))
	t.Cleanup(func() { dns.DeleteDNSServFailRecord(record.Name("servfail.test")) })

	_, err := iss.Issue(context.Background(), newCSR(t, "servfail.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || recErr.Status() != record.StatusDNSError {
		t.Fatalf("error = %v, want a dns-error RecordError", err)
	}
	var dnsErr *dnslookup.Error
	if !errors.As(err, &dnsErr) || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("error %q does not carry the DNS failure", err)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
}

func TestDNSFaultsDuringTheCheckPostNoChallenge(t *testing.T) {
	t.Parallel()
	// a server that never answers is waited out over UDP and TCP at each
	// look, until the propagation timeout: a short query timeout keeps
	// that wait short, for the silent server alone, since a busy machine
	// may take longer than that to answer over TCP
	const queryTimeout, propagation = 300 * time.Millisecond, 500 * time.Millisecond
	ca := startCA(t, acmetest.Options{})
	fake := fakedns.StartForTest(t)
	fake.AddZone("dnsfault.test")
	huge := make([]string, 100)
	for i := range huge {
		huge[i] = strings.Repeat("h", 600)
	}
	cases := []struct {
		name  string
		setup func(record string)
		want  string
	}{
		{"servfail", func(r string) { fake.SetFault(r, fakedns.ServFail) }, "SERVFAIL"},
		{"timeout", func(r string) { fake.SetFault(r, fakedns.Silent) }, "no answer over tcp within " + queryTimeout.String()},
		{"truncated", func(r string) { fake.SetFault(r, fakedns.TruncateAlways) }, "truncated even over TCP"},
		{"64KiB", func(r string) { fake.SetTXT(r, huge...) }, "refusing more than"},
	}
	issuer := func(timeout time.Duration) *testIssuer {
		iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
			iss.Resolvers = []string{fake.Addr}
			iss.PropagationTimeout = caddy.Duration(propagation)
			iss.queryTimeout = timeout
		})
		iss.accountURL(t)
		return iss
	}
	patient, quick := issuer(0), issuer(queryTimeout)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iss, timeout := patient, dnslookup.DefaultQueryTimeout
			if c.name == "timeout" {
				iss, timeout = quick, queryTimeout
			}
			base := c.name + ".dnsfault.test"
			c.setup(record.Name(base))
			start := time.Now()
			_, err := iss.Issue(context.Background(), newCSR(t, base))
			var recErr *RecordError
			if !errors.As(err, &recErr) || recErr.Status() != record.StatusDNSError || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want a dns-error saying %q", err, c.want)
			}
			// the look under way at the deadline ends within its two
			// tries; the slack catches a wait that never ends, not a slow
			// machine
			if took, bound := time.Since(start), propagation+2*timeout+20*time.Second; took > bound {
				t.Errorf("took %s, more than %s", took, bound)
			}
		})
	}
	if n := ca.Counts.Get(acmetest.KindChallenge) + ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the CA received %d orders and challenges", n)
	}
}

func TestMissingRecordIsLoggedOncePerHourPerName(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now()}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	acct, err := iss.accounts.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	in := recordInputs{Inputs: judge.Inputs{Dir: judge.Directory{Draft: record.Draft01}, Offered: []string{acmetest.DefaultIssuerName}, Account: acct}}
	warnings := func() []observer.LoggedEntry {
		return iss.logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("record missing").All()
	}

	check := func(base string, wildcard bool) {
		if err := iss.checkRecord(context.Background(), in, base, wildcard); err == nil {
			t.Fatal("the record check passed without a record")
		}
	}
	check("hourly.test", true)
	check("hourly.test", true)
	if n := len(warnings()); n != 1 {
		t.Fatalf("%d warnings after two checks, want 1", n)
	}
	fields := warnings()[0].ContextMap()
	wantValue := "pebble.letsencrypt.org; accounturi=" + acct.Location + "; policy=wildcard"
	if fields["record_name"] != "_validation-persist.hourly.test" || fields["record_value"] != wantValue || fields["zone_line"] != record.ZoneLine("hourly.test", wantValue) {
		t.Errorf("warning fields = %v", fields)
	}
	check("other-hourly.test", false)
	if n := len(warnings()); n != 2 {
		t.Errorf("another name: %d warnings, want 2", n)
	}
	clock.Advance(59 * time.Minute)
	check("hourly.test", true)
	if n := len(warnings()); n != 2 {
		t.Errorf("after 59 minutes: %d warnings, want still 2", n)
	}
	clock.Advance(2 * time.Minute)
	check("hourly.test", true)
	if n := len(warnings()); n != 3 {
		t.Errorf("after 61 minutes: %d warnings, want 3", n)
	}
}

func TestNearPersistUntilWarnsAtEachCheck(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now().Truncate(time.Second)}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	acct, _ := iss.accounts.Get(context.Background(), true)
	in := recordInputs{Inputs: judge.Inputs{Dir: judge.Directory{Draft: record.Draft01}, Offered: []string{acmetest.DefaultIssuerName}, Account: acct}}
	until := clock.Now().Add(40 * 24 * time.Hour).Truncate(time.Second)
	value, _ := record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: acct.Location, PersistUntil: until}.Value()
	setTXT(t, record.Name("until.test"), value)
	expiring := func() int {
		return len(iss.logs.FilterMessageSnippet("expires soon").All())
	}

	if err := iss.checkRecord(context.Background(), in, "until.test", false); err != nil || expiring() != 0 {
		t.Fatalf("40 days ahead: err %v, %d warnings", err, expiring())
	}
	clock.Advance(11 * 24 * time.Hour) // 29 days left
	for i := 1; i <= 2; i++ {
		if err := iss.checkRecord(context.Background(), in, "until.test", false); err != nil {
			t.Fatal(err)
		}
		if expiring() != i {
			t.Fatalf("check %d: %d warnings", i, expiring())
		}
	}
	entry := iss.logs.FilterMessageSnippet("expires soon").All()[0].ContextMap()
	if entry["days_left"] != int64(29) || entry["record_name"] != "_validation-persist.until.test" {
		t.Errorf("warning fields = %v", entry)
	}
	clock.Advance(30 * 24 * time.Hour) // passed
	if err := iss.checkRecord(context.Background(), in, "until.test", false); err == nil {
		t.Error("a record past its persistUntil passed the check")
	}
}

// The wait for a record ends by the issuer's clock, so the propagation
// deadline moves with a controlled clock as every other time does.
func TestPropagationDeadlineFollowsTheIssuersClock(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now()}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.now = clock.Now
		iss.PropagationTimeout = caddy.Duration(time.Hour)
	})
	iss.accountURL(t)
	csr := newCSR(t, "deadline.test")

	done := make(chan error, 1)
	go func() {
		_, err := iss.Issue(context.Background(), csr)
		done <- err
	}()
	// the first look finds nothing and logs the record to publish
	for len(iss.logs.FilterMessageSnippet("record missing").All()) == 0 {
		select {
		case err := <-done:
			t.Fatalf("Issue returned before the hour passed: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	clock.Advance(time.Hour)
	select {
	case err := <-done:
		var recErr *RecordError
		if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
			t.Errorf("error = %v, want the record missing", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("an hour passed on the issuer's clock, and the wait went on")
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders without a record", n)
	}
}

// The wait looks again an eighth of an interval after its first look, and over
// a whole wait makes no more looks than the fixed interval it replaced,
// which looked every interval and once more at the deadline.
func TestWaitLooksSoonButNoMoreOften(t *testing.T) {
	t.Parallel()
	const interval = 2 * time.Second
	if got := nextLookIn(1, interval); got != interval/8 {
		t.Errorf("the second look comes %s after the first, want %s", got, interval/8)
	}
	for _, wait := range []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, DefaultPropagationTimeout, 10 * time.Minute} {
		fixed := 1
		for at := time.Duration(0); ; fixed++ {
			step := min(interval, wait-at)
			if step <= 0 {
				break
			}
			at += step
		}
		looks := 1
		for at := time.Duration(0); ; looks++ {
			step := nextLookIn(looks, interval)
			if step > wait-at {
				break
			}
			at += step
		}
		if looks > fixed {
			t.Errorf("a %s wait makes %d looks, the fixed interval %d", wait, looks, fixed)
		}
		t.Logf("a %s wait: %d looks (fixed interval: %d)", wait, looks, fixed)
	}
}
