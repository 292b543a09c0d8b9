package persist

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/dnspersist/caddy-persist/internal/cache"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/metrics"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func init() {
	caddy.RegisterModule(Permission{})
}

// Defaults of the permission module.
const (
	DefaultPermissionCacheTTL    = 5 * time.Minute
	DefaultPermissionNegativeTTL = 30 * time.Second
	DefaultMaxConcurrentLookups  = 32
)

// Permission allows an on-demand certificate only for a name whose owner
// published a dns-persist-01 record that the persist issuer's account
// would pass with: an issuer domain name the CA offers, this account's
// accounturi, and a right policy and persistUntil. Every other name is
// refused before any order is placed, so random SNI names cost one cached
// DNS lookup and nothing at the CA.
//
// The permission has no account settings of its own: it uses the persist
// issuers of the automation policy that serves the name (configure
// `issuer persist` in the on-demand site, or `cert_issuer persist`), with
// their storage, CA, email and resolvers. With several persist issuers
// (one per CA), a name is allowed when the record of any of them passes.
type Permission struct {
	// How long an allowed name stays allowed before its record is looked
	// up again. Default: 5m. A removed record stops new issuance after at
	// most this long.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// How long a denied name stays denied before its record is looked up
	// again. Default: 30s. A newly published record is honoured after at
	// most this long.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`

	// The most DNS lookups in flight at once; further checks wait. Default: 32.
	MaxConcurrentLookups int `json:"max_concurrent_lookups,omitempty"`

	ctx       caddy.Context
	logger    *zap.Logger
	metrics   *metrics.Metrics
	notices   *cache.NoticeBoard
	now       func() time.Time
	lookups   chan struct{}
	flight    *singleflight.Group
	decisions *cache.Expiring[decision]

	// issuersFor finds the persist issuers that serve a name, in the
	// order Caddy tries them; tests replace it.
	issuersFor func(name string) ([]*Issuer, error)
	// policies indexes the running TLS app's automation policies, once:
	// they do not change while the config runs.
	policies func() (*policyIndex, error)
}

// CaddyModule returns the Caddy module information.
func (Permission) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.permission.persist",
		New: func() caddy.Module { return new(Permission) },
	}
}

// Provision sets up the permission module.
func (p *Permission) Provision(ctx caddy.Context) error {
	p.ctx = ctx
	p.logger = ctx.Logger()
	if p.now == nil {
		p.now = time.Now
	}
	if p.CacheTTL == 0 {
		p.CacheTTL = caddy.Duration(DefaultPermissionCacheTTL)
	}
	if p.NegativeTTL == 0 {
		p.NegativeTTL = caddy.Duration(DefaultPermissionNegativeTTL)
	}
	if p.MaxConcurrentLookups == 0 {
		p.MaxConcurrentLookups = DefaultMaxConcurrentLookups
	}
	if p.CacheTTL < 0 || p.NegativeTTL < 0 || p.MaxConcurrentLookups < 0 {
		return errors.New("cache_ttl, negative_ttl and max_concurrent_lookups must not be negative")
	}
	p.lookups = make(chan struct{}, p.MaxConcurrentLookups)
	p.decisions = cache.NewExpiring[decision](maxCachedDecisions)
	p.flight = new(singleflight.Group)
	p.notices = cache.NewNoticeBoard(p.now)
	p.metrics = metrics.New(ctx.GetMetricsRegistry())
	if p.issuersFor == nil {
		p.issuersFor = p.servingIssuers
	}
	p.policies = sync.OnceValues(p.indexPolicies)
	return nil
}

// CertificateAllowed implements caddytls.OnDemandPermission. A refusal
// wraps caddytls.ErrPermissionDenied; any other error means the decision
// could not be made.
func (p *Permission) CertificateAllowed(ctx context.Context, name string) error {
	name = normalizeName(name)
	if d, ok := p.decisions.Get(name, p.now()); ok {
		p.metrics.CountCheck(metrics.OutcomeCacheHit)
		return d.err
	}
	var decided bool
	result, _, _ := p.flight.Do(name, func() (any, error) {
		if d, ok := p.decisions.Get(name, p.now()); ok {
			return d, nil
		}
		decided = true
		d := p.decide(ctx, name)
		if d.outcome != metrics.OutcomeNone {
			p.metrics.CountCheck(d.outcome)
		}
		ttl := time.Duration(p.NegativeTTL)
		if d.err == nil {
			ttl = time.Duration(p.CacheTTL)
		}
		// an aborted wait says nothing about the name
		if !errors.Is(d.err, context.Canceled) && !errors.Is(d.err, context.DeadlineExceeded) {
			now := p.now()
			p.decisions.Put(name, d, now, now.Add(ttl))
		}
		return d, nil
	})
	if !decided {
		// another check of the same name did the lookup for this one
		p.metrics.CountCheck(metrics.OutcomeCacheHit)
	}
	return result.(decision).err
}

// decision is the answer for one name.
type decision struct {
	err     error
	outcome metrics.Outcome
}

// decide judges the record of name once for each persist issuer that
// serves it, the way the issuer will when it obtains the certificate, and
// allows the name when one of them passes.
func (p *Permission) decide(ctx context.Context, name string) decision {
	if err := refuseIPAddress(name); err != nil {
		return decision{err: refusal{err}, outcome: metrics.OutcomeDeniedMismatch}
	}
	base, wildcard, err := record.BaseDomain(name)
	if err != nil {
		return decision{err: refusal{err}, outcome: metrics.OutcomeDeniedMismatch}
	}
	issuers, err := p.issuersFor(name)
	if err != nil {
		return decision{err: err}
	}

	select {
	case p.lookups <- struct{}{}:
	case <-ctx.Done():
		return decision{err: ctx.Err()}
	}
	defer func() { <-p.lookups }()
	var denials []decision
	for _, iss := range issuers {
		d := p.decideWith(ctx, iss, name, base, wildcard)
		if d.err == nil {
			return d
		}
		denials = append(denials, d)
	}
	return joinDenials(denials, issuers)
}

// decideWith is the decision for name by one persist issuer.
func (p *Permission) decideWith(ctx context.Context, iss *Issuer, name, base string, wildcard bool) decision {
	in, err := iss.recordInputs(ctx, false)
	if err != nil {
		return decision{err: fmt.Errorf("the persist issuer for %s (ca %s): %w", name, iss.CA, err)}
	}
	j, err := iss.judge.Record(ctx, in.Inputs, base, wildcard, judge.Fresh)
	if err != nil {
		return decision{err: err}
	}

	if j.LookupErr != nil {
		if p.notices.Due("dns|"+base, time.Hour) {
			p.logger.Warn("on-demand certificate denied: the dns-persist-01 record could not be looked up",
				zap.String("domain", name), zap.String("record_name", record.Name(base)), zap.Error(j.LookupErr))
		}
		return decision{err: refusal{recordFailure(j)}, outcome: metrics.OutcomeDNSError}
	}
	if j.Passed() {
		// the CA checks CAA too: a name it would refuse gets no order
		if cj := iss.judge.CAA(ctx, in.Inputs, base, !wildcard, wildcard); !cj.Allowed() {
			return p.denyByCAA(name, caaFailure(cj))
		}
		iss.notices.expiry(base, *j.Verdict.Matched)
		return decision{outcome: metrics.OutcomeAllowed}
	}
	// a subdomain is also served when its parent's record grants the
	// wildcard: the issuer then obtains the parent's wildcard certificate
	if parent, ok := parentOf(name); ok {
		if granted, err := iss.grants.granted(ctx, parent, time.Duration(p.CacheTTL), time.Duration(p.NegativeTTL)); err == nil && granted {
			return decision{outcome: metrics.OutcomeAllowed}
		}
	}
	// the log that carries a denial is where the operator learns what the
	// tenant must publish: the failure says it
	outcome := metrics.OutcomeDeniedMismatch
	switch {
	case j.DNSSEC != nil:
		outcome = metrics.OutcomeDeniedDNSSEC
	case j.Verdict.Status == record.StatusMissing:
		outcome = metrics.OutcomeDeniedMissing
	}
	return decision{err: refusal{recordFailure(j)}, outcome: outcome}
}

// denyByCAA is the decision for a name whose record passes but whose CAA
// policy forbids the issuer's CA, account or method, could not be read,
// or was served with signatures that do not verify.
func (p *Permission) denyByCAA(name string, e *CAAError) decision {
	if e.DNSErr != nil {
		if p.notices.Due("caa-dns|"+e.Domain, time.Hour) {
			p.logger.Warn("on-demand certificate denied: CAA could not be looked up", zap.String("domain", name), zap.Error(e.DNSErr))
		}
		return decision{err: refusal{e}, outcome: metrics.OutcomeDNSError}
	}
	outcome := metrics.OutcomeDeniedCAA
	if e.dnssec != nil {
		outcome = metrics.OutcomeDeniedDNSSEC
	}
	return decision{err: refusal{e}, outcome: outcome}
}

// refusal is a name refused, for cause: it wraps
// caddytls.ErrPermissionDenied and the cause, and words itself only when
// asked, since the decision cache keeps one for every name refused, and a
// flood of random names makes a million of them.
type refusal struct{ cause error }

func (r refusal) Error() string   { return caddytls.ErrPermissionDenied.Error() + ": " + r.cause.Error() }
func (r refusal) Unwrap() []error { return []error{caddytls.ErrPermissionDenied, r.cause} }

// joinDenials is the decision when no issuer allows a name. With one
// issuer it is that issuer's; with several, each CA's reason is given,
// and the name counts as denied only if every issuer denied it: an
// aborted lookup stays an aborted lookup.
func joinDenials(denials []decision, issuers []*Issuer) decision {
	if len(denials) == 1 {
		return denials[0]
	}
	reasons := make([]any, len(denials))
	denied := true
	outcome := metrics.OutcomeDeniedMissing
	for i, d := range denials {
		reasons[i] = fmt.Errorf("ca %s: %w", issuers[i].CA, d.err)
		denied = denied && errors.Is(d.err, caddytls.ErrPermissionDenied)
		if d.outcome != metrics.OutcomeNone && d.outcome != metrics.OutcomeDeniedMissing {
			outcome = d.outcome
		}
	}
	// one line, with every reason still in the chain
	joined := fmt.Errorf(strings.TrimSuffix(strings.Repeat("%w; ", len(reasons)), "; "), reasons...)
	if !denied {
		return decision{err: joined}
	}
	return decision{err: fmt.Errorf("%w: no persist issuer's record authorizes it: %w", caddytls.ErrPermissionDenied, joined), outcome: outcome}
}

// servingIssuers finds, in the running TLS app, the persist issuers of
// the automation policy that serves name.
func (p *Permission) servingIssuers(name string) ([]*Issuer, error) {
	index, err := p.policies()
	if err != nil {
		return nil, err
	}
	if issuers := persistIssuersOf(index.policyFor(name)); len(issuers) > 0 {
		return issuers, nil
	}
	return nil, fmt.Errorf("no persist issuer serves %s: `permission persist` checks records against the account of the site's `issuer persist` (or `cert_issuer persist`)", name)
}

// indexPolicies indexes the automation policies of the running TLS app.
func (p *Permission) indexPolicies() (*policyIndex, error) {
	app, err := p.ctx.AppIfConfigured("tls")
	if err != nil {
		return nil, fmt.Errorf("finding the TLS app: %v; `permission persist` needs the tls app with a site using `issuer persist`", err)
	}
	var policies []*caddytls.AutomationPolicy
	if automation := app.(*caddytls.TLS).Automation; automation != nil {
		policies = automation.Policies
	}
	return newPolicyIndex(policies), nil
}

// maxCachedDecisions bounds the cache against a flood of random names.
const maxCachedDecisions = 1 << 20

// UnmarshalCaddyfile sets up the permission module from Caddyfile tokens.
// Syntax:
//
//	... permission persist {
//	    cache_ttl              <duration>
//	    negative_ttl           <duration>
//	    max_concurrent_lookups <n>
//	}
func (p *Permission) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if d.NextArg() {
		return d.ArgErr()
	}
	return eachSubdirective(d, func(directive string) error {
		switch directive {
		case "cache_ttl":
			return durationArg(d, &p.CacheTTL, false)
		case "negative_ttl":
			return durationArg(d, &p.NegativeTTL, false)
		case "max_concurrent_lookups":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return d.Errf("max_concurrent_lookups must be a positive whole number: %s", s)
			}
			p.MaxConcurrentLookups = n
		default:
			return d.Errf("unrecognized persist permission property: %s", directive)
		}
		return nil
	})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Permission)(nil)
	_ caddyfile.Unmarshaler       = (*Permission)(nil)
	_ caddytls.OnDemandPermission = (*Permission)(nil)
)
