// Package dnslookup looks up dns-persist-01 records the way the record
// check needs: at configured resolvers, or else at the authoritative
// nameservers of the zone that holds the name, which see a newly published
// record before any cache does. CNAMEs are followed, across zones too, and
// every answer is bounded in size.
package dnslookup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/cache"
)

const (
	maxCNAMEHops = 8
	// A real record is a few hundred octets; these bound what a hostile
	// or broken zone can make us hold and print.
	maxRecordsPerName = 100
	maxAnswerOctets   = 16 * 1024

	nsCacheTTL = 10 * time.Minute
	// recentTTL is how long an answer stays reusable by a check that
	// follows closely, such as an issuance right after an on-demand
	// permission check of the same name.
	recentTTL  = 10 * time.Second
	maxRecents = 10000
	maxZones   = 10000
)

// Answer is what a lookup found at a record name.
type Answer struct {
	// Values holds one entry per TXT record, its strings joined.
	Values []string
	// CNAMEs lists the aliases followed, in order.
	CNAMEs []string
	// Server is the nameserver that answered last.
	Server string
}

// Options configure a Resolver.
type Options struct {
	// Resolvers, when set, are asked for records (host or host:port)
	// instead of the zone's authoritative nameservers.
	Resolvers []string
	// Recursive finds zones and their nameservers. Default: the system's
	// resolvers.
	Recursive []string
	// NameserverPort is where authoritative nameservers listen. Default: 53.
	NameserverPort string
	// Logger receives what certmagic's zone lookup logs.
	Logger *zap.Logger
	// Now is the clock of the caches. Default: time.Now.
	Now func() time.Time
}

// Resolver looks up TXT records. It remembers the nameservers of zones
// and, for a few seconds, the answers that found records.
type Resolver struct {
	resolvers []string
	recursive []string
	nsPort    string
	logger    *zap.Logger
	now       func() time.Time

	nsCache *cache.Expiring[[]string]
	recent  *cache.Expiring[Answer]
}

// New returns a resolver configured by opts.
func New(opts Options) *Resolver {
	r := &Resolver{
		recursive: opts.Recursive,
		nsPort:    opts.NameserverPort,
		logger:    opts.Logger,
		now:       opts.Now,
		nsCache:   cache.NewExpiring[[]string](maxZones),
		recent:    cache.NewExpiring[Answer](maxRecents),
	}
	if len(opts.Resolvers) > 0 {
		r.resolvers = certmagic.RecursiveNameservers(opts.Resolvers)
	}
	if r.nsPort == "" {
		r.nsPort = "53"
	}
	if r.logger == nil {
		r.logger = zap.NewNop()
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Recent returns what a lookup of name found within the last few seconds,
// if it found records. A caller must look again if they do not pass.
func (r *Resolver) Recent(name string) (Answer, bool) {
	return r.recent.Get(name, r.now())
}

// LookupTXT returns the TXT records at name, following CNAMEs. A name that
// does not exist or holds no TXT gives an empty answer and no error; a
// lookup that fails gives an *Error.
func (r *Resolver) LookupTXT(ctx context.Context, name string) (Answer, error) {
	ans, err := r.lookupTXT(ctx, name)
	if err == nil && len(ans.Values) > 0 {
		now := r.now()
		r.recent.Put(name, ans, now, now.Add(recentTTL))
	}
	return ans, err
}

func (r *Resolver) lookupTXT(ctx context.Context, name string) (Answer, error) {
	var ans Answer
	qname := dns.Fqdn(name)
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		servers, recursive, err := r.serversFor(ctx, qname)
		if err != nil {
			return ans, &Error{Name: strings.TrimSuffix(qname, "."), Err: err}
		}
		msg, server, err := exchangeFirst(ctx, qname, dns.TypeTXT, servers, recursive)
		ans.Server = server
		if err != nil {
			return ans, &Error{Name: strings.TrimSuffix(qname, "."), Server: server, Err: err}
		}
		target, aliases, values, err := readTXTAnswer(msg, qname)
		ans.CNAMEs = append(ans.CNAMEs, aliases...)
		if err != nil {
			return ans, &Error{Name: strings.TrimSuffix(qname, "."), Server: server, Err: err}
		}
		if target == qname || len(values) > 0 {
			ans.Values = values
			return ans, nil
		}
		// the answer ended in an alias without its TXT records; the
		// target may live in another zone, so ask about it from scratch
		qname = target
	}
	return ans, &Error{Name: name, Err: fmt.Errorf("more than %d CNAMEs; shorten or fix the alias chain at the record name", maxCNAMEHops)}
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
