package persist

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"go.uber.org/zap"
)

// With several persist issuers in one policy (one per CA, each with its
// record at the same name), Caddy tries them in order and moves on when
// one fails. A missing record makes an issuer wait up to
// propagation_timeout before it fails, which is wasted when a later
// issuer's record is already published: the issuer steps aside instead,
// both before it starts (PreCheck) and while it waits.

// policyIssuers holds the issuers of the automation policy an issuer
// serves, in the order Caddy tries them.
type policyIssuers struct {
	issuers atomic.Pointer[[]certmagic.Issuer]
}

// set keeps a copy of issuers.
func (p *policyIssuers) set(issuers []certmagic.Issuer) {
	issuers = slices.Clone(issuers)
	p.issuers.Store(&issuers)
}

// after returns the persist issuers that come after iss in the policy,
// which Caddy tries if iss fails.
func (p *policyIssuers) after(iss *Issuer) []*Issuer {
	if p == nil {
		// not provisioned: no policy either
		return nil
	}
	policy := p.issuers.Load()
	if policy == nil {
		return nil
	}
	issuers := persistIssuers(*policy)
	i := slices.Index(issuers, iss)
	if i < 0 {
		return nil
	}
	return issuers[i+1:]
}

// recordsPass reports whether every record plan needs authorizes the
// account of iss now, deciding on answers of the given age. Anything that
// keeps it from saying so (no account yet, a CA or DNS that does not
// answer) counts as not passing, and is the error.
func (iss *Issuer) recordsPass(ctx context.Context, plan judge.Plan, age judge.Age) (bool, error) {
	in, err := iss.recordInputs(ctx, false)
	if err != nil {
		return false, err
	}
	for _, base := range plan.Bases {
		j, err := iss.judge.Record(ctx, in.Inputs, base, plan.Wildcard[base], age)
		if err != nil {
			return false, err
		}
		if !j.Passed() {
			return false, j.LookupErr
		}
	}
	return true, nil
}

// stepAside returns an error, so that Caddy moves on, when the records of
// plan do not pass for iss but do for a later persist issuer. Without a
// later persist issuer it costs nothing; when it cannot tell, it does not
// step aside, and iss waits for its records as usual. ownFailing says the
// records of iss are known to fail already, as while it waits for them.
func (iss *Issuer) stepAside(ctx context.Context, plan judge.Plan, ownFailing bool) error {
	later := iss.policy.after(iss)
	if len(later) == 0 {
		return nil
	}
	if !ownFailing {
		if pass, _ := iss.recordsPass(ctx, plan, judge.RecentPassWillDo); pass {
			return nil
		}
	}
	for _, next := range later {
		// an issuer known to be unable to issue is no reason to leave
		if next.notOffered.refuse(ctx) != nil {
			continue
		}
		if pass, _ := next.recordsPass(ctx, plan, judge.RecentPassWillDo); pass {
			// certmagic moves on from a failed pre-check without a word
			iss.logger.Info("dns-persist-01 records for this CA do not pass, but a later issuer's do; leaving the names to it",
				zap.Strings("identifiers", plan.Names),
				zap.String("ca", iss.CA),
				zap.String("next_ca", next.CA))
			return &steppedAsideError{names: plan.Names, ca: iss.CA, next: next.CA}
		}
	}
	return nil
}

// steppedAsideError is why an issuer left names to a later one.
type steppedAsideError struct {
	names []string
	ca    string
	next  string
}

func (e *steppedAsideError) Error() string {
	return fmt.Sprintf("%v: the dns-persist-01 records for %s do not pass yet, but those for %s do; leaving the names to that issuer", e.names, e.ca, e.next)
}
