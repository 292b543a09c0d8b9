package persist

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
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
	caddytest.WaitingTestsParallel(8)
	os.Exit(m.Run())
}

func startCA(t testing.TB, opts acmetest.Options) *acmetest.CA {
	t.Helper()
	return acmetest.StartCAForTest(t, opts)
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
	// Provision keeps a logger given before it, so that every part of the
	// issuer, its account keeping included, logs here
	core, logs := observer.New(zap.DebugLevel)
	iss.logger = zap.New(core)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := iss.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := iss.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
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

// observeLogs captures what an issuer Caddy provisioned logs from now on,
// but for its account keeping, whose logger Provision set.
func observeLogs(iss *Issuer) *observer.ObservedLogs {
	core, logs := observer.New(zap.DebugLevel)
	setLogger(iss, zap.New(core))
	return logs
}

// setLogger makes every part of iss that logs to its logger, but its
// account keeping and its DNS lookups (which log under "dns"), log to
// logger.
func setLogger(iss *Issuer, logger *zap.Logger) {
	iss.logger = logger
	iss.client.logger = logger
	iss.notices.logger = logger
	iss.notOffered.logger = logger
}

// accountURL loads or registers the issuer's account and returns its URL.
func (ti *testIssuer) accountURL(t testing.TB) string {
	t.Helper()
	acct, err := ti.accounts.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return acct.Location
}

// accountFiles are the storage keys of the issuer's account files, as
// docs/accounts.md lists them: certmagic's registration and key, and the
// files of the account's life beside them.
type accountFiles struct {
	Reg, Key string
}

func (ti *testIssuer) accountFiles() accountFiles {
	reg := ti.accounts.StoredAt()
	return accountFiles{Reg: reg, Key: strings.TrimSuffix(reg, ".json") + ".key"}
}

// rolloverKey holds the new key of an unfinished rollover.
func (f accountFiles) rolloverKey() string {
	return strings.TrimSuffix(f.Reg, ".json") + ".rollover.key"
}

// previousThumbprints lists the thumbprints of the account's earlier keys.
func (f accountFiles) previousThumbprints() string {
	return strings.TrimSuffix(f.Reg, ".json") + ".previous-thumbprints.json"
}

// storedKeyPEM reads the key stored for the issuer's account.
func (ti *testIssuer) storedKeyPEM(t testing.TB) []byte {
	t.Helper()
	data, err := ti.storage.Load(context.Background(), ti.accountFiles().Key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// publish puts the record the issuer needs for names into the test DNS.
func (ti *testIssuer) publish(t testing.TB, base string, wildcard bool) string {
	t.Helper()
	value := ti.recordValue(t, wildcard)
	setTXT(t, record.Name(base), value)
	return value
}

// recordValue is the value of a record authorizing the issuer's account.
func (ti *testIssuer) recordValue(t testing.TB, wildcard bool) string {
	t.Helper()
	value, err := record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: ti.accountURL(t), Wildcard: wildcard}.Value()
	if err != nil {
		t.Fatal(err)
	}
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

// controlledClock is a clock tests move by hand.
type controlledClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *controlledClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *controlledClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// provisionCaddyfile adapts and provisions a Caddyfile the way the
// commands do, without starting anything.
func provisionCaddyfile(t *testing.T, body string) caddy.Context {
	t.Helper()
	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, err := provisionConfig(&cfg)
	if err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	return ctx
}

// caddyGlobals is held while a config is provisioned or loaded: Caddy
// then sets process-wide values (certmagic.Default.Storage among them),
// which tests running in parallel would otherwise race on.
var caddyGlobals sync.Mutex

// provisionConfig is caddy.ProvisionContext, one config at a time.
func provisionConfig(cfg *caddy.Config) (caddy.Context, error) {
	caddyGlobals.Lock()
	defer caddyGlobals.Unlock()
	return caddy.ProvisionContext(cfg)
}

// persistSiteCaddyfile is a Caddyfile serving site with a persist issuer
// at ca, its storage in the folder storage.
func persistSiteCaddyfile(storage string, ca *acmetest.CA, site string) string {
	return `{
	storage file_system ` + storage + `
	admin off
}

` + site + ` {
	tls {
		issuer persist ` + ca.URL + ` {
			email ops@example.test
			trusted_roots ` + ca.TLSRootsFile + `
			resolvers ` + testDNSAddr + `
		}
	}
	respond "hi"
}
`
}

// rewriteDirectory returns a wrapper that edits the directory's meta.
func rewriteDirectory(edit func(meta map[string]any)) func(http.Handler) http.Handler {
	return acmetest.RewriteResponses(acmetest.KindDirectory, func(dir map[string]any) {
		meta, _ := dir["meta"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		edit(meta)
		dir["meta"] = meta
	})
}

// stripIssuerNames removes caaIdentities from the directory, so issuer
// names are known only from challenges and the solver must check.
var stripIssuerNames = rewriteDirectory(func(meta map[string]any) { delete(meta, "caaIdentities") })

// failFirst answers the first n requests of a kind with a fault, then
// lets the CA answer.
func failFirst(n int32, kind string, fault func(w http.ResponseWriter)) (func(http.Handler) http.Handler, *atomic.Int32) {
	var hits atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if acmetest.KindOf(r) == kind && hits.Add(1) <= n {
				fault(w)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, &hits
}

// inspect builds a report for each record the names need, checked or not,
// as the commands do on the config in their own process: records
// registers the account if there is none.
func (iss *Issuer) inspect(ctx context.Context, names []string, check bool) ([]RecordReport, error) {
	return iss.inspectWith(ctx, names, inspectOptions{check: check, register: !check})
}
