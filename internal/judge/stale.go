package judge

import (
	"slices"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// Stale is a published value that names the account as it was. A value
// made with a key the account had before a rollover still passes, and the
// value to publish replaces it; a value naming an account the issuer used
// before (replaced, deactivated, or set aside when a new one was
// registered) authorizes nothing it asks for, and may be removed.
type Stale struct {
	Value string `json:"value"`
	// AccountURL is the account the value names.
	AccountURL string `json:"account_url"`
	// PreviousKey is set for a value of the current account made with
	// an earlier key.
	PreviousKey bool `json:"previous_key,omitempty"`
}

// Stale lists the values any server publishes at j's name that name the
// account of in made with an earlier key, or an account of former: a
// value one server still serves is not gone yet. The account in use is
// never former, whatever storage says.
func (c *Checker) Stale(in Inputs, j Judgement, former []acme.Account) []Stale {
	now := c.Now()
	var published []string
	for _, view := range j.Answer.Views {
		for _, value := range view.Values {
			if !slices.Contains(published, value) {
				published = append(published, value)
			}
		}
	}
	var stale []Stale
	for _, value := range published {
		if v := record.Evaluate(j.Exp, []string{value}, now); v.Status == record.StatusOK {
			if v.PreviousKey {
				stale = append(stale, Stale{Value: value, AccountURL: in.Account.Location, PreviousKey: true})
			}
			continue
		}
		for _, acct := range former {
			if acct.Location == in.Account.Location || acct.PrivateKey == nil && in.Dir.Draft == record.Draft02 {
				// in use; or a -02 value hashes a key that was not kept
				continue
			}
			was := in
			was.Account, was.ChallengeURI, was.Previous = acct, "", nil
			exp, err := c.Spec.Expectation(was, j.Exp.Domain, j.Exp.Wildcard)
			if err != nil {
				continue
			}
			if v := record.Evaluate(exp, []string{value}, now); v.Status == record.StatusOK ||
				!v.Has(record.MismatchIssuer) && !v.Has(record.MismatchMalformed) && !v.Has(record.MismatchAccount) {
				stale = append(stale, Stale{Value: value, AccountURL: acct.Location})
				break
			}
		}
	}
	return stale
}
