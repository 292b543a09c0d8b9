package persist

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// persistSolver is the issuer's only acmez solver. Nothing is created in
// DNS: Present confirms the operator's record authorizes the account,
// against the issuer names this challenge offers (and the accounturi it
// names, if any), and fails without letting acmez POST the challenge when
// it does not.
type persistSolver struct {
	iss *Issuer
}

// Present checks the record for the challenge's domain. acmez calls it for
// every authorization of the order before it initiates any challenge.
func (s persistSolver) Present(ctx context.Context, chal acme.Challenge) error {
	order := orderFrom(ctx)
	if order == nil {
		return errors.New("dns-persist-01 challenge outside an order of this issuer")
	}
	// every authorization of the order is known by now: one without
	// dns-persist-01 fails the order before any record is awaited
	if err := order.offers.notOffered(s.iss.CA, s.iss.now()); err != nil {
		return err
	}
	s.iss.notOffered.forget(ctx)
	if s.iss.PropagationTimeout < 0 {
		return nil
	}
	in := order.in
	var err error
	if in.Offered, err = offeredInChallenge(chal, in.Dir); err != nil {
		return err
	}
	// the challenge says what the CA validates against: a value it
	// names is remembered, and one it does not name is the account URL,
	// which makes the issuer forget what earlier challenges named
	in.ChallengeURI = order.offers.accountURIOf(chal.URL)
	validatedAgainst := in.ChallengeURI
	if validatedAgainst == "" {
		validatedAgainst = in.Account.Location
	}
	s.iss.accounts.RememberChallengeURI(ctx, in.Account, validatedAgainst)
	base, _, err := record.BaseDomain(chal.Identifier.Value)
	if err != nil {
		return err
	}
	deadline := order.started.Add(time.Duration(s.iss.PropagationTimeout))
	// CAA was judged before the order unless the issuer names were
	// unknown then, or the challenge offers others
	withCAA := !order.caaChecked || !slices.Equal(judge.CAARequest(in.Inputs, false).Issuers, judge.CAARequest(order.in.Inputs, false).Issuers)
	err = s.iss.awaitRecords(ctx, in, order.plan, []string{base}, withCAA, deadline, nil)
	return withChallengeAccount(err, base, in)
}

// CleanUp does nothing: the record belongs to the operator and stays.
func (persistSolver) CleanUp(context.Context, acme.Challenge) error { return nil }

// Draft -01 (section 3.1) lets a dns-persist-01 challenge carry
// accounturi, the account URI the CA validates the record against;
// Boulder sets it when configured with account URI prefixes. It is
// usually the account URL the records were printed with, but need not
// be: when a challenge names it, the solver judges the record against
// it, as the CA will, and a record printed for the account URL fails
// before the challenge is answered. acmez does not parse the field; the
// ACME client's transport reads it from the authorizations of each order
// (notoffered.go), and the account keeper remembers a value that is not
// the account URL, so that the other checks judge records against it too.

// ChallengeAccountError is a record that does not pass because the CA's
// challenge names another accounturi than the account URL the records
// were printed with: the CA validates against the challenge's.
type ChallengeAccountError struct {
	// Domain is the base domain of the record.
	Domain string
	// ChallengeURI is the accounturi the challenge names.
	ChallengeURI string
	// AccountURL is the account's URL, which the records name.
	AccountURL string
	// Err is the failed check, a *RecordError (or several, joined).
	Err error
}

func (e *ChallengeAccountError) Error() string {
	return fmt.Sprintf("the CA's dns-persist-01 challenge for %s names accounturi %s, not the account URL %s the records were printed with, and the CA validates the record against the challenge's (see \"The challenge names another account URI\" in docs/troubleshooting.md): %v",
		e.Domain, e.ChallengeURI, e.AccountURL, e.Err)
}

func (e *ChallengeAccountError) Unwrap() error { return e.Err }

// withChallengeAccount explains a failed check of a record judged against
// a challenge's accounturi that is not the account URL.
func withChallengeAccount(err error, domain string, in recordInputs) error {
	if err == nil || in.ChallengeURI == "" || in.ChallengeURI == in.Account.Location {
		return err
	}
	var recErr *RecordError
	if !errors.As(err, &recErr) {
		return err
	}
	return &ChallengeAccountError{Domain: domain, ChallengeURI: in.ChallengeURI, AccountURL: in.Account.Location, Err: err}
}

// offeredInChallenge returns the issuer domain names a challenge accepts:
// the directory's for draft -02, where every one is always accepted, else
// the challenge's own list.
func offeredInChallenge(chal acme.Challenge, dir judge.Directory) ([]string, error) {
	if dir.Draft == record.Draft02 {
		return dir.IssuerNames, nil
	}
	if err := record.CheckIssuerNames(chal.IssuerDomainNames); err != nil {
		return nil, fmt.Errorf("dns-persist-01 challenge for %s from the CA is malformed: %v", chal.Identifier.Value, err)
	}
	return chal.IssuerDomainNames, nil
}

// Interface guard
var _ acmez.Solver = persistSolver{}
