package record

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Parse is parse without the warnings: the record a value holds, or why
// it is malformed.
func Parse(value string) (Record, error) {
	rec, _, err := parse(value)
	return rec, err
}

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
		back, err := Parse(got)
		if err != nil {
			t.Fatalf("Parse(%q): %v", got, err)
		}
		if back != c.rec {
			t.Errorf("Parse(Value()) = %+v, want %+v", back, c.rec)
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
	until := time.Unix(1827662400, 0).UTC()
	cases := map[string]Record{
		"ca.example;accounturi=https://ca.example/a/1":                          {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		"  ca.example ;\taccounturi = https://ca.example/a/1 ; POLICY=WildCard": {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1", Wildcard: true},
		"ca.example; AccountURI=https://ca.example/a/1; policy=other":           {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		"ca.example; accounturi=https://ca.example/a/1; future-tag=x":           {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		"ca.example; accounturi=https://ca.example/a/1; PersistUntil=0":         {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1", PersistUntil: time.Unix(0, 0).UTC()},
		"ca.example; accounturi=https://ca.example/a/1; empty=; policy=":        {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		// Let's Encrypt's leniencies, which Evaluate warns about
		"CA.Example.; accounturi=https://ca.example/a/1":                        {IssuerDomainName: "ca.example", AccountURI: "https://ca.example/a/1"},
		"bücher.example; accounturi=https://ca.example/a/1":                     {IssuerDomainName: "xn--bcher-kva.example", AccountURI: "https://ca.example/a/1"},
		"ca.example; x_y=1; bad tag=1; *=; -bad=1; é=1; accounturi=https://a/1": {IssuerDomainName: "ca.example", AccountURI: "https://a/1"},
		"ca.example; accounturi=https://a/1; persistUntil=+1827662400":          {IssuerDomainName: "ca.example", AccountURI: "https://a/1", PersistUntil: until},
		"ca.example; accounturi=https://a/1; persistUntil=0001827662400":        {IssuerDomainName: "ca.example", AccountURI: "https://a/1", PersistUntil: until},
		"ca.example; accounturi=https://a/1; persistUntil=-1":                   {IssuerDomainName: "ca.example", AccountURI: "https://a/1", PersistUntil: time.Unix(-1, 0).UTC()},
	}
	for value, want := range cases {
		got, err := Parse(value)
		if err != nil {
			t.Errorf("Parse(%q): %v", value, err)
			continue
		}
		if got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", value, got, want)
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
		"ca.example; accounturi=https://a/1; persistUntil=":                     "not base-10",
		"ca.example; accounturi=https://a/1; persistUntil=+":                    "not base-10",
		"ca.example; accounturi=https://a/1; persistUntil=0x10":                 "not base-10",
		"ca.example; accounturi=https://a/1; persistUntil=1_000":                "not base-10",
		"ca.example; ext=1; EXT=2; accounturi=https://a/1":                      "duplicate",
		"ca.example; x_y=1; x_y=2; accounturi=https://a/1":                      "duplicate",
		"ca.example; =1; accounturi=https://a/1":                                "empty tag",
		"ca.example; ext=\x01; accounturi=https://a/1":                          "control",
		"ca.example; accounturi=https://a/\t1":                                  "control",
		"ca.example; accounturi=https://a/1; persistUntil=99999999999999999999": "out of range",
		"ca.example; accounturi=https://a/1 x":                                  "space",
		"ca.example; accounturi=https://a/é":                                    "non-ASCII",
		"ca.example; noequals":                                                  "not tag=value",
		"ca..example; accounturi=https://a/1":                                   "not a valid domain",
	}
	for value, wantReason := range cases {
		_, err := Parse(value)
		var perr *ParseError
		if !errors.As(err, &perr) {
			t.Errorf("Parse(%q) error = %v, want a ParseError", value, err)
			continue
		}
		if !strings.Contains(perr.Error(), wantReason) {
			t.Errorf("Parse(%q) error = %q, want it to mention %q", value, perr, wantReason)
		}
	}
}

func TestExpiresSoon(t *testing.T) {
	now := time.Unix(1800000000, 0)
	if _, soon := (Record{}).ExpiresSoon(now); soon {
		t.Error("a record without persistUntil expires soon")
	}
	for _, c := range []struct {
		left time.Duration
		soon bool
	}{
		{ExpiryWarning + time.Second, false},
		{ExpiryWarning, false},
		{ExpiryWarning - time.Second, true},
		{-time.Hour, true},
	} {
		left, soon := Record{PersistUntil: now.Add(c.left)}.ExpiresSoon(now)
		if left != c.left || soon != c.soon {
			t.Errorf("persistUntil in %s: left %s, soon %v; want %s, %v", c.left, left, soon, c.left, c.soon)
		}
	}
}
