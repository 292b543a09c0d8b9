package main

import (
	"context"
	"fmt"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// contender is one way of obtaining certificates. Its long-lived parts
// (ACME client, issuer, account, connections) are built once by WarmUp,
// as a running Caddy already has them; every run then gets fresh names,
// and fresh storage holding only the account for those that use storage.
type contender interface {
	Name() string
	// Names lists the certificates to obtain for the workload's bases.
	Names(bases []string) []string
	// WarmUp registers the account and obtains one throwaway certificate,
	// so that nothing is done for the first time inside a timed run.
	WarmUp(ctx context.Context) error
	// Prepare readies a run, untimed: fresh storage, published records.
	Prepare(ctx context.Context, bases []string) error
	// Obtain gets the certificate for one name; this is what is timed.
	Obtain(ctx context.Context, name string) error
	// Finish cleans up after a run, untimed.
	Finish(bases []string)
	Close()
}

// apexAndWildcard is what Caddy obtains for a site `base, *.base`: one
// certificate per name.
func apexAndWildcard(bases []string) []string {
	names := make([]string, 0, 2*len(bases))
	for _, b := range bases {
		names = append(names, b, "*."+b)
	}
	return names
}

// newMagic returns a certmagic config over storage, with its own cache, as
// Caddy's tls app builds one per automation policy. The issuers are set by
// the caller, since an ACMEIssuer needs the config first.
func newMagic(storage certmagic.Storage, logger *zap.Logger) (*certmagic.Config, *certmagic.Cache) {
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           logger,
	})
	cfg = certmagic.New(cache, certmagic.Config{
		Storage: storage,
		Issuers: []certmagic.Issuer{},
		Logger:  logger,
	})
	return cfg, cache
}

// warmUpObtain obtains the certificates of one throwaway base outside any
// timing, in whatever storage the contender has now, so that connections,
// caches and lazy set-up are warm. record, when set, is published first.
func warmUpObtain(ctx context.Context, c contender, record string) error {
	bases := []string{"warm-" + c.Name() + "." + benchZone}
	if record != "" {
		if err := publishRecords(bases, record); err != nil {
			return err
		}
		defer unpublishRecords(bases)
	}
	if _, err := obtainAll(ctx, c, c.Names(bases), len(bases)*2); err != nil {
		return fmt.Errorf("warm-up: %v", err)
	}
	return nil
}
