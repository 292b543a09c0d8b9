package account

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// TestRolloverWhoseAnswerIsLostCompletes: the CA takes the new key but
// answers with an error; acmez retries, signed with the old key, which
// the CA then refuses. The rollover asks the CA which key it has, and
// completes.
func TestRolloverWhoseAnswerIsLostCompletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var lose atomic.Bool
	lose.Store(true)
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if acmetest.KindOf(r) == acmetest.KindKeyChange && lose.CompareAndSwap(true, false) {
				next.ServeHTTP(httptest.NewRecorder(), r)
				acmetest.ServerInternal(w)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	k := newTestKeeper(t, ca, t.TempDir(), nil)
	url := k.accountURL(t)
	oldKeyPEM := k.storedKeyPEM(t)

	out, err := k.Rollover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out.Account.Location != url || bytes.Equal(k.storedKeyPEM(t), oldKeyPEM) {
		t.Errorf("rollover = %+v; the key changed: %v", out, !bytes.Equal(k.storedKeyPEM(t), oldKeyPEM))
	}
	assertCAHasStoredKey(t, k, url)
	if n := len(k.logs.FilterMessageSnippet("but it has taken the new key").All()); n != 1 {
		t.Errorf("%d log entries about the lost answer", n)
	}
}

// TestRolloverTheCANeverTookKeepsItsKey: the CA fails the key change
// without taking the new key. While it also says it knows no account for
// the old key (a lagging replica would), both keys stay where they are;
// once it knows the old key as the account's, the rollover's key is set
// aside, never deleted, and the account keeps its key.
func TestRolloverTheCANeverTookKeepsItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var forgetful atomic.Bool
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch kind := acmetest.KindOf(r); {
			case kind == acmetest.KindKeyChange:
				acmetest.ServerInternal(w)
			case kind == acmetest.KindNewAccount && forgetful.Load():
				acmetest.WriteProblem(w, http.StatusBadRequest, acme.ProblemTypeAccountDoesNotExist, "injected by the test")
			default:
				next.ServeHTTP(w, r)
			}
		})
	}})
	k := newTestKeeper(t, ca, t.TempDir(), nil)
	url := k.accountURL(t)
	oldKeyPEM := k.storedKeyPEM(t)
	loc := k.loc()

	forgetful.Store(true)
	if _, err := k.Rollover(ctx); err == nil || !strings.Contains(err.Error(), "both keys are kept") {
		t.Fatalf("rollover while the CA knows neither key: %v", err)
	}
	if !bytes.Equal(k.storedKeyPEM(t), oldKeyPEM) || !k.storage.Exists(ctx, loc.rolloverKey()) {
		t.Fatal("a key was dropped while the CA knew neither")
	}
	newKeyPEM, _ := k.storage.Load(ctx, loc.rolloverKey())

	forgetful.Store(false)
	if _, err := k.Rollover(ctx); err == nil || !strings.Contains(err.Error(), "did not change the key") {
		t.Fatalf("rollover once the CA knows the old key: %v", err)
	}
	assertCAHasStoredKey(t, k, url)
	if !bytes.Equal(k.storedKeyPEM(t), oldKeyPEM) {
		t.Error("the account's key changed")
	}
	aside, _ := filepath.Glob(filepath.Join(k.storage.Path, filepath.FromSlash(loc.rolloverKey())+".untaken-*"))
	if len(aside) == 0 {
		t.Fatal("the first rollover's key was not set aside")
	}
	if kept, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(kept, newKeyPEM) {
		t.Errorf("the key set aside is not the first rollover's: %v", err)
	}
}

// assertCAHasStoredKey fails the test unless the CA knows the stored key
// as the account at url, and no rollover key is left.
func assertCAHasStoredKey(t *testing.T, k *testKeeper, url string) {
	t.Helper()
	ctx := context.Background()
	acct, err := loadStored(ctx, k.storage, k.loc())
	if err != nil {
		t.Fatal(err)
	}
	found, err := k.lookUp(ctx, acct.PrivateKey)
	if err != nil || found.Location != url || acct.Location != url {
		t.Errorf("the CA knows the stored key as %q (%v), want %s", found.Location, err, url)
	}
	if k.storage.Exists(ctx, k.loc().rolloverKey()) {
		t.Error("the rollover key is left")
	}
}

// TestRolloverRefusesAPinnedKeyAndAMissingAccount: a key in the config
// cannot change there, and a rollover never registers an account.
func TestRolloverRefusesAPinnedKeyAndAMissingAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	if _, err := newTestKeeper(t, ca, dir, nil).Rollover(ctx); !errors.Is(err, ErrNoAccountYet) {
		t.Errorf("rollover without an account: %v", err)
	}
	first := newTestKeeper(t, ca, dir, nil)
	first.accountURL(t)
	pinned := newTestKeeper(t, ca, dir, pinning(t, first.storedKeyPEM(t)))
	if _, err := pinned.Rollover(ctx); !errors.Is(err, ErrPinned) {
		t.Errorf("rollover of a pinned key: %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindKeyChange); n != 0 {
		t.Errorf("%d key changes sent", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
}
