// Package fakedns is a small authoritative DNS server for tests and
// benchmarks: zones with SOA and NS records, TXT, CAA and CNAME data,
// DNSSEC signatures made on the fly (dnssec.go), injectable faults, and a
// count of the queries it answers. Unlike challtestsrv it
// answers SOA and NS queries, so the record check's discovery of a zone's
// authoritative nameservers can be exercised, and it does not use
// miekg/dns's global handler, so any number can run in one process.
package fakedns

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Fault makes the server misbehave for one name.
type Fault int

// The faults a name can have.
const (
	NoFault Fault = iota
	// ServFail answers SERVFAIL.
	ServFail
	// Refused answers REFUSED.
	Refused
	// Silent never answers: a query over UDP gets nothing, and a TCP
	// connection is held open, unanswered, until the server closes, so
	// a client waits out its own timeout, however long.
	Silent
	// TruncateUDP answers over UDP with the TC bit and no records, as a
	// server does when the answer is too big; TCP gets the full answer.
	TruncateUDP
	// TruncateAlways sets the TC bit over TCP too.
	TruncateAlways
	// Lame answers NOERROR without authority and without records, as a
	// server no longer serving the zone does.
	Lame
	// Unsigned answers without RRSIG records even in a signed zone, as a
	// secondary serving a record the primary signed but that reached it
	// without its signatures.
	Unsigned
)

// Server is a running fake authoritative server.
type Server struct {
	// Addr is where it listens, over both UDP and TCP.
	Addr string

	udp, tcp *dns.Server

	mu    sync.Mutex
	zones map[string]bool
	// nameservers holds the addresses of a zone's nameservers, ns1.<zone>
	// onward; a zone without an entry has ns1 at 127.0.0.1.
	nameservers map[string][]net.IP
	txt         map[string][]string
	caa         map[string][]dns.RR
	cname       map[string]string
	faults      map[string]Fault
	signing     map[string]Signing
	ds          map[string][]*dns.DS
	queries     map[string]int
	total       int
	// delay holds every answer back, to make lookups overlap.
	delay       time.Duration
	inFlight    int
	maxInFlight int
	// FollowCNAME makes answers include the target's records after a
	// CNAME, as most servers do; without it only the CNAME is returned.
	followCNAME bool
	// held are the TCP connections of Silent queries, closed with the
	// server.
	held   []dns.ResponseWriter
	closed bool
}

// Start listens on a free loopback port.
func Start() (*Server, error) {
	return StartOn("127.0.0.1:0")
}

// StartOn listens on addr over UDP and TCP; port 0 picks a port free for
// both. Any 127.0.0.0/8 address works on Linux, so several servers can
// share a port, as the nameservers of one zone do.
func StartOn(addr string) (*Server, error) {
	s := &Server{
		zones:       make(map[string]bool),
		nameservers: make(map[string][]net.IP),
		txt:         make(map[string][]string),
		caa:         make(map[string][]dns.RR),
		cname:       make(map[string]string),
		faults:      make(map[string]Fault),
		signing:     make(map[string]Signing),
		ds:          make(map[string][]*dns.DS),
		queries:     make(map[string]int),
		followCNAME: true,
	}
	pc, l, err := listenBoth(addr)
	if err != nil {
		return nil, err
	}
	s.Addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveUDP)}
	s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serveTCP)}
	started := make(chan struct{}, 2)
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	for range 2 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			s.Close()
			return nil, net.ErrClosed
		}
	}
	return s, nil
}

// StartForTest starts a server that closes when t's test ends.
func StartForTest(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartGroupForTest starts n servers on one port, at 127.0.0.1,
// 127.0.0.2 and so on, as the nameservers of a zone are: a resolver told
// that port reaches each at its own address. They close when t's test ends.
func StartGroupForTest(t testing.TB, n int) []*Server {
	t.Helper()
	var lastErr error
	for range 10 {
		group, err := startGroup(n)
		if err == nil {
			for _, s := range group {
				t.Cleanup(s.Close)
			}
			return group
		}
		lastErr = err
	}
	t.Fatalf("starting %d nameservers on one port: %v", n, lastErr)
	return nil
}

func startGroup(n int) ([]*Server, error) {
	first, err := StartOn("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(first.Addr)
	group := []*Server{first}
	for i := 2; i <= n; i++ {
		s, err := StartOn(net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i), port))
		if err != nil {
			for _, started := range group {
				started.Close()
			}
			return nil, err
		}
		group = append(group, s)
	}
	return group, nil
}

// listenBoth listens on addr over UDP and TCP, trying ports until one is
// free for both when addr has port 0.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, lastErr
}

// Close stops the server.
func (s *Server) Close() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.held {
		w.Close()
	}
	s.held, s.closed = nil, true
}

// AddZone makes the server authoritative for zone: it answers SOA at the
// apex and NS ns1.<zone>, whose address is 127.0.0.1 unless
// SetNameservers says otherwise.
func (s *Server) AddZone(zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[dns.CanonicalName(zone)] = true
}

// SetNameservers makes zone's NS records ns1.<zone>, ns2.<zone> and so on,
// one per address, with the addresses as glue.
func (s *Server) SetNameservers(zone string, addrs ...net.IP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nameservers[dns.CanonicalName(zone)] = addrs
}

// ServeZone makes servers authoritative for zone and has directory, the
// server a resolver discovers zones through, name them as its nameservers.
func ServeZone(directory *Server, zone string, servers ...*Server) {
	directory.AddZone(zone)
	var ips []net.IP
	for _, s := range servers {
		s.AddZone(zone)
		host, _, _ := net.SplitHostPort(s.Addr)
		ips = append(ips, net.ParseIP(host))
	}
	directory.SetNameservers(zone, ips...)
}

// SetTXT replaces the TXT records at name with one record per value; values
// over 255 octets are split into several strings.
func (s *Server) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	replaceAt(s.txt, dns.CanonicalName(name), values)
}

// replaceAt makes records the records at key, or removes key when there
// are none.
func replaceAt[R any](m map[string][]R, key string, records []R) {
	if len(records) == 0 {
		delete(m, key)
		return
	}
	m[key] = records
}

// SetCAA replaces the CAA records at name with one record per value, each
// written as in a zone file: flag, tag and quoted value. A record that
// does not parse fails the test, as a typo in the test itself.
func (s *Server) SetCAA(t testing.TB, name string, records ...string) {
	t.Helper()
	key := dns.CanonicalName(name)
	var rrs []dns.RR
	for _, v := range records {
		rr, err := dns.NewRR(key + " 60 IN CAA " + v)
		if err != nil {
			t.Fatalf("fakedns: CAA record %q: %v", v, err)
		}
		rrs = append(rrs, rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	replaceAt(s.caa, key, rrs)
}

// SetCNAME points name at target; an empty target removes the alias.
func (s *Server) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := dns.CanonicalName(name)
	if target == "" {
		delete(s.cname, key)
		return
	}
	s.cname[key] = dns.CanonicalName(target)
}

// SetFollowCNAME chooses whether answers include a CNAME target's records.
func (s *Server) SetFollowCNAME(follow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followCNAME = follow
}

// SetDelay holds every answer back by d.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// MaxInFlight returns the most queries the server was answering at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// SetFault makes name misbehave; NoFault restores it.
func (s *Server) SetFault(name string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[dns.CanonicalName(name)] = f
}

// Queries returns how many queries the server has received in all.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// QueriesFor returns how many queries of type qtype (e.g. dns.TypeTXT) the
// server received for name.
func (s *Server) QueriesFor(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[queryKey(dns.CanonicalName(name), qtype)]
}

// ResetCounts forgets the query counts.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = make(map[string]int)
	s.total = 0
	s.maxInFlight = 0
}

func queryKey(name string, qtype uint16) string {
	return name + " " + dns.TypeToString[qtype]
}

func (s *Server) serveUDP(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, true) }
func (s *Server) serveTCP(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, false) }

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg, udp bool) {
	if len(r.Question) != 1 {
		w.WriteMsg(new(dns.Msg).SetRcodeFormatError(r))
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)

	s.mu.Lock()
	s.total++
	s.queries[queryKey(name, q.Qtype)]++
	fault := s.faults[name]
	delay := s.delay
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	m := s.reply(r, name, fault, udp)
	// the query leaves the count before its answer is sent: a client that
	// has its answer may send the next query at once
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	switch {
	case m != nil:
		w.WriteMsg(m)
	case !udp:
		// miekg/dns would close the connection after its idle timeout,
		// which a client waiting longer would take for an answer (EOF)
		w.Hijack()
		s.mu.Lock()
		if s.closed {
			w.Close()
		} else {
			s.held = append(s.held, w)
		}
		s.mu.Unlock()
	}
}

// reply builds the answer to r, nil for none.
func (s *Server) reply(r *dns.Msg, name string, fault Fault, udp bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.Compress = true
	switch fault {
	case Silent:
		return nil
	case ServFail:
		m.Rcode = dns.RcodeServerFailure
		return m
	case Refused:
		m.Rcode = dns.RcodeRefused
		return m
	case TruncateAlways:
		m.Truncated = true
		return m
	case Lame:
		m.Authoritative = false
		return m
	case TruncateUDP:
		if udp {
			m.Truncated = true
			return m
		}
	}

	s.mu.Lock()
	owner := s.answer(m, name, r.Question[0].Qtype)
	if opt := r.IsEdns0(); opt != nil && opt.Do() && fault != Unsigned && owner != "" {
		s.addDNSSEC(m, owner, r.Question[0].Qtype)
	}
	s.mu.Unlock()
	if udp {
		size := 512
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	return m
}

// answer fills m for name and qtype and returns the name the answer ends
// at, after any CNAMEs, or "" when it stops at a CNAME it does not
// follow; s.mu is held.
func (s *Server) answer(m *dns.Msg, name string, qtype uint16) string {
	hdr := func(owner string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
	}
	owner := name
	for range 8 {
		target, ok := s.cname[owner]
		if !ok || qtype == dns.TypeCNAME {
			break
		}
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME), Target: target})
		owner = target
		if !s.followCNAME {
			return ""
		}
	}

	zone := s.zoneOf(owner)
	switch qtype {
	case dns.TypeSOA:
		if s.zones[owner] {
			m.Answer = append(m.Answer, s.soa(owner))
			return owner
		}
	case dns.TypeNS:
		if s.zones[owner] {
			for i, ip := range s.nameserversOf(owner) {
				ns := fmt.Sprintf("ns%d.%s", i+1, owner)
				m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(owner, dns.TypeNS), Ns: ns})
				m.Extra = append(m.Extra, addressRR(hdr, ns, ip))
			}
			return owner
		}
	case dns.TypeA, dns.TypeAAAA:
		label, zone, _ := strings.Cut(owner, ".")
		var i int
		if _, err := fmt.Sscanf(label, "ns%d", &i); err == nil && s.zones[zone] && i >= 1 && i <= len(s.nameserversOf(zone)) {
			ip := s.nameserversOf(zone)[i-1]
			if (ip.To4() != nil) == (qtype == dns.TypeA) {
				m.Answer = append(m.Answer, addressRR(hdr, owner, ip))
			}
			return owner
		}
	case dns.TypeTXT:
		for _, v := range s.txt[owner] {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(owner, dns.TypeTXT), Txt: splitStrings(v)})
		}
	case dns.TypeCAA:
		for _, rr := range s.caa[owner] {
			rr := dns.Copy(rr)
			rr.Header().Name = owner
			m.Answer = append(m.Answer, rr)
		}
	case dns.TypeDNSKEY:
		if _, signed := s.signing[owner]; signed && s.zones[owner] {
			m.Answer = append(m.Answer, s.keysOf(owner)...)
		}
	case dns.TypeDS:
		for _, ds := range s.ds[owner] {
			m.Answer = append(m.Answer, dns.Copy(ds))
		}
	}
	if slices.ContainsFunc(m.Answer, func(rr dns.RR) bool { return rr.Header().Name == owner && rr.Header().Rrtype == qtype }) {
		return owner
	}
	if zone == "" {
		return owner
	}
	// a name with names below it exists, though it holds no record
	if _, exists := s.existing(zone)[owner]; !exists {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = append(m.Ns, s.soa(zone))
	return owner
}

// nameserversOf returns the addresses of zone's nameservers; s.mu is held.
func (s *Server) nameserversOf(zone string) []net.IP {
	if addrs := s.nameservers[zone]; len(addrs) > 0 {
		return addrs
	}
	return []net.IP{net.IPv4(127, 0, 0, 1)}
}

func addressRR(hdr func(string, uint16) dns.RR_Header, owner string, ip net.IP) dns.RR {
	if ip4 := ip.To4(); ip4 != nil {
		return &dns.A{Hdr: hdr(owner, dns.TypeA), A: ip4}
	}
	return &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA), AAAA: ip}
}

func (s *Server) zoneOf(name string) string {
	for n := name; n != ""; {
		if s.zones[n] {
			return n
		}
		i := strings.Index(n, ".")
		if i < 0 || i == len(n)-1 {
			return ""
		}
		n = n[i+1:]
	}
	return ""
}

func (s *Server) soa(zone string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns:      "ns1." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  60,
	}
}

func splitStrings(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}
