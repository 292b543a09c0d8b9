package persist

import (
	"bytes"
	"context"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

func TestAccountSurvivesRestart(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	first := newTestIssuer(t, ca, dir, nil).accountURL(t)
	second := newTestIssuer(t, ca, dir, nil).accountURL(t)
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
	first := newTestIssuer(t, ca, t.TempDir(), nil)
	url := first.accountURL(t)
	keyPEM, err := first.storage.Load(context.Background(), locateAccount(ca.URL, first.Email).Key)
	if err != nil {
		t.Fatal(err)
	}

	fresh := t.TempDir()
	pinned := newTestIssuer(t, ca, fresh, func(iss *Issuer) { iss.AccountKey = string(keyPEM) })
	if got := pinned.accountURL(t); got != url {
		t.Errorf("account_key gave %s, want %s", got, url)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
	// the account is now stored on the fresh machine too
	stored, err := pinned.storage.Load(context.Background(), locateAccount(ca.URL, pinned.Email).Reg)
	if err != nil || !bytes.Contains(stored, []byte(url)) {
		t.Errorf("stored registration = %s, %v", stored, err)
	}
}
