package persist

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// provisionCaddyfile adapts and provisions a Caddyfile the way the
// commands do, without starting anything.
func provisionCaddyfile(t *testing.T, body string) caddy.Context {
	t.Helper()
	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	return ctx
}

func namesOf(sets []servedSet) [][]string {
	var out [][]string
	for _, s := range sets {
		names := slices.Clone(s.Names)
		slices.Sort(names)
		out = append(out, names)
	}
	return out
}

func TestServedNamesFollowsCaddysPolicies(t *testing.T) {
	dir := t.TempDir()
	ctx := provisionCaddyfile(t, `{
	storage file_system `+dir+`
	admin off
}

example.test, *.example.test, www.example.test {
	tls {
		issuer persist {
			email a@example.test
		}
	}
	respond "a"
}

other.test {
	tls {
		issuer persist {
			email b@example.test
		}
	}
	respond "b"
}

plain.test {
	tls internal
	respond "c"
}
`)
	sets, err := servedNames(ctx, nil, []string{"Tenant.Example.", "*.tenant.example", "other.test"})
	if err != nil {
		t.Fatal(err)
	}
	got := namesOf(sets)
	want := [][]string{
		{"*.example.test", "*.tenant.example", "example.test", "tenant.example"},
		{"other.test"},
	}
	if len(got) != 2 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("served names = %v, want %v (www.example.test is served by the wildcard; plain.test is not persist's)", got, want)
	}
	if sets[0].Issuer.Email != "a@example.test" || sets[1].Issuer.Email != "b@example.test" {
		t.Errorf("sets belong to %s and %s", sets[0].Issuer.Email, sets[1].Issuer.Email)
	}
}

func TestServedNamesWithGlobalCertIssuer(t *testing.T) {
	dir := t.TempDir()
	ctx := provisionCaddyfile(t, `{
	storage file_system `+dir+`
	admin off
	cert_issuer persist {
		email ops@example.test
	}
}

a.test, b.test {
	respond "a"
}
`)
	sets, err := servedNames(ctx, []string{"automated.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := namesOf(sets); len(got) != 1 || !slices.Equal(got[0], []string{"a.test", "automated.test", "b.test"}) {
		t.Errorf("served names = %v", got)
	}
}

func TestServedNamesWithoutPersistIssuer(t *testing.T) {
	ctx := provisionCaddyfile(t, "{\n\tstorage file_system "+t.TempDir()+"\n\tadmin off\n}\n\nplain.test {\n\ttls internal\n\trespond \"x\"\n}\n")
	if _, err := servedNames(ctx, nil, []string{"x.test"}); err == nil || !strings.Contains(err.Error(), "cert_issuer persist") {
		t.Errorf("error = %v", err)
	}
}

// controlledClock is a clock tests move by hand.
type controlledClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *controlledClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *controlledClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestMissingRecordIsLoggedOncePerHourPerName(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now()}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	acct, err := iss.accounts.get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	in := recordInputs{dir: caDirectory{Draft: record.Draft01}, offered: []string{acmetest.DefaultIssuerName}, acct: acct}
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
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now().Truncate(time.Second)}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	acct, _ := iss.accounts.get(context.Background(), true)
	in := recordInputs{dir: caDirectory{Draft: record.Draft01}, offered: []string{acmetest.DefaultIssuerName}, acct: acct}
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

func TestDailyCheckCoversServedNames(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	storage := t.TempDir()
	running := provisionCaddyfile(t, `{
	storage file_system `+storage+`
	admin off
}

daily.test, *.daily.test {
	tls {
		issuer persist `+ca.URL+` {
			email ops@example.test
			trusted_roots `+ca.TLSRootsFile+`
			resolvers `+testDNSAddr+`
		}
	}
	respond "hi"
}
`)
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	iss := sets[0].Issuer
	logs := observeLogs(iss)

	// no account yet: the daily check registers nothing
	iss.checkServedRecords(context.Background(), running)
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Fatalf("the daily check contacted newAccount %d times", n)
	}
	if _, err := iss.accounts.get(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	iss.checkServedRecords(context.Background(), running)
	missing := logs.FilterMessageSnippet("record missing").All()
	if len(missing) != 1 || missing[0].ContextMap()["record_name"] != "_validation-persist.daily.test" ||
		!strings.HasSuffix(missing[0].ContextMap()["record_value"].(string), "; policy=wildcard") {
		t.Errorf("daily check logged %v", missing)
	}
}
