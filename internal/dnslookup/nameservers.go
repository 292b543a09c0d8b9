package dnslookup

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/miekg/dns"
)

// Bounds on what one zone's NS records make a lookup ask: the root zone,
// the largest in common use, has 13 nameservers.
const (
	maxNameservers = 13
	maxServerAddrs = 2 * maxNameservers
)

// server is one address to ask, with the name a person knows it by.
type server struct {
	addr  string
	label string
}

// serversFor returns who to ask about name: the configured resolvers, or
// every address of every authoritative nameserver of the zone that holds
// name, with that zone. The zone is empty for the configured resolvers,
// which find it themselves.
func (r *Resolver) serversFor(ctx context.Context, name string) ([]server, string, error) {
	if len(r.resolvers) > 0 {
		return r.resolvers, "", nil
	}
	recursive := r.recursiveServers()
	zone, err := r.zoneOf(ctx, name)
	if err != nil {
		return nil, "", fmt.Errorf("finding the zone of %s: %v", name, err)
	}

	if servers, ok := r.nsCache.Get(zone, r.now()); ok {
		return servers, zone, nil
	}
	servers, err := r.authoritativeServers(ctx, zone, recursive)
	if err != nil {
		return nil, "", err
	}
	now := r.now()
	r.nsCache.Put(zone, servers, now, now.Add(nsCacheTTL))
	return servers, zone, nil
}

// Zone returns the zone that holds name, as the lookups find it: where a
// record at name is published.
func (r *Resolver) Zone(ctx context.Context, name string) (string, error) {
	return r.zoneOf(ctx, dns.Fqdn(name))
}

// zoneOf returns the zone that holds the fully qualified name: the
// closest name at or above it with an SOA record, as the recursive
// servers say, asked with CD (see askUnchecked) from the name up. An
// alias is skipped, since no zone's apex is one. A negative answer names
// the zone itself, by the owner of the SOA record in its authority
// section (RFC 2308), which saves asking at each label above. The zone
// is kept for nsCacheTTL for the name and every name above it up to the
// zone, so those a CAA lookup climbs through cost nothing more.
func (r *Resolver) zoneOf(ctx context.Context, fqdn string) (string, error) {
	fqdn = dns.CanonicalName(fqdn)
	if zone, ok := r.zones.Get(fqdn, r.now()); ok {
		return zone, nil
	}
	for _, i := range dns.Split(fqdn) {
		candidate := fqdn[i:]
		msg, _, err := r.exchangeFirst(ctx, candidate, dns.TypeSOA, r.recursiveServers(), askUnchecked)
		if err != nil {
			return "", fmt.Errorf("asking for the SOA record of %s: %w", candidate, err)
		}
		aliased := slices.ContainsFunc(msg.Answer, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeCNAME })
		zone := ""
		switch {
		case aliased:
		case slices.ContainsFunc(msg.Answer, func(rr dns.RR) bool {
			_, soa := rr.(*dns.SOA)
			return soa && strings.EqualFold(rr.Header().Name, candidate)
		}):
			zone = candidate
		default:
			zone = negativeAnswerZone(msg, candidate)
		}
		if zone == "" {
			continue
		}
		// every name from fqdn up to the zone lies in it: a zone cut
		// between them would have answered for itself
		now := r.now()
		for _, j := range dns.Split(fqdn) {
			if name := fqdn[j:]; dns.IsSubDomain(zone, name) {
				r.zones.Put(name, zone, now, now.Add(nsCacheTTL))
			}
		}
		return zone, nil
	}
	return "", fmt.Errorf("no SOA record at or above %s", fqdn)
}

// negativeAnswerZone is the zone a negative answer about name names: the
// owner of the SOA record in its authority section, when that is above
// name; else "".
func negativeAnswerZone(msg *dns.Msg, name string) string {
	if len(msg.Answer) > 0 {
		return ""
	}
	for _, rr := range msg.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			owner := dns.CanonicalName(soa.Hdr.Name)
			if owner != name && dns.IsSubDomain(owner, name) {
				return owner
			}
		}
	}
	return ""
}

// recursiveServers are the servers that find zones and nameservers.
func (r *Resolver) recursiveServers() []string {
	if r.recursive == nil {
		return certmagic.RecursiveNameservers(nil)
	}
	return r.recursive
}

func (r *Resolver) authoritativeServers(ctx context.Context, zone string, recursive []string) ([]server, error) {
	msg, _, err := r.exchangeFirst(ctx, zone, dns.TypeNS, recursive, askUnchecked)
	if err != nil {
		return nil, fmt.Errorf("finding the nameservers of %s: %v", zone, err)
	}
	var servers []server
	hosts := 0
	for _, rr := range msg.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		// a zone names a handful of nameservers; a hostile one must not
		// make each lookup a flood of queries to addresses it chose
		if hosts++; hosts > maxNameservers {
			break
		}
		host := strings.TrimSuffix(ns.Ns, ".")
		for _, ip := range r.nameserverAddrs(ctx, ns.Ns, msg.Extra, recursive) {
			if len(servers) == maxServerAddrs {
				break
			}
			addr := net.JoinHostPort(ip, r.nsPort)
			servers = append(servers, server{addr: addr, label: host + " (" + addr + ")"})
		}
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("no reachable nameservers for %s", zone)
	}
	return servers, nil
}

// nameserverAddrs returns every IPv4 and IPv6 address of a nameserver: of
// each type, the glue the NS answer carried, else what the recursive
// servers say.
func (r *Resolver) nameserverAddrs(ctx context.Context, host string, glue []dns.RR, recursive []string) []string {
	var addrs []string
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		found := addressesOf(qtype, glue, host)
		if len(found) == 0 {
			if msg, _, err := r.exchangeFirst(ctx, host, qtype, recursive, askUnchecked); err == nil {
				// the answer may reach them through an alias, which
				// resolvers follow though a nameserver should not be one
				found = addressesOf(qtype, msg.Answer, "")
			}
		}
		addrs = append(addrs, found...)
	}
	return addrs
}

// addressesOf returns the addresses of type qtype among rrs, only those
// owned by host unless host is empty.
func addressesOf(qtype uint16, rrs []dns.RR, host string) []string {
	var addrs []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != qtype || host != "" && !strings.EqualFold(rr.Header().Name, host) {
			continue
		}
		switch a := rr.(type) {
		case *dns.A:
			addrs = append(addrs, a.A.String())
		case *dns.AAAA:
			addrs = append(addrs, a.AAAA.String())
		}
	}
	return addrs
}
