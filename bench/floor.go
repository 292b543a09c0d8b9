package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmehttp"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// floorContender is acmez alone, answering dns-persist-01 with a solver
// that does nothing, against records published beforehand: no storage, no
// locks, no record check. What it costs is the protocol's own cost, plus
// a key and CSR per certificate, which every client must make.
type floorContender struct {
	env     *env
	client  *acmez.Client
	account acme.Account
	record  string
}

func newFloor(e *env) *floorContender { return &floorContender{env: e} }

func (f *floorContender) Name() string                  { return "floor" }
func (f *floorContender) Names(bases []string) []string { return apexAndWildcard(bases) }

func (f *floorContender) WarmUp(ctx context.Context) error {
	f.client = &acmez.Client{
		Client: &acme.Client{Directory: f.env.ca.URL, HTTPClient: acmehttp.NewClient(f.env.roots)},
		ChallengeSolvers: map[string]acmez.Solver{
			acme.ChallengeTypeDNSPersist01: noopSolver{},
		},
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	f.account, err = f.client.NewAccount(ctx, acme.Account{
		Contact:              []string{"mailto:floor@bench.test"},
		TermsOfServiceAgreed: true,
		PrivateKey:           key,
	})
	if err != nil {
		return fmt.Errorf("registering the floor's account: %v", err)
	}
	f.record, err = record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: f.account.Location, Wildcard: true}.Value()
	if err != nil {
		return err
	}
	return warmUpObtain(ctx, f, f.record)
}

func (f *floorContender) Prepare(_ context.Context, bases []string) error {
	return publishRecords(bases, f.record)
}

func (f *floorContender) Obtain(ctx context.Context, name string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	chains, err := f.client.ObtainCertificateForSANs(ctx, f.account, key, []string{name})
	if err != nil {
		return err
	}
	if len(chains) == 0 {
		return fmt.Errorf("%s: no certificate chain", name)
	}
	return nil
}

func (f *floorContender) Finish(bases []string) { unpublishRecords(bases) }
func (f *floorContender) Close()                {}

// noopSolver does nothing: the record is already published.
type noopSolver struct{}

func (noopSolver) Present(context.Context, acme.Challenge) error { return nil }
func (noopSolver) CleanUp(context.Context, acme.Challenge) error { return nil }
