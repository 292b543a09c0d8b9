package dnslookup

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The kind of a server's failure, which rate-limits its log, comes from
// the error's type, however it is wrapped, never from its text.
func TestCauseKindIsByTypeNotText(t *testing.T) {
	cases := []struct {
		err  error
		kind string
	}{
		{&noAnswerError{network: "tcp", timeout: DefaultQueryTimeout}, "timeout"},
		{fmt.Errorf("ns2.example.test (192.0.2.2:53): %w", &noAnswerError{network: "udp", timeout: silentTimeout}), "timeout"},
		{&rcodeError{rcode: dns.RcodeServerFailure}, "server answered SERVFAIL"},
		{fmt.Errorf("ns1.example.test (192.0.2.1:53): %w", &rcodeError{rcode: dns.RcodeRefused}), "server answered REFUSED"},
		{fmt.Errorf("ns1.example.test (192.0.2.1:53): %w", errNotAuthoritative), "lame"},
		// the same words, without the type, are some other error
		{errors.New("no answer over tcp within 3s"), "error"},
		{errors.New("server answered SERVFAIL"), "error"},
	}
	for _, c := range cases {
		if got := causeKind(c.err); got != c.kind {
			t.Errorf("causeKind(%q) = %q, want %q", c.err, got, c.kind)
		}
	}
	// what users read stays as it was
	if msg := (&noAnswerError{network: "tcp", timeout: DefaultQueryTimeout}).Error(); msg != "no answer over tcp within 3s" {
		t.Errorf("message %q", msg)
	}
}

// TestServerFailureSaysWhyWhenTheServerDoes: a resolver's SERVFAIL with
// an extended DNS error (RFC 8914) names it, and one naming a broken
// DNSSEC chain says what to mend; the kind of failure, which rate limits
// use, stays the rcode.
func TestServerFailureSaysWhyWhenTheServerDoes(t *testing.T) {
	t.Parallel()
	reply := func(ede *dns.EDNS0_EDE) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(new(dns.Msg).SetQuestion("x.test.", dns.TypeTXT), dns.RcodeServerFailure)
		if ede != nil {
			m.SetEdns0(1232, true)
			opt := m.IsEdns0()
			opt.Option = append(opt.Option, ede)
		}
		return m
	}
	bogus := &rcodeError{rcode: dns.RcodeServerFailure, ede: extendedError(reply(&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeSignatureExpired, ExtraText: "x.test TXT"}))}
	if got := bogus.Error(); !strings.Contains(got, "SERVFAIL (Signature Expired: x.test TXT)") || !strings.Contains(got, "DNSSEC chain broken") {
		t.Errorf("a bogus answer's failure reads %q", got)
	}
	blocked := &rcodeError{rcode: dns.RcodeServerFailure, ede: extendedError(reply(&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked}))}
	if got := blocked.Error(); !strings.Contains(got, "(Blocked)") || strings.Contains(got, "DNSSEC") {
		t.Errorf("a blocked answer's failure reads %q", got)
	}
	plain := &rcodeError{rcode: dns.RcodeServerFailure, ede: extendedError(reply(nil))}
	if got := plain.Error(); got != "server answered SERVFAIL" {
		t.Errorf("a bare SERVFAIL reads %q", got)
	}
	if causeKind(bogus) != causeKind(plain) || causeKind(blocked) != causeKind(plain) {
		t.Errorf("kinds %q, %q, %q: want one, the rcode's", causeKind(bogus), causeKind(blocked), causeKind(plain))
	}
}
