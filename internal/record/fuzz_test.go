package record

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseRecord feeds arbitrary published values to the parser: it must
// not panic, and whatever it accepts must build back into a value that
// parses to the same record and draws no warning, unless its
// persistUntil is before 1970, which Value refuses to write and every CA
// reads as passed.
func FuzzParseRecord(f *testing.F) {
	for _, seed := range []string{
		"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123; policy=wildcard",
		"ca.example;accounturi=https://ca/1;persistUntil=1893456000",
		"  ca.example ;\tAccountURI = https://ca/1 ; POLICY=WildCard ; x-future=1",
		"ca.example; accounturi=https://ca/1;",
		"ca.example; accounturi=https://ca/1; accounturi=https://ca/2",
		"ca.example; persistUntil=-1; accounturi=a",
		"ca..example; accounturi=a",
		"; accounturi=a",
		"ca.example; accounturi=https://ca/\u00e9",
		"LetsEncrypt.ORG.; accounturi=https://ca/1",
		"b\u00fccher.example; accounturi=https://ca/1",
		"b\\195\\188cher.example; accounturi=https://ca/1",
		"ca.example; x_y=1; bad tag=1; *=; \u00e9=; accounturi=https://ca/1",
		"ca.example; accounturi=https://ca/1; persistUntil=+1827662400",
		"ca.example; accounturi=https://ca/1; persistUntil=-62135596800",
		"ca.example; accounturi=https://ca/1; persistUntil=9223372036854775807",
		"ca.example; ext=; accounturi=https://ca/1; ext=",
		"ca.example; accounturi=https://ca/1; policy=; e=\u00e9",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		rec, err := Parse(value)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("Parse(%q) returned %T, want *ParseError", value, err)
			}
			return
		}
		built, err := rec.Value()
		if !rec.PersistUntil.IsZero() && rec.PersistUntil.Unix() < 0 {
			if err == nil {
				t.Fatalf("accepted %q, and its record %+v built from before 1970: %q", value, rec, built)
			}
			return
		}
		if err != nil {
			t.Fatalf("accepted %q, but its record %+v does not build: %v", value, rec, err)
		}
		again, warnings, err := parse(built)
		if err != nil || again != rec || len(warnings) != 0 {
			t.Fatalf("round trip of %q: built %q, parsed %+v, %v, warnings %v; want %+v", value, built, again, err, warnings, rec)
		}
	})
}

// FuzzRecordRoundTrip builds records from arbitrary fields: a value that
// builds must parse back to the same record.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add("letsencrypt.org", "https://acme-v02.api.letsencrypt.org/acme/acct/1", true, int64(1893456000))
	f.Add("pebble.letsencrypt.org", "https://127.0.0.1:14000/my-account/1", false, int64(0))
	f.Add("ca.example", "https://ca/h/sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw", true, int64(-5))
	f.Fuzz(func(t *testing.T, issuer, uri string, wildcard bool, until int64) {
		rec := Record{IssuerDomainName: issuer, AccountURI: uri, Wildcard: wildcard}
		if until != 0 {
			rec.PersistUntil = time.Unix(until, 0).UTC()
		}
		value, err := rec.Value()
		if err != nil {
			return
		}
		back, err := Parse(value)
		if err != nil {
			t.Fatalf("built %q from %+v, which does not parse: %v", value, rec, err)
		}
		if back != rec {
			t.Fatalf("built %q from %+v, parsed back %+v", value, rec, back)
		}
		for _, s := range splitStrings(value) {
			if len(s) > 255 {
				t.Fatalf("a string of %d octets", len(s))
			}
		}
		if strings.Join(splitStrings(value), "") != value {
			t.Fatal("split strings do not join back")
		}
	})
}

// FuzzHashedAccountURIInput checks the normalization of the domain that
// goes into a draft -02 hash: case, a trailing dot and Unicode (IDNA) forms
// of one name give one hash, and normalizing is idempotent.
func FuzzHashedAccountURIInput(f *testing.F) {
	for _, seed := range []string{"example.com", "EXAMPLE.com.", "bücher.example", "xn--bcher-kva.example", "*", "a..b", strings.Repeat("a", 64) + ".com", "ÉCOLE.fr", "faß.de"} {
		f.Add(seed)
	}
	const thumb, acct = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "https://ca.example/acct/123"
	f.Fuzz(func(t *testing.T, domain string) {
		norm, err := NormalizeDomain(domain)
		hash, hashErr := HashedAccountURI("p/", domain, thumb, acct)
		if domain == AnyDomain {
			if hashErr != nil {
				t.Fatalf("the any-domain hash failed: %v", hashErr)
			}
			return
		}
		if (err == nil) != (hashErr == nil) {
			t.Fatalf("NormalizeDomain(%q) err=%v but HashedAccountURI err=%v", domain, err, hashErr)
		}
		if err != nil {
			return
		}
		if len(norm) > maxDomainOctets || norm != strings.ToLower(norm) || strings.HasSuffix(norm, ".") {
			t.Fatalf("NormalizeDomain(%q) = %q", domain, norm)
		}
		for i := 0; i < len(norm); i++ {
			if norm[i] >= 0x80 {
				t.Fatalf("NormalizeDomain(%q) = %q is not an A-label", domain, norm)
			}
		}
		again, err := NormalizeDomain(norm)
		if err != nil || again != norm {
			t.Fatalf("NormalizeDomain is not idempotent: %q -> %q -> %q, %v", domain, norm, again, err)
		}
		for _, variant := range []string{norm, norm + ".", strings.ToUpper(norm)} {
			h, err := HashedAccountURI("p/", variant, thumb, acct)
			if err != nil || h != hash {
				t.Fatalf("hash of %q = %q, %v; hash of %q = %q", variant, h, err, domain, hash)
			}
		}
	})
}
