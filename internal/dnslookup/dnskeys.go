package dnslookup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The upper links of a signed zone's chain: its DS records at the parent
// and its DNSKEY RRset, and the signature checks every link shares.

// verifiable are the DNSSEC algorithms miekg/dns verifies signatures of,
// and digestible the DS digest types it computes. A DS record with any
// other is unusable, and a zone whose DS records are all unusable is
// insecure to validators (RFC 4035 §5.2, RFC 6840 §5.2): its answers are
// not judged, as the CA's resolver does not judge them.
var (
	verifiable = []uint8{dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519}
	digestible = []uint8{dns.SHA1, dns.SHA256, dns.SHA384}
)

// zoneTrust is what a zone's parent says of it: the usable DS records,
// none for a zone that is unsigned or that validators treat as insecure.
type zoneTrust struct {
	ds []*dns.DS
}

// trustOf returns the DS records of zone as the recursive servers give
// them (the configured resolvers in `resolvers` mode), kept as long as
// the zone's nameservers. No DS records (NODATA or NXDOMAIN at the
// parent) is an unsigned zone, which costs this one query and nothing
// more.
func (r *Resolver) trustOf(ctx context.Context, zone string) (zoneTrust, error) {
	if t, ok := r.trust.Get(zone, r.now()); ok {
		return t, nil
	}
	servers, how := r.recursiveServers(), askUnchecked
	if len(r.resolvers) > 0 {
		servers, how = nil, askValidated
		for _, s := range r.resolvers {
			servers = append(servers, s.addr)
		}
	}
	msg, _, err := r.exchangeFirst(ctx, zone, dns.TypeDS, servers, how)
	if err != nil {
		return zoneTrust{}, fmt.Errorf("asking for the DS records of %s at its parent: %w", trimDot(zone), err)
	}
	var t zoneTrust
	for _, rr := range msg.Answer {
		if ds, ok := rr.(*dns.DS); ok && strings.EqualFold(ds.Hdr.Name, zone) && slices.Contains(verifiable, ds.Algorithm) && slices.Contains(digestible, ds.DigestType) {
			t.ds = append(t.ds, ds)
		}
	}
	now := r.now()
	r.trust.Put(zone, t, now, now.Add(nsCacheTTL))
	return t, nil
}

// keyRRset is a zone's DNSKEY RRset as one server serves it, with the
// RRSIGs over it.
type keyRRset struct {
	rrset []dns.RR
	sigs  []*dns.RRSIG
	// validated is the last validation that succeeded, which holds as
	// long as the DS records and the signature's validity do: every
	// check reuses the set, and verifying it again would give the same
	// answer.
	validated atomic.Pointer[validatedKeys]
}

// validatedKeys are the keys of a DNSKEY RRset that the DS records ds
// named, with the signature sig that made them valid.
type validatedKeys struct {
	ds   []*dns.DS
	sig  *dns.RRSIG
	keys []*dns.DNSKEY
}

// dnskeysAt returns the DNSKEY RRset of zone that srv serves, from the
// cache unless fresh, and whether it came from there. It is kept per
// server for nsCacheTTL and judged again at each use, since validity
// depends on the time.
func (r *Resolver) dnskeysAt(ctx context.Context, srv server, zone string, how asking, fresh bool) (*keyRRset, bool, error) {
	key := srv.addr + "|" + zone
	if !fresh {
		if k, ok := r.dnskeys.Get(key, r.now()); ok {
			return k, true, nil
		}
	}
	msg, err := exchangeAnswer(ctx, newQuery(zone, dns.TypeDNSKEY, how), srv.addr, r.queryTimeout)
	if err == nil && how == askAuthoritative && !msg.Authoritative {
		err = errNotAuthoritative
	}
	if err != nil {
		return nil, false, fmt.Errorf("asking for the DNSKEY records of %s: %w", trimDot(zone), err)
	}
	now := r.now()
	k := &keyRRset{}
	k.rrset, k.sigs = rrsetAt(msg.Answer, zone, dns.TypeDNSKEY)
	r.dnskeys.Put(key, k, now, now.Add(nsCacheTTL))
	return k, false, nil
}

// validate returns the keys of the RRset when a key that a DS record of
// trust names signs it, with a signature valid at now; else the broken
// link.
func (k *keyRRset) validate(zone string, trust zoneTrust, now time.Time) ([]*dns.DNSKEY, *DNSSECError) {
	if last := k.validated.Load(); last != nil && slices.Equal(last.ds, trust.ds) && last.sig.ValidityPeriod(now) {
		return last.keys, nil
	}
	name := trimDot(zone)
	var keys, named []*dns.DNSKEY
	for _, rr := range k.rrset {
		key := rr.(*dns.DNSKEY)
		keys = append(keys, key)
		if slices.ContainsFunc(trust.ds, func(ds *dns.DS) bool { return matchesDS(key, ds) }) {
			named = append(named, key)
		}
	}
	dsTags := tagList(trust.ds, func(ds *dns.DS) uint16 { return ds.KeyTag })
	switch {
	case len(keys) == 0:
		return nil, &DNSSECError{Zone: name, Link: linkDS, Detail: fmt.Sprintf("%s serves no DNSKEY records, but its parent has DS records for it (key tags %s)", name, dsTags)}
	case len(named) == 0:
		return nil, &DNSSECError{Zone: name, Link: linkDS, Detail: fmt.Sprintf("no DNSKEY of %s (key tags %s) matches its DS records at the parent (key tags %s)", name, tagList(keys, (*dns.DNSKEY).KeyTag), dsTags)}
	}
	sig, detail, _ := verifyRRset(k.rrset, k.sigs, named, now, func() string { return "the keys its DS records name" })
	if detail != "" {
		return nil, &DNSSECError{Zone: name, Link: linkDNSKEY, Detail: detail}
	}
	k.validated.Store(&validatedKeys{ds: trust.ds, sig: sig, keys: keys})
	return keys, nil
}

// matchesDS reports whether ds names key: the same key tag and
// algorithm, and the digest of the key.
func matchesDS(key *dns.DNSKEY, ds *dns.DS) bool {
	if key.KeyTag() != ds.KeyTag || key.Algorithm != ds.Algorithm {
		return false
	}
	digest := key.ToDS(ds.DigestType)
	return digest != nil && strings.EqualFold(digest.Digest, ds.Digest)
}

func tagList[T any](items []T, tag func(T) uint16) string {
	var tags []string
	for _, it := range items {
		tags = append(tags, strconv.Itoa(int(tag(it))))
	}
	return strings.Join(tags, ", ")
}

// verifyRRset looks for an RRSIG among sigs over set by one of keys that
// verifies and is valid at now, and returns it. Without one, it says
// what a validator finds wrong, the most telling fault first: a sound
// signature outside its validity window, then one that does not verify,
// then one by a key not among keys (which are what keysAre says; then
// unknownKey is set, since newer keys may explain it), then none at all.
//
// The words are built only for a failure: a signed zone's every lookup
// verifies, and most pass.
func verifyRRset(set []dns.RR, sigs []*dns.RRSIG, keys []*dns.DNSKEY, now time.Time, keysAre func() string) (sig *dns.RRSIG, detail string, unknownKey bool) {
	what := func() string {
		h := set[0].Header()
		return trimDot(h.Name) + " " + dns.TypeToString[h.Rrtype]
	}
	var window, broken, stranger string
	for _, sig := range sigs {
		var verifyErr error = errNoKey
		for _, key := range keys {
			if key.KeyTag() != sig.KeyTag || key.Algorithm != sig.Algorithm || !strings.EqualFold(key.Hdr.Name, sig.SignerName) {
				continue
			}
			if verifyErr = sig.Verify(key, set); verifyErr == nil {
				break
			}
		}
		switch {
		case errors.Is(verifyErr, errNoKey):
			if stranger == "" {
				stranger = fmt.Sprintf("the RRSIG over %s is by key tag %d of %s, which is not among %s (key tags %s)", what(), sig.KeyTag, trimDot(dns.CanonicalName(sig.SignerName)), keysAre(), tagList(keys, (*dns.DNSKEY).KeyTag))
			}
		case verifyErr != nil:
			if broken == "" {
				broken = fmt.Sprintf("the RRSIG over %s by key tag %d does not verify (%v)", what(), sig.KeyTag, verifyErr)
			}
		case sig.ValidityPeriod(now):
			return sig, "", false
		case window == "":
			if inception := sigTime(sig.Inception); now.Before(inception) {
				window = fmt.Sprintf("the RRSIG over %s is not valid before %s", what(), inception.Format(time.RFC3339))
			} else {
				window = fmt.Sprintf("the RRSIG over %s expired at %s", what(), sigTime(sig.Expiration).Format(time.RFC3339))
			}
		}
	}
	for _, detail := range []string{window, broken} {
		if detail != "" {
			return nil, detail, false
		}
	}
	if stranger != "" {
		return nil, stranger, true
	}
	return nil, fmt.Sprintf("there is no RRSIG over %s, which a signed zone must serve with it", what()), false
}

var errNoKey = errors.New("no key")

// sigTime is an RRSIG's inception or expiration as a time, read as UNIX
// seconds until 2106.
func sigTime(t uint32) time.Time {
	return time.Unix(int64(t), 0).UTC()
}
