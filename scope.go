package persist

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/judge"
)

// Which names a report covers, and which account their records name. By
// default, the names the running config's persist issuers serve, with
// the names a request adds. A command given a config file the running
// Caddy has not loaded yet (a site just added) asks instead for exactly
// that file's names, each group with the record settings of the file's
// persist issuer, and for the account of the running persist issuer with
// the same CA, email and account_key: the account lives in the running
// Caddy's storage, and the file's issuer will use it once loaded.

// issuerIdentity is what a report needs of a config file's persist
// issuer: its account (the CA, the email, the thumbprint of account_key)
// and the settings its records carry.
type issuerIdentity struct {
	CA    string `json:"ca"`
	Email string `json:"email"`
	// AccountKey is the JWK thumbprint of the account_key, "" without.
	AccountKey       string `json:"account_key_thumbprint,omitempty"`
	IssuerDomainName string `json:"issuer_domain_name,omitempty"`
	// PersistUntil is RFC 3339, "" without.
	PersistUntil string `json:"persist_until,omitempty"`
}

// identityOf is the identity of an issuer, provisioned or not.
func identityOf(iss *Issuer) issuerIdentity {
	id := issuerIdentity{CA: iss.CA, Email: iss.Email, AccountKey: keyThumbprint(iss.AccountKey), IssuerDomainName: iss.IssuerDomainName}
	if iss.judge == nil {
		return id
	}
	if until := iss.judge.Spec.PersistUntil; !until.IsZero() {
		id.PersistUntil = until.Format(time.RFC3339)
	}
	return id
}

// keyThumbprint is the RFC 7638 thumbprint of a PEM account key, which
// names it without giving it away; "" for none.
func keyThumbprint(keyPEM string) string {
	if keyPEM == "" {
		return ""
	}
	key, err := certmagic.PEMDecodePrivateKey([]byte(keyPEM))
	if err != nil {
		return ""
	}
	acct := acme.Account{PrivateKey: key}
	thumbprint, err := acct.Thumbprint()
	if err != nil {
		return ""
	}
	return thumbprint
}

// sameAccount reports whether iss uses the account id names.
func (id issuerIdentity) sameAccount(iss *Issuer) bool {
	return account.SameDirectory(id.CA, iss.CA) && strings.EqualFold(id.Email, iss.Email) && id.AccountKey == keyThumbprint(iss.AccountKey)
}

// String names the account for people.
func (id issuerIdentity) String() string {
	s := fmt.Sprintf("the account of %s with email %q", id.CA, id.Email)
	if id.AccountKey != "" {
		s += " and the account_key of thumbprint " + id.AccountKey
	}
	return s
}

// Query parameters of GET /persist/records and /persist/check that name
// a config file's persist issuer.
const (
	paramOnly             = "only"
	paramCA               = "ca"
	paramEmail            = "email"
	paramAccountKey       = "account_key_thumbprint"
	paramIssuerDomainName = "issuer_domain_name"
	paramPersistUntil     = "persist_until"
)

// query adds id to q.
func (id issuerIdentity) query(q url.Values) {
	q.Set(paramCA, id.CA)
	q.Set(paramEmail, id.Email)
	for param, value := range map[string]string{paramAccountKey: id.AccountKey, paramIssuerDomainName: id.IssuerDomainName, paramPersistUntil: id.PersistUntil} {
		if value != "" {
			q.Set(param, value)
		}
	}
}

// identityFromQuery reads an identity from q; ok is false when q names
// none.
func identityFromQuery(q url.Values) (id issuerIdentity, ok bool) {
	if !q.Has(paramCA) {
		return issuerIdentity{}, false
	}
	return issuerIdentity{
		CA:               q.Get(paramCA),
		Email:            q.Get(paramEmail),
		AccountKey:       q.Get(paramAccountKey),
		IssuerDomainName: q.Get(paramIssuerDomainName),
		PersistUntil:     q.Get(paramPersistUntil),
	}, true
}

// issuerNames are names a config file's persist issuer serves.
type issuerNames struct {
	Issuer  issuerIdentity `json:"issuer"`
	Domains []string       `json:"domain"`
}

// noSuchAccountError is a config file's persist issuer whose account no
// persist issuer of the running config uses.
type noSuchAccountError struct {
	want    issuerIdentity
	running []string
}

func (e *noSuchAccountError) Error() string {
	return fmt.Sprintf("no persist issuer of the running Caddy uses %s (it has %s): the records would name an account the config file will not use once loaded, so none is printed; reload Caddy with the file first, or give --local to load the file here with its own storage", e.want, strings.Join(e.running, "; "))
}

// setsFor returns, for each group, a set of exactly its names, served by
// the running persist issuer of the group's account and writing records
// with the group's settings.
func setsFor(running caddy.Context, groups []issuerNames) ([]servedSet, error) {
	sets, err := servedNames(running, nil, nil)
	if err != nil {
		return nil, err
	}
	var out []servedSet
	for _, g := range groups {
		// the running issuer with the group's very settings, else one
		// of its account: what the check finds shows as that issuer's
		i := slices.IndexFunc(sets, func(set servedSet) bool { return identityOf(set.Issuer) == g.Issuer })
		if i < 0 {
			i = slices.IndexFunc(sets, func(set servedSet) bool { return g.Issuer.sameAccount(set.Issuer) })
		}
		if i < 0 {
			var have []string
			for _, set := range sets {
				if name := identityOf(set.Issuer).String(); !slices.Contains(have, name) {
					have = append(have, name)
				}
			}
			return nil, &noSuchAccountError{want: g.Issuer, running: have}
		}
		iss, err := withRecordSettings(sets[i].Issuer, g.Issuer, g.Domains)
		if err != nil {
			return nil, &inputError{err}
		}
		for _, name := range g.Domains {
			if err := refuseIPAddress(name); err != nil {
				return nil, &inputError{err}
			}
		}
		out = append(out, servedSet{Issuer: iss, Names: normalizeNames(g.Domains)})
	}
	return out, nil
}

// withRecordSettings returns iss writing records with the settings of id
// for names, the names of a config file: a copy that shares its account,
// ACME client and what it remembers, whose records carry policy=wildcard
// where names hold the base's wildcard, as the file would have them.
func withRecordSettings(iss *Issuer, id issuerIdentity, names []string) (*Issuer, error) {
	copied := *iss
	copied.IssuerDomainName, copied.PersistUntil = id.IssuerDomainName, id.PersistUntil
	bases := make(map[string]bool)
	for _, name := range normalizeNames(names) {
		if base, ok := strings.CutPrefix(name, "*."); ok {
			bases[base] = true
		}
	}
	spec := judge.Spec{CA: iss.CA, Preferred: id.IssuerDomainName, WildcardBases: func() map[string]bool { return bases }}
	if id.PersistUntil != "" {
		until, err := parsePersistUntil(id.PersistUntil)
		if err != nil {
			return nil, err
		}
		spec.PersistUntil = until
	}
	checker := *iss.judge
	checker.Spec = spec
	copied.judge = &checker
	copied.identity = identityKey(&copied)
	if copied.identity != iss.identity {
		// records with other settings than the running issuer's: what
		// a check finds of them is not what Caddy's orders meet
		checker.Observe, checker.ObserveCAA = nil, nil
	}
	return &copied, nil
}

// servedNow reports whether the running config serves name: a persist
// issuer obtains its certificate (or its parent's wildcard's), now or on
// demand.
func servedNow(running caddy.Context) (func(name string) bool, error) {
	sets, err := servedNames(running, nil, nil)
	if err != nil {
		return nil, err
	}
	listed := make(map[string]bool)
	for _, set := range sets {
		for _, name := range set.Names {
			listed[name] = true
		}
	}
	policies, err := runningPolicies(running)
	if err != nil {
		return nil, err
	}
	return func(name string) bool {
		name = normalizeName(name)
		if listed[name] || coveredByWildcard(name, listed) {
			return true
		}
		ap := policies.policyFor(name)
		return ap != nil && ap.OnDemand && len(persistIssuersOf(ap)) > 0
	}, nil
}

// markNotServed lists, in each report, the names the running config does
// not serve yet.
func markNotServed(running caddy.Context, reports []RecordReport) error {
	serves, err := servedNow(running)
	if err != nil {
		return err
	}
	for i := range reports {
		for _, name := range reports[i].Names {
			if !serves(name) {
				reports[i].NotServed = append(reports[i].NotServed, name)
			}
		}
	}
	return nil
}

// issuerReport is a persist issuer of the running config, as GET
// /persist/issuers shows it: the account it uses and the names it serves.
type issuerReport struct {
	issuerIdentity
	// AccountURL is the account's URL, "" when there is none yet.
	AccountURL string `json:"account_url,omitempty"`
	// AccountError says why the account could not be read, other than
	// there being none yet.
	AccountError string `json:"account_error,omitempty"`
	Storage      string `json:"storage"`
	// OwnStorage is set when the issuer's automation policy gives it a
	// storage of its own, not the config's.
	OwnStorage bool     `json:"own_storage,omitempty"`
	Names      []string `json:"names"`
}

// issuerReports describes the persist issuers of the running config. It
// reads the accounts as a report does: it registers none and writes
// nothing.
func issuerReports(ctx context.Context, running caddy.Context) ([]issuerReport, error) {
	sets, err := servedNames(running, nil, nil)
	if err != nil {
		return nil, err
	}
	reports := []issuerReport{}
	for _, set := range sets {
		storage := set.Issuer.store.get()
		r := issuerReport{issuerIdentity: identityOf(set.Issuer), Storage: account.DescribeStorage(storage), OwnStorage: storage != running.Storage(), Names: set.Names}
		if r.Names == nil {
			r.Names = []string{}
		}
		acct, err := set.Issuer.accounts.Peek(ctx)
		switch {
		case err == nil:
			r.AccountURL = acct.Location
		case !errors.Is(err, account.ErrNoAccountYet):
			r.AccountError = err.Error()
		}
		reports = append(reports, r)
	}
	return reports, nil
}
