package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/legotest"
	"github.com/mholt/acmez/v3/acme"
)

// TestImportLegoAccountObtainsWithoutRegistering is an operator moving
// from lego to Caddy: lego registers at the CA, publishes its record with
// policy=wildcard and obtains *.legoacct.test. Given lego's account by
// `caddy persist account import`, Caddy obtains a certificate for a name
// lego never had, legoacct.test, under the record lego's operator
// published: the CA sees lego's one registration and DNS is not touched
// again.
func TestImportLegoAccountObtainsWithoutRegistering(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	const name = "legoacct.test"
	recordName := "_validation-persist." + name
	legoDir := filepath.Join(e.dir, ".lego")

	accountURL := legotest.Obtain(t, legotest.Options{
		Server:   e.ca.URL,
		Email:    "lego-user@example.test",
		Path:     legoDir,
		Roots:    e.ca.TLSRootsFile,
		Resolver: testDNSAddr,
		Domains:  []string{"*." + name},
	}, func(name, value string) {
		if name != recordName || !strings.Contains(value, "accounturi=") || !strings.Contains(value, "policy=wildcard") {
			t.Errorf("lego asked for %s %q", name, value)
		}
		if err := acmetest.SetTXT(name, value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { acmetest.SetTXT(name) })
	})
	writes := acmetest.TXTWrites(recordName)
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Fatalf("lego made %d registrations, want 1", n)
	}

	cfg := e.persistSite(name, "", "imported")
	// no Caddy runs yet: the account goes to the config's storage, here
	res := e.caddy("persist", "account", "import", "--from", "lego", "--config", cfg, "--local", legoDir)
	if res.code != 0 || !strings.Contains(res.stdout, "Imported the lego account "+accountURL) {
		t.Fatalf("import (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if res := e.caddy("persist", "check", "--config", cfg, "--local"); res.code != 0 {
		t.Errorf("the record lego's operator published does not pass the check:\n%s\n%s", res.stdout, res.stderr)
	}

	srv := e.start("--config", cfg)
	leaf, body := e.handshake(t, name, time.Minute)
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != name || body != "imported" {
		t.Errorf("certificate for %v, body %q", leaf.DNSNames, body)
	}
	srv.stop()
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want lego's 1", n)
	}
	if n := acmetest.TXTWrites(recordName); n != writes {
		t.Errorf("the record was written %d more times after lego's", n-writes)
	}
}

// TestImportThroughTheRunningCaddy: with Caddy running, the import goes
// through it: the command reads acme.sh's folder and sends the account to
// Caddy, which stores it as its own user; the records then name it, with
// no registration. With Caddy stopped, the import changes nothing unless
// --local asks.
func TestImportThroughTheRunningCaddy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := e.acmeClient().NewAccount(context.Background(), acme.Account{PrivateKey: key, TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(e.dir, ".acme.sh")
	if _, err := acmetest.WriteAcmeShAccount(home, e.ca.URL, key, acct.Location); err != nil {
		t.Fatal(err)
	}
	cfg := e.onDemandSite()

	if res := e.caddy("persist", "account", "import", "--from", "acme.sh", "--config", cfg, home); res.code == 0 || !strings.Contains(res.stderr, "--local") {
		t.Errorf("import with no Caddy running and no --local (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if files, _ := filepath.Glob(filepath.Join(e.storage, "acme", "*", "users", "*", "*")); len(files) != 0 {
		t.Fatalf("the refused import wrote %v", files)
	}

	srv := e.start("--config", cfg)
	res := e.caddy("persist", "account", "import", "--from", "acme.sh", "--config", cfg, home)
	if res.code != 0 || !strings.Contains(res.stdout, "Imported the acme.sh account "+acct.Location) || strings.Contains(res.stderr, "loaded the config here") {
		t.Fatalf("import through the running Caddy (%d):\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	srv.waitLog(t, "imported an ACME account from another client", 10*time.Second)
	recs := decodeRecords(t, e.caddy("persist", "records", "--config", cfg, "--domain", "imported.running.test", "--format", "json").stdout)
	if len(recs) != 1 || recs[0].AccountURL != acct.Location {
		t.Errorf("records after the import = %+v, want the account %s", recs, acct.Location)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want acme.sh's 1", n)
	}
}
