package dnslookup

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// The CA looks records up through a validating resolver: when the zone
// of an answer is signed (its parent holds DS records for it) and the
// chain from those DS records down to the answer does not verify, the
// resolver answers SERVFAIL and the validation fails, whatever the record
// says. So each server's answer is judged here as such a resolver would
// judge it, for the last links of the chain, the ones the zone's operator
// controls:
//
//   - the DS records at the parent, as the recursive servers give them
//     (asked once per zone and kept with its nameservers);
//   - the zone's DNSKEY RRset as that server serves it: a key the DS
//     records name, and the RRset signed by that key (kept per server);
//   - the RRSIGs over each RRset the answer rests on (the CNAMEs within
//     the zone, the records), or over the NSEC or NSEC3 records that
//     prove there is no record, each by a key of that RRset and valid at
//     the resolver's clock.
//
// The chain above the parent (the parent's own keys, up to the root's
// trust anchor) is not checked: the CA's resolver does that, and no
// record the operator publishes changes it.

// DNSSECError is a link of the chain from a signed zone's DS down to an
// answer that does not verify, as a validating resolver would find it.
type DNSSECError struct {
	// Zone is the signed zone whose chain is broken.
	Zone string
	// Link names the broken link: "ds" (no DNSKEY matches the DS at the
	// parent), "dnskey" (the DNSKEY RRset is not signed by a key the DS
	// names), "rrsig" (the signature over the answer is missing, expired,
	// not yet valid or wrong) or "denial" (the proof that a record does
	// not exist is missing or wrong).
	Link string
	// Detail says what is wrong, e.g. "the RRSIG over
	// _validation-persist.example.com TXT expired at
	// 2026-11-30T10:00:00Z".
	Detail string

	// unknownKey is a signature by a key the DNSKEY RRset lacks, which
	// keys fetched again may hold.
	unknownKey bool
}

func (e *DNSSECError) Error() string {
	return e.Detail + "; the CA's resolver will answer SERVFAIL; " + e.remedy()
}

// remedy says what mends the link; republishing the record does not.
func (e *DNSSECError) remedy() string {
	switch {
	case e.unknownKey:
		return "add the key that made the signature to the DNSKEY set of " + e.Zone + ", or re-sign with a key the set holds"
	case e.Link == linkDS:
		return "make the DS of " + e.Zone + " at its parent (the registrar) match one of its DNSKEYs, or remove the DS to leave the zone unsigned"
	case e.Link == linkDNSKEY:
		return "sign the DNSKEY set of " + e.Zone + " with the key the DS names"
	case e.Link == linkDenial:
		return "serve " + e.Zone + " with the NSEC or NSEC3 records its signer made"
	default:
		return "re-sign " + e.Zone + " on that server, and check its signer runs: signatures expire"
	}
}

// The links a DNSSECError names.
const (
	linkDS     = "ds"
	linkDNSKEY = "dnskey"
	linkRRSIG  = "rrsig"
	linkDenial = "denial"
)

func sameDNSSEC(a, b *DNSSECError) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// judgeDNSSEC judges one server's reply to qname, read by readAnswer as
// aliases followed to target, where rrs are the records found. zone is
// the zone the server serves, empty for a configured resolver. It
// returns nil when every RRset the answer rests on verifies or lies in an
// unsigned zone; an error means that server's keys could not be had, and
// the server is skipped as one that did not answer.
//
// A configured resolver that sets the AD bit has validated the answer
// itself. One that does not is judged by the RRSIGs it hands over: the
// zone of a signed RRset is the signer its RRSIG names, and that of a
// signed negative answer the owner of the SOA record it carries. An
// answer without RRSIGs from a configured resolver is not judged, since
// without looking up the zone (which `resolvers` mode does not) nothing
// says it should be signed, and judging it would cost a DS query per
// zone where most zones are unsigned; a validating resolver answers
// SERVFAIL for it, and the lookup fails.
func (l *lookup) judgeDNSSEC(ctx context.Context, srv server, zone string, msg *dns.Msg, qname, target string, aliases []string, rrs []dns.RR) (*DNSSECError, error) {
	if zone == "" && msg.AuthenticatedData {
		return nil, nil
	}
	v := &validation{r: l.r, ctx: ctx, srv: srv, zone: zone, msg: msg}
	owner := qname
	for _, alias := range aliases {
		set, sigs := rrsetAt(msg.Answer, owner, dns.TypeCNAME)
		if e, err := v.rrset(set, sigs); e != nil || err != nil {
			return e, err
		}
		owner = dns.Fqdn(alias)
	}
	if len(rrs) > 0 {
		_, sigs := rrsetAt(msg.Answer, target, l.qtype)
		return v.rrset(rrs, sigs)
	}
	if target != qname {
		// the target is asked of its own servers, and judged there
		return nil, nil
	}
	return v.denial(qname, l.qtype)
}

// validation is the judgement of one reply in progress.
type validation struct {
	r    *Resolver
	ctx  context.Context
	srv  server
	zone string
	msg  *dns.Msg
}

func (v *validation) how() asking {
	if v.zone == "" {
		return askValidated
	}
	return askAuthoritative
}

// rrset judges one RRset of the answer with the keys of its zone, and,
// when its signature says it was expanded from a wildcard, the proof that
// no closer name exists.
func (v *validation) rrset(set []dns.RR, sigs []*dns.RRSIG) (*DNSSECError, error) {
	if len(set) == 0 {
		return nil, nil
	}
	owner := set[0].Header().Name
	zone := v.signerOf(owner, sigs)
	if zone == "" {
		return nil, nil
	}
	e, err := v.withKeys(zone, v.judgeRRset(zone, set, sigs))
	if e != nil && len(sigs) == 0 && zone == v.zone {
		// an unsigned RRset below the zone may lie in an unsigned zone
		// the same servers serve, which its own DS records decide, as
		// for the CA's resolver; only then is its zone looked up
		if child, zerr := v.r.zoneOf(v.ctx, owner); zerr == nil && child != zone && dns.IsSubDomain(zone, child) {
			return v.withKeys(child, v.judgeRRset(child, set, sigs))
		}
	}
	return e, err
}

// judgeRRset judges set with the keys of zone.
func (v *validation) judgeRRset(zone string, set []dns.RR, sigs []*dns.RRSIG) func(keys []*dns.DNSKEY) *DNSSECError {
	return func(keys []*dns.DNSKEY) *DNSSECError {
		sig, detail, unknownKey := verifyRRset(set, sigs, keys, v.r.now(), func() string { return "the DNSKEY RRset of " + trimDot(zone) })
		if detail != "" {
			return &DNSSECError{Zone: trimDot(zone), Link: linkRRSIG, Detail: detail, unknownKey: unknownKey}
		}
		if owner := set[0].Header().Name; int(sig.Labels) < dns.CountLabel(owner) {
			return v.noCloserName(zone, owner, int(sig.Labels), keys)
		}
		return nil
	}
}

// signerOf returns the zone whose keys must sign an RRset at owner, or ""
// when it is not judged. Within the zone asked that is the zone, or a
// zone below it that the same servers serve and whose key the RRSIG
// names; from a configured resolver, the signer the RRSIG names.
func (v *validation) signerOf(owner string, sigs []*dns.RRSIG) string {
	if v.zone != "" && !dns.IsSubDomain(v.zone, owner) {
		return ""
	}
	for _, sig := range sigs {
		signer := dns.CanonicalName(sig.SignerName)
		if dns.IsSubDomain(signer, owner) && (v.zone == "" || dns.IsSubDomain(v.zone, signer)) {
			return signer
		}
	}
	return v.zone
}

// withKeys runs judge with the validated keys of zone, unless the zone is
// unsigned. Keys from the cache that fail, or that lack the key a
// signature names, are fetched again once: the zone may have rolled its
// keys, or re-signed them, since.
func (v *validation) withKeys(zone string, judge func(keys []*dns.DNSKEY) *DNSSECError) (*DNSSECError, error) {
	trust, err := v.r.trustOf(v.ctx, zone)
	if err != nil || len(trust.ds) == 0 {
		return nil, err
	}
	fresh := false
	for {
		rrset, cached, err := v.r.dnskeysAt(v.ctx, v.srv, zone, v.how(), fresh)
		if err != nil {
			return nil, err
		}
		keys, e := rrset.validate(zone, trust, v.r.now())
		if e == nil {
			e = judge(keys)
		}
		if stale := e != nil && (e.Link == linkDS || e.Link == linkDNSKEY || e.unknownKey); !stale || !cached {
			return e, nil
		}
		fresh = true
	}
}

// rrsetAt returns the records of type t at owner among rrs, and the
// RRSIGs over them.
func rrsetAt(rrs []dns.RR, owner string, t uint16) ([]dns.RR, []*dns.RRSIG) {
	var set []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range rrs {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == t {
			sigs = append(sigs, sig)
		} else if rr.Header().Rrtype == t {
			set = append(set, rr)
		}
	}
	return set, sigs
}

func trimDot(name string) string {
	if name == "." {
		return name
	}
	return strings.TrimSuffix(name, ".")
}
