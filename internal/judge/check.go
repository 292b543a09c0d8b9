// Package judge decides whether what is published at a base domain lets
// an ACME account through, as the CA will judge it, before anything is
// asked of the CA: the record the account needs (Spec.Expectation), the
// verdict on what every DNS server serves (Checker.Record), the CAA policy
// (Checker.CAA), and the values that name the account as it was
// (Checker.Stale). It knows nothing of Caddy or certmagic; the plugin
// gives it the CA's directory, the account and the config's settings.
package judge

import (
	"fmt"
	"slices"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// Directory is what the records need of a CA's directory.
type Directory struct {
	Draft record.Draft
	// IssuerNames are the names a record may use, known before any order:
	// meta.issuerDomainNames (-02) or meta.caaIdentities (-01). Empty when
	// the directory names none; -01 challenges then carry the list.
	IssuerNames []string
	// CAAIdentities are meta.caaIdentities, the names CAA records give the
	// CA; empty when the directory names none.
	CAAIdentities []string
	// HashPrefix is meta.accountHashPrefix (-02 only).
	HashPrefix string
}

// Inputs is what writing or checking a record needs besides its domain.
type Inputs struct {
	Dir Directory
	// Offered are the issuer domain names records may use.
	Offered []string
	Account acme.Account
	// ChallengeURI is the accounturi a -01 challenge names, which the CA
	// validates the record against instead of the account URL; empty
	// when none names one.
	ChallengeURI string
	// Previous, for a -02 CA, are the thumbprints of the account's
	// earlier keys: the CA keeps accepting records hashed with them.
	Previous []string
}

// Spec is what the config says of every record an issuer needs.
type Spec struct {
	// CA is the directory URL, for errors.
	CA string
	// Preferred is issuer_domain_name, if set.
	Preferred    string
	PersistUntil time.Time
	// WildcardBases are the base domains whose wildcard the config
	// obtains with this account and these settings: Caddy orders the
	// apex and the wildcard as two certificates, and the record each
	// asks for must be the one both need. Nil when unknown.
	WildcardBases func() map[string]bool
}

// PersistUntilPassedError is a persist_until in the past: every CA
// refuses the records it makes.
type PersistUntilPassedError struct{ Until time.Time }

func (e *PersistUntilPassedError) Error() string {
	return fmt.Sprintf("persist_until %s has passed, and CAs refuse records past their persistUntil: set a later persist_until (or remove it) in the config, reload a running Caddy, and publish the records caddy persist records prints then", e.Until.UTC().Format(time.RFC3339))
}

// Passed is a *PersistUntilPassedError when persist_until is before now.
func (s Spec) Passed(now time.Time) error {
	if s.PersistUntil.IsZero() || !now.After(s.PersistUntil) {
		return nil
	}
	return &PersistUntilPassedError{Until: s.PersistUntil}
}

// Offered returns the issuer domain names known without an order: the
// directory's, else the configured one. Nil means only the challenge will
// tell.
func (s Spec) Offered(dir Directory) []string {
	if len(dir.IssuerNames) > 0 {
		return dir.IssuerNames
	}
	if s.Preferred != "" {
		return []string{s.Preferred}
	}
	return nil
}

// Expectation builds what the record at base must say for the account of
// in, given the issuer domain names it offers.
func (s Spec) Expectation(in Inputs, base string, wildcard bool) (record.Expectation, error) {
	exp := record.Expectation{
		Domain:       base,
		Offered:      in.Offered,
		Preferred:    s.Preferred,
		Wildcard:     wildcard,
		PersistUntil: s.PersistUntil,
	}
	if s.WildcardBases != nil {
		exp.PublishWildcard = s.WildcardBases()[base]
	}
	if exp.Preferred != "" && !slices.Contains(in.Offered, exp.Preferred) {
		return exp, fmt.Errorf("issuer_domain_name %q is not offered by %s, which offers %v; set one of those or remove issuer_domain_name", exp.Preferred, s.CA, in.Offered)
	}
	if in.ChallengeURI != "" && in.Dir.Draft != record.Draft02 {
		exp.AccountURIs = []string{in.ChallengeURI}
		return exp, nil
	}
	uris, err := accountURIs(in.Dir, in.Account, base)
	if err != nil {
		return exp, err
	}
	exp.AccountURIs = uris
	for _, thumbprint := range in.Previous {
		previous, err := hashedAccountURIs(in.Dir, thumbprint, in.Account.Location, base)
		if err != nil {
			return exp, err
		}
		exp.PreviousAccountURIs = append(exp.PreviousAccountURIs, previous...)
	}
	return exp, nil
}

// ZoneLines renders, without looking anything up, the records the names
// of plan need, as zone file lines. They need the issuer domain names;
// without them the list is empty.
func (s Spec) ZoneLines(plan Plan, in Inputs) []string {
	if in.Offered == nil {
		return nil
	}
	var lines []string
	for _, base := range plan.Bases {
		exp, err := s.Expectation(in, base, plan.Wildcard[base])
		if err != nil {
			continue
		}
		if value, err := exp.Want(record.Verdict{}).Value(); err == nil {
			lines = append(lines, record.ZoneLine(base, value))
		}
	}
	return lines
}

// accountURIs lists the accounturi values the CA accepts for acct at base,
// the one to publish first. Draft -02 also accepts the hash made for every
// domain.
func accountURIs(dir Directory, acct acme.Account, base string) ([]string, error) {
	if dir.Draft != record.Draft02 {
		return []string{acct.Location}, nil
	}
	thumbprint, err := acct.Thumbprint()
	if err != nil {
		return nil, fmt.Errorf("computing the account key thumbprint: %v", err)
	}
	return hashedAccountURIs(dir, thumbprint, acct.Location, base)
}

// hashedAccountURIs are the -02 values of the key with thumbprint for the
// account at accountURL: the one for base, then the one for every domain.
func hashedAccountURIs(dir Directory, thumbprint, accountURL, base string) ([]string, error) {
	perDomain, err := record.HashedAccountURI(dir.HashPrefix, base, thumbprint, accountURL)
	if err != nil {
		return nil, err
	}
	anyDomain, err := record.HashedAccountURI(dir.HashPrefix, record.AnyDomain, thumbprint, accountURL)
	if err != nil {
		return nil, err
	}
	return []string{perDomain, anyDomain}, nil
}
