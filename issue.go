package persist

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/metrics"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// SetConfig receives the certmagic config the issuer serves, for its
// storage. Caddy may call it more than once; a change of storage means the
// account must be looked up again. On an on-demand policy, the issuer also
// has subdomains served by their parent's wildcard certificate when the
// parent's record grants it (see wildcardGrants.subject).
func (iss *Issuer) SetConfig(cfg *certmagic.Config) {
	if cfg.OnDemand != nil && cfg.SubjectTransformer == nil {
		cfg.SubjectTransformer = iss.grants.subject
	}
	// another storage may hold another account
	if iss.store.set(cfg.Storage) {
		iss.accounts.Forget()
	}
	iss.policy.set(cfg.Issuers)
}

// storageSlot holds the storage the issuer keeps its account, what it
// learns of the CA and what it looks up of certificates in.
type storageSlot struct {
	mu      sync.RWMutex
	storage certmagic.Storage
}

// get returns the storage SetConfig last gave, nil before.
func (s *storageSlot) get() certmagic.Storage {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.storage
}

// set keeps storage, and reports whether it is another than before.
func (s *storageSlot) set(storage certmagic.Storage) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = s.storage != storage
	s.storage = storage
	return changed
}

// IssuerKey returns certmagic's key for the CA, so certificates in storage
// are shared with an `acme` issuer for the same CA.
func (iss *Issuer) IssuerKey() string {
	return account.IssuerKey(iss.CA)
}

// PreCheck refuses names dns-persist-01 cannot validate, and a CA seen
// within the hour offering no dns-persist-01, so that Caddy moves on to the
// next configured issuer without an order. It also steps aside for a later
// persist issuer of the policy (another CA) whose records already pass
// while this issuer's do not, rather than wait for them.
func (iss *Issuer) PreCheck(ctx context.Context, names []string, _ bool) error {
	if err := iss.judge.Spec.Passed(iss.now()); err != nil {
		iss.metrics.CountOrder(iss.CA, orderOutcome(err))
		return err
	}
	for _, name := range names {
		if err := refuseIPAddress(name); err != nil {
			return err
		}
		if !certmagic.SubjectQualifiesForCert(name) {
			return fmt.Errorf("%q is not a name a certificate can be issued for", name)
		}
		if _, _, err := record.BaseDomain(name); err != nil {
			return err
		}
	}
	if err := iss.notOffered.refuse(ctx); err != nil {
		// held back: no order is placed with this CA for the hour
		iss.metrics.CountOrder(iss.CA, orderOutcome(err))
		return err
	}
	plan, err := judge.PlanNames(names)
	if err != nil {
		return err
	}
	return iss.stepAside(ctx, plan, false)
}

// Issue obtains a certificate for csr. It confirms the records are
// published before placing the order, so a missing record costs neither an
// order nor a failed validation.
func (iss *Issuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (issued *certmagic.IssuedCertificate, err error) {
	defer func() { iss.metrics.CountOrder(iss.CA, orderOutcome(err)) }()
	if err := iss.judge.Spec.Passed(iss.now()); err != nil {
		return nil, err
	}
	if err := iss.notOffered.refuse(ctx); err != nil {
		return nil, err
	}
	plan, err := planOrder(csr)
	if err != nil {
		return nil, err
	}
	client, dir, err := iss.client.directory(ctx)
	if err != nil {
		return nil, err
	}
	// another instance may have rolled the key over or switched accounts
	iss.accounts.Refresh()
	acct, err := iss.accounts.Get(ctx, true)
	if err != nil {
		return nil, err
	}
	// issuer names the directory does not give are learnt from the
	// challenges, so unlike other callers an order goes ahead without them
	in := recordInputs{client: client, Inputs: judge.Inputs{Dir: dir.Directory, Offered: iss.judge.Spec.Offered(dir.Directory)}}
	iss.useAccount(ctx, &in, acct)
	if oldURL, newURL, replaced := iss.accounts.TakeReplaced(); replaced {
		// new_account_if_missing replaced an unusable account just now
		iss.logger.Error("republish these records for the new ACME account",
			zap.String("old_account_url", oldURL),
			zap.String("new_account_url", newURL),
			zap.Strings("records", iss.judge.Spec.ZoneLines(plan, in.Inputs)))
	}

	chains, err := iss.obtain(ctx, plan, in, csr)
	// it may have happened since: the CA then refuses the key we hold
	if changed, ok := iss.accounts.Refused(ctx, in.Account, err); ok {
		iss.useAccount(ctx, &in, changed)
		chains, err = iss.obtain(ctx, plan, in, csr)
	}
	var problem acme.Problem
	if errors.As(err, &problem) && problem.Type == acme.ProblemTypeAccountDoesNotExist {
		old := in.Account
		var replaced bool
		var acct acme.Account
		if acct, replaced, err = iss.accounts.Vanished(ctx, old); err != nil {
			return nil, err
		}
		iss.useAccount(ctx, &in, acct)
		if replaced {
			iss.logger.Error("replaced the vanished ACME account; publish the new records, or no certificate can be obtained",
				zap.String("old_account_url", old.Location),
				zap.String("new_account_url", in.Account.Location),
				zap.Strings("records", iss.judge.Spec.ZoneLines(plan, in.Inputs)))
		}
		chains, err = iss.obtain(ctx, plan, in, csr)
	}
	if err != nil {
		return nil, err
	}
	if len(chains) == 0 {
		return nil, fmt.Errorf("%v: the CA returned no certificate chain; Caddy will retry, and the CA should be told if it persists", plan.Names)
	}
	chain := preferredChain(chains, iss.PreferredChains, iss.logger)
	return &certmagic.IssuedCertificate{Certificate: chain.ChainPEM, Metadata: chain}, nil
}

func (iss *Issuer) obtain(ctx context.Context, plan judge.Plan, in recordInputs, csr *x509.CertificateRequest) ([]acme.Certificate, error) {
	order := &orderState{plan: plan, in: in, started: iss.now()}
	if err := iss.checkBeforeOrder(ctx, order); err != nil {
		return nil, err
	}

	params, err := acmez.OrderParametersFromCSR(in.Account, csr)
	if err != nil {
		return nil, fmt.Errorf("preparing the order: %v", err)
	}
	params.Profile = iss.Profile
	if iss.CertificateLifetime > 0 {
		params.NotAfter = iss.now().Add(time.Duration(iss.CertificateLifetime))
	}
	params.Replaces = iss.replacedCertificate(ctx, plan.Names, in.Account)
	iss.logger.Info("placing ACME order",
		zap.Strings("identifiers", plan.Names),
		zap.String("account_url", in.Account.Location),
		zap.String("ca", iss.CA))
	chains, err := iss.obtainReplacing(withOrder(ctx, order), in.client, params, plan.Names)
	if notOffered := order.offers.notOffered(iss.CA, iss.now()); err != nil && notOffered != nil {
		iss.notOffered.remember(ctx, notOffered)
		return nil, notOffered
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %w (ca=%s)", plan.Names, err, iss.CA)
	}
	return chains, nil
}

// Revoke revokes cert with the issuer's account.
func (iss *Issuer) Revoke(ctx context.Context, cert certmagic.CertificateResource, reason int) error {
	leaf, err := firstCertificate(cert.CertificatePEM)
	if err != nil {
		return err
	}
	client, err := iss.client.get()
	if err != nil {
		return err
	}
	iss.accounts.Refresh()
	acct, err := iss.accounts.Get(ctx, true)
	if err != nil {
		return err
	}
	return client.RevokeCertificate(ctx, acct, leaf, acct.PrivateKey, reason)
}

// GetRenewalInfo fetches the CA's ACME Renewal Information for cert.
func (iss *Issuer) GetRenewalInfo(ctx context.Context, cert certmagic.Certificate) (acme.RenewalInfo, error) {
	client, err := iss.client.get()
	if err != nil {
		return acme.RenewalInfo{}, err
	}
	return client.GetRenewalInfo(ctx, cert.Leaf)
}

// Cleanup closes the issuer's idle connections to the CA when its config
// is unloaded.
func (iss *Issuer) Cleanup() error {
	if iss.client != nil {
		iss.client.closeIdle()
	}
	return nil
}

func firstCertificate(bundle []byte) (*x509.Certificate, error) {
	certs := parseChain(bundle)
	if len(certs) == 0 {
		return nil, errors.New("no certificate in PEM bundle")
	}
	return certs[0], nil
}

// preferredChain applies preferred_chains the way the `acme` issuer does:
// optionally sort by size, then take the first chain with a matching
// issuer or root common name, else the first chain.
func preferredChain(chains []acme.Certificate, pref *caddytls.ChainPreference, logger *zap.Logger) acme.Certificate {
	if len(chains) == 1 || pref == nil {
		return chains[0]
	}
	if pref.Smallest != nil {
		slices.SortStableFunc(chains, func(a, b acme.Certificate) int {
			if *pref.Smallest {
				return len(a.ChainPEM) - len(b.ChainPEM)
			}
			return len(b.ChainPEM) - len(a.ChainPEM)
		})
	}
	for _, want := range pref.AnyCommonName {
		for _, chain := range chains {
			if slices.ContainsFunc(parseChain(chain.ChainPEM), func(c *x509.Certificate) bool { return c.Issuer.CommonName == want }) {
				return chain
			}
		}
	}
	for _, want := range pref.RootCommonName {
		for _, chain := range chains {
			certs := parseChain(chain.ChainPEM)
			if len(certs) > 0 && certs[len(certs)-1].Issuer.CommonName == want {
				return chain
			}
		}
	}
	if len(pref.AnyCommonName) > 0 || len(pref.RootCommonName) > 0 {
		logger.Warn("no certificate chain matches preferred_chains; using the first")
	}
	return chains[0]
}

func parseChain(bundle []byte) []*x509.Certificate {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return certs
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
}

// planOrder reads the names of a CSR. A wildcard *.example.com and
// example.com share the record at _validation-persist.example.com, which
// then needs policy=wildcard.
func planOrder(csr *x509.CertificateRequest) (judge.Plan, error) {
	if len(csr.IPAddresses) > 0 {
		return judge.Plan{}, refuseIPAddress(csr.IPAddresses[0].String())
	}
	return judge.PlanNames(csr.DNSNames)
}

// refuseIPAddress refuses name when it is an IP address: the record sits
// under a domain name, so no CA validates an IP address this way. Every
// flow that takes names (issuance, the commands, the on-demand
// permission) refuses them here.
func refuseIPAddress(name string) error {
	if certmagic.SubjectIsIP(name) {
		return fmt.Errorf("%s is an IP address; dns-persist-01 validates domain names only", name)
	}
	return nil
}

// orderState travels with one order through acmez to the solver, in the
// context, since acmez gives the solver only the challenge. What the check
// before the order found reaches the solver through the resolver's recent
// answers, so the solver does not ask DNS again.
type orderState struct {
	plan judge.Plan
	// in holds the account and directory of the order; its issuer names
	// are the ones known before the order, nil when only the challenges
	// will tell.
	in      recordInputs
	started time.Time
	// offers is what the order's authorizations offered (see notoffered.go).
	offers authzOffers
	// caaChecked is set when CAA allowed the names, with the issuer names
	// of in, before the order was placed.
	caaChecked bool
	// created is set once the CA created an order (a POST answered 201
	// Created): a failure after it is not the CA refusing newOrder.
	created atomic.Bool
}

type orderKey struct{}

func withOrder(ctx context.Context, o *orderState) context.Context {
	return context.WithValue(ctx, orderKey{}, o)
}

func orderFrom(ctx context.Context) *orderState {
	o, _ := ctx.Value(orderKey{}).(*orderState)
	return o
}

// orderOutcome is the outcome of asking for a certificate that ended
// with err, in the words of the metrics. One given up because Caddy
// stopped, or left to a later issuer whose records pass, is none ("").
func orderOutcome(err error) string {
	var recErr *RecordError
	var caaErr *CAAError
	switch {
	case errors.Is(err, context.Canceled) || errors.As(err, new(*steppedAsideError)):
		return ""
	case err == nil:
		return metrics.OrderIssued
	case errors.As(err, new(*ChallengeNotOfferedError)):
		return judge.StateNotOffered
	case errors.As(err, new(*judge.PersistUntilPassedError)):
		return judge.StateExpired
	case errors.As(err, &caaErr):
		if status := caaErr.Status(); status != caaForbidden {
			return status // dns-error or dnssec, as a record's
		}
		return judge.StateCAA
	case errors.As(err, &recErr):
		switch recErr.Status() {
		case record.StatusDNSError:
			return judge.StateDNSError
		case record.StatusDNSSEC:
			return judge.StateDNSSEC
		case record.StatusMissing:
			return judge.StateMissing
		}
		return judge.MismatchState(recErr.verdict.Has)
	}
	return metrics.OrderCAError
}
