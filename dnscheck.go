package persist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/cache"
)

const (
	dnsQueryTimeout = 3 * time.Second
	maxCNAMEHops    = 8
	// A real record is a few hundred octets; this bounds what a hostile or
	// broken zone can make us hold and print.
	maxAnswerOctets   = 16 * 1024
	maxRecordsPerName = 100
	nsCacheTTL        = 10 * time.Minute
	// recentTTL is how long an answer stays reusable by a check that
	// follows closely, such as an issuance right after an on-demand
	// permission check of the same name.
	recentTTL  = 10 * time.Second
	maxRecents = 10000
	maxZones   = 10000
)

// DNSError is a lookup that failed, as opposed to one that found nothing.
type DNSError struct {
	Name   string
	Server string
	Err    error
}

func (e *DNSError) Error() string {
	if e.Server == "" {
		return fmt.Sprintf("looking up %s: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("looking up %s at %s: %v", e.Name, e.Server, e.Err)
}

func (e *DNSError) Unwrap() error { return e.Err }

// txtAnswer is what a lookup found at a record name.
type txtAnswer struct {
	// Values holds one entry per TXT record, its strings joined.
	Values []string
	// CNAMEs lists the aliases followed, in order.
	CNAMEs []string
	// Server is the nameserver that answered last.
	Server string
}

// recordResolver looks up TXT records the way the record check needs: at
// the configured resolvers, or else at the zone's authoritative servers,
// which see a newly published record before any cache does.
type recordResolver struct {
	resolvers []string // configured; empty means ask the authoritative servers
	logger    *zap.Logger
	now       func() time.Time

	// recursive finds zones and nameservers (default: the system's
	// resolvers), and nsPort is where nameservers listen; tests change both.
	recursive []string
	nsPort    string

	nsCache *cache.Expiring[[]string]
	recent  *cache.Expiring[txtAnswer]
}

func newRecordResolver(resolvers []string, logger *zap.Logger, now func() time.Time) *recordResolver {
	r := &recordResolver{
		logger:  logger,
		now:     now,
		nsPort:  "53",
		nsCache: cache.NewExpiring[[]string](maxZones),
		recent:  cache.NewExpiring[txtAnswer](maxRecents),
	}
	if len(resolvers) > 0 {
		r.resolvers = certmagic.RecursiveNameservers(resolvers)
	}
	return r
}

// Recent returns what a lookup of name found within the last recentTTL,
// if it found records. A caller must look again if they do not pass.
func (r *recordResolver) Recent(name string) (txtAnswer, bool) {
	return r.recent.Get(name, r.now())
}

// LookupTXT returns the TXT records at name, following CNAMEs. A name that
// does not exist or holds no TXT gives an empty answer and no error.
func (r *recordResolver) LookupTXT(ctx context.Context, name string) (txtAnswer, error) {
	ans, err := r.lookupTXT(ctx, name)
	if err == nil && len(ans.Values) > 0 {
		now := r.now()
		r.recent.Put(name, ans, now, now.Add(recentTTL))
	}
	return ans, err
}

func (r *recordResolver) lookupTXT(ctx context.Context, name string) (txtAnswer, error) {
	var ans txtAnswer
	qname := dns.Fqdn(name)
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		servers, recursive, err := r.serversFor(ctx, qname)
		if err != nil {
			return ans, &DNSError{Name: strings.TrimSuffix(qname, "."), Err: err}
		}
		msg, server, err := exchangeFirst(ctx, qname, dns.TypeTXT, servers, recursive)
		ans.Server = server
		if err != nil {
			return ans, &DNSError{Name: strings.TrimSuffix(qname, "."), Server: server, Err: err}
		}
		target, aliases, values, err := readTXTAnswer(msg, qname)
		ans.CNAMEs = append(ans.CNAMEs, aliases...)
		if err != nil {
			return ans, &DNSError{Name: strings.TrimSuffix(qname, "."), Server: server, Err: err}
		}
		if target == qname || len(values) > 0 {
			ans.Values = values
			return ans, nil
		}
		// the answer ended in an alias without its TXT records; the
		// target may live in another zone, so ask about it from scratch
		qname = target
	}
	return ans, &DNSError{Name: name, Err: fmt.Errorf("more than %d CNAMEs; shorten or fix the alias chain at the record name", maxCNAMEHops)}
}

// readTXTAnswer follows the CNAME chain inside one response and returns the
// name it ends at, the aliases followed and the TXT values found there.
func readTXTAnswer(msg *dns.Msg, qname string) (string, []string, []string, error) {
	target := qname
	var aliases []string
	for range maxCNAMEHops {
		next := ""
		for _, rr := range msg.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, target) {
				next = c.Target
				break
			}
		}
		if next == "" {
			break
		}
		target = next
		aliases = append(aliases, strings.TrimSuffix(next, "."))
	}
	var values []string
	total := 0
	for _, rr := range msg.Answer {
		t, ok := rr.(*dns.TXT)
		if !ok || !strings.EqualFold(t.Hdr.Name, target) {
			continue
		}
		v := strings.Join(t.Txt, "")
		total += len(v)
		values = append(values, v)
	}
	if len(values) > maxRecordsPerName {
		return target, aliases, nil, fmt.Errorf("%d TXT records at one name; refusing more than %d", len(values), maxRecordsPerName)
	}
	if total > maxAnswerOctets {
		return target, aliases, nil, fmt.Errorf("TXT records total %d octets; refusing more than %d", total, maxAnswerOctets)
	}
	return target, aliases, values, nil
}

// serversFor returns who to ask about name: the configured resolvers, or
// the authoritative nameservers of the zone that holds name.
func (r *recordResolver) serversFor(ctx context.Context, name string) ([]string, bool, error) {
	if len(r.resolvers) > 0 {
		return r.resolvers, true, nil
	}
	recursive := r.recursive
	if recursive == nil {
		recursive = certmagic.RecursiveNameservers(nil)
	}
	zone, err := certmagic.FindZoneByFQDN(ctx, r.logger, name, recursive)
	if err != nil {
		return nil, false, fmt.Errorf("finding the zone of %s: %v", name, err)
	}

	if servers, ok := r.nsCache.Get(zone, r.now()); ok {
		return servers, false, nil
	}
	servers, err := authoritativeServers(ctx, zone, recursive, r.nsPort)
	if err != nil {
		return nil, false, err
	}
	now := r.now()
	r.nsCache.Put(zone, servers, now, now.Add(nsCacheTTL))
	return servers, false, nil
}

func authoritativeServers(ctx context.Context, zone string, recursive []string, port string) ([]string, error) {
	msg, _, err := exchangeFirst(ctx, zone, dns.TypeNS, recursive, true)
	if err != nil {
		return nil, fmt.Errorf("finding the nameservers of %s: %v", zone, err)
	}
	var servers []string
	for _, rr := range msg.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		for _, ip := range nameserverAddrs(ctx, ns.Ns, msg.Extra, recursive) {
			servers = append(servers, net.JoinHostPort(ip, port))
		}
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("no reachable nameservers for %s", zone)
	}
	return servers, nil
}

// nameserverAddrs returns the addresses of a nameserver: its glue records
// if the NS answer carried them, else what the recursive servers say.
func nameserverAddrs(ctx context.Context, host string, glue []dns.RR, recursive []string) []string {
	var addrs []string
	for _, rr := range glue {
		switch a := rr.(type) {
		case *dns.A:
			if strings.EqualFold(a.Hdr.Name, host) {
				addrs = append(addrs, a.A.String())
			}
		case *dns.AAAA:
			if strings.EqualFold(a.Hdr.Name, host) {
				addrs = append(addrs, a.AAAA.String())
			}
		}
	}
	if len(addrs) > 0 {
		return addrs
	}
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		msg, _, err := exchangeFirst(ctx, host, qtype, recursive, true)
		if err != nil {
			continue
		}
		for _, rr := range msg.Answer {
			switch a := rr.(type) {
			case *dns.A:
				addrs = append(addrs, a.A.String())
			case *dns.AAAA:
				addrs = append(addrs, a.AAAA.String())
			}
		}
	}
	return addrs
}

// exchangeFirst asks each server in turn and returns the first answer that
// is not a server failure. NXDOMAIN counts as an answer.
func exchangeFirst(ctx context.Context, name string, qtype uint16, servers []string, recursive bool) (*dns.Msg, string, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = recursive
	q.SetEdns0(1232, false)

	var errs []error
	for _, server := range servers {
		msg, err := exchange(ctx, q, server)
		if err == nil && msg.Rcode != dns.RcodeSuccess && msg.Rcode != dns.RcodeNameError {
			err = fmt.Errorf("server answered %s", dns.RcodeToString[msg.Rcode])
		}
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

// exchange sends q over UDP and retries over TCP when the answer is
// truncated or does not come, as resolvers do. Each try has its own bound.
func exchange(ctx context.Context, q *dns.Msg, server string) (*dns.Msg, error) {
	msg, err := exchangeOver(ctx, "udp", q, server)
	if err == nil && !msg.Truncated {
		return msg, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	msg, err = exchangeOver(ctx, "tcp", q, server)
	if err != nil {
		return nil, err
	}
	if msg.Truncated {
		return nil, errors.New("answer truncated even over TCP")
	}
	return msg, nil
}

func exchangeOver(ctx context.Context, network string, q *dns.Msg, server string) (*dns.Msg, error) {
	tryCtx, cancel := context.WithTimeout(ctx, dnsQueryTimeout)
	defer cancel()
	client := &dns.Client{Net: network, Timeout: dnsQueryTimeout}
	msg, _, err := client.ExchangeContext(tryCtx, q, server)
	if err != nil {
		var netErr net.Error
		if tryCtx.Err() != nil && ctx.Err() == nil || errors.As(err, &netErr) && netErr.Timeout() {
			return nil, fmt.Errorf("no answer over %s within %s", network, dnsQueryTimeout)
		}
		return nil, err
	}
	return msg, nil
}
