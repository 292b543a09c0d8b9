package dnslookup

import (
	"errors"
	"fmt"
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
