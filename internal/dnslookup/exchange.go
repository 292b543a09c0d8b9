package dnslookup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// DefaultQueryTimeout bounds each try of a query, over UDP and then over
// TCP, unless Options say otherwise.
const DefaultQueryTimeout = 3 * time.Second

// Error is a lookup that failed, as opposed to one that found nothing.
type Error struct {
	Name   string
	Server string
	Err    error
}

func (e *Error) Error() string {
	if e.Server == "" {
		return fmt.Sprintf("looking up %s: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("looking up %s at %s: %v", e.Name, e.Server, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// noAnswerError is a try of a query that got no answer in time.
type noAnswerError struct {
	network string
	timeout time.Duration
}

func (e *noAnswerError) Error() string {
	return fmt.Sprintf("no answer over %s within %s", e.network, e.timeout)
}

// rcodeError is a server that answered with a failure, such as SERVFAIL.
type rcodeError struct {
	rcode int
	// ede is the extended DNS error the server gave with it (RFC 8914),
	// which says why: a validating resolver names a broken DNSSEC chain.
	ede *dns.EDNS0_EDE
}

func (e *rcodeError) Error() string {
	s := "server answered " + dns.RcodeToString[e.rcode]
	if e.ede == nil {
		return s
	}
	s += " (" + dns.ExtendedErrorCodeToString[e.ede.InfoCode]
	if e.ede.ExtraText != "" {
		s += ": " + e.ede.ExtraText
	}
	s += ")"
	if slices.Contains(dnssecFailures, e.ede.InfoCode) {
		s += "; the resolver finds the zone's DNSSEC chain broken, as the CA's will: mend the DS at the parent, the DNSKEY set or the signatures it names"
	}
	return s
}

// dnssecFailures are the extended DNS errors of a validation that failed.
var dnssecFailures = []uint16{
	dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm, dns.ExtendedErrorCodeUnsupportedDSDigestType,
	dns.ExtendedErrorCodeDNSSECIndeterminate, dns.ExtendedErrorCodeDNSBogus,
	dns.ExtendedErrorCodeSignatureExpired, dns.ExtendedErrorCodeSignatureNotYetValid,
	dns.ExtendedErrorCodeDNSKEYMissing, dns.ExtendedErrorCodeRRSIGsMissing,
	dns.ExtendedErrorCodeNoZoneKeyBitSet, dns.ExtendedErrorCodeNSECMissing,
	dns.ExtendedErrorCodeSignatureExpiredBeforeValid,
}

// extendedError is the first extended DNS error msg carries, if any.
func extendedError(msg *dns.Msg) *dns.EDNS0_EDE {
	if opt := msg.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				return ede
			}
		}
	}
	return nil
}

// reply is one server's answer to a query, or why there is none.
type reply struct {
	server server
	msg    *dns.Msg
	err    error
}

// asking says whom a query goes to, which sets its flags. Every query
// sets the DO bit, so that signed zones send their signatures (RFC 4035
// §3.2.1) and the check can judge them as the CA's validating resolver
// will.
type asking int

const (
	// askAuthoritative asks a zone's nameserver: no recursion.
	askAuthoritative asking = iota
	// askValidated asks a recursive resolver and takes its validation as
	// it stands: bogus data is SERVFAIL, as for the CA. For what the CA
	// judges without us (the names above the zone) and the configured
	// resolvers.
	askValidated
	// askUnchecked asks a recursive resolver with the CD bit (RFC 4035
	// §3.2.2), to find a zone, its nameservers and its DS records: a
	// validating system resolver would answer SERVFAIL for a zone whose
	// chain is broken, hiding it before the check can say which link
	// broke.
	askUnchecked
)

// exchangeAll asks every server at once and returns their replies in the
// order of servers. A server failure (SERVFAIL, REFUSED) is an error, as
// for exchangeFirst.
func (r *Resolver) exchangeAll(ctx context.Context, name string, qtype uint16, servers []server, how asking) []reply {
	q := newQuery(name, qtype, how)
	replies := make([]reply, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			msg, err := exchangeAnswer(ctx, q.Copy(), s.addr, r.queryTimeout)
			replies[i] = reply{server: s, msg: msg, err: err}
		})
	}
	wg.Wait()
	return replies
}

// exchangeFirst asks each server in turn and returns the first answer that
// is not a server failure. NXDOMAIN counts as an answer.
func (r *Resolver) exchangeFirst(ctx context.Context, name string, qtype uint16, servers []string, how asking) (*dns.Msg, string, error) {
	q := newQuery(name, qtype, how)
	var errs []error
	for _, server := range servers {
		msg, err := exchangeAnswer(ctx, q, server, r.queryTimeout)
		if err == nil {
			return msg, server, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	last := ""
	if len(servers) > 0 {
		last = servers[len(servers)-1]
	}
	return nil, last, errors.Join(errs...)
}

func newQuery(name string, qtype uint16, how asking) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = how != askAuthoritative
	q.CheckingDisabled = how == askUnchecked
	q.SetEdns0(1232, true)
	return q
}

// exchangeAnswer is exchange where a server failure is an error too:
// anything but an answer or NXDOMAIN.
func exchangeAnswer(ctx context.Context, q *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	msg, err := exchange(ctx, q, server, timeout)
	if err == nil && msg.Rcode != dns.RcodeSuccess && msg.Rcode != dns.RcodeNameError {
		return nil, &rcodeError{rcode: msg.Rcode, ede: extendedError(msg)}
	}
	return msg, err
}

// causeKind names the kind of a server's failure without what varies
// between two failures of the same kind, such as a local port, so that
// rate limits hold.
func causeKind(err error) string {
	var (
		netErr   net.Error
		noAnswer *noAnswerError
		rcode    *rcodeError
	)
	switch {
	case errors.Is(err, errNotAuthoritative):
		return "lame"
	case errors.As(err, &netErr) && netErr.Timeout(), errors.As(err, &noAnswer):
		return "timeout"
	case errors.As(err, &rcode):
		return "server answered " + dns.RcodeToString[rcode.rcode]
	}
	return "error"
}

// unreachable reports whether err says there is no route to the server,
// rather than that the server did not answer.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.EADDRNOTAVAIL)
}

// exchange sends q over UDP and retries over TCP when the answer is
// truncated or does not come, as resolvers do. Each try has its own bound.
func exchange(ctx context.Context, q *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	msg, err := exchangeOver(ctx, "udp", q, server, timeout)
	if err == nil && !msg.Truncated {
		return msg, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	msg, err = exchangeOver(ctx, "tcp", q, server, timeout)
	if err != nil {
		return nil, err
	}
	if msg.Truncated {
		return nil, errors.New("answer truncated even over TCP")
	}
	return msg, nil
}

func exchangeOver(ctx context.Context, network string, q *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	tryCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &dns.Client{Net: network, Timeout: timeout}
	msg, _, err := client.ExchangeContext(tryCtx, q, server)
	if err != nil {
		var netErr net.Error
		if tryCtx.Err() != nil && ctx.Err() == nil || errors.As(err, &netErr) && netErr.Timeout() {
			return nil, &noAnswerError{network: network, timeout: timeout}
		}
		return nil, err
	}
	return msg, nil
}
