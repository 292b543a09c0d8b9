package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// serviceUser creates a system user with its own home, as Debian's
// package creates `caddy`, and removes it when the test ends. It needs
// root; elsewhere the test is skipped, saying why.
func serviceUser(t *testing.T) (*user.User, string) {
	t.Helper()
	if os.Getuid() != 0 {
		caddytest.SkipTier(t, "service-user test skipped: it creates a system user with useradd to run Caddy as; run the tests as root")
	}
	home := filepath.Join(t.TempDir(), "home")
	name := fmt.Sprintf("persist%d", time.Now().UnixNano()%1_000_000)
	out, err := exec.Command("useradd", "--system", "--home-dir", home, "--create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", "--remove", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u, home
}

// openToAll lets another user reach path: every folder above it that the
// test created is made traversable.
func openToAll(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		for dir := p; dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCommandsAskTheServerRunningAsItsOwnUser(t *testing.T) {
	t.Parallel()
	u, home := serviceUser(t)
	e := newEnv(t, acmetest.Options{})
	// no storage line: the server's default storage is under its home
	cfg := e.write("Caddyfile", fmt.Sprintf(`{
	admin %s
	http_port %d
	https_port %d
	skip_install_trust
}

svc.test {
	tls {
		%s
	}
	respond "served as a service user"
}
`, e.admin, e.http, e.https, e.issuerBlock("")))
	openToAll(t, cfg, caddyBin, e.ca.TLSRootsFile)

	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(caddyBin, "run", "--config", cfg)
	cmd.Dir = home
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	srv := caddytest.StartCaddy(t, cmd, e.admin)

	// root runs the command with the same Caddyfile: the server answers,
	// with its account, and nothing registers in root's storage
	res := e.caddy("persist", "records", "--config", cfg, "--format", "json")
	recs := decodeRecords(t, res.stdout)
	if res.code != 0 || len(recs) != 1 || strings.Contains(res.stderr, "Registered") || strings.Contains(res.stderr, "loaded the config here") {
		t.Fatalf("records (exit %d) = %+v\n%s", res.code, recs, res.stderr)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1: the server's", n)
	}
	serverAccounts, _ := filepath.Glob(filepath.Join(home, ".local", "share", "caddy", "acme", "*", "users", "*", "*.json"))
	if len(serverAccounts) != 1 {
		t.Fatalf("accounts in the service user's storage: %v", serverAccounts)
	}
	var stored struct {
		Location string `json:"location"`
	}
	if data, err := os.ReadFile(serverAccounts[0]); err != nil || json.Unmarshal(data, &stored) != nil || stored.Location != recs[0].AccountURL {
		t.Fatalf("the records name %s, the server's account is %s (%v)", recs[0].AccountURL, stored.Location, err)
	}
	if err := acmetest.SetTXT(recs[0].RecordName, recs[0].Value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(recs[0].RecordName) })
	if _, body := e.handshake(t, "svc.test", time.Minute); body != "served as a service user" {
		t.Errorf("response %q", body)
	}

	// check through the server says what /persist/check says
	check := e.caddy("persist", "check", "--config", cfg, "--format", "json")
	resp, err := http.Get("http://" + e.admin + "/persist/check")
	if err != nil {
		t.Fatal(err)
	}
	api, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var fromCommand, fromAPI []recordJSON
	json.Unmarshal([]byte(check.stdout), &fromCommand)
	json.Unmarshal(api, &fromAPI)
	if check.code != 0 || len(fromCommand) != 1 || len(fromAPI) != 1 || fromCommand[0].Status != fromAPI[0].Status || fromCommand[0].Value != fromAPI[0].Value || fromCommand[0].Status != "ok" {
		t.Errorf("check (exit %d) %+v, /persist/check %+v", check.code, fromCommand, fromAPI)
	}

	// with the server stopped the command loads the config itself, says
	// so, and names the storage it used: root's, not the server's. Where
	// the Debian package's data directory belongs to the service user, it
	// warns that the server's account is there
	srv.Stop()
	debianHome := "/var/lib/caddy"
	warnExpected := false
	if _, err := os.Stat(debianHome); os.IsNotExist(err) {
		if err := os.Mkdir(debianHome, 0o750); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(debianHome) })
		if err := os.Chown(debianHome, uid, gid); err != nil {
			t.Fatal(err)
		}
		warnExpected = true
	}
	local := e.caddy("persist", "records", "--config", cfg)
	if warnExpected && !strings.Contains(local.stderr, "warning: the config sets no storage, and /var/lib/caddy belongs to another user") {
		t.Errorf("local mode did not warn about the service user's storage:\n%s", local.stderr)
	}
	if !strings.Contains(local.stderr, "no Caddy with this plugin answers at "+e.admin) || !strings.Contains(local.stderr, "loaded the config here instead, with file storage at "+filepath.Join(e.dir, "data", "caddy")) {
		t.Errorf("local mode did not say so:\n%s", local.stderr)
	}
	if strings.Contains(local.stdout, recs[0].AccountURL) {
		t.Errorf("root's storage printed the server's account:\n%s", local.stdout)
	}

	// --address insists on a server: none answering is an error
	if forced := e.caddy("persist", "records", "--config", cfg, "--address", e.admin); forced.code == 0 {
		t.Errorf("--address with no server answering succeeded:\n%s", forced.stdout)
	}
}
