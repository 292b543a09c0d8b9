package caa

import (
	"strings"
	"testing"
)

const (
	ourCA   = "letsencrypt.org"
	ourAcct = "https://acme-v02.api.letsencrypt.org/acme/acct/1"
	method  = "dns-persist-01"
)

func req(wildcard bool) Request {
	return Request{Issuers: []string{ourCA}, AccountURI: ourAcct, Method: method, Wildcard: wildcard}
}

func issue(v string) Record { return Record{Tag: "issue", Value: v} }
func wild(v string) Record  { return Record{Tag: "issuewild", Value: v} }

func TestEvaluate(t *testing.T) {
	locked := "letsencrypt.org; accounturi=" + ourAcct + "; validationmethods=dns-persist-01"
	tests := []struct {
		name     string
		set      []Record
		wildcard bool
		allowed  bool
		reason   string // part of the reason
		warning  string // part of the only warning; empty for none
	}{
		{name: "no CAA anywhere", allowed: true},
		{name: "our CA, bare", set: []Record{issue("letsencrypt.org")}, allowed: true},
		{name: "locked to us", set: []Record{issue(locked)}, allowed: true},
		{name: "another CA", set: []Record{issue("pki.goog")}, reason: "names another CA (pki.goog"},
		{name: "another CA beside ours", set: []Record{issue("pki.goog"), issue("letsencrypt.org")}, allowed: true},
		{name: "our CA, another account", set: []Record{issue("letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/2")}, reason: "another account"},
		{name: "our CA, another method", set: []Record{issue("letsencrypt.org; validationmethods=http-01,tls-alpn-01")}, reason: "validationmethods=http-01,tls-alpn-01"},
		{name: "method among several", set: []Record{issue("letsencrypt.org; validationmethods=http-01,dns-persist-01")}, allowed: true},
		{name: "unknown method names are skipped", set: []Record{issue("letsencrypt.org; validationmethods=future-99,dns-persist-01")}, allowed: true},
		{name: "space after a comma in methods", set: []Record{issue("letsencrypt.org; validationmethods=http-01, dns-persist-01")}, reason: "malformed"},
		{name: "two accounturi", set: []Record{issue(locked + "; accounturi=" + ourAcct)}, reason: "more than one accounturi"},
		{name: "empty issue", set: []Record{issue(";")}, reason: "names no CA"},
		{name: "empty value", set: []Record{issue("")}, reason: "names no CA"},
		{name: "empty issue with params", set: []Record{issue("; accounturi=" + ourAcct)}, reason: "names no CA"},
		{name: "issuer then bare semicolon", set: []Record{issue("letsencrypt.org;")}, allowed: true},
		{name: "critical unknown tag", set: []Record{issue("letsencrypt.org"), {Flag: 128, Tag: "tbs", Value: "x"}}, reason: "critical flag on tag \"tbs\""},
		{name: "flag bit 1 on an unknown tag", set: []Record{issue("letsencrypt.org"), {Flag: 1, Tag: "tbs", Value: "x"}}, allowed: true, warning: "flag bit 1"},
		{name: "non-critical unknown tag", set: []Record{issue("letsencrypt.org"), {Tag: "tbs", Value: "x"}}, allowed: true},
		{name: "critical iodef", set: []Record{issue("letsencrypt.org"), {Flag: 128, Tag: "iodef", Value: "mailto:x@example.com"}}, allowed: true},
		{name: "only iodef", set: []Record{{Tag: "iodef", Value: "mailto:x@example.com"}}, allowed: true},
		{name: "upper-case tag", set: []Record{{Tag: "ISSUE", Value: "pki.goog"}}, reason: "another CA"},
		// CAs differ: Let's Encrypt refuses, a CA comparing domain names
		// accepts; the check passes and warns
		{name: "upper-case issuer name", set: []Record{issue("LetsEncrypt.org")}, allowed: true, warning: "byte for byte"},
		{name: "issuer name with a trailing dot", set: []Record{issue("letsencrypt.org.")}, allowed: true, warning: "byte for byte"},
		{name: "extra spaces around separators", set: []Record{issue("  letsencrypt.org ;  accounturi=" + ourAcct + " ;\tvalidationmethods=dns-persist-01  ")}, allowed: true},
		{name: "spaces around =", set: []Record{issue("letsencrypt.org; accounturi = " + ourAcct)}, allowed: true, warning: "spaces around"},
		{name: "upper-case parameter tag", set: []Record{issue("letsencrypt.org; AccountURI=https://other/acct/9")}, allowed: true, warning: "Let's Encrypt ignores"},
		{name: "unknown parameter", set: []Record{issue(locked + "; policy=ev")}, allowed: true},
		{name: "malformed parameter", set: []Record{issue("letsencrypt.org; accounturi")}, reason: "malformed"},
		{name: "issuewild ignored for a plain name", set: []Record{issue(locked), wild("pki.goog")}, allowed: true},
		{name: "issuewild governs a wildcard", set: []Record{issue(locked), wild("pki.goog")}, wildcard: true, reason: "no CAA issuewild record"},
		{name: "issuewild allows a wildcard", set: []Record{issue("pki.goog"), wild(locked)}, wildcard: true, allowed: true},
		{name: "issue governs a wildcard without issuewild", set: []Record{issue("pki.goog")}, wildcard: true, reason: "no CAA issue record"},
		{name: "issuewild only, plain name", set: []Record{wild("pki.goog")}, allowed: true},
		{name: "issuewild forbids wildcards", set: []Record{issue(locked), wild(";")}, wildcard: true, reason: "names no CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.set, req(tt.wildcard))
			if got.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v (%s)", got.Allowed, tt.allowed, got.Reason)
			}
			if !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", got.Reason, tt.reason)
			}
			switch {
			case tt.warning == "" && len(got.Warnings) > 0:
				t.Errorf("unexpected warnings %q", got.Warnings)
			case tt.warning != "" && (len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], tt.warning)):
				t.Errorf("warnings %q, want one saying %q", got.Warnings, tt.warning)
			}
		})
	}
}

func TestPublishedRecordsPass(t *testing.T) {
	for _, wildcard := range []bool{false, true} {
		r := Request{Issuers: []string{ourCA, "le.example"}, AccountURI: ourAcct, Method: method, Wildcard: wildcard}
		recs := Publish(r)
		want := 2
		if wildcard {
			want = 4
		}
		if len(recs) != want {
			t.Fatalf("wildcard=%v: %d records, want %d: %v", wildcard, len(recs), want, recs)
		}
		for _, w := range []bool{false, true} {
			if got := Evaluate(recs, Request{Issuers: []string{"le.example"}, AccountURI: ourAcct, Method: method, Wildcard: w}); !got.Allowed || len(got.Warnings) > 0 {
				t.Errorf("published %v, wildcard %v: %+v", recs, w, got)
			}
		}
		// they lock out other accounts and methods
		if got := Evaluate(recs, Request{Issuers: []string{ourCA}, AccountURI: ourAcct, Method: "http-01", Wildcard: wildcard}); got.Allowed {
			t.Errorf("published records allow http-01")
		}
	}
	line := ZoneLine("example.com", Publish(req(false))[0])
	want := `example.com. IN CAA 0 issue "letsencrypt.org; accounturi=` + ourAcct + `; validationmethods=dns-persist-01"`
	if line != want {
		t.Errorf("zone line\n%s, want\n%s", line, want)
	}
}

func TestParseIssueValueRoundTrips(t *testing.T) {
	for _, v := range []string{";", "letsencrypt.org", "letsencrypt.org; accounturi=https://a/1; validationmethods=dns-persist-01"} {
		p, err := ParseIssueValue(v)
		if err != nil || p.String() != v {
			t.Errorf("%q: parsed %+v (%v), renders %q", v, p, err, p.String())
		}
	}
}
