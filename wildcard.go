package persist

import (
	"context"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/sync/singleflight"

	"github.com/dnspersist/caddy-persist/internal/cache"
	"github.com/dnspersist/caddy-persist/internal/judge"
)

// wildcardGrants remembers which parent domains' records grant the
// issuer's account a wildcard, so on-demand handshakes for many
// subdomains cost one lookup.
type wildcardGrants struct {
	answers *cache.Expiring[grantAnswer]
	flight  singleflight.Group
	// recordsPass is the issuer's judge.Judgement of a plan's records.
	recordsPass func(ctx context.Context, plan judge.Plan, age judge.Age) (bool, error)
	now         func() time.Time
}

// grantAnswer is one lookup of a parent's grant and when it was made.
type grantAnswer struct {
	granted bool
	at      time.Time
}

// granted reports whether the record at parent authorizes this
// account for *.parent (policy=wildcard included). It never registers an
// account. An answer is used while it is younger than ttl when granted,
// negTTL when not. Callers keep answers for different times (the
// permission its cache_ttl and negative_ttl, the subject transformer
// Caddy's defaults), so each judges an answer's age by its own TTLs: a
// removed or added parent record takes effect as each promised,
// whichever of them looked last.
func (g *wildcardGrants) granted(ctx context.Context, parent string, ttl, negTTL time.Duration) (bool, error) {
	keepFor := func(granted bool) time.Duration {
		if granted {
			return ttl
		}
		return negTTL
	}
	now := g.now()
	if a, ok := g.answers.Get(parent, now); ok && now.Sub(a.at) < keepFor(a.granted) {
		return a.granted, nil
	}
	v, err, _ := g.flight.Do(parent, func() (any, error) {
		granted, err := g.lookUp(ctx, parent)
		if ctx.Err() != nil {
			return granted, err
		}
		now := g.now()
		g.answers.Put(parent, grantAnswer{granted: granted, at: now}, now, now.Add(keepFor(granted)))
		return granted, err
	})
	return v.(bool), err
}

// lookUp judges, afresh, whether the record at parent authorizes the
// account for *.parent, which needs policy=wildcard.
func (g *wildcardGrants) lookUp(ctx context.Context, parent string) (bool, error) {
	plan, err := judge.PlanNames([]string{"*." + parent})
	if err != nil {
		return false, err
	}
	return g.recordsPass(ctx, plan, judge.Fresh)
}

// parentOf returns the domain one label up from name, if that is still a
// name with at least two labels.
func parentOf(name string) (string, bool) {
	if strings.HasPrefix(name, "*.") || certmagic.SubjectIsIP(name) {
		return "", false
	}
	_, parent, ok := strings.Cut(name, ".")
	if !ok || !strings.Contains(parent, ".") {
		return "", false
	}
	return parent, true
}

// subject is the certmagic SubjectTransformer the issuer installs on
// on-demand policies: a subdomain whose parent's record grants this
// account the wildcard is served with the parent's wildcard certificate,
// which that one record validates; other names are obtained as they are.
func (g *wildcardGrants) subject(ctx context.Context, name string) string {
	parent, ok := parentOf(name)
	if !ok {
		return name
	}
	// the permission module has just looked, with its own TTLs; these
	// defaults only apply when it has not
	if granted, err := g.granted(ctx, parent, DefaultPermissionCacheTTL, DefaultPermissionNegativeTTL); err != nil || !granted {
		return name
	}
	return "*." + parent
}
