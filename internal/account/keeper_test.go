package account

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

func TestAccountSurvivesRestart(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	first := newTestKeeper(t, ca, dir, nil).accountURL(t)
	second := newTestKeeper(t, ca, dir, nil).accountURL(t)
	if first != second {
		t.Errorf("account URL changed across a restart: %s then %s", first, second)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}

func TestAccountKeyFindsTheSameAccountOnAFreshMachine(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	first := newTestKeeper(t, ca, t.TempDir(), nil)
	url := first.accountURL(t)
	keyPEM := first.storedKeyPEM(t)

	fresh := t.TempDir()
	pinned := newTestKeeper(t, ca, fresh, pinning(t, keyPEM))
	if got := pinned.accountURL(t); got != url {
		t.Errorf("account_key gave %s, want %s", got, url)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
	// the account is now stored on the fresh machine too
	stored, err := pinned.storage.Load(context.Background(), pinned.loc().Reg)
	if err != nil || !bytes.Contains(stored, []byte(url)) {
		t.Errorf("stored registration = %s, %v", stored, err)
	}
}

func TestInstancesSharingStorageRegisterOneAccount(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	keepers := []*testKeeper{newTestKeeper(t, ca, dir, nil), newTestKeeper(t, ca, dir, nil), newTestKeeper(t, ca, dir, nil)}
	urls := make([]string, len(keepers))
	var wg sync.WaitGroup
	for i, k := range keepers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct, err := k.Get(context.Background(), true)
			if err != nil {
				t.Error(err)
				return
			}
			urls[i] = acct.Location
		}()
	}
	wg.Wait()
	if urls[0] == "" || urls[0] != urls[1] || urls[1] != urls[2] {
		t.Errorf("account URLs = %v", urls)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}
