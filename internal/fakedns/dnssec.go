package fakedns

import (
	"crypto"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSSEC for tests: a server signs the zones it is told to, on the fly,
// for queries with the DO bit, with keys a test generates; a directory
// server publishes the DS records a parent would. The faults a validator
// must catch are made by the Signing a server is given (a window that has
// passed, keys that do not match) or by the Unsigned fault.

// ZoneKey is a DNSSEC key made for a test: ECDSA P-256 with SHA-256
// (algorithm 13), which every validator supports.
type ZoneKey struct {
	DNSKEY *dns.DNSKEY
	signer crypto.Signer
}

// NewZoneKey generates a key for zone: a key signing key (flags 257, the
// SEP bit) when ksk, else a zone signing key (flags 256).
func NewZoneKey(t testing.TB, zone string, ksk bool) *ZoneKey {
	t.Helper()
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: dns.CanonicalName(zone), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     dns.ZONE,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	if ksk {
		k.Flags |= dns.SEP
	}
	priv, err := k.Generate(256)
	if err != nil {
		t.Fatalf("fakedns: generating a key for %s: %v", zone, err)
	}
	return &ZoneKey{DNSKEY: k, signer: priv.(crypto.Signer)}
}

// DS is the key's DS record, with a SHA-256 digest, as the parent zone
// publishes it.
func (k *ZoneKey) DS() *dns.DS {
	return k.DNSKEY.ToDS(dns.SHA256)
}

// Signing is how a server signs a zone.
type Signing struct {
	// KSK signs the DNSKEY RRset and ZSK every other RRset; both are in
	// the DNSKEY RRset, once when they are the same key.
	KSK, ZSK *ZoneKey
	// SignAnswersWith, when set, signs every RRset but the DNSKEY RRset
	// in place of ZSK, which stays published: signatures by a key the
	// zone does not hold.
	SignAnswersWith *ZoneKey
	// Inception and Expiration bound the signatures over every RRset but
	// the DNSKEY RRset, KeyInception and KeyExpiration those over the
	// DNSKEY RRset. A zero value is an hour before the query, or 30
	// days after it.
	Inception, Expiration       time.Time
	KeyInception, KeyExpiration time.Time
	// NSEC3 proves that names and types do not exist with NSEC3 records
	// (SHA-1, no salt, no extra iterations, as RFC 9276 advises) instead
	// of NSEC records.
	NSEC3 bool
}

// SignZone makes the server sign zone, which it must serve, as sg says.
func (s *Server) SignZone(zone string, sg Signing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signing[dns.CanonicalName(zone)] = sg
}

// SignedZone has servers sign zone, which they serve, with a key signing
// key and a zone signing key made for the test, each as adjust says (it
// may be nil), and has directory publish the DS record of the key
// signing key, as the zone's parent does.
func SignedZone(t testing.TB, directory *Server, zone string, servers []*Server, adjust func(i int, sg *Signing)) (ksk, zsk *ZoneKey) {
	t.Helper()
	ksk, zsk = NewZoneKey(t, zone, true), NewZoneKey(t, zone, false)
	for i, s := range servers {
		sg := Signing{KSK: ksk, ZSK: zsk}
		if adjust != nil {
			adjust(i, &sg)
		}
		s.SignZone(zone, sg)
	}
	directory.SetDS(zone, ksk.DS())
	return ksk, zsk
}

// SetDS makes the server answer DS queries for zone with records, as the
// parent of a signed zone does; none makes zone unsigned again. The
// server is then the resolver a lookup asks for DS records.
func (s *Server) SetDS(zone string, records ...*dns.DS) {
	s.mu.Lock()
	defer s.mu.Unlock()
	replaceAt(s.ds, dns.CanonicalName(zone), records)
}

// keysOf returns the DNSKEY RRset of a signed zone; s.mu is held.
func (s *Server) keysOf(zone string) []dns.RR {
	sg := s.signing[zone]
	rrs := []dns.RR{dns.Copy(sg.KSK.DNSKEY)}
	if sg.ZSK != sg.KSK {
		rrs = append(rrs, dns.Copy(sg.ZSK.DNSKEY))
	}
	return rrs
}

// addDNSSEC signs the RRsets of m whose zones are signed and, when m has
// no record of qtype at owner, the name its answer ended at, adds the
// NSEC or NSEC3 records that prove it, signed too; s.mu is held.
func (s *Server) addDNSSEC(m *dns.Msg, owner string, qtype uint16) {
	zone := s.zoneOf(owner)
	_, signed := s.signing[zone]
	found := slices.ContainsFunc(m.Answer, func(rr dns.RR) bool {
		return rr.Header().Rrtype == qtype && rr.Header().Name == owner
	})
	if signed && !found && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError) {
		m.Ns = append(m.Ns, s.denial(zone, owner, m.Rcode == dns.RcodeNameError)...)
	}
	m.Answer = s.signed(m.Answer)
	m.Ns = s.signed(m.Ns)
}

// signed returns rrs with an RRSIG after each RRset of a signed zone.
func (s *Server) signed(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for len(rrs) > 0 {
		h := rrs[0].Header()
		n := 1
		for n < len(rrs) && rrs[n].Header().Name == h.Name && rrs[n].Header().Rrtype == h.Rrtype {
			n++
		}
		set := rrs[:n]
		rrs = rrs[n:]
		out = append(out, set...)
		zone := s.zoneOf(h.Name)
		if h.Rrtype == dns.TypeNSEC3 {
			// an NSEC3 owner is a hash under the apex, which need not exist
			_, zone, _ = strings.Cut(h.Name, ".")
		}
		sg, ok := s.signing[zone]
		if !ok {
			continue
		}
		key, inception, expiration := sg.ZSK, sg.Inception, sg.Expiration
		if sg.SignAnswersWith != nil {
			key = sg.SignAnswersWith
		}
		if h.Rrtype == dns.TypeDNSKEY {
			key, inception, expiration = sg.KSK, sg.KeyInception, sg.KeyExpiration
		}
		now := time.Now()
		if inception.IsZero() {
			inception = now.Add(-time.Hour)
		}
		if expiration.IsZero() {
			expiration = now.Add(30 * 24 * time.Hour)
		}
		sig := &dns.RRSIG{
			Hdr:        dns.RR_Header{Ttl: h.Ttl},
			Algorithm:  key.DNSKEY.Algorithm,
			Inception:  uint32(inception.Unix()),
			Expiration: uint32(expiration.Unix()),
			KeyTag:     key.DNSKEY.KeyTag(),
			SignerName: zone,
		}
		if err := sig.Sign(key.signer, set); err != nil {
			panic("fakedns: signing " + h.Name + ": " + err.Error())
		}
		out = append(out, sig)
	}
	return out
}

// existing returns the names of zone that exist, each with its types
// (none for an empty non-terminal, a name that only has names below
// it); s.mu is held.
func (s *Server) existing(zone string) map[string][]uint16 {
	names := map[string][]uint16{zone: {dns.TypeSOA, dns.TypeNS}}
	if _, signed := s.signing[zone]; signed {
		names[zone] = append(names[zone], dns.TypeDNSKEY)
	}
	add := func(name string, t uint16) {
		if s.zoneOf(name) == zone {
			names[name] = append(names[name], t)
		}
	}
	for i, ip := range s.nameserversOf(zone) {
		t := dns.TypeA
		if ip.To4() == nil {
			t = dns.TypeAAAA
		}
		add(fmt.Sprintf("ns%d.%s", i+1, zone), t)
	}
	for name := range s.txt {
		add(name, dns.TypeTXT)
	}
	for name := range s.caa {
		add(name, dns.TypeCAA)
	}
	for name := range s.cname {
		add(name, dns.TypeCNAME)
	}
	for name := range names {
		for n := parent(name); n != "" && n != zone && dns.IsSubDomain(zone, n); n = parent(n) {
			if _, ok := names[n]; !ok {
				names[n] = nil
			}
		}
	}
	for name, types := range names {
		slices.Sort(types)
		names[name] = slices.Compact(types)
	}
	return names
}

func parent(name string) string {
	_, rest, ok := strings.Cut(name, ".")
	if !ok || rest == "" {
		return ""
	}
	return rest
}

// denial returns the NSEC or NSEC3 records that prove that owner lacks
// the type asked (the record at owner lists its types) or, with
// nxdomain, does not exist: then also that no wildcard at its closest
// encloser could answer.
func (s *Server) denial(zone, owner string, nxdomain bool) []dns.RR {
	names := s.existing(zone)
	proven := []string{owner}
	if nxdomain {
		// the apex exists, so the climb ends there at the latest
		encloser := parent(owner)
		for _, ok := names[encloser]; !ok; _, ok = names[encloser] {
			encloser = parent(encloser)
		}
		nextCloser := owner
		for parent(nextCloser) != encloser {
			nextCloser = parent(nextCloser)
		}
		proven = []string{encloser, nextCloser, "*." + encloser}
	}
	if s.signing[zone].NSEC3 {
		return nsec3Proof(zone, names, proven)
	}
	if nxdomain {
		// an NSEC proves what lies between names, so the encloser, which
		// exists, needs none
		proven = proven[1:]
	}
	return nsecProof(zone, names, proven)
}

// nsecProof returns the NSEC records that match or cover each name.
func nsecProof(zone string, names map[string][]uint16, proven []string) []dns.RR {
	var chain []string
	for name, types := range names {
		// empty non-terminals have no NSEC record
		if len(types) > 0 {
			chain = append(chain, name)
		}
	}
	slices.SortFunc(chain, canonicalCompare)
	var out []dns.RR
	for _, name := range proven {
		i := len(chain) - 1
		for j, n := range chain {
			if canonicalCompare(n, name) <= 0 {
				i = j
			}
		}
		owner := chain[i]
		nsec := &dns.NSEC{
			Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 60},
			NextDomain: chain[(i+1)%len(chain)],
			TypeBitMap: bitmap(names[owner], dns.TypeNSEC),
		}
		if !slices.ContainsFunc(out, func(rr dns.RR) bool { return rr.Header().Name == owner }) {
			out = append(out, nsec)
		}
	}
	return out
}

// nsec3Proof returns the NSEC3 records that match or cover each name.
func nsec3Proof(zone string, names map[string][]uint16, proven []string) []dns.RR {
	hashes := make(map[string]string, len(names))
	var chain []string
	for name := range names {
		h := dns.HashName(name, dns.SHA1, 0, "")
		hashes[h] = name
		chain = append(chain, h)
	}
	slices.Sort(chain)
	var out []dns.RR
	for _, name := range proven {
		h := dns.HashName(name, dns.SHA1, 0, "")
		i := len(chain) - 1
		for j, c := range chain {
			if c <= h {
				i = j
			}
		}
		owner := strings.ToLower(chain[i]) + "." + zone
		if slices.ContainsFunc(out, func(rr dns.RR) bool { return rr.Header().Name == owner }) {
			continue
		}
		out = append(out, &dns.NSEC3{
			Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: 60},
			Hash:       dns.SHA1,
			HashLength: 20,
			NextDomain: chain[(i+1)%len(chain)],
			TypeBitMap: bitmap(names[hashes[chain[i]]]),
		})
	}
	return out
}

// bitmap is the type bitmap of a name with types: RRSIG too when it has
// any, and extra.
func bitmap(types []uint16, extra ...uint16) []uint16 {
	if len(types) == 0 {
		return nil
	}
	out := append(slices.Clone(types), dns.TypeRRSIG)
	out = append(out, extra...)
	slices.Sort(out)
	return out
}

// canonicalCompare orders names as RFC 4034 §6.1 does: label by label
// from the right, each compared as lowercase octets. Test names are
// plain ASCII, so their presentation form is their octets.
func canonicalCompare(a, b string) int {
	la, lb := dns.SplitDomainName(a), dns.SplitDomainName(b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := strings.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}
