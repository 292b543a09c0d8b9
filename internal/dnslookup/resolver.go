// Package dnslookup looks up dns-persist-01 records the way a CA may see
// them: at every configured resolver, or else at every address of every
// authoritative nameserver of the zone that holds the name, which see a
// newly published record before any cache does. A CA's resolver may reach
// any of them, so each distinct answer is kept for the caller to judge.
// CNAMEs are followed, across zones too, and every answer is bounded in
// size.
package dnslookup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/caa"
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
	// maxZonesPerLookup bounds the zones one lookup asks when servers
	// disagree about aliases.
	maxZonesPerLookup = 2 * maxCNAMEHops
)

// Answer is what a lookup found at a record name: one View per distinct
// answer among the servers that answered.
type Answer struct {
	Views []View
	// Unanswered are the servers that gave no usable answer (no reply
	// after retries, SERVFAIL, REFUSED) and were skipped, as a resolver
	// skips them and asks another.
	Unanswered []Unanswered
}

// View is what some of the servers asked serve at the record name.
type View struct {
	// Values holds one entry per record: of a TXT record its strings
	// joined, of a CAA record its flag, tag and quoted value.
	Values []string
	// CAA holds the CAA records of a CAA lookup, in the order of Values.
	CAA []caa.Record
	// CNAMEs lists the aliases followed, in order.
	CNAMEs []string
	// Servers are the servers that gave this answer, at the last hop of
	// the alias chain, e.g. "ns1.example.com (192.0.2.1:53)".
	Servers []string
	// DNSSEC, when set, says why a validating resolver refuses this
	// answer: its zone (or a zone along the alias chain) is signed, and
	// the chain from the DS at the parent down to the answer does not
	// verify. Values still hold what these servers served.
	DNSSEC *DNSSECError
}

// Unanswered is a server skipped by a lookup, and why.
type Unanswered struct {
	Server string
	Err    error
}

// HasValues reports whether any server serves a TXT record at the name.
func (a Answer) HasValues() bool {
	for _, v := range a.Views {
		if len(v.Values) > 0 {
			return true
		}
	}
	return false
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
	// QueryTimeout bounds each try of a query at a server, over UDP and
	// then over TCP. Default: DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Logger receives the servers a lookup skipped.
	Logger *zap.Logger
	// Now is the clock of the caches and of the validity of DNSSEC
	// signatures. Default: time.Now.
	Now func() time.Time
}

// Resolver looks up TXT records. It remembers the nameservers of zones
// and, for a few seconds, the answers that found records.
type Resolver struct {
	resolvers []server
	recursive []string
	nsPort    string
	// queryTimeout bounds each try of a query.
	queryTimeout time.Duration
	logger       *zap.Logger
	now          func() time.Time

	nsCache *cache.Expiring[[]server]
	// zones holds the zone of each name looked up.
	zones *cache.Expiring[string]
	// trust holds the DS records of zones, kept as long as their
	// nameservers, and dnskeys the DNSKEY RRset each server serves for a
	// signed zone, so that a warm check of a signed zone asks nothing
	// more than an unsigned one.
	trust   *cache.Expiring[zoneTrust]
	dnskeys *cache.Expiring[*keyRRset]
	recent  *cache.Expiring[Answer]
	// caaParents holds the CAA answers at the parents of names looked up.
	caaParents *cache.Expiring[Answer]
	// skipped rate-limits the log of servers that did not answer.
	skipped *cache.NoticeBoard
}

// New returns a resolver configured by opts.
func New(opts Options) *Resolver {
	r := &Resolver{
		recursive:    opts.Recursive,
		nsPort:       opts.NameserverPort,
		queryTimeout: opts.QueryTimeout,
		logger:       opts.Logger,
		now:          opts.Now,
		nsCache:      cache.NewExpiring[[]server](maxZones),
		zones:        cache.NewExpiring[string](maxZones),
		trust:        cache.NewExpiring[zoneTrust](maxZones),
		dnskeys:      cache.NewExpiring[*keyRRset](maxZones),
		recent:       cache.NewExpiring[Answer](maxRecents),
		caaParents:   cache.NewExpiring[Answer](maxZones),
	}
	if len(opts.Resolvers) > 0 {
		for _, addr := range certmagic.RecursiveNameservers(opts.Resolvers) {
			r.resolvers = append(r.resolvers, server{addr: addr, label: addr})
		}
	}
	if r.nsPort == "" {
		r.nsPort = "53"
	}
	if r.queryTimeout <= 0 {
		r.queryTimeout = DefaultQueryTimeout
	}
	if r.logger == nil {
		r.logger = zap.NewNop()
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.skipped = cache.NewNoticeBoard(r.now)
	return r
}

// Recent returns what a lookup of name found within the last few seconds,
// if it found records. A caller must look again if they do not pass.
func (r *Resolver) Recent(name string) (Answer, bool) {
	return r.recent.Get(name, r.now())
}

// LookupTXT returns the TXT records at name as every server serves them,
// following CNAMEs. A name that does not exist or holds no TXT gives views
// without values and no error; a lookup that fails, or that no server
// answered, gives an *Error.
func (r *Resolver) LookupTXT(ctx context.Context, name string) (Answer, error) {
	l := lookup{r: r, qtype: dns.TypeTXT}
	err := l.follow(ctx, dns.Fqdn(name), nil, 0)
	r.logSkipped(ctx, l.ans.Unanswered)
	if err == nil && l.ans.HasValues() {
		now := r.now()
		r.recent.Put(name, l.ans, now, now.Add(recentTTL))
	}
	return l.ans, err
}

// lookup is one lookup of a record type at a name, in progress.
type lookup struct {
	r     *Resolver
	qtype uint16
	ans   Answer
	// asked counts the zones asked, to bound what alias chains that
	// fork (servers disagreeing on a CNAME) can cost.
	asked int
}

// follow asks every server of qname's zone and adds a view per distinct
// answer. An answer that ends in an alias without its records is
// followed from scratch, since the target may live in another zone.
func (l *lookup) follow(ctx context.Context, qname string, via []string, hop int) error {
	fail := func(server string, err error) error {
		return &Error{Name: strings.TrimSuffix(qname, "."), Server: server, Err: err}
	}
	if hop > maxCNAMEHops {
		return fail("", fmt.Errorf("more than %d CNAMEs; shorten or fix the alias chain at the record name", maxCNAMEHops))
	}
	if l.asked >= maxZonesPerLookup {
		return fail("", fmt.Errorf("the servers disagree about the aliases at the record name, leading to more than %d zones; fix the alias chain", maxZonesPerLookup))
	}
	l.asked++
	servers, zone, err := l.r.serversFor(ctx, qname)
	if err != nil {
		return fail("", err)
	}
	how := askAuthoritative
	if zone == "" {
		how = askValidated
	} else if _, err := l.r.trustOf(ctx, zone); err != nil {
		// the DS records decide whether answers must be signed
		return fail("", err)
	}

	var views []*View
	var targets []string
	var silent []error
	skip := func(s server, err error) {
		l.ans.Unanswered = append(l.ans.Unanswered, Unanswered{Server: s.label, Err: err})
		silent = append(silent, fmt.Errorf("%s: %w", s.label, err))
	}
	for _, rep := range l.r.exchangeAll(ctx, qname, l.qtype, servers, how) {
		if rep.err == nil && how == askAuthoritative && !rep.msg.Authoritative {
			// a lame server (one the NS records name that no longer
			// serves the zone) answers without authority or with a
			// referral; resolvers ask another, and so does the check
			rep.err = errNotAuthoritative
		}
		if rep.err != nil {
			skip(rep.server, rep.err)
			continue
		}
		target, aliases, rrs, err := readAnswer(rep.msg, qname, l.qtype, zone)
		if err != nil {
			return fail(rep.server.label, err)
		}
		sec, err := l.judgeDNSSEC(ctx, rep.server, zone, rep.msg, qname, target, aliases, rrs)
		if err != nil {
			// its keys could not be had: a resolver would ask another
			skip(rep.server, err)
			continue
		}
		values, caas := recordValues(rrs)
		if v := sameAnswer(views, targets, target, values, sec); v != nil {
			v.Servers = append(v.Servers, rep.server.label)
			continue
		}
		views = append(views, &View{Values: values, CAA: caas, CNAMEs: append(slices.Clone(via), aliases...), Servers: []string{rep.server.label}, DNSSEC: sec})
		targets = append(targets, target)
	}
	if len(views) == 0 {
		if len(servers) == 1 {
			return fail(servers[0].label, errors.Unwrap(silent[0]))
		}
		// one line, with every cause still in the chain
		causes := make([]any, len(silent))
		for i, err := range silent {
			causes[i] = err
		}
		return fail("", fmt.Errorf("no server answered: "+strings.TrimSuffix(strings.Repeat("%w; ", len(causes)), "; "), causes...))
	}
	for i, v := range views {
		// an answer a validator refuses ends the chain: the CA's
		// resolver stops at its SERVFAIL
		if targets[i] == qname || len(v.Values) > 0 || v.DNSSEC != nil {
			l.ans.Views = append(l.ans.Views, *v)
			continue
		}
		if err := l.follow(ctx, targets[i], v.CNAMEs, hop+1); err != nil {
			return err
		}
	}
	return nil
}

// sameAnswer returns the view that ends at target with the same values,
// in any order, and the same DNSSEC outcome, if there is one: servers
// that serve the same records, one with broken signatures, differ.
func sameAnswer(views []*View, targets []string, target string, values []string, sec *DNSSECError) *View {
	for i, v := range views {
		if targets[i] == target && sameSet(v.Values, values) && sameDNSSEC(v.DNSSEC, sec) {
			return v
		}
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// errNotAuthoritative is a server that answered without authority for
// the zone.
var errNotAuthoritative = errors.New("answered without authority for the zone (a lame delegation: fix or remove its NS record)")

// logSkipped says which servers a lookup skipped, once an hour for each
// server and kind of cause. A server this machine has no route to is only
// noted at debug level: an IPv6 nameserver seen from an IPv4-only host,
// say. A lookup cut short by its caller logs nothing.
func (r *Resolver) logSkipped(ctx context.Context, skipped []Unanswered) {
	if ctx.Err() != nil {
		return
	}
	for _, s := range skipped {
		if unreachable(s.Err) {
			r.logger.Debug("nameserver unreachable from this machine; skipped", zap.String("server", s.Server), zap.Error(s.Err))
			continue
		}
		if !r.skipped.Due(s.Server+"|"+causeKind(s.Err), time.Hour) {
			continue
		}
		r.logger.Warn("nameserver did not answer; skipped it and judged the record by the servers that did",
			zap.String("server", s.Server), zap.Error(s.Err))
	}
}

// readAnswer follows the CNAME chain inside one response and returns the
// name it ends at, the aliases followed and the records of qtype found
// there. With zone, the chain is followed only within it: a resolver
// does not take a server's word for names outside its zone (RFC 2181
// §5.4.1) and asks the target's own servers, and so does the lookup, so
// each answer is judged, signatures too, where the CA's resolver gets it.
func readAnswer(msg *dns.Msg, qname string, qtype uint16, zone string) (string, []string, []dns.RR, error) {
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
		if zone != "" && !dns.IsSubDomain(zone, target) {
			return target, aliases, nil, nil
		}
	}
	var rrs []dns.RR
	total := 0
	for _, rr := range msg.Answer {
		if rr.Header().Rrtype != qtype || !strings.EqualFold(rr.Header().Name, target) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.TXT:
			total += len(strings.Join(rr.Txt, ""))
		case *dns.CAA:
			total += len(rr.Tag) + len(rr.Value)
		}
		rrs = append(rrs, rr)
	}
	kind := dns.TypeToString[qtype]
	if len(rrs) > maxRecordsPerName {
		return target, aliases, nil, fmt.Errorf("%d %s records at one name; refusing more than %d", len(rrs), kind, maxRecordsPerName)
	}
	if total > maxAnswerOctets {
		return target, aliases, nil, fmt.Errorf("%s records total %d octets; refusing more than %d", kind, total, maxAnswerOctets)
	}
	return target, aliases, rrs, nil
}

// recordValues returns the values of rrs as View holds them.
func recordValues(rrs []dns.RR) ([]string, []caa.Record) {
	var values []string
	var caas []caa.Record
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.TXT:
			values = append(values, strings.Join(rr.Txt, ""))
		case *dns.CAA:
			c := caa.Record{Flag: rr.Flag, Tag: rr.Tag, Value: rr.Value}
			caas = append(caas, c)
			values = append(values, c.String())
		}
	}
	return values, caas
}
