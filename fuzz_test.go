package persist

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// FuzzUnmarshalCaddyfile feeds arbitrary blocks to the Caddyfile parser:
// it must not panic, and what it accepts must be within the limits the
// parser promises.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"persist https://ca.example/dir {\n\temail a@b.c\n\tpropagation_timeout -1\n}",
		"persist {\n\tdir https://ca/dir\n\teab kid mac\n\tresolvers 1.1.1.1 8.8.8.8:53\n\tpersist_until 2027-06-30T00:00:00Z\n}",
		"persist {\n\tpreferred_chains smallest\n\tlifetime 6d\n\ttimeout 90s\n\tissuer_domain_name letsencrypt.org\n}",
		"persist {\n\tpreferred_chains {\n\t\troot_common_name \"ISRG Root X1\"\n\t}\n\ttrusted_roots a.pem b.pem\n}",
		"persist {\n\tnew_account_if_missing\n\taccount_key {env.KEY}\n\tprofile shortlived\n}",
		"persist {\n\tpersist_until 99999999999999999999\n}",
		"persist {\n\tpropagation_timeout 0\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Fuzzfile")
		if err != nil {
			return
		}
		var iss Issuer
		if err := iss.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if iss.PropagationTimeout < -1 {
			t.Fatalf("accepted propagation_timeout %d from %q", iss.PropagationTimeout, input)
		}
		if iss.ACMETimeout < 0 || iss.CertificateLifetime < 0 {
			t.Fatalf("accepted a negative duration from %q", input)
		}
		if name := iss.IssuerDomainName; name != "" && !strings.Contains(name, "{") {
			if err := record.CheckIssuerDomainName(name); err != nil {
				t.Fatalf("accepted issuer_domain_name %q: %v", name, err)
			}
		}
		if until := iss.PersistUntil; until != "" && !strings.Contains(until, "{") {
			if _, err := parsePersistUntil(until); err != nil {
				t.Fatalf("accepted persist_until %q: %v", until, err)
			}
		}
	})
}
