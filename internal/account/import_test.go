package account

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

// The fixtures write accounts as each client keeps them on disk
// (acmetest's writers); lego's own layout is written by lego itself in
// the e2e test.

// importFrom finds the client's account under folder and imports it, as
// `caddy persist account import` does once it has picked the account.
func (k *testKeeper) importFrom(t *testing.T, client, folder string) (Imported, error) {
	t.Helper()
	found, err := FindForeign(client, folder)
	if err != nil {
		t.Fatal(err)
	}
	// the command pairs the account with the issuer whose CA its
	// folders name
	if len(found) != 1 || !found[0].Matches(k.ca) {
		t.Fatalf("found %d accounts under %s (%+v), want 1 for %s", len(found), folder, found, k.ca)
	}
	return k.Import(context.Background(), found[0])
}

// writeCertbot, writeAcmeSh and writeLegoV4 write an account as the
// client keeps it on disk, and return its folder.
func writeCertbot(t *testing.T, configDir, directory string, key crypto.Signer, accountURL string) string {
	t.Helper()
	return written(t)(acmetest.WriteCertbotAccount(configDir, directory, key, accountURL))
}

func writeAcmeSh(t *testing.T, home, directory string, key *ecdsa.PrivateKey, accountURL string) string {
	t.Helper()
	return written(t)(acmetest.WriteAcmeShAccount(home, directory, key, accountURL))
}

func writeLegoV4(t *testing.T, path, directory, email string, key crypto.Signer, accountURL string) string {
	t.Helper()
	return written(t)(acmetest.WriteLegoV4Account(path, directory, email, key, accountURL))
}

func written(t *testing.T) func(dir string, err error) string {
	return func(dir string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
}

func TestImportFromAcmeShAndLegoV4(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	for _, tc := range []struct {
		client string
		write  func(root string, key *ecdsa.PrivateKey, url string) string
	}{
		{fromAcmeSh, func(root string, key *ecdsa.PrivateKey, url string) string {
			return writeAcmeSh(t, root, ca.URL, key, url)
		}},
		{fromLego, func(root string, key *ecdsa.PrivateKey, url string) string {
			return writeLegoV4(t, root, ca.URL, "old@example.test", key, url)
		}},
	} {
		key, err := newKey()
		if err != nil {
			t.Fatal(err)
		}
		accountURL := otherClientAccount(t, ca, key)
		root := t.TempDir()
		dir := tc.write(root, key.(*ecdsa.PrivateKey), accountURL)

		k := newTestKeeper(t, ca, t.TempDir(), nil)
		out, err := k.importFrom(t, tc.client, root)
		if err != nil {
			t.Fatalf("%s: %v", tc.client, err)
		}
		if out.Account.Location != accountURL {
			t.Errorf("%s: imported %s from %s, want %s", tc.client, out.Account.Location, dir, accountURL)
		}
		// the issuer uses it from storage, and a second import changes nothing
		if got := k.accountURL(t); got != accountURL {
			t.Errorf("%s: the issuer uses %s, want %s", tc.client, got, accountURL)
		}
		again, err := k.importFrom(t, tc.client, dir)
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
	key, _ := newKey()
	accountURL := otherClientAccount(t, ca, key)
	ecKey := key.(*ecdsa.PrivateKey)

	unknown, _ := newKey()
	anotherPinned, _ := newKey()
	for _, tc := range []struct {
		name      string
		key       *ecdsa.PrivateKey
		url       string
		configure func(*Config)
		// registered makes the issuer register its own account first
		registered bool
		want       error
	}{
		{name: "a key the CA does not know", key: unknown.(*ecdsa.PrivateKey), url: accountURL + "0", want: errImportUnknownAtCA},
		{name: "another URL than the CA's", key: ecKey, url: accountURL + "0", want: errImportURLMismatch},
		{name: "another account stored", key: ecKey, url: accountURL, registered: true, want: errDifferentKey},
		{name: "another account_key", key: ecKey, url: accountURL, configure: func(c *Config) { c.PinnedKey = anotherPinned }, want: errImportPinned},
	} {
		home := t.TempDir()
		writeAcmeSh(t, home, ca.URL, tc.key, tc.url)
		storage := t.TempDir()
		k := newTestKeeper(t, ca, storage, tc.configure)
		if tc.registered {
			k.accountURL(t)
		}
		before := storagetest.Snapshot(t, storage)
		registrations := ca.Counts.Get(acmetest.KindNewAccount + " 201")

		_, err := k.importFrom(t, fromAcmeSh, home)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if after := storagetest.Snapshot(t, storage); after != before {
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
	key, _ := newKey()
	ecKey := key.(*ecdsa.PrivateKey)
	for _, tc := range []struct {
		client string
		write  func(root string) string
		for_   []string
		notFor []string
	}{
		{fromCertbot, func(root string) string { return writeCertbot(t, root, le, key, "u") }, []string{le}, []string{staging, pebble}},
		{fromCertbot, func(root string) string { return writeCertbot(t, root, pebble, key, "u") }, []string{pebble}, []string{le}},
		{fromAcmeSh, func(root string) string { return writeAcmeSh(t, root, pebble, ecKey, "u") }, []string{pebble, "https://127.0.0.1:443/dir"}, []string{le, "https://127.0.0.1:14000/other"}},
		{fromAcmeSh, func(root string) string { return writeAcmeSh(t, root, staging, ecKey, "u") }, []string{staging}, []string{le}},
		{fromLego, func(root string) string { return writeLegoV4(t, root, pebble, "a@b.test", key, "u") }, []string{pebble, "https://127.0.0.1:14000/other"}, []string{le, "https://127.0.0.1:14001/dir"}},
	} {
		root := t.TempDir()
		dir := tc.write(root)
		found, err := FindForeign(tc.client, root)
		if err != nil || len(found) != 1 || found[0].Dir != dir || found[0].URL != "u" {
			t.Fatalf("%s under %s: %+v, %v", tc.client, root, found, err)
		}
		for _, ca := range tc.for_ {
			if !found[0].Matches(ca) {
				t.Errorf("%s folder %s does not match %s", tc.client, found[0].Server, ca)
			}
		}
		for _, ca := range tc.notFor {
			if found[0].Matches(ca) {
				t.Errorf("%s folder %s matches %s", tc.client, found[0].Server, ca)
			}
		}
	}
}

// TestImportReadsOnlyTheClientsOwnFiles: the folders read are another
// client's, and may hold anything. A key name that climbs out of the
// account's folder, a file that is not a regular file (a FIFO would
// block the read for ever) and a file larger than any account file are
// refused, with nothing imported.
func TestImportReadsOnlyTheClientsOwnFiles(t *testing.T) {
	t.Parallel()
	key, _ := newKey()
	keyPEM, _ := certmagic.PEMEncodePrivateKey(key)

	// lego names the key after the account's id: "../x" reads x.key
	// from the folder above
	lego := t.TempDir()
	account := filepath.Join(lego, "accounts", "ca.test_443", "a1")
	if err := os.MkdirAll(account, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(lego, "accounts", "secret.key"), keyPEM, 0o600)
	os.WriteFile(filepath.Join(account, "account.json"), []byte(`{"id": "../../secret", "registration": {"accountURL": "https://ca.test/acct/1"}}`), 0o600)
	if found, err := FindForeign(fromLego, lego); err == nil || !strings.Contains(err.Error(), "not a file name") {
		t.Errorf("lego account naming its key ../../secret: %+v, %v", found, err)
	}

	// acme.sh's account.key as a FIFO
	acmeSh := t.TempDir()
	fifoDir := filepath.Join(acmeSh, "ca", "ca.test", "dir")
	if err := os.MkdirAll(fifoDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(fifoDir, "account.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// reading a FIFO with no writer blocks for ever: the guard turns
	// that into a failure rather than a stuck test binary
	read := make(chan error, 1)
	go func() {
		_, err := FindForeign(fromAcmeSh, acmeSh)
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("acme.sh account.key that is a FIFO: %v", err)
		}
	case <-time.After(time.Minute):
		t.Error("reading acme.sh's folder blocked on a FIFO")
	}

	// certbot's regr.json larger than any account file
	certbot := t.TempDir()
	dir := writeCertbot(t, certbot, "https://ca.test/dir", key, "https://ca.test/acct/1")
	huge := append([]byte(`{"uri": "https://ca.test/acct/1", "body": "`), bytes.Repeat([]byte("x"), 2<<20)...)
	os.WriteFile(filepath.Join(dir, "regr.json"), append(huge, `"}`...), 0o600)
	if found, err := FindForeign(fromCertbot, certbot); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("certbot regr.json of 2 MiB: %+v, %v", found, err)
	}
}

// TestImportWalksEachFolderOnce: the walk follows links to folders, as
// certbot links them, and a link back up would make it read the same
// folders over and over, k links deep to the sixth power. Each folder is
// read once, however many links lead to it.
func TestImportWalksEachFolderOnce(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	sub := filepath.Join(root, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := os.Symlink(root, filepath.Join(sub, "up"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	visited := 0
	if err := walkFollowing(root, maxImportDepth, func(string, []string) error { visited++; return nil }); err != nil {
		t.Fatal(err)
	}
	if visited != 2 {
		t.Errorf("the walk read %d folders, want the 2 there are", visited)
	}
}

// TestForeignAccountsTravelAsJSON: the command reads the client's folder
// and sends what it found to the running Caddy, which must pair it with
// the CA and import it as the command would have: the key, the account
// URL and what the folders say of the CA survive the trip.
func TestForeignAccountsTravelAsJSON(t *testing.T) {
	t.Parallel()
	key, _ := newKey()
	const pebble = "https://127.0.0.1:14000/dir"
	root := t.TempDir()
	writeAcmeSh(t, root, pebble, key.(*ecdsa.PrivateKey), "https://127.0.0.1:14000/my-account/1")
	found, err := FindForeign(fromAcmeSh, root)
	if err != nil || len(found) != 1 {
		t.Fatalf("found %+v, %v", found, err)
	}
	data, err := json.Marshal(found)
	if err != nil {
		t.Fatal(err)
	}
	var back []Foreign
	if err := json.Unmarshal(data, &back); err != nil || len(back) != 1 || back[0] != found[0] {
		t.Fatalf("decoding %s: %+v, %v", data, back, err)
	}
	if signer, err := back[0].signer(); err != nil || !sameKey(signer, key) {
		t.Errorf("the decoded key is not the account's: %v", err)
	}
	if !back[0].Matches(pebble) || back[0].Matches("https://acme-v02.api.letsencrypt.org/directory") {
		t.Errorf("the decoded account does not name the CA as the folder does (server %q)", back[0].Server)
	}
}
