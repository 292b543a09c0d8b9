package persist

import (
	"context"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/sync/singleflight"

	"github.com/dnspersist/caddy-persist/internal/cache"
)

// grants remembers which parent domains' records grant this account a
// wildcard, so on-demand handshakes for many subdomains cost one lookup.
type grants struct {
	granted *cache.Expiring[bool]
	flight  singleflight.Group
}

// wildcardGrant reports whether the record at parent authorizes this
// account for *.parent (policy=wildcard included). It never registers an
// account. Answers are kept for ttl when granted, negTTL when not: the
// permission module passes its own TTLs, so a removed or added parent
// record takes effect as promised.
func (iss *Issuer) wildcardGrant(ctx context.Context, parent string, ttl, negTTL time.Duration) (bool, error) {
	g := &iss.st.grants
	if granted, ok := g.granted.Get(parent, iss.now()); ok {
		return granted, nil
	}
	v, err, _ := g.flight.Do(parent, func() (any, error) {
		granted, err := iss.lookUpGrant(ctx, parent)
		if ctx.Err() != nil {
			return granted, err
		}
		keep := negTTL
		if granted {
			keep = ttl
		}
		now := iss.now()
		g.granted.Put(parent, granted, now, now.Add(keep))
		return granted, err
	})
	return v.(bool), err
}

func (iss *Issuer) lookUpGrant(ctx context.Context, parent string) (bool, error) {
	in, err := iss.recordInputs(ctx, false)
	if err != nil {
		return false, err
	}
	// the grant is for *.parent, so the record needs policy=wildcard
	j, err := iss.judge(ctx, in, parent, true, freshAnswer)
	if err != nil {
		return false, err
	}
	return j.passed(), j.lookupErr
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

// onDemandSubject is the certmagic SubjectTransformer the issuer installs
// on on-demand policies: a subdomain whose parent's record grants this
// account the wildcard is served with the parent's wildcard certificate,
// which that one record validates; other names are obtained as they are.
func (iss *Issuer) onDemandSubject(ctx context.Context, name string) string {
	parent, ok := parentOf(name)
	if !ok {
		return name
	}
	// the permission module has just looked, with its own TTLs; these
	// defaults only apply when it has not
	if granted, err := iss.wildcardGrant(ctx, parent, DefaultPermissionCacheTTL, DefaultPermissionNegativeTTL); err != nil || !granted {
		return name
	}
	return "*." + parent
}
