package persist

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestRecordValueRoundTrip(t *testing.T) {
	until := time.Unix(1893456000, 0).UTC()
	cases := []struct {
		rec  Record
		want string
	}{
		{Record{IssuerDomainName: "letsencrypt.org", AccountURI: "https://acme-v02.api.letsencrypt.org/acme/acct/123"},
			"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123"},
		{Record{IssuerDomainName: "letsencrypt.org", AccountURI: "https://ca.example/acct/1", Wildcard: true},
			"letsencrypt.org; accounturi=https://ca.example/acct/1; policy=wildcard"},
		{Record{IssuerDomainName: "ca.example", AccountURI: "https://ca.example/acct/1", Wildcard: true, PersistUntil: until},
			"ca.example; accounturi=https://ca.example/acct/1; policy=wildcard; persistUntil=1893456000"},
	}
	for _, c := range cases {
		got, err := c.rec.Value()
		if err != nil {
			t.Fatalf("Value(%+v): %v", c.rec, err)
		}
		if got != c.want {
			t.Errorf("Value() = %q, want %q", got, c.want)
		}
		back, err := ParseRecord(got)
		if err != nil {
			t.Fatalf("ParseRecord(%q): %v", got, err)
		}
		if back != c.rec {
			t.Errorf("ParseRecord(Value()) = %+v, want %+v", back, c.rec)
		}
	}
}

func TestRecordValueRefusesBadFields(t *testing.T) {
	for _, rec := range []Record{
		{IssuerDomainName: "", AccountURI: "https://a/1"},
		{IssuerDomainName: "LetsEncrypt.org", AccountURI: "https://a/1"},
		{IssuerDomainName: "letsencrypt.org.", AccountURI: "https://a/1"},
		{IssuerDomainName: "letsencrypt.org", AccountURI: ""},
		{IssuerDomainName: "letsencrypt.org", AccountURI: "https://a/1; policy=wildcard"},
		{IssuerDomainName: "letsencrypt.org", AccountURI: "https://a/ü"},
	} {
		if v, err := rec.Value(); err == nil {
			t.Errorf("Value(%+v) = %q, want an error", rec, v)
		}
	}
}

func TestParseRecordAcceptsRFC8659Forms(t *testing.T) {
	cases := map[string]Record{
		"ca.example;accounturi=https://ca.example/a/1":                          {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		"  ca.example ;\taccounturi = https://ca.example/a/1 ; POLICY=WildCard": {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1", Wildcard: true},
		"ca.example; AccountURI=https://ca.example/a/1; policy=other":           {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		"ca.example; accounturi=https://ca.example/a/1; future-tag=x":           {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		"ca.example; accounturi=https://ca.example/a/1; PersistUntil=0":         {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1", PersistUntil: time.Unix(0, 0).UTC()},
	}
	for value, want := range cases {
		got, err := ParseRecord(value)
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", value, err)
			continue
		}
		if got != want {
			t.Errorf("ParseRecord(%q) = %+v, want %+v", value, got, want)
		}
	}
}

func TestParseRecordRejectsMalformed(t *testing.T) {
	cases := map[string]string{
		"ca.example; accounturi=https://a/1;":                                   "trailing",
		"ca.example;; accounturi=https://a/1":                                   "empty parameter",
		"ca.example; accounturi=https://a/1; ACCOUNTURI=https://a/2":            "duplicate",
		"ca.example; accounturi=":                                               "accounturi is empty",
		"ca.example; policy=wildcard":                                           "no accounturi",
		"ca.example":                                                            "no accounturi",
		"; accounturi=https://a/1":                                              "empty",
		"ca.example; accounturi=https://a/1; persistUntil=2027-01-01":           "not base-10",
		"ca.example; accounturi=https://a/1; persistUntil=+5":                   "not base-10",
		"ca.example; accounturi=https://a/1; persistUntil=99999999999999999999": "out of range",
		"ca.example; accounturi=https://a/1 x":                                  "space",
		"ca.example; accounturi=https://a/é":                                    "non-ASCII",
		"ca.example; noequals":                                                  "not tag=value",
		"ca.example; -bad=1; accounturi=https://a/1":                            "invalid tag",
		"ca..example; accounturi=https://a/1":                                   "not a valid domain",
	}
	for value, wantReason := range cases {
		_, err := ParseRecord(value)
		var perr *ParseError
		if !errors.As(err, &perr) {
			t.Errorf("ParseRecord(%q) error = %v, want a ParseError", value, err)
			continue
		}
		if !strings.Contains(perr.Error(), wantReason) {
			t.Errorf("ParseRecord(%q) error = %q, want it to mention %q", value, perr, wantReason)
		}
	}
}

func TestBaseDomainAndRecordName(t *testing.T) {
	cases := []struct {
		name, base string
		wildcard   bool
	}{
		{"example.com", "example.com", false},
		{"*.example.com", "example.com", true},
		{"Sub.Example.COM.", "sub.example.com", false},
		{"*.bücher.example", "xn--bcher-kva.example", true},
	}
	for _, c := range cases {
		base, wildcard, err := BaseDomain(c.name)
		if err != nil {
			t.Fatalf("BaseDomain(%q): %v", c.name, err)
		}
		if base != c.base || wildcard != c.wildcard {
			t.Errorf("BaseDomain(%q) = %q, %v; want %q, %v", c.name, base, wildcard, c.base, c.wildcard)
		}
	}
	if got := RecordName("example.com"); got != "_validation-persist.example.com" {
		t.Errorf("RecordName = %q", got)
	}
	for _, bad := range []string{"", "*", "a.*.example.com", "**.example.com", strings.Repeat("a", 64) + ".example", strings.Repeat("abcdefghi.", 26) + "com"} {
		if _, _, err := BaseDomain(bad); err == nil {
			t.Errorf("BaseDomain(%q) succeeded, want an error", bad)
		}
	}
}

func TestSplitStringsAndZoneLine(t *testing.T) {
	long := "ca.example; accounturi=https://ca.example/acct/" + strings.Repeat("9", 300)
	parts := SplitStrings(long)
	if len(parts) != 2 || len(parts[0]) != 255 || strings.Join(parts, "") != long {
		t.Fatalf("SplitStrings gave %d parts of %d octets", len(parts), len(parts[0]))
	}
	line := ZoneLine("example.com", long)
	if !strings.HasPrefix(line, `_validation-persist.example.com. IN TXT "ca.example; `) || strings.Count(line, `" "`) != 1 {
		t.Errorf("ZoneLine = %q", line)
	}
	if got := ZoneLine("example.com", `a"b\c`); got != `_validation-persist.example.com. IN TXT "a\"b\\c"` {
		t.Errorf("ZoneLine escaping = %q", got)
	}
}

// The draft -02 test vectors (SPEC.md, from the draft's example).
func TestHashedAccountURIDraftVectors(t *testing.T) {
	const thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	const acct = "https://ca.example/acct/123"
	cases := map[string]string{
		"example.com":  "5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw",
		"EXAMPLE.com.": "5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw",
		AnyDomain:      "NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug",
	}
	for domain, digest := range cases {
		got, err := HashedAccountURI("https://ca.example/acct-hash/", domain, thumbprint, acct)
		if err != nil {
			t.Fatal(err)
		}
		if want := "https://ca.example/acct-hash/sha-256/" + digest; got != want {
			t.Errorf("HashedAccountURI(%q) = %q, want %q", domain, got, want)
		}
	}
	if _, err := HashedAccountURI("", "example.com", "", acct); err == nil {
		t.Error("HashedAccountURI without a thumbprint succeeded")
	}
}

func TestCheckIssuerNames(t *testing.T) {
	if err := checkIssuerNames(nil); err == nil {
		t.Error("an empty list passed")
	}
	eleven := strings.Split("a,b,c,d,e,f,g,h,i,j,k", ",")
	if err := checkIssuerNames(eleven); err == nil || !strings.Contains(err.Error(), "11") {
		t.Errorf("eleven names: %v", err)
	}
	if err := checkIssuerNames(eleven[:10]); err != nil {
		t.Errorf("ten names: %v", err)
	}
	if err := checkIssuerNames([]string{"Bad.Example"}); err == nil {
		t.Error("an uppercase name passed")
	}
}

// A zone line must read back, in a DNS server's parser, as the value,
// split strings included. (miekg/dns keeps escapes in its parsed strings,
// so quotes and backslashes are covered by TestSplitStringsAndZoneLine.)
func TestZoneLineParsesBackToTheValue(t *testing.T) {
	for _, value := range []string{
		"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1; policy=wildcard",
		"ca.example; accounturi=https://ca.example/acct/" + strings.Repeat("7", 400),
	} {
		rr, err := dns.NewRR(ZoneLine("example.com", value))
		if err != nil {
			t.Fatalf("ZoneLine for %q does not parse: %v", value, err)
		}
		txt := rr.(*dns.TXT)
		if got := strings.Join(txt.Txt, ""); got != value || txt.Hdr.Name != "_validation-persist.example.com." {
			t.Errorf("parsed back %q at %s, want %q", got, txt.Hdr.Name, value)
		}
	}
}
