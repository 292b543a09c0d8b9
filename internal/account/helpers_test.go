package account

import (
	"context"
	"crypto"
	"crypto/x509"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmehttp"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

func TestMain(m *testing.M) {
	caddytest.WaitingTestsParallel(8)
	os.Exit(m.Run())
}

func startCA(t testing.TB, opts acmetest.Options) *acmetest.CA {
	t.Helper()
	return acmetest.StartCAForTest(t, opts)
}

// testKeeper is a Keeper of an account at a test CA, as an issuer with
// the email ops@example.test would configure it, with its logs captured
// and its storage in a folder.
type testKeeper struct {
	*Keeper
	logs    *observer.ObservedLogs
	storage *certmagic.FileStorage

	mu sync.Mutex
	// inUse is the storage the keeper is given; storage unless a test
	// swaps in another.
	inUse certmagic.Storage
}

func newTestKeeper(t testing.TB, ca *acmetest.CA, dir string, configure func(*Config)) *testKeeper {
	t.Helper()
	roots, err := os.ReadFile(ca.TLSRootsFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(roots)
	client := &acmez.Client{Client: &acme.Client{Directory: ca.URL, HTTPClient: acmehttp.NewClient(pool)}}
	core, logs := observer.New(zap.DebugLevel)
	tk := &testKeeper{logs: logs, storage: &certmagic.FileStorage{Path: dir}}
	tk.inUse = tk.storage
	cfg := Config{
		CA:      ca.URL,
		Email:   "ops@example.test",
		Client:  func() (*acmez.Client, error) { return client, nil },
		Storage: tk.currentStorage,
		Logger:  zap.New(core),
		Now:     time.Now,
	}
	if configure != nil {
		configure(&cfg)
	}
	tk.Keeper = New(cfg)
	return tk
}

func (tk *testKeeper) currentStorage() certmagic.Storage {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.inUse
}

// useStorage gives the keeper another storage, as an issuer's SetConfig
// does.
func (tk *testKeeper) useStorage(s certmagic.Storage) {
	tk.mu.Lock()
	tk.inUse = s
	tk.mu.Unlock()
	tk.Forget()
}

// loc is where the keeper's account is stored.
func (tk *testKeeper) loc() location {
	return locate(tk.ca, tk.email)
}

// accountURL loads or registers the account and returns its URL.
func (tk *testKeeper) accountURL(t testing.TB) string {
	t.Helper()
	acct, err := tk.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return acct.Location
}

// storedKeyPEM reads the key stored for the account.
func (tk *testKeeper) storedKeyPEM(t testing.TB) []byte {
	t.Helper()
	data, err := tk.storage.Load(context.Background(), tk.loc().Key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// pinning configures a keeper with the account key in keyPEM.
func pinning(t testing.TB, keyPEM []byte) func(*Config) {
	t.Helper()
	key, err := certmagic.PEMDecodePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.PinnedKey = key }
}

// otherClientAccount registers an account at ca the way another client
// would have: with its own key, outside the keeper's storage.
func otherClientAccount(t *testing.T, ca *acmetest.CA, key crypto.Signer) string {
	t.Helper()
	return newTestKeeper(t, ca, t.TempDir(), func(c *Config) { c.PinnedKey = key }).accountURL(t)
}
