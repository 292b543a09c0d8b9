package persist

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/fileowner"
)

func TestStorageOwnerWarningNamesTheServiceUsersStorage(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("gives a folder to another user; needs root")
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	warning := storageOwnerWarning([]string{"/nonexistent/caddy", dir}, 0)
	if !strings.Contains(warning, dir+" belongs to another user (uid 4242)") || !strings.Contains(warning, dir+"/.local/share/caddy") {
		t.Errorf("warning = %q", warning)
	}
	if w := storageOwnerWarning([]string{dir}, 4242); w != "" {
		t.Errorf("the owner itself is warned: %q", w)
	}
}

// TestAccountChangesNeedLocalWhenNoCaddyAnswers: when no Caddy answers,
// a change to the account is not made in the command's own process
// unless --local asks for it, and then only by the storage's owner.
func TestAccountChangesNeedLocalWhenNoCaddyAnswers(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	storage := t.TempDir()
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	body := strings.Replace(persistSiteCaddyfile(storage, ca, "local.change.test"), "admin off", "admin 127.0.0.1:"+strconv.Itoa(acmetest.FreePortForTest(t)), 1)
	if err := os.WriteFile(caddyfile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(local bool) (string, error) {
		cmd := rolloverCommand()
		cmd.Flags().Set("config", caddyfile)
		if local {
			cmd.Flags().Set("local", "true")
		}
		var out, errOut bytes.Buffer
		caddyGlobals.Lock()
		defer caddyGlobals.Unlock()
		_, err := runAccountCommand(caddycmd.Flags{FlagSet: cmd.Flags()}, "rollover", &accountScope{}, &out, &errOut)
		return out.String(), err
	}
	ti := newTestIssuer(t, ca, storage, nil)
	url := ti.accountURL(t)
	keyBefore := ti.storedKeyPEM(t)

	if _, err := run(false); err == nil || !strings.Contains(err.Error(), "--local") {
		t.Errorf("rollover with no Caddy answering: %v, want a refusal naming --local", err)
	}
	if n := ca.Counts.Get(acmetest.KindKeyChange); n != 0 || !bytes.Equal(ti.storedKeyPEM(t), keyBefore) {
		t.Fatalf("the account changed without --local (%d key changes)", n)
	}
	out, err := run(true)
	if err != nil || !strings.Contains(out, "rolled the ACME account "+url) {
		t.Fatalf("rollover --local: %q, %v", out, err)
	}
	if bytes.Equal(ti.storedKeyPEM(t), keyBefore) {
		t.Error("rollover --local did not change the key")
	}
}

// TestLocalAccountChangesRefuseAnotherUsersStorage: a change made here by
// another user than the storage's owner (root, say, for a caddy user's
// storage) would leave files the owner cannot read; it is refused, naming
// the owner.
func TestLocalAccountChangesRefuseAnotherUsersStorage(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, startCA(t, acmetest.Options{}), t.TempDir(), nil)
	sets := []servedSet{{Issuer: ti.Issuer}}
	owner, ok := fileowner.Of(ti.storage.Path)
	if !ok {
		t.Fatal("the storage folder has no owner this system tells")
	}
	if err := ownStorage(sets, owner); err != nil {
		t.Errorf("the owner itself is refused: %v", err)
	}
	err := ownStorage(sets, owner+1)
	if err == nil || !strings.Contains(err.Error(), "belongs to "+fileowner.Name(owner)) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("another user: %v, want a refusal naming the owner", err)
	}
}

// TestRecordsRegistersHereOnlyInThisUsersStorage: `caddy persist
// records` loading the config here registers the account when there is
// none, but not into a storage folder another user owns, as root would
// into the caddy user's.
func TestRecordsRegistersHereOnlyInThisUsersStorage(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("gives a folder to another user; needs root")
	}
	ca := startCA(t, acmetest.Options{})
	storage := t.TempDir()
	if err := os.Chown(storage, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(persistSiteCaddyfile(storage, ca, "owner.records.test")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := persistSubcommand("records", "", "", cmdPersistRecords)
	cmd.Flags().Set("config", caddyfile)
	var out, errOut bytes.Buffer
	caddyGlobals.Lock()
	_, err := runPersistCommand(caddycmd.Flags{FlagSet: cmd.Flags()}, false, &out, &errOut)
	caddyGlobals.Unlock()
	if err == nil || !strings.Contains(err.Error(), "belongs to "+fileowner.Name(4242)) {
		t.Errorf("records into another user's storage: %v\n%s", err, errOut.String())
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Errorf("%d newAccount requests", n)
	}
}
