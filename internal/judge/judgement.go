package judge

import (
	"context"
	"time"

	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// The states a check finds a record in, as the metrics and the order
// outcomes name them.
const (
	StateOK         = "ok"
	StateMissing    = "missing"
	StateMismatch   = "mismatch"
	StateExpired    = "expired"
	StateDNSSEC     = "dnssec"
	StateCAA        = "caa"
	StateDNSError   = "dns-error"
	StateNotOffered = "not-offered"
)

// Judgement is the verdict on one base domain's record and what it rests
// on.
type Judgement struct {
	Exp    record.Expectation
	Answer dnslookup.Answer
	// Verdict is on what every server serves: when they differ, on the
	// first view that does not pass, whose servers are behind.
	Verdict record.Verdict
	// Published are the values the verdict is on.
	Published []string
	// Behind names the servers that fail while others pass.
	Behind []string
	// DNSSEC, when set, is why the CA's validating resolver refuses the
	// answer of the servers DNSSECAt, whatever the record says.
	DNSSEC   *dnslookup.DNSSECError
	DNSSECAt []string
	// LookupErr is set when DNS could not be asked; Verdict is then empty.
	LookupErr error
}

// Passed reports whether the record lets the account through at every
// server.
func (j Judgement) Passed() bool {
	return j.LookupErr == nil && j.DNSSEC == nil && j.Verdict.Status == record.StatusOK
}

// State is the state the judgement finds the record in.
func (j Judgement) State() string {
	switch {
	case j.LookupErr != nil:
		return StateDNSError
	case j.DNSSEC != nil:
		return StateDNSSEC
	case j.Verdict.Status == record.StatusOK:
		return StateOK
	case j.Verdict.Status == record.StatusMissing:
		return StateMissing
	}
	return MismatchState(j.Verdict.Has)
}

// MismatchState is expired when this account's own record is there but
// past its persistUntil, and mismatch otherwise.
func MismatchState(has func(record.MismatchKind) bool) string {
	if has(record.MismatchExpired) && !has(record.MismatchPolicy) {
		return StateExpired
	}
	return StateMismatch
}

// Age says whether a check may decide on an answer it already has.
type Age int

const (
	// Fresh always asks DNS: for the on-demand permission, grants and
	// reports, which have their own caches or must show what is
	// published now.
	Fresh Age = iota
	// RecentPassWillDo uses a passing answer from the last few seconds
	// without asking DNS again, so that an issuance right after an
	// on-demand check costs one lookup, not two.
	RecentPassWillDo
)

// Checker judges records and CAA for an issuer.
type Checker struct {
	Resolver *dnslookup.Resolver
	Spec     Spec
	Now      func() time.Time
	// Observe, when set, is told of every judgement of a record at a
	// base domain, and of every judgement of CAA at a domain.
	Observe    func(base string, j Judgement)
	ObserveCAA func(domain string, j CAAJudgement)
}

// Record decides whether the record at base authorizes the account of in,
// for the names under base (wildcard when *.base is among them). The error
// is for an expectation that cannot be built (a configuration the CA does
// not fit); a failed lookup is part of the judgement.
func (c *Checker) Record(ctx context.Context, in Inputs, base string, wildcard bool, age Age) (Judgement, error) {
	exp, err := c.Spec.Expectation(in, base, wildcard)
	if err != nil {
		return Judgement{}, err
	}
	j := Judgement{Exp: exp}
	name := record.Name(base)
	if age == RecentPassWillDo {
		if ans, ok := c.Resolver.Recent(name); ok {
			if j.Answer = ans; j.Evaluate(c.Now()) {
				c.observe(base, j)
				return j, nil
			}
		}
	}
	j.Answer, j.LookupErr = c.Resolver.LookupTXT(ctx, name)
	if j.LookupErr == nil {
		j.Evaluate(c.Now())
	}
	c.observe(base, j)
	return j, nil
}

func (c *Checker) observe(base string, j Judgement) {
	if c.Observe != nil {
		c.Observe(base, j)
	}
}

// Evaluate judges what each server serves, and passes only when every
// server that answered serves a passing record whose chain of signatures,
// in a signed zone, verifies: the CA's resolver may reach any of them, so
// a server that lags behind the others fails the check until it catches
// up. The verdict is then the first failing one, or the first refused by
// DNSSEC, which the operator must mend where a lagging server catches up
// by itself.
func (j *Judgement) Evaluate(now time.Time) bool {
	views := j.Answer.Views
	verdicts := make([]record.Verdict, len(views))
	firstFailed := -1
	j.Behind, j.DNSSEC, j.DNSSECAt = nil, nil, nil
	for i, view := range views {
		verdicts[i] = record.Evaluate(j.Exp, view.Values, now)
		if verdicts[i].Status == record.StatusOK && view.DNSSEC == nil {
			continue
		}
		if firstFailed < 0 || view.DNSSEC != nil && views[firstFailed].DNSSEC == nil {
			firstFailed = i
		}
		j.Behind = append(j.Behind, view.Servers...)
	}
	switch {
	case len(views) == 0:
		j.Verdict, j.Published = record.Evaluate(j.Exp, nil, now), nil
	case firstFailed >= 0:
		j.Verdict, j.Published = verdicts[firstFailed], views[firstFailed].Values
		j.DNSSEC, j.DNSSECAt = views[firstFailed].DNSSEC, views[firstFailed].Servers
	default:
		j.Verdict, j.Published = verdicts[0], views[0].Values
	}
	if len(views) < 2 || firstFailed >= 0 && len(j.Behind) == countServers(views) {
		// the servers agree, or none passes: naming them adds nothing,
		// and no server is behind the others
		j.Behind = nil
	}
	return j.Verdict.Status == record.StatusOK && j.DNSSEC == nil
}

func countServers(views []dnslookup.View) int {
	n := 0
	for _, v := range views {
		n += len(v.Servers)
	}
	return n
}
