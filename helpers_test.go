package persist

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

var testDNSAddr string

func TestMain(m *testing.M) {
	_, addr, err := acmetest.DNS()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test DNS server:", err)
		os.Exit(1)
	}
	testDNSAddr = addr
	os.Exit(m.Run())
}

func startCA(t testing.TB, opts acmetest.Options) *acmetest.CA {
	t.Helper()
	ca, err := acmetest.StartCA(opts, testDNSAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	return ca
}

// testIssuer is a provisioned Issuer against a test CA, with its logs
// captured and its storage in a temporary folder.
type testIssuer struct {
	*Issuer
	logs    *observer.ObservedLogs
	storage *certmagic.FileStorage
	magic   *certmagic.Config
}

func newTestIssuer(t testing.TB, ca *acmetest.CA, storageDir string, configure func(*Issuer)) *testIssuer {
	t.Helper()
	iss := &Issuer{
		CA:                   ca.URL,
		Email:                "ops@example.test",
		TrustedRootsPEMFiles: []string{ca.TLSRootsFile},
		Resolvers:            []string{testDNSAddr},
		PropagationTimeout:   caddy.Duration(time.Second),
	}
	if configure != nil {
		configure(iss)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := iss.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := iss.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	logs := observeLogs(iss)
	iss.checkInterval = 50 * time.Millisecond

	storage := &certmagic.FileStorage{Path: storageDir}
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zap.NewNop(),
	})
	t.Cleanup(cache.Stop)
	magic = certmagic.New(cache, certmagic.Config{Storage: storage, Issuers: []certmagic.Issuer{iss}, Logger: zap.NewNop()})
	iss.SetConfig(magic)
	return &testIssuer{Issuer: iss, logs: logs, storage: storage, magic: magic}
}

// observeLogs captures what iss logs from now on, its account keeping
// included.
func observeLogs(iss *Issuer) *observer.ObservedLogs {
	core, logs := observer.New(zap.DebugLevel)
	iss.logger = zap.New(core)
	iss.accounts.logger = iss.logger
	return logs
}

// accountURL loads or registers the issuer's account and returns its URL.
func (ti *testIssuer) accountURL(t testing.TB) string {
	t.Helper()
	acct, err := ti.accounts.get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return acct.Location
}

// publish puts the record the issuer needs for names into the test DNS.
func (ti *testIssuer) publish(t testing.TB, base string, wildcard bool) string {
	t.Helper()
	value, err := record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: ti.accountURL(t), Wildcard: wildcard}.Value()
	if err != nil {
		t.Fatal(err)
	}
	setTXT(t, record.Name(base), value)
	return value
}

func setTXT(t testing.TB, name string, values ...string) {
	t.Helper()
	if err := acmetest.SetTXT(name, values...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(name) })
}

func newCSR(t testing.TB, names ...string) *x509.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// verifyIssued checks the chain verifies to the CA's root and covers names.
func verifyIssued(t testing.TB, ca *acmetest.CA, chainPEM []byte, names ...string) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatal("no certificate in the issued chain")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	for _, name := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", name, err)
		}
	}
	for _, name := range names {
		if !slices.Contains(leaf.DNSNames, name) {
			t.Errorf("certificate SANs %v lack %s", leaf.DNSNames, name)
		}
	}
	return leaf
}
