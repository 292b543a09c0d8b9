package persist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

func TestInspectDraft01NeedsNoOrder(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	reports, err := iss.inspect(context.Background(), []string{"*.inspect.test", "inspect.test", "www.inspect.test"}, false)
	if err != nil {
		t.Fatal(err)
	}
	acctURL := iss.accountURL(t)
	if len(reports) != 2 {
		t.Fatalf("%d reports, want 2 (inspect.test with its wildcard, and www.inspect.test)", len(reports))
	}
	apex, www := reports[0], reports[1]
	if apex.Domain != "inspect.test" || !apex.Wildcard || apex.Value != "pebble.letsencrypt.org; accounturi="+acctURL+"; policy=wildcard" || apex.Draft != "draft-01" {
		t.Errorf("apex report = %+v", apex)
	}
	if www.Domain != "www.inspect.test" || www.Wildcard || strings.Contains(www.Value, "policy") {
		t.Errorf("www report = %+v: policy=wildcard must not be added when no name needs it", www)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("inspect placed %d orders", n)
	}
}

func TestInspectWithoutIssuerNamesAsksForIssuerDomainName(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{Wrap: stripIssuerNames})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	_, err := iss.inspect(context.Background(), []string{"noname.test"}, false)
	if err == nil || !strings.Contains(err.Error(), "set issuer_domain_name") {
		t.Fatalf("error = %v", err)
	}
	iss = newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.IssuerDomainName = acmetest.DefaultIssuerName })
	reports, err := iss.inspect(context.Background(), []string{"noname.test"}, false)
	if err != nil || reports[0].IssuerDomainName != acmetest.DefaultIssuerName {
		t.Fatalf("with issuer_domain_name: %+v, %v", reports, err)
	}
}

// draft02 makes Pebble's directory announce draft -02.
var draft02 = rewriteDirectory(func(meta map[string]any) {
	meta["issuerDomainNames"] = []string{"ca.example", acmetest.DefaultIssuerName}
	meta["accountHashPrefix"] = "https://ca.example/h/"
})

func TestInspectDraft02ConfirmsTheAccountAndHashes(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{Wrap: draft02})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	reports, err := iss.inspect(context.Background(), []string{"hash.test"}, false)
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := iss.accounts.Get(context.Background(), true)
	thumb, _ := acct.Thumbprint()
	want, _ := record.HashedAccountURI("https://ca.example/h/", "hash.test", thumb, acct.Location)
	if r := reports[0]; r.Draft != "draft-02" || r.IssuerDomainName != "ca.example" || r.Value != "ca.example; accounturi="+want {
		t.Errorf("report = %+v", r)
	}
	if n := ca.Counts.Get(acmetest.KindAccount + " 200"); n != 1 {
		t.Errorf("POST-as-GET of the account URL: %d answered 200, want 1", n)
	}

	// a deactivated account is refused before any record is shown
	client, _ := iss.client.get()
	if _, err := client.UpdateAccount(context.Background(), acme.Account{Status: acme.StatusDeactivated, Location: acct.Location, PrivateKey: acct.PrivateKey}); err != nil {
		t.Fatal(err)
	}
	_, err = iss.inspect(context.Background(), []string{"hash.test"}, false)
	if err == nil || !strings.Contains(err.Error(), acct.Location) || !strings.Contains(err.Error(), "records naming it will not work") {
		t.Errorf("inspect with a deactivated account: %v", err)
	}
}

func TestCheckNeverRegistersAnAccount(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	_, err := iss.inspect(context.Background(), []string{"nocheck.test"}, true)
	if !errors.Is(err, account.ErrNoAccountYet) || !strings.Contains(err.Error(), "file storage at") {
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

// TestReadingTheRecordsNeverWrites: what GET /persist/records and
// /persist/check serve registers no account, replaces none (with
// new_account_if_missing), and writes nothing to storage, not even a copy
// of a pinned account or a lost registration the CA still knows: it
// looks them up, by the key, and shows their records.
func TestReadingTheRecordsNeverWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{})
	read := func(ti *testIssuer) ([]RecordReport, error) {
		return inspectAll(ctx, []servedSet{{Issuer: ti.Issuer, Names: []string{"read.test"}}}, inspectOptions{})
	}
	unchanged := func(name, dir string, read func() error) {
		t.Helper()
		before, registrations := storagetest.Snapshot(t, dir), ca.Counts.Get(acmetest.KindNewAccount+" 201")
		if err := read(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if after := storagetest.Snapshot(t, dir); after != before {
			t.Errorf("%s: storage changed:\nbefore %s\nafter  %s", name, before, after)
		}
		if n := ca.Counts.Get(acmetest.KindNewAccount+" 201") - registrations; n != 0 {
			t.Errorf("%s: %d accounts registered", name, n)
		}
	}

	dir := t.TempDir()
	unchanged("no account yet", dir, func() error {
		if _, err := read(newTestIssuer(t, ca, dir, nil)); !errors.Is(err, account.ErrNoAccountYet) {
			return fmt.Errorf("got %v, want no account yet", err)
		}
		return nil
	})

	registered := newTestIssuer(t, ca, t.TempDir(), nil)
	url := registered.accountURL(t)
	keyPEM := registered.storedKeyPEM(t)
	pinnedDir := t.TempDir()
	unchanged("a pinned account not stored", pinnedDir, func() error {
		reports, err := read(newTestIssuer(t, ca, pinnedDir, func(iss *Issuer) { iss.AccountKey = string(keyPEM) }))
		if err == nil && (len(reports) != 1 || reports[0].AccountURL != url) {
			return fmt.Errorf("reports %+v, want the pinned account %s", reports, url)
		}
		return err
	})

	if err := os.Remove(filepath.Join(registered.storage.Path, registered.accountFiles().Reg)); err != nil {
		t.Fatal(err)
	}
	unchanged("a lost registration", registered.storage.Path, func() error {
		reports, err := read(newTestIssuer(t, ca, registered.storage.Path, nil))
		if err == nil && (len(reports) != 1 || reports[0].AccountURL != url) {
			return fmt.Errorf("reports %+v, want the account %s", reports, url)
		}
		return err
	})

	corrupt := newTestIssuer(t, ca, t.TempDir(), nil)
	corrupt.accountURL(t)
	if err := os.WriteFile(filepath.Join(corrupt.storage.Path, corrupt.accountFiles().Reg), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	unchanged("an unusable account with new_account_if_missing", corrupt.storage.Path, func() error {
		var unusable *StorageError
		if _, err := read(newTestIssuer(t, ca, corrupt.storage.Path, func(iss *Issuer) { iss.NewAccountIfMissing = true })); !errors.As(err, &unusable) {
			return fmt.Errorf("got %v, want the unusable account's error", err)
		}
		return nil
	})
}
