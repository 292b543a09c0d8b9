package persist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/cache"
	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/metrics"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// newTestPermission provisions a permission whose names are served by iss.
func newTestPermission(t testing.TB, iss *Issuer, configure func(*Permission)) (*Permission, *prometheus.Registry, *observer.ObservedLogs) {
	t.Helper()
	p := &Permission{issuersFor: func(string) ([]*Issuer, error) { return []*Issuer{iss}, nil }}
	if configure != nil {
		configure(p)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := p.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	p.logger = zap.New(core)
	return p, ctx.GetMetricsRegistry(), logs
}

// checkCount is how many permission checks reg counted with outcome o.
func checkCount(t testing.TB, reg *prometheus.Registry, o metrics.Outcome) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "caddy_persist_permission_checks_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == o.String() {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

func TestPermissionHonoursTTLsWithAControlledClock(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now()}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	acctURL := iss.accountURL(t)
	ours := "pebble.letsencrypt.org; accounturi=" + acctURL
	p, _, _ := newTestPermission(t, iss.Issuer, func(p *Permission) {
		p.now = clock.Now
		p.CacheTTL = caddy.Duration(5 * time.Minute)
		p.NegativeTTL = caddy.Duration(30 * time.Second)
	})
	ctx := context.Background()

	// added later: honoured once the negative TTL has passed
	if err := p.CertificateAllowed(ctx, "later.perm.test"); !errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Fatalf("no record: %v", err)
	}
	setTXT(t, record.Name("later.perm.test"), ours)
	clock.Advance(29 * time.Second)
	if err := p.CertificateAllowed(ctx, "later.perm.test"); !errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Errorf("within the negative TTL the cached denial must hold: %v", err)
	}
	clock.Advance(2 * time.Second)
	if err := p.CertificateAllowed(ctx, "later.perm.test"); err != nil {
		t.Errorf("after the negative TTL the new record must be honoured: %v", err)
	}

	// removed: new issuance stops once the positive TTL has passed
	setTXT(t, record.Name("removed.perm.test"), ours)
	if err := p.CertificateAllowed(ctx, "removed.perm.test"); err != nil {
		t.Fatal(err)
	}
	setTXT(t, record.Name("removed.perm.test"))
	clock.Advance(4*time.Minute + 59*time.Second)
	if err := p.CertificateAllowed(ctx, "removed.perm.test"); err != nil {
		t.Errorf("within the positive TTL the cached allowance must hold: %v", err)
	}
	clock.Advance(2 * time.Second)
	if err := p.CertificateAllowed(ctx, "removed.perm.test"); !errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Errorf("after the positive TTL a removed record must deny: %v", err)
	}
}

func TestPermissionOutcomesAndMetrics(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)
	p, reg, logs := newTestPermission(t, iss.Issuer, nil)
	ctx := context.Background()

	setTXT(t, record.Name("ok.outcome.test"), "pebble.letsencrypt.org; accounturi="+acctURL)
	setTXT(t, record.Name("other.outcome.test"), "pebble.letsencrypt.org; accounturi=https://other.example/acct/1")
	dns, _, _ := acmetest.DNS()
	dns.AddDNSServFailRecord(record.Name("broken.outcome.test"))
	t.Cleanup(func() { dns.DeleteDNSServFailRecord(record.Name("broken.outcome.test")) })

	if err := p.CertificateAllowed(ctx, "ok.outcome.test"); err != nil {
		t.Errorf("authorized name denied: %v", err)
	}
	if err := p.CertificateAllowed(ctx, "OK.Outcome.Test."); err != nil {
		t.Errorf("the same name, cached: %v", err)
	}
	for name, want := range map[string]string{"none.outcome.test": "_validation-persist.none.outcome.test: missing: no TXT record at the name", "other.outcome.test": "_validation-persist.other.outcome.test: mismatch: accounturi is", "broken.outcome.test": "SERVFAIL", "192.0.2.7": "IP address"} {
		err := p.CertificateAllowed(ctx, name)
		if !errors.Is(err, caddytls.ErrPermissionDenied) {
			t.Errorf("%s: %v, want a denial", name, err)
		} else if !contains(err.Error(), want) {
			t.Errorf("%s: %q does not say %q", name, err, want)
		}
	}
	p.CertificateAllowed(ctx, "broken.outcome.test") // cached
	// a denial names the record the tenant must publish (from the cache)
	for _, name := range []string{"none.outcome.test", "other.outcome.test"} {
		wantLine := record.ZoneLine(name, "pebble.letsencrypt.org; accounturi="+acctURL)
		if err := p.CertificateAllowed(ctx, name); err == nil || !contains(err.Error(), "publish: "+wantLine) {
			t.Errorf("%s: %v does not name the record to publish", name, err)
		}
	}

	want := map[metrics.Outcome]int{metrics.OutcomeAllowed: 1, metrics.OutcomeCacheHit: 4, metrics.OutcomeDeniedMissing: 1, metrics.OutcomeDeniedMismatch: 2, metrics.OutcomeDNSError: 1}
	for outcome, n := range want {
		if got := checkCount(t, reg, outcome); got != n {
			t.Errorf("outcome %s counted %d, want %d", outcome, got, n)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range families {
		if f.GetName() != "caddy_persist_permission_checks_total" {
			continue
		}
		found = true
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "outcome" {
				t.Errorf("labels %v", m.GetLabel())
			}
		}
	}
	if !found {
		t.Error("caddy_persist_permission_checks_total is not in the config's registry")
	}
	if n := len(logs.FilterMessageSnippet("could not be looked up").All()); n != 1 {
		t.Errorf("%d DNS-failure log entries, want 1", n)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestPermissionBoundsLookupsInFlight(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	fake := fakedns.StartForTest(t)
	fake.AddZone("bound.test")
	fake.SetDelay(100 * time.Millisecond)
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.Resolvers = []string{fake.Addr} })
	iss.accountURL(t)
	p, _, _ := newTestPermission(t, iss.Issuer, func(p *Permission) { p.MaxConcurrentLookups = 3 })

	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.CertificateAllowed(context.Background(), fmt.Sprintf("n%d.bound.test", i))
		}()
	}
	wg.Wait()
	if got := fake.MaxInFlight(); got != 3 {
		t.Errorf("at most %d lookups were in flight, want exactly the bound of 3", got)
	}
	// one lookup per name, and one for the parent bound.test, whose
	// record could grant the wildcard; all the names share it
	if got := fake.Queries(); got != 13 {
		t.Errorf("%d queries for 12 names and their parent, want 13", got)
	}
}

func TestPermissionSharesOneLookupPerName(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	fake := fakedns.StartForTest(t)
	fake.AddZone("shared.test")
	fake.SetDelay(50 * time.Millisecond)
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.Resolvers = []string{fake.Addr} })
	acctURL := iss.accountURL(t)
	fake.SetTXT(record.Name("same.shared.test"), "pebble.letsencrypt.org; accounturi="+acctURL)
	p, reg, _ := newTestPermission(t, iss.Issuer, nil)

	var wg sync.WaitGroup
	errs := make([]error, 25)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.CertificateAllowed(context.Background(), "same.shared.test")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// one TXT lookup, and one CAA lookup climbing to the TLD
	if n := fake.QueriesFor(record.Name("same.shared.test"), dns.TypeTXT); n != 1 {
		t.Errorf("25 concurrent checks made %d TXT lookups, want 1", n)
	}
	if n := fake.QueriesFor("same.shared.test", dns.TypeCAA); n != 1 {
		t.Errorf("25 concurrent checks made %d CAA lookups, want 1", n)
	}
	if n := fake.Queries(); n != 4 {
		t.Errorf("25 concurrent checks made %d queries, want 4 (the TXT record, CAA at same.shared.test, shared.test and test)", n)
	}
	if a, h := checkCount(t, reg, metrics.OutcomeAllowed), checkCount(t, reg, metrics.OutcomeCacheHit); a != 1 || h != 24 {
		t.Errorf("outcomes: %d allowed, %d cache hits", a, h)
	}
}

func TestPermissionWithoutAccountOrIssuerIsAnErrorNotADenial(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	p, _, _ := newTestPermission(t, iss.Issuer, nil)
	err := p.CertificateAllowed(context.Background(), "fresh.test")
	if err == nil || errors.Is(err, caddytls.ErrPermissionDenied) || !contains(err.Error(), "no ACME account yet") {
		t.Errorf("no account: %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Errorf("the permission check registered an account (%d newAccount requests)", n)
	}
	p.issuersFor = func(name string) ([]*Issuer, error) { return nil, errors.New("no persist issuer serves " + name) }
	p.decisions = cache.NewExpiring[decision](maxCachedDecisions)
	if err := p.CertificateAllowed(context.Background(), "lost.test"); err == nil || errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Errorf("no issuer: %v", err)
	}
}
