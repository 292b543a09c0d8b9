package main

import (
	"context"
	"os"

	"github.com/caddyserver/certmagic"
)

// acmeIssuerContender is certmagic's own ACMEIssuer, the `acme` issuer of
// Caddy, with one challenge type: http-01 (its challenge server on
// 127.0.0.1) or dns-01 (through a libdns provider, propagation check on).
type acmeIssuerContender struct {
	env       *env
	challenge string
	cfg       *certmagic.Config
	cache     *certmagic.Cache

	warm *certmagic.FileStorage
	run  *certmagic.FileStorage
}

func newHTTP01(e *env) *acmeIssuerContender {
	return &acmeIssuerContender{env: e, challenge: "http-01"}
}

func newDNS01(e *env) *acmeIssuerContender {
	return &acmeIssuerContender{env: e, challenge: "dns-01"}
}

func (a *acmeIssuerContender) Name() string { return a.challenge }

// Names: http-01 cannot validate wildcards, so it obtains the apex names
// only; dns-01 obtains both, as persist does.
func (a *acmeIssuerContender) Names(bases []string) []string {
	if a.challenge == "http-01" {
		return append([]string(nil), bases...)
	}
	return apexAndWildcard(bases)
}

func (a *acmeIssuerContender) WarmUp(ctx context.Context) error {
	dir, err := os.MkdirTemp(a.env.tmp, a.challenge+"-warm-")
	if err != nil {
		return err
	}
	a.warm = &certmagic.FileStorage{Path: dir}
	logger := caddyLogger()
	a.cfg, a.cache = newMagic(a.warm, logger)

	template := certmagic.ACMEIssuer{
		CA:                      a.env.ca.URL,
		TestCA:                  a.env.ca.URL,
		Email:                   a.challenge + "@bench.test",
		Agreed:                  true,
		TrustedRoots:            a.env.roots,
		DisableTLSALPNChallenge: true,
		Logger:                  logger,
	}
	switch a.challenge {
	case "http-01":
		template.ListenHost = "127.0.0.1"
		template.AltHTTPPort = a.env.httpPort
	case "dns-01":
		template.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider: a.env.provider,
			// With resolvers set, certmagic checks propagation at them
			// instead of at the zone's nameservers (which it would ask on
			// port 53); the forwarder answers for the zone, so the check
			// runs in full and every query is counted.
			Resolvers: []string{a.env.fwd.clientAddr},
			Logger:    logger,
		}}
	}
	a.cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(a.cfg, template)}
	// the first obtain registers the account in the warm storage
	return warmUpObtain(ctx, a, "")
}

// Prepare gives the config fresh storage holding the account. The issuer
// reads its config's storage at each use, so it needs no telling.
func (a *acmeIssuerContender) Prepare(_ context.Context, _ []string) error {
	s, err := runStorage(a.env.tmp, a.warm.Path)
	if err != nil {
		return err
	}
	a.run = s
	a.cfg.Storage = s
	return nil
}

func (a *acmeIssuerContender) Obtain(ctx context.Context, name string) error {
	return a.cfg.ObtainCertSync(ctx, name)
}

func (a *acmeIssuerContender) Finish(_ []string) {
	removeStorage(a.run)
	a.run = nil
}

func (a *acmeIssuerContender) Close() {
	if a.cache != nil {
		a.cache.Stop()
	}
}
