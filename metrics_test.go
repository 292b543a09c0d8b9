package persist

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/letsencrypt/challtestsrv"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/metrics"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// series returns the value of every series of the metric name in reg
// whose labels include want, keyed by its other labels (name=value,
// joined by ",").
func series(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok {
					if v != l.GetValue() {
						continue metrics
					}
					continue
				}
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			value := m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[strings.Join(key, ",")] = value
		}
	}
	return out
}

// Every check of a configured record shows as one series whose status is
// what the check found: the record's own state first, then CAA's, and
// not-offered while the CA offers no dns-persist-01. A passing record's
// persistUntil is a series of its own. A name the config does not list
// (an on-demand tenant) gets none.
func TestRecordStatusShowsWhatEveryCheckFinds(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	running := provisionCaddyfile(t, persistSiteCaddyfile(t.TempDir(), ca, "gauge.metrics.test, *.gauge.metrics.test"))
	reg := running.GetMetricsRegistry()
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	iss := sets[0].Issuer
	ctx := context.Background()
	acct, err := iss.accounts.Get(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	const name = "_validation-persist.gauge.metrics.test"
	status := func() string {
		t.Helper()
		got := series(t, reg, "caddy_persist_record_status", map[string]string{"issuer": ca.URL, "record_name": name})
		if len(got) != 1 {
			t.Fatalf("the record has %d status series, want 1: %v", len(got), got)
		}
		for key, v := range got {
			if v != 1 {
				t.Errorf("series %s is %v, want 1", key, v)
			}
			return strings.TrimPrefix(key, "status=")
		}
		return ""
	}
	check := func() {
		t.Helper()
		if _, err := iss.inspect(ctx, sets[0].Names, true); err != nil {
			t.Fatal(err)
		}
	}
	if got := series(t, reg, "caddy_persist_record_status", nil); len(got) != 0 {
		t.Fatalf("series before any check: %v", got)
	}
	check()
	if got := status(); got != judge.StateMissing {
		t.Errorf("no record: status %s", got)
	}
	ours := acmetest.DefaultIssuerName + "; accounturi=" + acct.Location + "; policy=wildcard"
	for _, c := range []struct {
		published, want string
	}{
		{acmetest.DefaultIssuerName + "; accounturi=https://ca.example/acct/other; policy=wildcard", judge.StateMismatch},
		{ours + "; persistUntil=1500000000", judge.StateExpired},
		{ours, judge.StateOK},
	} {
		setTXT(t, name, c.published)
		check()
		if got := status(); got != c.want {
			t.Errorf("published %q: status %s, want %s", c.published, got, c.want)
		}
	}
	if got := series(t, reg, "caddy_persist_record_persist_until_timestamp_seconds", nil); len(got) != 0 {
		t.Errorf("a record without persistUntil has a persistUntil series: %v", got)
	}
	until := time.Now().Add(90 * 24 * time.Hour).Unix()
	setTXT(t, name, ours+"; persistUntil="+strconv.FormatInt(until, 10))
	check()
	if got := series(t, reg, "caddy_persist_record_persist_until_timestamp_seconds", map[string]string{"issuer": ca.URL, "record_name": name}); got[""] != float64(until) {
		t.Errorf("persistUntil series %v, want %d", got, until)
	}

	setCAA(t, "gauge.metrics.test", challtestsrv.CAAPolicy{Tag: "issue", Value: "pki.goog"})
	check()
	if got := status(); got != judge.StateCAA {
		t.Errorf("CAA naming another CA: status %s", got)
	}
	setCAA(t, "gauge.metrics.test")
	iss.notOffered.set(&ChallengeNotOfferedError{CA: ca.URL, ObservedAt: time.Now(), Identifier: "gauge.metrics.test", Offered: []string{"http-01"}})
	if got := status(); got != judge.StateNotOffered {
		t.Errorf("the CA seen not offering dns-persist-01: status %s", got)
	}
	iss.notOffered.set(nil)
	check()
	if got := status(); got != judge.StateOK {
		t.Errorf("the CA offering again: status %s", got)
	}

	// an on-demand tenant's name is judged, and stays out of the labels
	in, err := iss.recordInputs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.judge.Record(ctx, in.Inputs, "tenant.metrics.test", false, judge.Fresh); err != nil {
		t.Fatal(err)
	}
	for key := range series(t, reg, "caddy_persist_record_status", nil) {
		if strings.Contains(key, "tenant") {
			t.Errorf("a name the config does not list has a series: %s", key)
		}
	}
}

// Each certificate asked of the issuer counts once, by outcome: held back
// by a missing record, then issued; each wait before an order is timed.
func TestOrdersAreCountedByOutcome(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.PropagationTimeout = caddy.Duration(200 * time.Millisecond)
	})
	reg := prometheus.NewRegistry()
	iss.metrics = metrics.New(reg)
	ctx := context.Background()
	if _, err := iss.Issue(ctx, newCSR(t, "orders.metrics.test")); err == nil {
		t.Fatal("issued without a record")
	}
	iss.publish(t, "orders.metrics.test", false)
	if _, err := iss.Issue(ctx, newCSR(t, "orders.metrics.test")); err != nil {
		t.Fatal(err)
	}
	orders := series(t, reg, "caddy_persist_orders_total", map[string]string{"issuer": ca.URL})
	if len(orders) != 2 || orders["outcome="+judge.StateMissing] != 1 || orders["outcome="+metrics.OrderIssued] != 1 {
		t.Errorf("orders by outcome: %v", orders)
	}
	if waits := series(t, reg, "caddy_persist_record_wait_seconds", map[string]string{"issuer": ca.URL}); waits[""] != 2 {
		t.Errorf("waits timed: %v, want 2", waits)
	}
}

// The outcome of an order is the state of what held it back, in the
// words the record states use.
func TestOrderOutcomesUseTheRecordStatesWords(t *testing.T) {
	t.Parallel()
	missing := newRecordError(record.Expectation{Domain: "a.test"}, record.Verdict{Status: record.StatusMissing}, nil)
	expired := newRecordError(record.Expectation{Domain: "a.test"}, record.Verdict{Status: record.StatusMismatch, Mismatches: []record.Mismatch{{Kind: record.MismatchExpired}}}, nil)
	lookup := newRecordError(record.Expectation{Domain: "a.test"}, record.Verdict{}, &dnsLookupFailure{})
	for err, want := range map[error]string{
		nil:                         metrics.OrderIssued,
		missing:                     judge.StateMissing,
		expired:                     judge.StateExpired,
		lookup:                      judge.StateDNSError,
		&CAAError{Domain: "a.test"}: judge.StateCAA,
		&ChallengeNotOfferedError{CA: "https://ca"}:            judge.StateNotOffered,
		&judge.PersistUntilPassedError{Until: time.Unix(1, 0)}: judge.StateExpired,
		context.DeadlineExceeded:                               metrics.OrderCAError,
	} {
		if got := orderOutcome(err); got != want {
			t.Errorf("%v: outcome %s, want %s", err, got, want)
		}
	}
}

// dnsLookupFailure is a failed DNS lookup.
type dnsLookupFailure struct{}

func (*dnsLookupFailure) Error() string { return "no server answered" }

// Each change to the account counts once, by action; a step that finds
// its work done counts nothing.
func TestAccountChangesAreCountedByAction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	iss := newTestIssuer(t, startCA(t, acmetest.Options{}), t.TempDir(), nil)
	reg := prometheus.NewRegistry()
	iss.metrics = metrics.New(reg)
	const name = "changes.metrics.test"
	iss.accountURL(t)
	if _, err := iss.target(name).rollover(ctx); err != nil {
		t.Fatal(err)
	}
	for _, req := range []replaceRequest{{}, {}} {
		if _, err := iss.target(name).replace(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	reports, err := iss.inspect(ctx, []string{name}, false)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := iss.accounts.Replace(ctx, account.Pending)
	if err != nil {
		t.Fatal(err)
	}
	replacement, err := record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: pending.Account.Location}.Value()
	if err != nil {
		t.Fatal(err)
	}
	setTXT(t, reports[0].RecordName, replacement)
	for range 2 {
		if _, err := iss.target(name).replace(ctx, replaceRequest{Switch: true, DeactivateOld: true}); err != nil {
			t.Fatal(err)
		}
	}
	got := series(t, reg, "caddy_persist_account_changes_total", nil)
	want := map[string]float64{"action=rollover": 1, "action=replace": 1, "action=switch": 1, "action=deactivate": 1, "action=import": 0}
	if len(got) != len(want) {
		t.Errorf("account changes %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("account changes %v, want %v", got, want)
			break
		}
	}
}

// A config file whose issuer writes records with other settings than the
// running one (another persist_until) is checked through the running
// Caddy, but what it finds is not what Caddy's orders meet: the running
// record's series stays as it was.
func TestAFileWithOtherSettingsLeavesTheRunningStatusAlone(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	running := provisionCaddyfile(t, persistSiteCaddyfile(t.TempDir(), ca, "settings.metrics.test"))
	reg := running.GetMetricsRegistry()
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	ctx := context.Background()
	reports, err := sets[0].Issuer.inspectWith(ctx, sets[0].Names, inspectOptions{register: true, check: true})
	if err != nil {
		t.Fatal(err)
	}
	setTXT(t, reports[0].RecordName, reports[0].Value)
	status := func() map[string]float64 {
		return series(t, reg, "caddy_persist_record_status", map[string]string{"record_name": reports[0].RecordName})
	}
	for _, settings := range []string{"", "2100-01-01T00:00:00Z"} {
		id := identityOf(sets[0].Issuer)
		id.PersistUntil = settings
		file, err := setsFor(running, []issuerNames{{Issuer: id, Domains: sets[0].Names}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inspectAll(ctx, file, inspectOptions{check: true}); err != nil {
			t.Fatal(err)
		}
		if got := status(); len(got) != 1 || got["issuer="+ca.URL+",status=ok"] != 1 {
			t.Errorf("after checking a file with persist_until %q, the running record shows %v, want ok", settings, got)
		}
	}
}
