package persist

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
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
