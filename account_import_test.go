package persist

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// The fixtures below write accounts as each client keeps them on disk
// (see account_import_formats.go for the layouts and where they come
// from); lego's own layout is written by lego itself in the e2e test.

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

// writeCertbotAccount writes an account as certbot keeps it under its
// config folder: accounts/<host:port><path>/<id>/ with the key as a JWK
// in private_key.json, regr.json naming the account URL, and meta.json.
func writeCertbotAccount(t *testing.T, configDir, directory string, key crypto.Signer, accountURL string) string {
	t.Helper()
	u, err := url.Parse(directory)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	// certbot names the folder after the MD5 of the public key's PEM
	id := md5.Sum(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	dir := filepath.Join(configDir, "accounts", u.Host+u.Path, hex.EncodeToString(id[:]))
	jwk, err := jose.JSONWebKey{Key: key}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	regr, _ := json.Marshal(map[string]any{"body": map[string]any{}, "uri": accountURL})
	writeFiles(t, dir, map[string]string{
		"private_key.json": string(jwk),
		"regr.json":        string(regr),
		"meta.json":        `{"creation_dt": "2026-01-02T03:04:05Z", "creation_host": "old-host.example"}`,
	})
	return dir
}

// writeAcmeShAccount writes an account as acme.sh keeps it under its
// home: ca/<host>/<directory path>/ with account.key (as openssl writes
// an EC key, parameters first), account.json and ca.conf naming the URL.
func writeAcmeShAccount(t *testing.T, home, directory string, key *ecdsa.PrivateKey, accountURL string) string {
	t.Helper()
	u, err := url.Parse(directory)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	keyPEM = append(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	dir := filepath.Join(home, "ca", u.Hostname(), strings.Trim(u.Path, "/"))
	writeFiles(t, dir, map[string]string{
		"account.key":  string(keyPEM),
		"account.json": `{"status":"valid","contact":["mailto:old@example.test"],"orders":"` + accountURL + `/orders"}`,
		"ca.conf":      "CA_EMAIL='old@example.test'\nACCOUNT_URL='" + accountURL + "'\nCA_KEY_HASH='abc'\n",
	})
	return dir
}

// writeLegoV4Account writes an account as lego v4 kept it under its
// --path: accounts/<host>_<port>/<email>/account.json, with the account
// URL as registration.uri, and the key in keys/<email>.key.
func writeLegoV4Account(t *testing.T, path, directory, email string, key crypto.Signer, accountURL string) string {
	t.Helper()
	u, err := url.Parse(directory)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(path, "accounts", strings.ReplaceAll(u.Host, ":", "_"), email)
	reg, _ := json.Marshal(map[string]any{
		"email":        email,
		"registration": map[string]any{"body": map[string]any{"status": "valid"}, "uri": accountURL},
	})
	writeFiles(t, dir, map[string]string{"account.json": string(reg), "keys/" + email + ".key": string(keyPEM)})
	return dir
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		file := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// importFrom finds the client's account under folder and imports it into
// the issuer, as `caddy persist account import` does.
func (ti *testIssuer) importFrom(t *testing.T, client foreignClient, folder string) (importOutcome, error) {
	t.Helper()
	found, err := findForeignAccounts(client, folder)
	if err != nil {
		t.Fatal(err)
	}
	iss, src, err := pickImport([]servedSet{{Issuer: ti.Issuer}}, found, "")
	if err != nil {
		t.Fatal(err)
	}
	return iss.importAccount(context.Background(), src)
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
	writeCertbotAccount(t, configDir, ca.URL, key, accountURL)

	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	// the record certbot's user published for the account
	value, err := record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: accountURL}.Value()
	if err != nil {
		t.Fatal(err)
	}
	setTXT(t, record.Name("certbot-import.test"), value)
	out, err := iss.importFrom(t, fromCertbot, configDir)
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
	stored, err := loadStoredAccount(context.Background(), iss.storage, locateAccount(ca.URL, "ops@example.test"))
	if err != nil || stored.Location != accountURL || !sameKey(stored.PrivateKey, key) {
		t.Errorf("stored %s (%v), want the imported account", stored.Location, err)
	}
}

func TestImportFromAcmeShAndLegoV4(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	for _, tc := range []struct {
		client foreignClient
		write  func(root string, key *ecdsa.PrivateKey, url string) string
	}{
		{fromAcmeSh, func(root string, key *ecdsa.PrivateKey, url string) string {
			return writeAcmeShAccount(t, root, ca.URL, key, url)
		}},
		{fromLego, func(root string, key *ecdsa.PrivateKey, url string) string {
			return writeLegoV4Account(t, root, ca.URL, "old@example.test", key, url)
		}},
	} {
		key, err := newAccountKey()
		if err != nil {
			t.Fatal(err)
		}
		accountURL := otherClientAccount(t, ca, key)
		root := t.TempDir()
		dir := tc.write(root, key.(*ecdsa.PrivateKey), accountURL)

		iss := newTestIssuer(t, ca, t.TempDir(), nil)
		out, err := iss.importFrom(t, tc.client, root)
		if err != nil {
			t.Fatalf("%s: %v", tc.client, err)
		}
		if out.Account.Location != accountURL {
			t.Errorf("%s: imported %s from %s, want %s", tc.client, out.Account.Location, dir, accountURL)
		}
		// the issuer uses it from storage, and a second import changes nothing
		if got := iss.accountURL(t); got != accountURL {
			t.Errorf("%s: the issuer uses %s, want %s", tc.client, got, accountURL)
		}
		again, err := iss.importFrom(t, tc.client, dir)
		if err != nil || !again.AlreadyStored {
			t.Errorf("%s: a second import: %+v, %v", tc.client, again, err)
		}
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 2 {
		t.Errorf("registrations = %d, want the 2 of the other clients", n)
	}
}

func TestImportRefusesWhatItCannotConfirmOrWouldOverwrite(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	key, _ := newAccountKey()
	accountURL := otherClientAccount(t, ca, key)
	ecKey := key.(*ecdsa.PrivateKey)

	unknown, _ := newAccountKey()
	anotherPinned, _ := newAccountKey()
	anotherPEM, _ := certmagic.PEMEncodePrivateKey(anotherPinned)
	for _, tc := range []struct {
		name      string
		key       *ecdsa.PrivateKey
		url       string
		configure func(*Issuer)
		// registered makes the issuer register its own account first
		registered bool
		want       error
	}{
		{name: "a key the CA does not know", key: unknown.(*ecdsa.PrivateKey), url: accountURL + "0", want: errImportUnknownAtCA},
		{name: "another URL than the CA's", key: ecKey, url: accountURL + "0", want: errImportURLMismatch},
		{name: "another account stored", key: ecKey, url: accountURL, registered: true, want: errDifferentKey},
		{name: "another account_key", key: ecKey, url: accountURL, configure: func(iss *Issuer) { iss.AccountKey = string(anotherPEM) }, want: errImportPinned},
	} {
		home := t.TempDir()
		writeAcmeShAccount(t, home, ca.URL, tc.key, tc.url)
		storage := t.TempDir()
		iss := newTestIssuer(t, ca, storage, tc.configure)
		if tc.registered {
			iss.accountURL(t)
		}
		before := snapshot(t, storage)
		registrations := ca.Counts.Get(acmetest.KindNewAccount + " 201")

		_, err := iss.importFrom(t, fromAcmeSh, home)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if after := snapshot(t, storage); after != before {
			t.Errorf("%s: storage changed:\n%s\nwas\n%s", tc.name, after, before)
		}
		if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != registrations {
			t.Errorf("%s: the import registered an account", tc.name)
		}
		if err != nil && tc.want == errImportURLMismatch && (!strings.Contains(err.Error(), accountURL+"0") || !strings.Contains(err.Error(), accountURL+",")) {
			t.Errorf("%s: the error does not name both URLs: %v", tc.name, err)
		}
	}
}

func TestForeignFoldersNameTheirCA(t *testing.T) {
	t.Parallel()
	const le = "https://acme-v02.api.letsencrypt.org/directory"
	const staging = "https://acme-staging-v02.api.letsencrypt.org/directory"
	const pebble = "https://127.0.0.1:14000/dir"
	key, _ := newAccountKey()
	ecKey := key.(*ecdsa.PrivateKey)
	for _, tc := range []struct {
		client foreignClient
		write  func(root string) string
		for_   []string
		notFor []string
	}{
		{fromCertbot, func(root string) string { return writeCertbotAccount(t, root, le, key, "u") }, []string{le}, []string{staging, pebble}},
		{fromCertbot, func(root string) string { return writeCertbotAccount(t, root, pebble, key, "u") }, []string{pebble}, []string{le}},
		{fromAcmeSh, func(root string) string { return writeAcmeShAccount(t, root, pebble, ecKey, "u") }, []string{pebble, "https://127.0.0.1:443/dir"}, []string{le, "https://127.0.0.1:14000/other"}},
		{fromAcmeSh, func(root string) string { return writeAcmeShAccount(t, root, staging, ecKey, "u") }, []string{staging}, []string{le}},
		{fromLego, func(root string) string { return writeLegoV4Account(t, root, pebble, "a@b.test", key, "u") }, []string{pebble, "https://127.0.0.1:14000/other"}, []string{le, "https://127.0.0.1:14001/dir"}},
	} {
		root := t.TempDir()
		dir := tc.write(root)
		found, err := findForeignAccounts(tc.client, root)
		if err != nil || len(found) != 1 || found[0].dir != dir || found[0].url != "u" {
			t.Fatalf("%s under %s: %+v, %v", tc.client, root, found, err)
		}
		for _, ca := range tc.for_ {
			if !found[0].matches(ca) {
				t.Errorf("%s folder %s does not match %s", tc.client, found[0].server, ca)
			}
		}
		for _, ca := range tc.notFor {
			if found[0].matches(ca) {
				t.Errorf("%s folder %s matches %s", tc.client, found[0].server, ca)
			}
		}
	}
}
