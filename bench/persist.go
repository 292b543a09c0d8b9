package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"

	persist "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// persistContender is this plugin's issuer, driven through certmagic as
// Caddy drives it: certmagic's storage checks, locks, key generation and
// saving, then the issuer's record check and order.
type persistContender struct {
	env    *env
	iss    *persist.Issuer
	cfg    *certmagic.Config
	cache  *certmagic.Cache
	cancel func()

	warm   *certmagic.FileStorage
	run    *certmagic.FileStorage
	record string
}

func newPersist(e *env) *persistContender { return &persistContender{env: e} }

func (p *persistContender) Name() string                  { return "persist" }
func (p *persistContender) Names(bases []string) []string { return apexAndWildcard(bases) }

func (p *persistContender) WarmUp(ctx context.Context) error {
	dir, err := os.MkdirTemp(p.env.tmp, "persist-warm-")
	if err != nil {
		return err
	}
	p.warm = &certmagic.FileStorage{Path: dir}

	caddyCtx, cancel := caddyContext()
	p.cancel = cancel
	p.iss = &persist.Issuer{
		CA:                   p.env.ca.URL,
		Email:                "persist@bench.test",
		TrustedRootsPEMFiles: []string{p.env.ca.TLSRootsFile},
		Resolvers:            []string{p.env.fwd.clientAddr},
	}
	if err := p.iss.Provision(caddyCtx); err != nil {
		return fmt.Errorf("provisioning the persist issuer: %v", err)
	}
	if err := p.iss.Validate(); err != nil {
		return fmt.Errorf("validating the persist issuer: %v", err)
	}
	p.cfg, p.cache = newMagic(p.warm, caddyLogger())
	p.cfg.Issuers = []certmagic.Issuer{p.iss}
	p.iss.SetConfig(p.cfg)

	if p.record, err = p.learnRecord(ctx); err != nil {
		return err
	}
	return warmUpObtain(ctx, p, p.record)
}

// learnRecord asks the issuer for a wildcard certificate whose record is
// not published. The issuer registers its account, checks the record
// before placing any order, and fails with a RecordError carrying the
// record to publish: with draft -01, the one value that authorizes the
// account for every bench name and its wildcard. No order reaches the CA.
func (p *persistContender) learnRecord(ctx context.Context) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	csr, err := acmez.NewCSR(key, []string{"*.unpublished." + benchZone, "unpublished." + benchZone})
	if err != nil {
		return "", err
	}
	ordersBefore := p.env.ca.Counts.Get(acmetest.KindNewOrder)
	// The issuer would wait for the record; one look is enough. The bound
	// leaves room for the registration before the first look, and ends
	// the wait before the second (2s later).
	ctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, err = p.iss.Issue(ctx, csr)
	var recErr *persist.RecordError
	if !errors.As(err, &recErr) || recErr.Publish() == "" {
		return "", fmt.Errorf("expected a RecordError naming the record to publish, got: %v", err)
	}
	if n := p.env.ca.Counts.Get(acmetest.KindNewOrder) - ordersBefore; n != 0 {
		return "", fmt.Errorf("the issuer placed %d orders for a name without a record", n)
	}
	return recErr.Publish(), nil
}

// Prepare gives the config fresh storage holding the account, and tells
// the issuer, as Caddy does when it provisions a config.
func (p *persistContender) Prepare(_ context.Context, bases []string) error {
	s, err := runStorage(p.env.tmp, p.warm.Path)
	if err != nil {
		return err
	}
	p.run = s
	p.cfg.Storage = s
	p.iss.SetConfig(p.cfg)
	return publishRecords(bases, p.record)
}

func (p *persistContender) Obtain(ctx context.Context, name string) error {
	return p.cfg.ObtainCertSync(ctx, name)
}

func (p *persistContender) Finish(bases []string) {
	unpublishRecords(bases)
	removeStorage(p.run)
	p.run = nil
}

func (p *persistContender) Close() {
	if p.cache != nil {
		p.cache.Stop()
	}
	if p.cancel != nil {
		p.cancel()
	}
}
