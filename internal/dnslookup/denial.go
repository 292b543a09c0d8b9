package dnslookup

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Proofs of absence. In a signed zone, "no such record" is signed too: an
// NSEC record (RFC 4035) names the next name of the zone in canonical
// order and the types of its own name, an NSEC3 record (RFC 5155) does
// the same over hashed names. A validator accepts a negative answer only
// with records that prove it, and a wildcard answer only with one that
// proves no closer name exists.
//
// What a validator would call insecure rather than bogus is passed, so
// the check never fails what the CA passes: NSEC3 records with a hash
// other than SHA-1 or more iterations than validators accept (RFC 9276
// §3.2), and the opt-out flag, which only makes a covered name possibly
// an unsigned delegation, are not held against the proof.

// maxNSEC3Iterations is the most NSEC3 iterations the proof is checked
// for. Validators treat more as insecure; the lowest limit in wide use
// (BIND's, since 2024) is this one, so above it no validator refuses
// what the check would.
const maxNSEC3Iterations = 50

// denial judges a negative answer at qname: no record of qtype there
// (NODATA), or no such name (NXDOMAIN, as the rcode says).
func (v *validation) denial(qname string, qtype uint16) (*DNSSECError, error) {
	zone := v.zone
	if zone == "" {
		// from a configured resolver, a signed answer's SOA record tells
		// the zone; an unsigned one is not judged, as a positive one
		signed := slices.ContainsFunc(v.msg.Ns, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeRRSIG })
		for _, rr := range v.msg.Ns {
			if soa, ok := rr.(*dns.SOA); ok && signed && dns.IsSubDomain(soa.Hdr.Name, qname) {
				zone = dns.CanonicalName(soa.Hdr.Name)
			}
		}
		if zone == "" {
			return nil, nil
		}
	}
	nxdomain := v.msg.Rcode == dns.RcodeNameError
	claim := fmt.Sprintf("%s has no %s record", trimDot(qname), dns.TypeToString[qtype])
	if nxdomain {
		claim = trimDot(qname) + " does not exist"
	}
	return v.withKeys(zone, func(keys []*dns.DNSKEY) *DNSSECError {
		p, e := v.proof(zone, keys)
		if e != nil {
			return e
		}
		if p.proves(qname, qtype, nxdomain) {
			return nil
		}
		return p.unproven(zone, "the answer that "+claim)
	})
}

// noCloserName judges an RRset at owner expanded from a wildcard (its
// RRSIG counts labels fewer than owner has): the answer must prove that
// owner itself does not exist, or the wildcard would not apply.
func (v *validation) noCloserName(zone, owner string, labels int, keys []*dns.DNSKEY) *DNSSECError {
	p, e := v.proof(zone, keys)
	if e != nil {
		return e
	}
	encloser := lastLabels(owner, labels)
	switch {
	case len(p.nsec3) > 0 && !p.usable(),
		len(p.nsec3) > 0 && p.nsec3Covers(nextCloser(owner, encloser)),
		len(p.nsec3) == 0 && p.nsecCovering(owner) != nil:
		return nil
	}
	return p.unproven(zone, fmt.Sprintf("the answer at %s, which comes from the wildcard *.%s,", trimDot(owner), trimDot(encloser)))
}

// denialProof are the NSEC or NSEC3 records of a reply, their signatures
// checked.
type denialProof struct {
	nsec  []*dns.NSEC
	nsec3 []*dns.NSEC3
}

// proof gathers the NSEC and NSEC3 records of zone from the authority
// section, each with its signature checked, and that of the SOA record a
// negative answer carries: a validator checks every RRset it uses.
func (v *validation) proof(zone string, keys []*dns.DNSKEY) (denialProof, *DNSSECError) {
	var p denialProof
	for i, rr := range v.msg.Ns {
		h := rr.Header()
		if !dns.IsSubDomain(zone, h.Name) || slices.ContainsFunc(v.msg.Ns[:i], func(prev dns.RR) bool {
			return prev.Header().Rrtype == h.Rrtype && strings.EqualFold(prev.Header().Name, h.Name)
		}) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.NSEC:
			p.nsec = append(p.nsec, rr)
		case *dns.NSEC3:
			p.nsec3 = append(p.nsec3, rr)
		case *dns.SOA:
		default:
			continue
		}
		set, sigs := rrsetAt(v.msg.Ns, h.Name, h.Rrtype)
		if _, detail, unknownKey := verifyRRset(set, sigs, keys, v.r.now(), func() string { return "the DNSKEY RRset of " + trimDot(zone) }); detail != "" {
			return p, &DNSSECError{Zone: trimDot(zone), Link: linkDenial, Detail: detail, unknownKey: unknownKey}
		}
	}
	return p, nil
}

// unproven says that the proof of what is named lacks or fails.
func (p denialProof) unproven(zone, what string) *DNSSECError {
	detail := what + " carries no NSEC or NSEC3 records to prove it"
	switch {
	case len(p.nsec3) > 0:
		detail = what + " carries NSEC3 records that do not prove it"
	case len(p.nsec) > 0:
		detail = what + " carries NSEC records that do not prove it"
	}
	return &DNSSECError{Zone: trimDot(zone), Link: linkDenial, Detail: detail}
}

// usable reports whether NSEC3 records, if any, are ones validators
// check: SHA-1, and iterations within maxNSEC3Iterations.
func (p denialProof) usable() bool {
	return !slices.ContainsFunc(p.nsec3, func(n *dns.NSEC3) bool {
		return n.Hash != dns.SHA1 || n.Iterations > maxNSEC3Iterations
	})
}

// proves reports whether the records prove that qname does not exist
// (nxdomain) or holds neither qtype nor a CNAME, directly or through the
// wildcard at its closest encloser.
func (p denialProof) proves(qname string, qtype uint16, nxdomain bool) bool {
	if len(p.nsec3) > 0 {
		if !p.usable() {
			return true
		}
		encloser, ok := p.nsec3ClosestEncloser(qname)
		if nxdomain {
			return ok && p.nsec3Covers("*."+encloser)
		}
		return lacks(p.nsec3Matching(qname), qtype) || ok && lacks(p.nsec3Matching("*."+encloser), qtype)
	}
	covering := p.nsecCovering(qname)
	if nxdomain {
		return covering != nil && p.nsecCovering("*."+nsecClosestEncloser(qname, covering)) != nil
	}
	if covering != nil && dns.IsSubDomain(qname, covering.NextDomain) && canonicalCompare(qname, covering.NextDomain) != 0 {
		// an empty non-terminal: no NSEC record of its own, but the next
		// name after it lies below it (RFC 4035 §3.1.3.2)
		return true
	}
	return lacks(p.nsecAt(qname), qtype) || covering != nil && lacks(p.nsecAt("*."+nsecClosestEncloser(qname, covering)), qtype)
}

// lacks reports whether a name's type bitmap, nil for a name without
// one, holds neither qtype nor a CNAME, which would answer in its place.
func lacks(bitmap []uint16, qtype uint16) bool {
	return bitmap != nil && !slices.Contains(bitmap, qtype) && !slices.Contains(bitmap, dns.TypeCNAME)
}

// typesOf is a type bitmap as the proof helpers return it: never nil, so
// that nil can mean that no record matches the name.
func typesOf(bitmap []uint16) []uint16 {
	if bitmap == nil {
		return []uint16{}
	}
	return bitmap
}

// nsecAt returns the type bitmap of the NSEC record owned by name, nil
// if there is none.
func (p denialProof) nsecAt(name string) []uint16 {
	for _, n := range p.nsec {
		if canonicalCompare(n.Hdr.Name, name) == 0 {
			return typesOf(n.TypeBitMap)
		}
	}
	return nil
}

// nsecCovering returns the NSEC record whose interval holds name, between
// its owner and the next name (or, for the last of the zone, after its
// owner), if there is one.
func (p denialProof) nsecCovering(name string) *dns.NSEC {
	for _, n := range p.nsec {
		if canonicalCompare(n.Hdr.Name, name) >= 0 {
			continue
		}
		if canonicalCompare(n.Hdr.Name, n.NextDomain) < 0 {
			if canonicalCompare(name, n.NextDomain) < 0 {
				return n
			}
		} else if dns.IsSubDomain(n.NextDomain, name) {
			// the last NSEC of the zone points back to the apex
			return n
		}
	}
	return nil
}

// nsecClosestEncloser is the closest name above qname that exists, as an
// NSEC that covers qname tells it: the longer of the ancestors qname
// shares with the NSEC's owner and with its next name, both of which
// exist.
func nsecClosestEncloser(qname string, covering *dns.NSEC) string {
	shared := max(dns.CompareDomainName(qname, covering.Hdr.Name), dns.CompareDomainName(qname, covering.NextDomain))
	return lastLabels(qname, shared)
}

// nsec3Matching returns the type bitmap of the NSEC3 record that
// matches name's hash, nil if there is none.
func (p denialProof) nsec3Matching(name string) []uint16 {
	for _, n := range p.nsec3 {
		if n.Match(name) {
			return typesOf(n.TypeBitMap)
		}
	}
	return nil
}

func (p denialProof) nsec3Covers(name string) bool {
	return slices.ContainsFunc(p.nsec3, func(n *dns.NSEC3) bool { return n.Cover(name) })
}

// nsec3ClosestEncloser is the closest encloser proof of RFC 5155 §7.2.1:
// the closest name above qname whose hash an NSEC3 matches, with the next
// closer name (one label longer, towards qname) covered. It is not found
// when qname itself matches.
func (p denialProof) nsec3ClosestEncloser(qname string) (string, bool) {
	if p.nsec3Matching(qname) != nil {
		return "", false
	}
	for encloser := parentName(qname); encloser != ""; encloser = parentName(encloser) {
		if p.nsec3Matching(dns.Fqdn(encloser)) != nil {
			return dns.Fqdn(encloser), p.nsec3Covers(nextCloser(qname, dns.Fqdn(encloser)))
		}
	}
	return "", false
}

// nextCloser is the name one label longer than encloser, towards name.
func nextCloser(name, encloser string) string {
	return lastLabels(name, dns.CountLabel(encloser)+1)
}

// lastLabels is the name made of the last n labels of name.
func lastLabels(name string, n int) string {
	labels := dns.SplitDomainName(name)
	if n >= len(labels) {
		return dns.Fqdn(name)
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-n:], "."))
}

// canonicalCompare orders names as RFC 4034 §6.1 does: by their labels
// from the last, each compared as octets with ASCII letters lowercased,
// a name before those below it.
func canonicalCompare(a, b string) int {
	la, lb := wireLabels(a), wireLabels(b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := strings.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(la), len(lb))
}

// wireLabels returns the labels of name as octets, escapes such as \. and
// \065 decoded and ASCII letters lowercased.
func wireLabels(name string) []string {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return dns.SplitDomainName(strings.ToLower(name))
	}
	var labels []string
	for i := 0; i < n && buf[i] != 0; i += int(buf[i]) + 1 {
		label := buf[i+1 : i+1+int(buf[i])]
		for j, c := range label {
			if 'A' <= c && c <= 'Z' {
				label[j] = c + 'a' - 'A'
			}
		}
		labels = append(labels, string(label))
	}
	return labels
}
