package persist

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/dnspublish"
	"github.com/dnspersist/caddy-persist/internal/record"
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
// (none in this test binary), and never echo a JSON value.
func TestDNSProviderErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	for spec, want := range map[string]string{
		"":                              "--dns is required",
		"cloudflare {env.CF_API_TOKEN}": `no DNS provider module "cloudflare": this Caddy has no DNS provider module; build one in with xcaddy build --with github.com/dnspersist/caddy-persist --with github.com/caddy-dns/<provider>`,
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
