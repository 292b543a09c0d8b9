package dnslookup

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/miekg/dns"
)

// serversFor returns who to ask about name: the configured resolvers, or
// the authoritative nameservers of the zone that holds name.
func (r *Resolver) serversFor(ctx context.Context, name string) ([]string, bool, error) {
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
