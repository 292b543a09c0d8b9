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
	answers *cache.Expiring[grantAnswer]
	flight  singleflight.Group
}

// grantAnswer is one lookup of a parent's grant and when it was made.
type grantAnswer struct {
	granted bool
	at      time.Time
}

// wildcardGrant reports whether the record at parent authorizes this
// account for *.parent (policy=wildcard included). It never registers an
// account. An answer is used while it is younger than ttl when granted,
// negTTL when not. Callers keep answers for different times (the
// permission its cache_ttl and negative_ttl, the subject transformer
// Caddy's defaults), so each judges an answer's age by its own TTLs: a
// removed or added parent record takes effect as each promised,
// whichever of them looked last.
func (iss *Issuer) wildcardGrant(ctx context.Context, parent string, ttl, negTTL time.Duration) (bool, error) {
	keepFor := func(granted bool) time.Duration {
		if granted {
			return ttl
		}
		return negTTL
	}
	g := &iss.st.grants
	now := iss.now()
	if a, ok := g.answers.Get(parent, now); ok && now.Sub(a.at) < keepFor(a.granted) {
		return a.granted, nil
	}
	v, err, _ := g.flight.Do(parent, func() (any, error) {
		granted, err := iss.lookUpGrant(ctx, parent)
		if ctx.Err() != nil {
			return granted, err
		}
		now := iss.now()
		g.answers.Put(parent, grantAnswer{granted: granted, at: now}, now, now.Add(keepFor(granted)))
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
