package persist

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"
)

// With several persist issuers in one policy (one per CA, each with its
// record at the same name), Caddy tries them in order and moves on when
// one fails. A missing record makes an issuer wait up to
// propagation_timeout before it fails, which is wasted when a later
// issuer's record is already published: the issuer steps aside instead,
// both before it starts (PreCheck) and while it waits.

// laterPersistIssuers returns the persist issuers that come after iss in
// its policy, which Caddy tries if iss fails.
func (iss *Issuer) laterPersistIssuers() []*Issuer {
	if iss.st == nil {
		// not provisioned: no policy either
		return nil
	}
	policy := iss.st.policy.Load()
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
// account of iss now. Anything that keeps it from saying so (no account
// yet, a CA or DNS that does not answer) counts as not passing.
func (iss *Issuer) recordsPass(ctx context.Context, plan orderPlan) bool {
	in, err := iss.recordInputs(ctx, false)
	if err != nil {
		return false
	}
	for _, base := range plan.bases {
		j, err := iss.judge(ctx, in, base, plan.wildcard[base], recentPassWillDo)
		if err != nil || !j.passed() {
			return false
		}
	}
	return true
}

// stepAsideFor returns an error, so that Caddy moves on, when the records
// of plan do not pass for iss but do for a later persist issuer. Without
// a later persist issuer it costs nothing; when it cannot tell, it does
// not step aside, and iss waits for its records as usual.
func (iss *Issuer) stepAsideFor(ctx context.Context, plan orderPlan) error {
	if len(iss.laterPersistIssuers()) == 0 || iss.recordsPass(ctx, plan) {
		return nil
	}
	return iss.leaveToLaterIssuer(ctx, plan)
}

// leaveToLaterIssuer is stepAsideFor once the records of iss are known to
// fail, as while it waits for them.
func (iss *Issuer) leaveToLaterIssuer(ctx context.Context, plan orderPlan) error {
	for _, next := range iss.laterPersistIssuers() {
		// an issuer known to be unable to issue is no reason to leave
		if next.refuseKnownNonOfferingCA(ctx) != nil {
			continue
		}
		if next.recordsPass(ctx, plan) {
			// certmagic moves on from a failed pre-check without a word
			iss.logger.Info("dns-persist-01 records for this CA do not pass, but a later issuer's do; leaving the names to it",
				zap.Strings("identifiers", plan.names),
				zap.String("ca", iss.CA),
				zap.String("next_ca", next.CA))
			return &steppedAsideError{names: plan.names, ca: iss.CA, next: next.CA}
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
