package account

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

// unreadableStorage is file storage whose Load fails for one key, as when
// a file was restored with the wrong owner.
type unreadableStorage struct {
	*certmagic.FileStorage
	key string
}

func (s unreadableStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if key == s.key {
		return nil, os.ErrPermission
	}
	return s.FileStorage.Load(ctx, key)
}

func TestSetAsideNeverDeletesWhatItCannotCopy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fs := &certmagic.FileStorage{Path: dir}
	loc := locate("https://ca.example/dir", "a@example.test")
	ctx := context.Background()
	fs.Store(ctx, loc.Key, []byte("the only copy of the key"))
	fs.Store(ctx, loc.Reg, []byte(`{"location":"https://ca.example/acct/1"}`))

	err := setAside(ctx, unreadableStorage{fs, loc.Key}, []string{loc.Key, loc.Reg}, "unusable", 1)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("error = %v", err)
	}
	for _, key := range []string{loc.Key, loc.Reg} {
		if !fs.Exists(ctx, key) {
			t.Errorf("%s was removed", key)
		}
	}

	if err := setAside(ctx, fs, []string{loc.Key, loc.Reg}, "unusable", 1); err != nil {
		t.Fatal(err)
	}
	kept, err := fs.Load(ctx, loc.Key+".unusable-1")
	if err != nil || string(kept) != "the only copy of the key" || fs.Exists(ctx, loc.Key) {
		t.Errorf("the key was not moved aside intact: %q, %v", kept, err)
	}

	// another key set aside in the same second keeps the first
	fs.Store(ctx, loc.Key, []byte("a second key"))
	if err := setAside(ctx, fs, []string{loc.Key}, "unusable", 1); err != nil {
		t.Fatal(err)
	}
	first, _ := fs.Load(ctx, loc.Key+".unusable-1")
	second, err := fs.Load(ctx, loc.Key+".unusable-1.2")
	if string(first) != "the only copy of the key" || err != nil || string(second) != "a second key" {
		t.Errorf("two keys set aside in one second: %q and %q (%v)", first, second, err)
	}
}

func TestAccountKeyIsStoredPrivately(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	k := newTestKeeper(t, ca, dir, nil)
	k.accountURL(t)
	info, err := os.Stat(filepath.Join(dir, k.loc().Key))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("account key mode = %o, want 600", mode)
	}
}

// The `acme` issuer finds the account where this issuer stored it: the
// storage layout and issuer key are certmagic's own.
func TestAccountSharedWithTheACMEIssuer(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	k := newTestKeeper(t, ca, t.TempDir(), nil)
	url := k.accountURL(t)
	keyPEM := k.storedKeyPEM(t)
	before := ca.Counts.Get(acmetest.KindNewAccount)

	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return nil, nil },
		Logger:           zap.NewNop(),
	})
	t.Cleanup(cache.Stop)
	magic := certmagic.New(cache, certmagic.Config{Storage: k.storage, Logger: zap.NewNop()})
	acmeIssuer := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{CA: ca.URL, Email: k.email, Agreed: true})
	if err := acmeIssuer.PreCheck(context.Background(), []string{"shared.test"}, false); err != nil {
		t.Fatal(err)
	}
	acct, err := acmeIssuer.GetAccount(context.Background(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Location != url {
		t.Errorf("the acme issuer found %s, want %s", acct.Location, url)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount) - before; n != 0 {
		t.Errorf("the acme issuer asked the CA %d times: it did not find the account in storage", n)
	}
	if folder := path.Join("acme", certmagic.StorageKeys.Safe(acmeIssuer.IssuerKey()), "users") + "/"; !strings.HasPrefix(k.StoredAt(), folder) {
		t.Errorf("the account is stored at %s, outside the acme issuer's %s", k.StoredAt(), folder)
	}
}

func TestAnUnreadableAccountIsNotCalledDamaged(t *testing.T) {
	t.Parallel()
	fs := &certmagic.FileStorage{Path: t.TempDir()}
	loc := locate("https://ca.example/dir", "a@example.test")
	ctx := context.Background()
	fs.Store(ctx, loc.Key, []byte("a key"))
	fs.Store(ctx, loc.Reg, []byte(`{"location":"https://ca.example/acct/1"}`))

	_, err := loadStored(ctx, unreadableStorage{fs, loc.Key}, loc)
	if err == nil || !strings.Contains(err.Error(), "reading ACME account file") || strings.Contains(err.Error(), "Recovering an account") {
		t.Errorf("error = %v, want a read failure, not a damaged file", err)
	}
}

func TestNewAccountIfMissingNeverReplacesAnUnreadableAccount(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	newIfMissing := func(c *Config) { c.NewIfMissing = true }
	k := newTestKeeper(t, ca, dir, newIfMissing)
	acctURL := k.accountURL(t)
	ctx := context.Background()

	// a fresh keeper on the same files, whose store cannot read the key
	again := newTestKeeper(t, ca, dir, newIfMissing)
	loc := locate(ca.URL, "ops@example.test")
	again.useStorage(unreadableStorage{again.storage, loc.Key})
	_, err := again.Get(ctx, true)
	if err == nil || !strings.Contains(err.Error(), "reading ACME account file") {
		t.Fatalf("error = %v, want the read failure", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1: a store that cannot read is no reason for a new account", n)
	}
	// the files are as they were, and readable storage finds the account
	again.useStorage(again.storage)
	if got := again.accountURL(t); got != acctURL {
		t.Errorf("account is %s, want %s", got, acctURL)
	}
	if files := storagetest.List(t, dir); strings.Contains(strings.Join(files, " "), "unusable") {
		t.Errorf("files were set aside: %v", files)
	}
}

// gatedStorage is file storage whose Load of key, once armed, says it
// began and waits for open.
type gatedStorage struct {
	*certmagic.FileStorage
	key     string
	armed   atomic.Bool
	entered chan struct{}
	open    chan struct{}
}

func (g *gatedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if key == g.key && g.armed.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.open
	}
	return g.FileStorage.Load(ctx, key)
}

// TestAccountRecheckHoldsUpNoOtherCaller: while one caller compares the
// account with a slow storage, the others (the on-demand permission among
// them) go on with the account held, rather than wait for the store.
func TestAccountRecheckHoldsUpNoOtherCaller(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newTestKeeper(t, startCA(t, acmetest.Options{}), t.TempDir(), nil)
	url := k.accountURL(t)
	storage := &gatedStorage{FileStorage: k.storage, key: k.loc().Reg, entered: make(chan struct{}, 1), open: make(chan struct{})}
	k.useStorage(storage)
	if _, err := k.Get(ctx, false); err != nil {
		t.Fatal(err)
	}

	storage.armed.Store(true)
	k.Refresh()
	rechecked := make(chan error, 1)
	go func() {
		_, err := k.Get(ctx, false)
		rechecked <- err
	}()
	select {
	case <-storage.entered:
	case err := <-rechecked:
		t.Fatalf("the due recheck read no storage (%v)", err)
	}
	other := make(chan acme.Account, 1)
	go func() {
		acct, _ := k.Get(ctx, false)
		other <- acct
	}()
	select {
	case acct := <-other:
		if acct.Location != url {
			t.Errorf("the other caller got %s, want %s", acct.Location, url)
		}
	case <-time.After(10 * time.Second):
		t.Error("the other caller waited for the storage the recheck reads")
	}
	close(storage.open)
	if err := <-rechecked; err != nil {
		t.Fatal(err)
	}
}
