package persist

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// secretPieces returns the strings that must never be seen: the MAC key
// and the account key, whole and line by line.
func secretPieces(keyPEM, mac string) []string {
	pieces := []string{mac, keyPEM}
	for _, line := range strings.Split(keyPEM, "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			pieces = append(pieces, line)
		}
	}
	return pieces
}

func newSecrets(t *testing.T) (keyPEM, mac string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	return string(pemBytes), base64.RawURLEncoding.EncodeToString(raw)
}

func TestSecretsNeverAppearInLogsErrorsOrReports(t *testing.T) {
	t.Parallel()
	keyPEM, mac := newSecrets(t)
	ca := startCA(t, acmetest.Options{EABKeys: map[string]string{"kid-1": mac}})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.AccountKey = keyPEM
		iss.ExternalAccount = &acme.EAB{KeyID: "kid-1", MACKey: mac}
	})
	var seen []string
	see := func(s string) { seen = append(seen, s) }

	acctURL := iss.accountURL(t) // registers, with EAB, under the pinned key
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Fatalf("registrations = %d", n)
	}
	_, err := iss.Issue(context.Background(), newCSR(t, "secret.test"))
	if err == nil {
		t.Fatal("issued without a record")
	}
	see(err.Error())
	setTXT(t, record.Name("secret.test"), "pebble.letsencrypt.org; accounturi="+acctURL)
	if _, err := iss.Issue(context.Background(), newCSR(t, "secret.test")); err != nil {
		t.Fatal(err)
	}
	for _, check := range []bool{false, true} {
		reports, err := iss.inspect(context.Background(), []string{"secret.test", "other.secret.test"}, check)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(reports)
		see(string(out))
	}
	for _, entry := range iss.logs.All() {
		fields, _ := json.Marshal(entry.ContextMap())
		see(entry.Message + " " + string(fields))
	}

	// a CA that refuses the binding, and bad configuration, must not echo them
	bad := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.ExternalAccount = &acme.EAB{KeyID: "kid-unknown", MACKey: mac}
	})
	if _, err := bad.accounts.Get(context.Background(), true); err == nil {
		t.Error("an unknown EAB key ID was accepted")
	} else {
		see(err.Error())
	}
	for _, entry := range bad.logs.All() {
		fields, _ := json.Marshal(entry.ContextMap())
		see(entry.Message + " " + string(fields))
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	broken := &Issuer{AccountKey: strings.Replace(keyPEM, "PRIVATE KEY", "PRIVATE KEE", 1)}
	if err := broken.Provision(ctx); err == nil {
		t.Error("a broken account_key was accepted")
	} else {
		see(err.Error())
	}
	badMAC := &Issuer{CA: "https://ca.example/dir", ExternalAccount: &acme.EAB{KeyID: "k", MACKey: mac + "+/="}}
	if err := badMAC.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := badMAC.Validate(); err == nil {
		t.Error("a MAC key that is not base64url was accepted")
	} else {
		see(err.Error())
	}

	if len(seen) < 10 {
		t.Fatalf("only %d outputs captured", len(seen))
	}
	for _, s := range seen {
		for _, secret := range secretPieces(keyPEM, mac) {
			if strings.Contains(s, secret) {
				t.Errorf("a secret appears in: %.200s", s)
			}
		}
	}
}
