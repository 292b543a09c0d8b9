package main

import (
	"crypto/x509"
	"errors"
	"os"

	"github.com/letsencrypt/challtestsrv"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// benchZone is the zone every benchmark name lives in. The forwarder
// answers its SOA and NS; challtestsrv holds its other records.
const benchZone = "bench.test"

// env is everything the contenders share: one challtestsrv, the counting
// forwarder in front of it, and one Pebble.
type env struct {
	dns      *challtestsrv.ChallSrv
	fwd      *dnsForwarder
	ca       *acmetest.CA
	provider *challtestsrvProvider
	roots    *x509.CertPool
	// httpPort is where the http-01 contender's challenge server listens
	// and where Pebble's VA connects.
	httpPort int
	tmp      string
}

func startEnv(tmp string) (*env, error) {
	srv, upstream, err := acmetest.DNS()
	if err != nil {
		return nil, err
	}
	// Pebble's VA asks AAAA before A and dials the first address it gets;
	// the http-01 challenge server listens on 127.0.0.1 only, so the bench
	// names must have no IPv6 address.
	srv.SetDefaultDNSIPv6("")

	fwd, err := startForwarder(upstream, benchZone)
	if err != nil {
		return nil, err
	}
	httpPort, err := acmetest.FreePort()
	if err != nil {
		fwd.Close()
		return nil, err
	}
	// Pebble's VA asks the forwarder too, on its own listener, so that
	// the queries the CA makes are counted apart from the client's.
	ca, err := acmetest.StartCA(acmetest.Options{HTTPPort: httpPort}, fwd.caAddr, tmp)
	if err != nil {
		fwd.Close()
		return nil, err
	}
	rootsPEM, err := os.ReadFile(ca.TLSRootsFile)
	if err != nil {
		ca.Close()
		fwd.Close()
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootsPEM) {
		ca.Close()
		fwd.Close()
		return nil, errors.New("the CA's TLS roots file holds no certificate")
	}
	return &env{
		dns:      srv,
		fwd:      fwd,
		ca:       ca,
		provider: newChalltestsrvProvider(srv),
		roots:    roots,
		httpPort: httpPort,
		tmp:      tmp,
	}, nil
}

func (e *env) Close() {
	e.ca.Close()
	e.fwd.Close()
}

// resetCounts zeroes the ACME and DNS counters before a timed run.
func (e *env) resetCounts() {
	e.ca.Counts.Reset()
	e.fwd.resetCounts()
}
