package persist

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
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
	dir := t.TempDir()
	fs := &certmagic.FileStorage{Path: dir}
	loc := locateAccount("https://ca.example/dir", "a@example.test")
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
}

func TestInterruptedRegistrationRegistersTheStoredKey(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	loc := locateAccount(ca.URL, "ops@example.test")
	key, _ := newAccountKey()
	// a registration that stored its key and then died before the CA answered
	if err := storeKey(context.Background(), &certmagic.FileStorage{Path: dir}, loc, key); err != nil {
		t.Fatal(err)
	}
	iss := newTestIssuer(t, ca, dir, nil)
	acct, err := iss.accounts.get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(acct.PrivateKey, key) {
		t.Error("a new key was made instead of registering the stored one")
	}
	if n := len(iss.logs.FilterMessageSnippet("a registration was interrupted").All()); n != 1 {
		t.Errorf("%d log entries about the interrupted registration", n)
	}
	if !iss.storage.Exists(context.Background(), loc.Reg) {
		t.Error("the registration was not stored")
	}
}

func TestPinnedKeyRepairsACorruptRegistration(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	first := newTestIssuer(t, ca, dir, nil)
	url := first.accountURL(t)
	loc := locateAccount(ca.URL, first.Email)
	keyPEM, _ := first.storage.Load(context.Background(), loc.Key)
	os.WriteFile(filepath.Join(dir, loc.Reg), []byte("{trunc"), 0o600)

	pinned := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.AccountKey = string(keyPEM) })
	if got := pinned.accountURL(t); got != url {
		t.Errorf("account %s, want %s", got, url)
	}
	kept := false
	for _, name := range listFiles(t, filepath.Join(dir, filepath.Dir(loc.Reg))) {
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

func TestCheckNeverRegistersAnAccount(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	_, err := iss.inspect(context.Background(), []string{"nocheck.test"}, true)
	if !errors.Is(err, errNoAccountYet) || !strings.Contains(err.Error(), "file storage at") {
		t.Fatalf("check without an account: %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Errorf("the check sent %d newAccount requests", n)
	}
	if _, err := iss.inspect(context.Background(), []string{"nocheck.test"}, false); err != nil {
		t.Fatalf("records: %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("records registered %d accounts, want 1", n)
	}
}

func TestOneAccountDoesNotExistAnswerIsConfirmedFirst(t *testing.T) {
	wrap, hits := failFirst(1, acmetest.KindNewOrder, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"type":"urn:ietf:params:acme:error:accountDoesNotExist","detail":"hiccup"}`))
	})
	ca := startCA(t, acmetest.Options{Wrap: wrap})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	url := iss.accountURL(t)
	iss.publish(t, "hiccup.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "hiccup.test")); err != nil {
		t.Fatal(err)
	}
	if hits.Load() == 0 {
		t.Fatal("the fault was not injected")
	}
	if got := iss.accountURL(t); got != url {
		t.Errorf("account replaced: %s, then %s", url, got)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
	if n := len(iss.logs.FilterMessageSnippet("still knows the key").All()); n != 1 {
		t.Errorf("%d log entries about keeping the account", n)
	}
}

func TestWildcardGrantHonoursThePermissionTTLs(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now()}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	value := "pebble.letsencrypt.org; accounturi=" + iss.accountURL(t) + "; policy=wildcard"
	p, _, _ := newTestPermission(t, iss.Issuer, func(p *Permission) {
		p.now = clock.Now
		p.CacheTTL = caddy.Duration(30 * time.Second)
	})
	setTXT(t, record.Name("grant.test"), value)
	if err := p.CertificateAllowed(context.Background(), "shop.grant.test"); err != nil {
		t.Fatalf("subdomain of a wildcard grant: %v", err)
	}
	setTXT(t, record.Name("grant.test"))
	clock.Advance(31 * time.Second)
	if err := p.CertificateAllowed(context.Background(), "shop.grant.test"); !errors.Is(err, caddytls.ErrPermissionDenied) {
		t.Errorf("31s after the parent record was removed, with cache_ttl 30s: %v", err)
	}
}

// The `acme` issuer finds the account where this issuer stored it: the
// storage layout and issuer key are certmagic's own.
func TestAccountSharedWithTheACMEIssuer(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	url := iss.accountURL(t)
	keyPEM, err := iss.storage.Load(context.Background(), locateAccount(ca.URL, iss.Email).Key)
	if err != nil {
		t.Fatal(err)
	}
	before := ca.Counts.Get(acmetest.KindNewAccount)

	acmeIssuer := certmagic.NewACMEIssuer(iss.magic, certmagic.ACMEIssuer{CA: ca.URL, Email: iss.Email, Agreed: true})
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
	if acmeIssuer.IssuerKey() != iss.IssuerKey() {
		t.Errorf("issuer keys differ: %s and %s", acmeIssuer.IssuerKey(), iss.IssuerKey())
	}
}

// With new_account_if_missing, a damaged registration beside a readable
// key is rebuilt from the CA. A CA that cannot answer at that moment is no
// reason to replace the account: nothing is moved, and the next attempt
// asks again and keeps the account.
func TestRepairWaitsForACAThatCannotAnswer(t *testing.T) {
	var refusing atomic.Bool
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refusing.Load() && acmetest.KindOf(r) == acmetest.KindNewAccount {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte(`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"accounts database offline"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	dir := t.TempDir()
	oldURL := newTestIssuer(t, ca, dir, nil).accountURL(t)
	loc := locateAccount(ca.URL, "ops@example.test")
	if err := os.WriteFile(filepath.Join(dir, loc.Reg), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	refusing.Store(true)
	repl := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.NewAccountIfMissing = true })
	_, err := repl.Issue(context.Background(), newCSR(t, "repair.test"))
	if err == nil || !strings.Contains(err.Error(), "accounts database offline") {
		t.Fatalf("error = %v, want the CA's", err)
	}
	if after := snapshot(t, dir); after != before {
		t.Errorf("storage changed while the CA could not answer:\nbefore %s\nafter  %s", before, after)
	}

	refusing.Store(false)
	_, err = repl.Issue(context.Background(), newCSR(t, "repair.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
		t.Fatalf("once the CA answers: %v, want the record missing", err)
	}
	if got := repl.accountURL(t); got != oldURL {
		t.Errorf("the account changed from %s to %s", oldURL, got)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}
