package account

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

func TestLostRegistrationIsRebuiltFromTheCA(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	url := newTestKeeper(t, ca, dir, nil).accountURL(t)
	loc := locate(ca.URL, "ops@example.test")
	if err := os.Remove(filepath.Join(dir, loc.Reg)); err != nil {
		t.Fatal(err)
	}
	k := newTestKeeper(t, ca, dir, nil)
	if got := k.accountURL(t); got != url {
		t.Errorf("account %s after losing the registration, want %s", got, url)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, loc.Reg)); err != nil {
		t.Errorf("the registration was not rebuilt: %v", err)
	}
}

func TestInterruptedRegistrationRegistersTheStoredKey(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	loc := locate(ca.URL, "ops@example.test")
	key, _ := newKey()
	// a registration that stored its key and then died before the CA answered
	if err := storeKey(context.Background(), &certmagic.FileStorage{Path: dir}, loc, key); err != nil {
		t.Fatal(err)
	}
	k := newTestKeeper(t, ca, dir, nil)
	acct, err := k.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(acct.PrivateKey, key) {
		t.Error("a new key was made instead of registering the stored one")
	}
	if n := len(k.logs.FilterMessageSnippet("a registration was interrupted").All()); n != 1 {
		t.Errorf("%d log entries about the interrupted registration", n)
	}
	if !k.storage.Exists(context.Background(), loc.Reg) {
		t.Error("the registration was not stored")
	}
}

func TestPinnedKeyRepairsACorruptRegistration(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	first := newTestKeeper(t, ca, dir, nil)
	url := first.accountURL(t)
	loc := locate(ca.URL, first.email)
	keyPEM, _ := first.storage.Load(context.Background(), loc.Key)
	os.WriteFile(filepath.Join(dir, loc.Reg), []byte("{trunc"), 0o600)

	pinned := newTestKeeper(t, ca, dir, pinning(t, keyPEM))
	if got := pinned.accountURL(t); got != url {
		t.Errorf("account %s, want %s", got, url)
	}
	kept := false
	for _, name := range storagetest.List(t, filepath.Join(dir, filepath.Dir(loc.Reg))) {
		if strings.Contains(name, ".json.corrupt-") {
			kept = true
		}
	}
	if !kept {
		t.Error("the corrupt registration was not kept")
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d", n)
	}
}
