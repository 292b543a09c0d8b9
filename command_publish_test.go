package persist

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/dnspublish"
	"github.com/dnspersist/caddy-persist/internal/record"
	"github.com/dnspersist/caddy-persist/internal/redact"
	"github.com/libdns/libdns"
)

// What publish writes for each state a check reports: the value where it
// is not served, nothing where it is published and servers lag or where
// DNS cannot tell, the replacement of an earlier key's value, and stale
// accounts' values only when asked.
func TestPublishWritesOnlyWhatMakesRecordsPass(t *testing.T) {
	t.Parallel()
	const name = "_validation-persist.example.test"
	report := func(status record.Status, mutate func(*RecordReport)) RecordReport {
		r := RecordReport{RecordName: name, Value: "want", Status: status, Published: []string{"other-ca"}}
		if mutate != nil {
			mutate(&r)
		}
		return r
	}
	add := dnspublish.Change{Name: name, Value: "want"}
	cases := []struct {
		what   string
		report RecordReport
		stale  bool
		want   []dnspublish.Change
	}{
		{"missing", report(record.StatusMissing, nil), false, []dnspublish.Change{add}},
		{"another account's value", report(record.StatusMismatch, nil), false, []dnspublish.Change{add}},
		{"ok", report(record.StatusOK, func(r *RecordReport) { r.Published = []string{"want"} }), false, nil},
		{"published, a server behind", report(record.StatusMissing, func(r *RecordReport) { r.Behind = []string{"ns2"} }), false, nil},
		{"the value published, mismatching elsewhere", report(record.StatusMismatch, func(r *RecordReport) { r.Published = []string{"want", "bad"} }), false, nil},
		{"dns-error", report(record.StatusDNSError, nil), false, nil},
		{"dnssec", report(record.StatusDNSSEC, nil), false, nil},
		{"not offered, the record missing", report(statusNotOffered, func(r *RecordReport) { r.RecordStatus = record.StatusMissing }), false, []dnspublish.Change{add}},
		{"an earlier key's value", report(record.StatusOK, func(r *RecordReport) {
			r.PreviousKey, r.Published = true, []string{"old-key"}
			r.Stale = []StaleValue{{Value: "old-key", PreviousKey: true}}
		}), false, []dnspublish.Change{add, {Name: name, Value: "old-key", Remove: true}}},
		{"a replaced account's value, kept", report(record.StatusOK, func(r *RecordReport) {
			r.Published = []string{"want", "old-account"}
			r.Stale = []StaleValue{{Value: "old-account", AccountURL: "https://ca/acct/old"}}
		}), false, nil},
		{"a replaced account's value, removed", report(record.StatusOK, func(r *RecordReport) {
			r.Published = []string{"want", "old-account"}
			r.Stale = []StaleValue{{Value: "old-account", AccountURL: "https://ca/acct/old"}}
		}), true, []dnspublish.Change{{Name: name, Value: "old-account", Remove: true}}},
	}
	for _, c := range cases {
		if got := publishChanges([]RecordReport{c.report}, c.stale); !slices.Equal(got, c.want) {
			t.Errorf("%s: changes %v, want %v", c.what, got, c.want)
		}
	}
	// two CAs' issuers sharing a value write it once
	twice := []RecordReport{report(record.StatusMissing, nil), report(record.StatusMissing, nil)}
	if got := publishChanges(twice, false); len(got) != 1 {
		t.Errorf("a value two reports need: %v", got)
	}
}

// The settings that may be secret are every string but those naming a
// place or a kind, with placeholders expanded too.
func TestProviderSecretsKeepPlacesAndKinds(t *testing.T) {
	t.Setenv("PERSIST_TEST_PROVIDER_TOKEN", "tok-from-the-environment")
	settings, _ := json.Marshal(map[string]any{
		"api_token":  "{env.PERSIST_TEST_PROVIDER_TOKEN}",
		"key":        "c2VjcmV0LXRzaWcta2V5",
		"key_name":   "update",
		"key_alg":    "hmac-sha256",
		"server":     "192.0.2.53:53",
		"nested":     map[string]any{"password": "hunter22", "region": "eu-west-1"},
		"access_key": "AKIAEXAMPLE",
	})
	secrets := providerSecrets(settings)
	for _, want := range []string{"{env.PERSIST_TEST_PROVIDER_TOKEN}", "tok-from-the-environment", "c2VjcmV0LXRzaWcta2V5", "hunter22", "AKIAEXAMPLE"} {
		if !slices.Contains(secrets, want) {
			t.Errorf("%q is not kept out of the output (secrets %q)", want, secrets)
		}
	}
	for _, place := range []string{"update", "hmac-sha256", "192.0.2.53:53", "eu-west-1"} {
		if slices.Contains(secrets, place) {
			t.Errorf("%q is redacted, though it names a place or a kind", place)
		}
	}
}

// Bad --dns values say what to do, list the providers this binary has
// (this test binary's own), and never echo a JSON value.
func TestDNSProviderErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	for spec, want := range map[string]string{
		"":                              "--dns is required",
		"cloudflare {env.CF_API_TOKEN}": `no DNS provider module "cloudflare": this Caddy has the DNS provider modules persist_quoting_test; build another in with xcaddy build --with github.com/dnspersist/caddy-persist --with github.com/caddy-dns/<provider>`,
		`{"name":"cloudflare","api_token":"tok"}`: `no DNS provider module "cloudflare"`,
		`{"api_token":"tok-in-json"}`:             `--dns is not a JSON object with the provider's name in "name" (value not shown)`,
	} {
		_, err := loadDNSProvider(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--dns %q: %v, want %q", spec, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "tok") {
			t.Errorf("--dns %q: the error %q repeats a value", spec, err)
		}
	}
}

// quotingProvider is a DNS provider module whose Caddyfile parsing, like
// many, quotes the token it stumbles on.
type quotingProvider struct {
	Token string `json:"api_token,omitempty"`
}

func (quotingProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "dns.providers.persist_quoting_test", New: func() caddy.Module { return new(quotingProvider) }}
}

func (p *quotingProvider) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	p.Token = d.Val()
	if d.NextArg() {
		return d.Errf("unexpected %s after the token %s", d.Val(), p.Token)
	}
	return nil
}

func (*quotingProvider) AppendRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errors.New("not a DNS host")
}

func (*quotingProvider) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errors.New("not a DNS host")
}

func init() { caddy.RegisterModule(quotingProvider{}) }

// A provider's Caddyfile error that quotes the token, as given or from
// the environment, prints neither.
func TestDNSProviderParseErrorsKeepTheTokenOut(t *testing.T) {
	t.Setenv("PERSIST_TEST_QUOTED_TOKEN", "tok-from-env-123456")
	for _, spec := range []string{
		"persist_quoting_test tok-given-123456 extra-word",
		"persist_quoting_test {env.PERSIST_TEST_QUOTED_TOKEN} extra-word",
	} {
		_, err := loadDNSProvider(spec)
		if err == nil || !strings.Contains(err.Error(), redact.Mark) {
			t.Errorf("--dns %q: %v, want an error with the token redacted", spec, err)
			continue
		}
		if strings.Contains(err.Error(), "tok-") {
			t.Errorf("--dns %q: the error %q quotes the token", spec, err)
		}
	}
}

// After a rollover at a draft -02 CA, the check finds the value made with
// the old key (it still passes) as stale, and publish replaces it: the
// new value added, then the old one removed.
func TestPublishReplacesTheValueOfAnEarlierKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{Wrap: draft02})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	const base = "rolled.publish.test"
	before, err := iss.inspect(ctx, []string{base}, false)
	if err != nil {
		t.Fatal(err)
	}
	old := before[0]
	setTXT(t, old.RecordName, old.Value, otherCAValue)
	if _, err := iss.accounts.Rollover(ctx); err != nil {
		t.Fatal(err)
	}
	checked, err := iss.inspect(ctx, []string{base}, true)
	if err != nil {
		t.Fatal(err)
	}
	r := checked[0]
	if r.Status != record.StatusOK || !r.PreviousKey || len(r.Stale) != 1 || r.Stale[0].Value != old.Value || !r.Stale[0].PreviousKey {
		t.Fatalf("after the rollover the check reports %s, previous key %v, stale %+v", r.Status, r.PreviousKey, r.Stale)
	}
	want := []dnspublish.Change{{Name: r.RecordName, Value: r.Value}, {Name: r.RecordName, Value: old.Value, Remove: true}}
	if got := publishChanges(checked, false); !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}

	setTXT(t, old.RecordName, r.Value, otherCAValue)
	checked, err = iss.inspect(ctx, []string{base}, true)
	if err != nil {
		t.Fatal(err)
	}
	if r := checked[0]; r.Status != record.StatusOK || r.PreviousKey || len(r.Stale) != 0 {
		t.Errorf("once replaced: %s, previous key %v, stale %+v", r.Status, r.PreviousKey, r.Stale)
	}
	if got := publishChanges(checked, true); len(got) != 0 {
		t.Errorf("changes once replaced, even removing stale values: %v; another CA's record is not ours to remove", got)
	}
}

// otherCAValue is another CA's record, which nothing may remove.
const otherCAValue = "ca.other.example; accounturi=https://ca.other.example/acct/9"
