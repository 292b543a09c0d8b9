package dnslookup

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// CAAAnswer is the relevant CAA RRset of a name (RFC 8659 §3) as the
// servers serve it: one set per distinct answer among them.
type CAAAnswer struct {
	Sets []CAASet
	// Unanswered are the servers skipped along the climb.
	Unanswered []Unanswered
	// Asked are the names whose CAA records were asked, from the name up.
	Asked []string
}

// CAASet is the relevant RRset some servers serve. A set whose View has
// DNSSEC set is an answer the CA's validating resolver refuses, at Name,
// which ends the climb there as the CA's SERVFAIL does.
type CAASet struct {
	// Name is where the records were found, the name itself or a parent;
	// empty when these servers serve no CAA record up to the top-level
	// domain, which allows any CA.
	Name string
	View
}

// LookupCAA finds the relevant CAA RRset of name as a CA does: the CAA
// records at name, following CNAMEs, and, while there are none, at each
// parent up to the top-level domain. Every server is asked at each name, as
// for TXT. Servers that serve no records at a name where others do are
// followed up the tree too, since a CA that reaches them climbs further.
//
// Asking every server of every parent zone (the TLD's, among others) at
// each check would cost more than the check is worth, and their CAA
// records are not the operator's to change while it waits: with
// authoritative lookups, the names above the zone that holds name are
// asked of the recursive servers, as a CA's resolver would, and their
// answers kept for nsCacheTTL; the CA's resolver validates them, and the
// operator cannot change them, so their signatures are not judged. The
// answers within the zone are judged as the record's are (see
// judgeDNSSEC). The parents within the zone are shared by
// the names under them, so their answers are kept for recentTTL, for the
// checks of the names of one certificate or a burst of issuance; name
// itself is always asked afresh.
func (r *Resolver) LookupCAA(ctx context.Context, name string) (CAAAnswer, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	zone := ""
	if len(r.resolvers) == 0 {
		var err error
		if zone, err = r.zoneOf(ctx, dns.Fqdn(name)); err != nil {
			return CAAAnswer{}, &Error{Name: name, Err: err}
		}
		zone = strings.TrimSuffix(zone, ".")
	}
	var out CAAAnswer
	above := false
	for candidate := name; candidate != ""; candidate = parentName(candidate) {
		above = above || zone != "" && candidate != zone && !strings.HasSuffix(candidate, "."+zone)
		ans, err := r.caaAt(ctx, candidate, candidate != name, above)
		out.Unanswered = append(out.Unanswered, ans.Unanswered...)
		if err != nil {
			return out, err
		}
		out.Asked = append(out.Asked, candidate)
		missing := false
		for _, v := range ans.Views {
			// a validator's SERVFAIL ends the climb: the CA refuses
			if len(v.CAA) == 0 && v.DNSSEC == nil {
				missing = true
				continue
			}
			out.Sets = append(out.Sets, CAASet{Name: candidate, View: v})
		}
		if !missing {
			return out, nil
		}
	}
	out.Sets = append(out.Sets, CAASet{})
	return out, nil
}

// caaAt asks every server for the CAA records at name, or, above the
// zone, the recursive servers. The answer at a parent is kept.
func (r *Resolver) caaAt(ctx context.Context, name string, parent, above bool) (Answer, error) {
	if parent {
		if ans, ok := r.caaParents.Get(name, r.now()); ok {
			return ans, nil
		}
	}
	var ans Answer
	var err error
	if above {
		ans, err = r.caaRecursive(ctx, name)
	} else {
		l := lookup{r: r, qtype: dns.TypeCAA}
		err = l.follow(ctx, dns.Fqdn(name), nil, 0)
		r.logSkipped(ctx, l.ans.Unanswered)
		ans = l.ans
	}
	if err == nil && parent && len(ans.Unanswered) == 0 {
		ttl := recentTTL
		if above {
			ttl = nsCacheTTL
		}
		now := r.now()
		r.caaParents.Put(name, ans, now, now.Add(ttl))
	}
	return ans, err
}

// caaRecursive asks the recursive servers for the CAA records at name.
func (r *Resolver) caaRecursive(ctx context.Context, name string) (Answer, error) {
	msg, server, err := r.exchangeFirst(ctx, dns.Fqdn(name), dns.TypeCAA, r.recursiveServers(), askValidated)
	if err != nil {
		return Answer{}, &Error{Name: name, Server: server, Err: err}
	}
	_, aliases, rrs, err := readAnswer(msg, dns.Fqdn(name), dns.TypeCAA, "")
	if err != nil {
		return Answer{}, &Error{Name: name, Server: server, Err: err}
	}
	values, caas := recordValues(rrs)
	return Answer{Views: []View{{Values: values, CAA: caas, CNAMEs: aliases, Servers: []string{server}}}}, nil
}

// parentName is name without its first label; empty for a single label,
// since the root is never asked.
func parentName(name string) string {
	_, parent, ok := strings.Cut(name, ".")
	if !ok {
		return ""
	}
	return parent
}
