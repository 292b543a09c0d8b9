package persist

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// orderPlan is what an order needs from the records: one base domain per
// record, and whether each must allow wildcards.
type orderPlan struct {
	names    []string
	bases    []string
	wildcard map[string]bool
}

// planOrder reads the names of a CSR. A wildcard *.example.com and
// example.com share the record at _validation-persist.example.com, which
// then needs policy=wildcard.
func planOrder(csr *x509.CertificateRequest) (orderPlan, error) {
	if len(csr.IPAddresses) > 0 {
		return orderPlan{}, fmt.Errorf("the CSR holds IP addresses %v; dns-persist-01 validates domain names only", csr.IPAddresses)
	}
	return planNames(csr.DNSNames)
}

func planNames(names []string) (orderPlan, error) {
	plan := orderPlan{names: names, wildcard: make(map[string]bool)}
	if len(names) == 0 {
		return plan, errors.New("no domain names to obtain a certificate for")
	}
	for _, name := range names {
		base, wildcard, err := record.BaseDomain(name)
		if err != nil {
			return plan, err
		}
		if _, seen := plan.wildcard[base]; !seen {
			plan.bases = append(plan.bases, base)
		}
		plan.wildcard[base] = plan.wildcard[base] || wildcard
	}
	slices.Sort(plan.bases)
	return plan, nil
}

// orderState travels with one order through acmez to the solver, in the
// context, since acmez gives the solver only the challenge. What the check
// before the order found reaches the solver through the resolver's recent
// answers, so the solver does not ask DNS again.
type orderState struct {
	plan    orderPlan
	account acme.Account
	dir     caDirectory
	started time.Time
}

type orderKey struct{}

func withOrder(ctx context.Context, o *orderState) context.Context {
	return context.WithValue(ctx, orderKey{}, o)
}

func orderFrom(ctx context.Context) *orderState {
	o, _ := ctx.Value(orderKey{}).(*orderState)
	return o
}

// expectation builds what the record at base must say for this account,
// given the issuer domain names the CA offers.
func (iss *Issuer) expectation(base string, wildcard bool, offered []string, acct acme.Account, dir caDirectory) (record.Expectation, error) {
	exp := record.Expectation{
		Domain:       base,
		Offered:      offered,
		Preferred:    iss.IssuerDomainName,
		Wildcard:     wildcard,
		PersistUntil: iss.persistUntil,
	}
	if exp.Preferred != "" && !slices.Contains(offered, exp.Preferred) {
		return exp, fmt.Errorf("issuer_domain_name %q is not offered by %s, which offers %v; set one of those or remove issuer_domain_name", exp.Preferred, iss.CA, offered)
	}
	uris, err := accountURIs(dir, acct, base)
	if err != nil {
		return exp, err
	}
	exp.AccountURIs = uris
	return exp, nil
}

// accountURIs lists the accounturi values the CA accepts for acct at base,
// the one to publish first. Draft -02 also accepts the hash made for every
// domain.
func accountURIs(dir caDirectory, acct acme.Account, base string) ([]string, error) {
	if dir.Draft != record.Draft02 {
		return []string{acct.Location}, nil
	}
	thumbprint, err := acct.Thumbprint()
	if err != nil {
		return nil, fmt.Errorf("computing the account key thumbprint: %v", err)
	}
	perDomain, err := record.HashedAccountURI(dir.HashPrefix, base, thumbprint, acct.Location)
	if err != nil {
		return nil, err
	}
	anyDomain, err := record.HashedAccountURI(dir.HashPrefix, record.AnyDomain, thumbprint, acct.Location)
	if err != nil {
		return nil, err
	}
	return []string{perDomain, anyDomain}, nil
}

// recordInputs is what writing or checking a record needs besides its
// domain, known without placing an order.
type recordInputs struct {
	client  *acmez.Client
	dir     caDirectory
	offered []string
	acct    acme.Account
}

// recordInputs gathers the directory, the issuer names it offers, and the
// account. With register, an account is registered if there is none;
// without, a missing account is errNoAccountYet.
func (iss *Issuer) recordInputs(ctx context.Context, register bool) (recordInputs, error) {
	client, dir, err := iss.acmeClientAndDirectory(ctx)
	if err != nil {
		return recordInputs{}, err
	}
	in := recordInputs{client: client, dir: dir, offered: iss.offeredBeforeOrder(dir)}
	if in.offered == nil {
		return in, fmt.Errorf("the directory of %s names no issuer domain names (neither meta.issuerDomainNames nor meta.caaIdentities), so the record cannot be written before an order; set issuer_domain_name to the name your CA documents for dns-persist-01", iss.CA)
	}
	in.acct, err = iss.accounts.get(ctx, register)
	return in, err
}

// offeredBeforeOrder returns the issuer domain names known without an
// order: the directory's, else the configured one. Nil means only the
// challenge will tell.
func (iss *Issuer) offeredBeforeOrder(dir caDirectory) []string {
	if len(dir.IssuerNames) > 0 {
		return dir.IssuerNames
	}
	if iss.IssuerDomainName != "" {
		return []string{iss.IssuerDomainName}
	}
	return nil
}

// zoneLines renders the records an order's names need, as zone file lines.
// They need the issuer domain names; without them the list is empty.
func (iss *Issuer) zoneLines(plan orderPlan, acct acme.Account, dir caDirectory) []string {
	offered := iss.offeredBeforeOrder(dir)
	if offered == nil {
		return nil
	}
	var lines []string
	for _, base := range plan.bases {
		exp, err := iss.expectation(base, plan.wildcard[base], offered, acct, dir)
		if err != nil {
			continue
		}
		rec := exp.Want(record.Verdict{})
		if value, err := rec.Value(); err == nil {
			lines = append(lines, record.ZoneLine(base, value))
		}
	}
	return lines
}
