package main

import (
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// dnsForwarder stands between every DNS client of the benchmark and
// challtestsrv, so that all DNS traffic is counted in one place and the
// same way for every contender. It has two listeners: one for the ACME
// clients (record checks, certmagic's zone lookups and propagation checks)
// and one for Pebble's VA, so the two sides are counted apart.
//
// It answers SOA and NS queries itself, for benchZone, because challtestsrv
// answers them NOTIMP and certmagic's dns-01 solver cannot find the zone to
// write its record in without them. Everything else goes to challtestsrv.
type dnsForwarder struct {
	upstream string
	zone     string // FQDN, lowercase

	clientAddr string
	caAddr     string
	servers    []*dns.Server

	mu     sync.Mutex
	counts map[side]map[uint16]int
}

// side is who sent a query.
type side string

const (
	sideClient side = "client"
	sideCA     side = "ca"
)

func startForwarder(upstream, zone string) (*dnsForwarder, error) {
	f := &dnsForwarder{
		upstream: upstream,
		zone:     dns.CanonicalName(zone),
		counts:   map[side]map[uint16]int{sideClient: {}, sideCA: {}},
	}
	var err error
	if f.clientAddr, err = f.listen(sideClient); err != nil {
		f.Close()
		return nil, err
	}
	if f.caAddr, err = f.listen(sideCA); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// listen serves UDP and TCP on one free loopback port for queries from s.
func (f *dnsForwarder) listen(s side) (string, error) {
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { f.serve(s, w, r) })
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue // the TCP port is taken; try another
		}
		started := make(chan struct{}, 2)
		udp := &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { started <- struct{}{} }}
		tcp := &dns.Server{Listener: l, Handler: handler, NotifyStartedFunc: func() { started <- struct{}{} }}
		f.servers = append(f.servers, udp, tcp)
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		for range 2 {
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				return "", errors.New("the DNS forwarder did not start")
			}
		}
		return pc.LocalAddr().String(), nil
	}
	return "", errors.New("no loopback port free for both UDP and TCP")
}

func (f *dnsForwarder) Close() {
	for _, s := range f.servers {
		s.Shutdown()
	}
}

func (f *dnsForwarder) serve(s side, w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		w.WriteMsg(new(dns.Msg).SetRcodeFormatError(r))
		return
	}
	q := r.Question[0]
	f.mu.Lock()
	f.counts[s][q.Qtype]++
	f.mu.Unlock()

	if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeNS {
		w.WriteMsg(f.answerZone(r, q))
		return
	}
	w.WriteMsg(f.forward(r))
}

// answerZone answers SOA and NS as the zone's authoritative server would:
// the record at the apex, no data (with the SOA) below it, and REFUSED for
// names outside the zone.
func (f *dnsForwarder) answerZone(r *dns.Msg, q dns.Question) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	name := strings.ToLower(q.Name)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: f.zone, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
	}
	soa := &dns.SOA{Hdr: hdr(dns.TypeSOA), Ns: "ns1." + f.zone, Mbox: "hostmaster." + f.zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60}
	switch {
	case name == f.zone && q.Qtype == dns.TypeSOA:
		m.Authoritative = true
		m.Answer = append(m.Answer, soa)
	case name == f.zone:
		m.Authoritative = true
		m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: "ns1." + f.zone})
	case strings.HasSuffix(name, "."+f.zone):
		m.Authoritative = true
		m.Ns = append(m.Ns, soa)
	default:
		m.Rcode = dns.RcodeRefused
	}
	return m
}

// forward asks challtestsrv over UDP, and over TCP when the answer does
// not fit, as a resolver would.
func (f *dnsForwarder) forward(r *dns.Msg) *dns.Msg {
	in, _, err := (&dns.Client{Net: "udp", Timeout: 3 * time.Second}).Exchange(r, f.upstream)
	if err == nil && in.Truncated {
		in, _, err = (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).Exchange(r, f.upstream)
	}
	if err != nil {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		return m
	}
	return in
}

// dnsCounts is how many queries each side sent, in all and per type.
type dnsCounts struct {
	client, ca int
	byType     map[string]int // "client TXT", "ca A", ...
}

func (f *dnsForwarder) snapshot() dnsCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := dnsCounts{byType: make(map[string]int)}
	for s, types := range f.counts {
		for t, n := range types {
			c.byType[string(s)+" "+dns.TypeToString[t]] += n
			if s == sideClient {
				c.client += n
			} else {
				c.ca += n
			}
		}
	}
	return c
}

func (f *dnsForwarder) resetCounts() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = map[side]map[uint16]int{sideClient: {}, sideCA: {}}
}
