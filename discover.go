package persist

import (
	"errors"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// servedSet is one persist issuer of a config and the names it obtains
// certificates for. A policy with several persist issuers (one per CA)
// gives each of them the policy's names: each CA needs its own record.
type servedSet struct {
	Issuer *Issuer
	Names  []string
}

// servedNames finds, in a provisioned config, every name a persist issuer
// obtains certificates for: the subjects of automation policies and the
// hosts of HTTP routes, assigned to policies the way the TLS app assigns
// them (first policy whose subjects match, a policy without subjects
// matching all). Names covered by a managed wildcard are left out, since
// Caddy serves them with the wildcard's certificate. The extra names are
// added to the sets of the policy that would serve them, or else to those
// of the first policy with persist issuers, for names the config does not
// list yet.
func servedNames(ctx caddy.Context, automate, extra []string) ([]servedSet, error) {
	policies, err := automationOf(ctx)
	if err != nil {
		return nil, err
	}

	candidates := slices.Clone(automate)
	for _, ap := range policies.Policies {
		candidates = append(candidates, ap.Subjects()...)
	}
	if httpApp, err := ctx.AppIfConfigured("http"); err == nil {
		candidates = append(candidates, routeHosts(httpApp.(*caddyhttp.App))...)
	}
	candidates = normalizeNames(candidates)
	listed := make(map[string]bool, len(candidates))
	for _, name := range candidates {
		listed[name] = true
	}
	byPolicy := newPolicyIndex(policies.Policies)

	var sets []servedSet
	// every persist issuer of the policies has its set below, so the
	// names are added to sets that exist
	index := make(map[*Issuer]int)
	added := make(map[*Issuer]map[string]bool)
	add := func(iss *Issuer, name string) {
		if added[iss][name] {
			return
		}
		added[iss][name] = true
		i := index[iss]
		sets[i].Names = append(sets[i].Names, name)
	}
	var fallback []*Issuer
	for _, ap := range policies.Policies {
		issuers := persistIssuersOf(ap)
		if fallback == nil {
			fallback = issuers
		}
		for _, iss := range issuers {
			index[iss] = len(sets)
			added[iss] = make(map[string]bool)
			sets = append(sets, servedSet{Issuer: iss})
		}
	}
	if len(sets) == 0 {
		return nil, errNoPersistIssuer
	}

	for _, name := range candidates {
		if coveredByWildcard(name, listed) || !certmagic.SubjectQualifiesForCert(name) || certmagic.SubjectIsIP(name) {
			continue
		}
		for _, iss := range persistIssuersOf(byPolicy.policyFor(name)) {
			add(iss, name)
		}
	}
	for _, name := range normalizeNames(extra) {
		if err := refuseIPAddress(name); err != nil {
			return nil, &inputError{err}
		}
		issuers := persistIssuersOf(byPolicy.policyFor(name))
		if len(issuers) == 0 {
			issuers = fallback
		}
		for _, iss := range issuers {
			add(iss, name)
		}
	}
	return sets, nil
}

// servedBases are the base domains of the names some persist issuers
// obtain certificates for, and those of them whose wildcard is among the
// names.
type servedBases struct {
	all, wildcard map[string]bool
}

// servedBasesOf are the base domains of the names the persist issuers of
// identity obtain in a provisioned config.
func servedBasesOf(ctx caddy.Context, identity string) servedBases {
	bases := servedBases{all: make(map[string]bool), wildcard: make(map[string]bool)}
	sets, err := servedNames(ctx, nil, nil)
	if err != nil {
		return bases
	}
	for _, set := range sets {
		if set.Issuer.identity != identity {
			continue
		}
		for _, name := range set.Names {
			base, wildcard, err := record.BaseDomain(name)
			if err != nil {
				continue
			}
			bases.all[base] = true
			bases.wildcard[base] = bases.wildcard[base] || wildcard
		}
	}
	return bases
}

// automationOf returns the automation of a config's TLS app.
func automationOf(ctx caddy.Context) (*caddytls.AutomationConfig, error) {
	tlsApp, err := ctx.AppIfConfigured("tls")
	if err != nil {
		if errors.Is(err, caddy.ErrNotConfigured) {
			return nil, errNoPersistIssuer
		}
		return nil, err
	}
	automation := tlsApp.(*caddytls.TLS).Automation
	if automation == nil {
		return nil, errNoPersistIssuer
	}
	return automation, nil
}

// runningPolicies indexes the automation policies of a config.
func runningPolicies(ctx caddy.Context) (*policyIndex, error) {
	automation, err := automationOf(ctx)
	if err != nil {
		return nil, err
	}
	return newPolicyIndex(automation.Policies), nil
}

var errNoPersistIssuer = errors.New("no persist issuer in this config: add `issuer persist` to a site's tls block, or `cert_issuer persist` to the global options")

// policyIndex finds a name's automation policy as the TLS app does: the
// first policy one of whose subjects matches it (certmagic.MatchWildcard),
// or a policy without subjects. A site block may list thousands of
// names, so the subjects are kept in sets, and a name is looked up by the
// forms that can match it rather than against every subject.
type policyIndex struct {
	policies []*caddytls.AutomationPolicy
	// subjects of each policy, lowercased; nil for a policy without any,
	// which matches every name
	subjects []map[string]bool
}

func newPolicyIndex(policies []*caddytls.AutomationPolicy) *policyIndex {
	lists := make([][]string, len(policies))
	for i, ap := range policies {
		lists[i] = ap.Subjects()
	}
	return &policyIndex{policies: policies, subjects: subjectSets(lists)}
}

// subjectSets turns each policy's subjects into a set of lowercased
// subjects, nil for a policy without any.
func subjectSets(lists [][]string) []map[string]bool {
	sets := make([]map[string]bool, len(lists))
	for i, subjects := range lists {
		if len(subjects) == 0 {
			continue
		}
		sets[i] = make(map[string]bool, len(subjects))
		for _, s := range subjects {
			sets[i][strings.ToLower(s)] = true
		}
	}
	return sets
}

// policyFor is the TLS app's choice of automation policy for name.
func (x *policyIndex) policyFor(name string) *caddytls.AutomationPolicy {
	forms := matchingForms(name)
	for i, ap := range x.policies {
		if x.subjects[i] == nil {
			return ap
		}
		// every form matches name by construction, as MatchWildcard
		// would judge it
		for _, form := range forms {
			if x.subjects[i][form] {
				return ap
			}
		}
	}
	return nil
}

// matchingForms are the subjects certmagic.MatchWildcard matches name
// with: name itself, and name with its leftmost labels turned into "*",
// one more each time (*.b.example, *.*.example, ...).
func matchingForms(name string) []string {
	name = strings.ToLower(name)
	forms := []string{name}
	labels := strings.Split(name, ".")
	for i := range labels {
		if labels[i] == "" {
			continue
		}
		labels[i] = "*"
		forms = append(forms, strings.Join(labels, "."))
	}
	return forms
}

// persistIssuersOf returns the persist issuers of a policy, in the order
// Caddy tries them.
func persistIssuersOf(ap *caddytls.AutomationPolicy) []*Issuer {
	if ap == nil {
		return nil
	}
	return persistIssuers(ap.Issuers)
}

// persistIssuers picks the persist issuers out of a list of issuers.
func persistIssuers(issuers []certmagic.Issuer) []*Issuer {
	var out []*Issuer
	for _, iss := range issuers {
		if p, ok := iss.(*Issuer); ok {
			out = append(out, p)
		}
	}
	return out
}

// routeHosts lists the host matchers of the HTTP servers that have
// automatic HTTPS certificates on, as automatic HTTPS collects them.
func routeHosts(app *caddyhttp.App) []string {
	var hosts []string
	for _, srv := range app.Servers {
		auto := srv.AutoHTTPS
		if auto != nil && (auto.Disabled || auto.DisableCerts) {
			continue
		}
		for _, route := range srv.Routes {
			for _, set := range route.MatcherSets {
				for _, m := range set {
					hm, ok := m.(*caddyhttp.MatchHost)
					if !ok {
						continue
					}
					for _, h := range *hm {
						if auto != nil && (slices.Contains(auto.Skip, h) || slices.Contains(auto.SkipCerts, h)) {
							continue
						}
						hosts = append(hosts, h)
					}
				}
			}
		}
	}
	return hosts
}

// coveredByWildcard reports whether a wildcard that covers name is among
// the listed names; Caddy then serves name with the wildcard's
// certificate.
func coveredByWildcard(name string, listed map[string]bool) bool {
	if strings.HasPrefix(name, "*.") {
		return false
	}
	_, parent, ok := strings.Cut(name, ".")
	return ok && listed["*."+parent]
}

// normalizeName lowercases and trims a name as TLS handshakes and configs
// may spell it.
func normalizeName(name string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
}

// normalizeNames lowercases, trims and deduplicates names, dropping ones
// with placeholders, which only a request can fill in.
func normalizeNames(names []string) []string {
	var out []string
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		n = normalizeName(n)
		if n == "" || strings.Contains(n, "{") || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}
