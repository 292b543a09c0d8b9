package judge

import (
	"context"
	"slices"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/caa"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
)

// CAAJudgement is the verdict on the CAA policy of a domain for the names
// an order asks under it.
type CAAJudgement struct {
	Domain string
	Answer dnslookup.CAAAnswer
	// Forbidding is the first set that forbids, and Reason why.
	Forbidding *dnslookup.CAASet
	Reason     string
	// Broken is the first set whose signatures do not verify.
	Broken *dnslookup.CAASet
	// Warnings are what the allowing records rely on, for every set.
	Warnings []string
	// Publish are the CAA records that would let the account through.
	Publish   []caa.Record
	LookupErr error
}

// Allowed reports whether every server's policy lets the names through.
func (j CAAJudgement) Allowed() bool {
	return j.LookupErr == nil && j.Forbidding == nil && j.Broken == nil
}

// State is the state CAA puts a passing record in: "" when it allows.
func (j CAAJudgement) State() string {
	switch {
	case j.LookupErr != nil:
		return StateDNSError
	case j.Broken != nil:
		return StateDNSSEC
	case j.Forbidding != nil:
		return StateCAA
	}
	return ""
}

// CAARequest is the issuance of in judged by CAA: the names a CAA record
// may give the CA (the directory's caaIdentities, else the issuer domain
// names records use), the account and dns-persist-01.
func CAARequest(in Inputs, wildcard bool) caa.Request {
	issuers := in.Dir.CAAIdentities
	if len(issuers) == 0 {
		issuers = in.Offered
	}
	return caa.Request{Issuers: issuers, AccountURI: in.Account.Location, Method: acme.ChallengeTypeDNSPersist01, Wildcard: wildcard}
}

// CAA looks up the CAA policy of domain and judges it for the names an
// order asks under it: the domain itself when plain, *.domain when
// wildcard. Every server's relevant RRset must allow them.
func (c *Checker) CAA(ctx context.Context, in Inputs, domain string, plain, wildcard bool) CAAJudgement {
	j := CAAJudgement{Domain: domain, Publish: caa.Publish(CAARequest(in, wildcard))}
	j.Answer, j.LookupErr = c.Resolver.LookupCAA(ctx, domain)
	if j.LookupErr == nil {
		j.judge(in, plain, wildcard)
	}
	if c.ObserveCAA != nil {
		c.ObserveCAA(domain, j)
	}
	return j
}

func (j *CAAJudgement) judge(in Inputs, plain, wildcard bool) {
	var kinds []bool
	if plain || !wildcard {
		kinds = append(kinds, false)
	}
	if wildcard {
		kinds = append(kinds, true)
	}
	for i, set := range j.Answer.Sets {
		if set.DNSSEC != nil {
			if j.Broken == nil {
				j.Broken = &j.Answer.Sets[i]
			}
			continue
		}
		for _, w := range kinds {
			res := caa.Evaluate(set.CAA, CAARequest(in, w))
			if !res.Allowed {
				if j.Forbidding == nil {
					j.Forbidding, j.Reason = &j.Answer.Sets[i], res.Reason
				}
				continue
			}
			for _, w := range res.Warnings {
				if !slices.Contains(j.Warnings, w) {
					j.Warnings = append(j.Warnings, w)
				}
			}
		}
	}
}
