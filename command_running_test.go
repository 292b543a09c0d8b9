package persist

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/account"
)

// TestFileIssuersFindTheirRunningAccount: a config file's persist issuer
// is matched with the running issuer of the same account: the CA (a
// trailing slash aside), the email (whatever its case) and the
// account_key, by its thumbprint, which names the key without sending
// it. A pinned issuer does not match an unpinned one, nor another key.
func TestFileIssuersFindTheirRunningAccount(t *testing.T) {
	t.Parallel()
	keyPEM := func() string {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := certmagic.PEMEncodePrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem)
	}
	pinned, other := keyPEM(), keyPEM()
	const ca = "https://ca.test/dir"
	running := []issuerReport{
		{issuerIdentity: issuerIdentity{CA: ca + "/", Email: "Ops@Example.test"}},
		{issuerIdentity: issuerIdentity{CA: ca, Email: "pinned@example.test", AccountKey: keyThumbprint(pinned)}},
	}
	if running[1].AccountKey == "" || strings.Contains(running[1].AccountKey, "PRIVATE") {
		t.Fatalf("the thumbprint of the key is %q", running[1].AccountKey)
	}
	for _, c := range []struct {
		file  *Issuer
		match int
	}{
		{&Issuer{CA: ca, Email: "ops@example.test"}, 0},
		{&Issuer{CA: ca, Email: "pinned@example.test", AccountKey: pinned}, 1},
		{&Issuer{CA: ca, Email: "pinned@example.test"}, -1},
		{&Issuer{CA: ca, Email: "pinned@example.test", AccountKey: other}, -1},
		{&Issuer{CA: ca, Email: "ops@example.test", AccountKey: pinned}, -1},
		{&Issuer{CA: "https://other-ca.test/dir", Email: "ops@example.test"}, -1},
	} {
		r, err := runningIssuerOf(c.file, running)
		var none *noSuchAccountError
		switch {
		case c.match < 0 && !errors.As(err, &none):
			t.Errorf("%s %s pinned=%v matched %+v, %v; want no such account", c.file.CA, c.file.Email, c.file.AccountKey != "", r, err)
		case c.match >= 0 && (err != nil || r.Email != running[c.match].Email):
			t.Errorf("%s %s pinned=%v matched %+v, %v; want %+v", c.file.CA, c.file.Email, c.file.AccountKey != "", r, err, running[c.match])
		}
	}
}

// TestPolicyStorageIsComparedWithTheRunningIssuers: an automation
// policy's own storage keeps the account of its issuers, so a file that
// gives a persist issuer another one, or takes it away, would use
// another account: refused. File storage compares by its folder; other
// modules cannot be compared, and are refused.
func TestPolicyStorageIsComparedWithTheRunningIssuers(t *testing.T) {
	t.Parallel()
	iss := &Issuer{CA: "https://ca.test/dir", Email: "ops@example.test"}
	report := func(own bool, storage string) []issuerReport {
		return []issuerReport{{issuerIdentity: identityOf(iss), OwnStorage: own, Storage: storage}}
	}
	fileStorage := func(root string) json.RawMessage {
		return json.RawMessage(`{"module":"file_system","root":"` + root + `"}`)
	}
	described := account.DescribeStorage(&certmagic.FileStorage{Path: "/srv/a"})
	for _, c := range []struct {
		name    string
		policy  json.RawMessage
		running []issuerReport
		ok      bool
	}{
		{"neither has its own", nil, report(false, "file storage at /var/lib/caddy"), true},
		{"the same folder", fileStorage("/srv/a"), report(true, described), true},
		{"another folder", fileStorage("/srv/b"), report(true, described), false},
		{"the file adds one", fileStorage("/srv/a"), report(false, described), false},
		{"the file drops it", nil, report(true, described), false},
		{"a module that cannot be compared", json.RawMessage(`{"module":"redis"}`), report(true, "*redis.Storage"), false},
	} {
		err := samePolicyStorage([]fileIssuer{{servedSet: servedSet{Issuer: iss}, policyStorage: c.policy}}, c.running)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// TestImportSendsKeysOnlyToThisMachineAndForItsCAs: the import request
// carries account keys, so the command sends it only to an admin
// endpoint on this machine (where Caddy takes account changes at all),
// and only with the accounts whose folders name a CA of the running
// persist issuers.
func TestImportSendsKeysOnlyToThisMachineAndForItsCAs(t *testing.T) {
	t.Parallel()
	const pebble = "https://127.0.0.1:14000/dir"
	running := []issuerReport{{issuerIdentity: issuerIdentity{CA: pebble, Email: "ops@example.test"}}}
	found := func() []account.Foreign {
		return []account.Foreign{
			{Client: "acme.sh", Dir: "/x/ca/127.0.0.1/dir", Server: "127.0.0.1/dir", Key: "a key"},
			{Client: "acme.sh", Dir: "/x/ca/acme-v02.api.letsencrypt.org/directory", Server: "acme-v02.api.letsencrypt.org/directory", Key: "another key"},
		}
	}
	for _, addr := range []string{"192.0.2.10:2019", "0.0.0.0:2019", "admin.example:2019"} {
		req := &importRequest{Accounts: found()}
		if err := req.beforeSending(addr, running); err == nil || !strings.Contains(err.Error(), "nothing was sent") {
			t.Errorf("%s: %v, want a refusal", addr, err)
		}
	}
	for _, addr := range []string{"localhost:2019", "127.0.0.1:2019", "[::1]:2019", "unix//run/caddy-admin.sock"} {
		req := &importRequest{Accounts: found()}
		if err := req.beforeSending(addr, running); err != nil || len(req.Accounts) != 1 || req.Accounts[0].Key != "a key" {
			t.Errorf("%s: %+v, %v; want the Pebble account alone", addr, req.Accounts, err)
		}
	}
	req := &importRequest{Accounts: found()[1:]}
	if err := req.beforeSending("localhost:2019", running); err == nil || !strings.Contains(err.Error(), "nothing was sent") {
		t.Errorf("accounts for other CAs only: %v, want a refusal", err)
	}
}

// TestRefusalsOfTheRunningCaddyReadAsItsMessage: an error the running
// Caddy answers with comes out as its message, with its status kept for
// the command to act on, not as the escaped JSON of its answer.
func TestRefusalsOfTheRunningCaddyReadAsItsMessage(t *testing.T) {
	t.Parallel()
	const message = `no ACME account yet, so no record can name it; run "caddy persist records"`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" {
			t.Error("the request carries no Origin, which Caddy's admin endpoint checks")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]string{"error": message})
	}))
	defer srv.Close()
	var reports []RecordReport
	err := adminRequest(strings.TrimPrefix(srv.URL, "http://"), http.MethodGet, "/persist/records", nil, &reports)
	var refused *adminError
	if !errors.As(err, &refused) || refused.status != http.StatusConflict {
		t.Fatalf("error = %v, want the 409", err)
	}
	if !strings.HasPrefix(err.Error(), message) || strings.ContainsAny(err.Error(), `{\`) {
		t.Errorf("error = %q, want the message as it was written", err.Error())
	}
}
