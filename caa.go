package persist

import (
	"context"
	"fmt"

	"github.com/dnspersist/caddy-persist/internal/caa"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/judge"
)

// CAA (RFC 8659) says which CAs may issue for a name, and RFC 8657 narrows
// it to an account and a validation method. CAs check it at every
// issuance, after the order is placed: a policy that forbids this CA,
// account or method costs an order and a failed authorization. So the
// issuer judges CAA as the CA will before it orders, through the same
// lookups as the record check, and places no order when CAA forbids it.

// The statuses of a CAA check.
const (
	caaAllowed   = "allowed"
	caaForbidden = "forbidden"
	caaDNSError  = "dns-error"
	// caaDNSSEC is a CAA answer within the zone whose signatures do not
	// verify: the CA's validating resolver answers SERVFAIL, and a CA
	// that cannot read CAA refuses to issue.
	caaDNSSEC = "dnssec"
)

// CAAError says that the CAA policy of a domain forbids this CA, account or
// method, or could not be looked up. No order is placed.
type CAAError struct {
	// Domain is the name whose CAA policy was judged.
	Domain string
	// FoundAt is where the forbidding CAA records are (the domain or a
	// parent), and Found are those records as zone file lines.
	FoundAt string
	Found   []string
	Reason  string
	// Servers are the nameservers or resolvers serving the forbidding
	// records, when others serve another policy.
	Servers []string
	// Publish are the CAA records that would let this account through,
	// as zone file lines.
	Publish []string
	// DNSErr is set when the lookup itself failed.
	DNSErr error
	// dnssec is set when the CAA answer of Servers, in a signed zone,
	// does not verify.
	dnssec *dnslookup.DNSSECError
}

// Status is forbidden, dns-error or dnssec.
func (e *CAAError) Status() string {
	switch {
	case e.DNSErr != nil:
		return caaDNSError
	case e.dnssec != nil:
		return caaDNSSEC
	}
	return caaForbidden
}

// mayPass reports whether the same policy may pass a later check: a
// lookup that failed or signatures that did not verify may be mended
// while an order waits, records that forbid are not changed by waiting.
func (e *CAAError) mayPass() bool {
	return e.DNSErr != nil || e.dnssec != nil
}

func (e *CAAError) Error() string { return caaLine(e.Domain, "", e.report()) }

// report is the failure as the report of a checked CAA policy.
func (e *CAAError) report() *CAAReport {
	r := &CAAReport{Status: e.Status(), Reason: e.Reason, FoundAt: e.FoundAt, Found: e.Found, Servers: e.Servers, Publish: e.Publish}
	switch {
	case e.DNSErr != nil:
		r.Reason = fmt.Sprintf("%v; a CA refuses to issue while it cannot read CAA", e.DNSErr)
	case e.dnssec != nil:
		// the servers are in the reason, as for a record
		r.Reason, r.Servers = dnssecReason(e.Servers, e.dnssec)+"; a CA refuses to issue while it cannot read CAA", nil
	}
	return r
}

func (e *CAAError) Unwrap() error {
	if e.dnssec != nil && e.DNSErr == nil {
		return e.dnssec
	}
	return e.DNSErr
}

// caaFailure describes a CAA judgement that did not allow issuance:
// records that forbid before signatures that do not verify, since waiting
// mends only the latter.
func caaFailure(j judge.CAAJudgement) *CAAError {
	e := &CAAError{Domain: j.Domain, Reason: j.Reason, DNSErr: j.LookupErr, Publish: caaZoneLines(j.Domain, j.Publish)}
	if j.Forbidding == nil && j.Broken != nil && j.LookupErr == nil {
		// publishing CAA records mends nothing here: the signatures do
		e.dnssec, e.Servers, e.Publish = j.Broken.DNSSEC, j.Broken.Servers, nil
		return e
	}
	if set := j.Forbidding; set != nil {
		e.FoundAt = set.Name
		e.Found = caaZoneLines(set.Name, set.CAA)
		if len(j.Answer.Sets) > 1 {
			e.Servers = set.Servers
		}
	}
	return e
}

func caaZoneLines(name string, records []caa.Record) []string {
	lines := make([]string, 0, len(records))
	for _, r := range records {
		lines = append(lines, caa.ZoneLine(name, r))
	}
	return lines
}

// caaRecords are the CAA records that lock domain to the account and method
// of in: issuewild too when a wildcard is among its names.
func caaRecords(in recordInputs, domain string, wildcard bool) []string {
	return caaZoneLines(domain, caa.Publish(judge.CAARequest(in.Inputs, wildcard)))
}

// checkCAA judges the CAA policy of domain once and logs what the operator
// needs to know; a policy that does not allow issuance is a *CAAError.
func (iss *Issuer) checkCAA(ctx context.Context, in recordInputs, domain string, plain, wildcard bool) error {
	j := iss.judge.CAA(ctx, in.Inputs, domain, plain, wildcard)
	if !j.Allowed() {
		e := caaFailure(j)
		iss.notices.caa(e)
		return e
	}
	iss.notices.caaLeniency(j)
	return nil
}
