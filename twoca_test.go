package persist

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// secondIssuerName is the issuer domain name of the second test CA.
const secondIssuerName = "second-ca.test"

// twoCAs is a policy with two persist issuers, one per CA, as Caddy builds
// it: one certmagic config whose issuers are tried in order, on one
// storage.
type twoCAs struct {
	first, second     *testIssuer
	firstCA, secondCA *acmetest.CA
	magic             *certmagic.Config
}

func newTwoCAs(t *testing.T) *twoCAs {
	t.Helper()
	c := &twoCAs{
		firstCA:  startCA(t, acmetest.Options{}),
		secondCA: startCA(t, acmetest.Options{IssuerNames: []string{secondIssuerName}}),
	}
	storage := t.TempDir()
	slow := func(iss *Issuer) { iss.PropagationTimeout = caddy.Duration(time.Minute) }
	c.first = newTestIssuer(t, c.firstCA, storage, slow)
	c.second = newTestIssuer(t, c.secondCA, storage, slow)
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return c.magic, nil },
		Logger:           zap.NewNop(),
	})
	t.Cleanup(cache.Stop)
	c.magic = certmagic.New(cache, certmagic.Config{
		Storage: c.first.storage,
		Issuers: []certmagic.Issuer{c.first.Issuer, c.second.Issuer},
		Logger:  zap.NewNop(),
	})
	c.first.SetConfig(c.magic)
	c.second.SetConfig(c.magic)
	return c
}

// value is the record ti needs for a name, at its CA.
func (c *twoCAs) value(t *testing.T, ti *testIssuer, wildcard bool) string {
	t.Helper()
	issuerName := acmetest.DefaultIssuerName
	if ti == c.second {
		issuerName = secondIssuerName
	}
	v, err := record.Record{IssuerDomainName: issuerName, AccountURI: ti.accountURL(t), Wildcard: wildcard}.Value()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// issuedBy returns the issuer key under which the certificate for name
// is stored.
func (c *twoCAs) issuedBy(t *testing.T, name string) string {
	t.Helper()
	for _, ti := range []*testIssuer{c.first, c.second} {
		if c.first.storage.Exists(context.Background(), certmagic.StorageKeys.SiteCert(ti.IssuerKey(), name)) {
			return ti.IssuerKey()
		}
	}
	return ""
}

func TestMissingRecordAtTheFirstCAGoesStraightToTheSecond(t *testing.T) {
	t.Parallel()
	c := newTwoCAs(t)
	setTXT(t, record.Name("second-only.test"), c.value(t, c.second, false))

	if err := c.magic.ObtainCertSync(context.Background(), "second-only.test"); err != nil {
		t.Fatal(err)
	}
	if by := c.issuedBy(t, "second-only.test"); by != c.second.IssuerKey() {
		t.Errorf("the certificate is stored under %q, want the second CA's %q", by, c.second.IssuerKey())
	}
	if n := c.firstCA.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the first CA received %d orders", n)
	}
	// the first issuer stepped aside at its pre-check: it never waited
	if n := c.first.logs.FilterMessageSnippet("record missing").Len(); n != 0 {
		t.Errorf("the first issuer waited for its record (%d notices)", n)
	}
}

func TestWaitingIssuerStepsAsideOnceTheNextCAsRecordAppears(t *testing.T) {
	t.Parallel()
	c := newTwoCAs(t)
	done := make(chan error, 1)
	go func() { done <- c.magic.ObtainCertSync(context.Background(), "late.test") }()

	deadline := time.Now().Add(30 * time.Second)
	for c.first.logs.FilterMessageSnippet("record missing").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first issuer never started waiting for its record")
		}
		time.Sleep(20 * time.Millisecond)
	}
	setTXT(t, record.Name("late.test"), c.value(t, c.second, false))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the first issuer kept waiting after the second CA's record was published")
	}
	if by := c.issuedBy(t, "late.test"); by != c.second.IssuerKey() {
		t.Errorf("the certificate is stored under %q, want the second CA's", by)
	}
	if n := c.firstCA.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the first CA received %d orders", n)
	}
}

func TestFirstCADownMovesToTheSecond(t *testing.T) {
	t.Parallel()
	c := newTwoCAs(t)
	setTXT(t, record.Name("down.test"), c.value(t, c.first, false), c.value(t, c.second, false))
	c.firstCA.Close()

	start := time.Now()
	if err := c.magic.ObtainCertSync(context.Background(), "down.test"); err != nil {
		t.Fatal(err)
	}
	t.Logf("with the first CA down, the certificate came from the second in %s", time.Since(start))
	if by := c.issuedBy(t, "down.test"); by != c.second.IssuerKey() {
		t.Errorf("the certificate is stored under %q, want the second CA's", by)
	}
}

func TestPermissionAllowsATenantAuthorizedForEitherCA(t *testing.T) {
	t.Parallel()
	c := newTwoCAs(t)
	setTXT(t, record.Name("first-tenant.test"), c.value(t, c.first, false))
	setTXT(t, record.Name("second-tenant.test"), c.value(t, c.second, false))
	p, _, _ := newTestPermission(t, nil, func(p *Permission) {
		p.issuersFor = func(string) ([]*Issuer, error) { return []*Issuer{c.first.Issuer, c.second.Issuer}, nil }
	})
	ctx := context.Background()
	for _, name := range []string{"first-tenant.test", "second-tenant.test"} {
		if err := p.CertificateAllowed(ctx, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	err := p.CertificateAllowed(ctx, "neither-tenant.test")
	if !errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Fatalf("a tenant with no record: %v, want a denial", err)
	}
	for _, want := range []string{c.firstCA.URL, c.secondCA.URL, acmetest.DefaultIssuerName, secondIssuerName} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the denial %q does not name %s", err, want)
		}
	}

	// the tenant authorized for the second CA gets its certificate there,
	// without an order at the first
	if err := c.magic.ObtainCertSync(ctx, "second-tenant.test"); err != nil {
		t.Fatal(err)
	}
	if by := c.issuedBy(t, "second-tenant.test"); by != c.second.IssuerKey() || c.firstCA.Counts.Get(acmetest.KindNewOrder) != 0 {
		t.Errorf("issued by %q with %d orders at the first CA", by, c.firstCA.Counts.Get(acmetest.KindNewOrder))
	}
}
