package persist

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// The account is written as certbot keeps it on disk (acmetest's
// writers); the other clients' folders are read in internal/account's
// tests, and lego's own layout is written by lego itself in the e2e test.

// otherClientAccount registers an account at ca the way another client
// would have: with its own key, outside the issuer's storage.
func otherClientAccount(t *testing.T, ca *acmetest.CA, key crypto.Signer) string {
	t.Helper()
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.AccountKey = string(keyPEM) })
	return other.accountURL(t)
}

// importFrom finds the client's account under folder and imports it into
// the issuer, as `caddy persist account import` does.
func (ti *testIssuer) importFrom(t *testing.T, client, folder string) (account.Imported, error) {
	t.Helper()
	found, err := account.FindForeign(client, folder)
	if err != nil {
		t.Fatal(err)
	}
	iss, src, err := pickImport([]servedSet{{Issuer: ti.Issuer}}, found, "")
	if err != nil {
		t.Fatal(err)
	}
	return iss.accounts.Import(context.Background(), src)
}

func TestImportFromCertbotObtainsWithoutRegistering(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	// certbot's account keys are RSA
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	accountURL := otherClientAccount(t, ca, key)
	configDir := t.TempDir()
	if _, err := acmetest.WriteCertbotAccount(configDir, ca.URL, key, accountURL); err != nil {
		t.Fatal(err)
	}

	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	// the record certbot's user published for the account
	value, err := record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: accountURL}.Value()
	if err != nil {
		t.Fatal(err)
	}
	setTXT(t, record.Name("certbot-import.test"), value)
	out, err := iss.importFrom(t, "certbot", configDir)
	if err != nil {
		t.Fatal(err)
	}
	if out.Account.Location != accountURL || out.AlreadyStored {
		t.Errorf("imported %+v, want the account %s", out, accountURL)
	}
	if _, err := iss.Issue(context.Background(), newCSR(t, "certbot-import.test")); err != nil {
		t.Fatal(err)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want certbot's 1", n)
	}
	stored, err := newTestIssuer(t, ca, iss.storage.Path, nil).accounts.Get(context.Background(), false)
	if err != nil || stored.Location != accountURL || !stored.PrivateKey.Public().(*rsa.PublicKey).Equal(key.Public()) {
		t.Errorf("stored %s (%v), want the imported account", stored.Location, err)
	}
}
