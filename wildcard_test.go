package persist

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// grantWorld is an issuer and a permission with cache_ttl 30s on one
// controlled clock, and the wildcard record that grants the issuer's
// account.
func grantWorld(t *testing.T) (*testIssuer, *Permission, *controlledClock, string) {
	t.Helper()
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now()}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	value := "pebble.letsencrypt.org; accounturi=" + iss.accountURL(t) + "; policy=wildcard"
	p, _, _ := newTestPermission(t, iss.Issuer, func(p *Permission) {
		p.now = clock.Now
		p.CacheTTL = caddy.Duration(30 * time.Second)
	})
	return iss, p, clock, value
}

func TestWildcardGrantHonoursThePermissionTTLs(t *testing.T) {
	t.Parallel()
	_, p, clock, value := grantWorld(t)
	setTXT(t, record.Name("grant.test"), value)
	if err := p.CertificateAllowed(context.Background(), "shop.grant.test"); err != nil {
		t.Fatalf("subdomain of a wildcard grant: %v", err)
	}
	setTXT(t, record.Name("grant.test"))
	clock.Advance(31 * time.Second)
	if err := p.CertificateAllowed(context.Background(), "shop.grant.test"); !errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Errorf("31s after the parent record was removed, with cache_ttl 30s: %v", err)
	}
}

// The subject transformer may look at a parent's grant before the
// permission does, keeping it for Caddy's default five minutes; the
// permission still applies its own cache_ttl to that answer.
func TestPermissionTTLHoldsWhenTheSubjectTransformerLookedFirst(t *testing.T) {
	t.Parallel()
	iss, p, clock, value := grantWorld(t)
	setTXT(t, record.Name("first.test"), value)
	if got := iss.grants.subject(context.Background(), "shop.first.test"); got != "*.first.test" {
		t.Fatalf("subject = %q, want the wildcard", got)
	}
	setTXT(t, record.Name("first.test"))
	clock.Advance(31 * time.Second)
	if err := p.CertificateAllowed(context.Background(), "blog.first.test"); !errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Errorf("31s after the parent record was removed, with cache_ttl 30s: %v", err)
	}
}
