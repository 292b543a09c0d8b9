// Package realdns runs the real Caddy binary with the persist issuer in its
// default configuration (no resolvers: the issuer finds a zone's
// authoritative nameservers through the system resolver and asks them)
// against real DNS software: NSD serving a signed private root, BIND 9
// primaries taking TSIG updates, an NSD secondary that lags, and Unbound as
// the validating system resolver, which Pebble's VA also asks.
//
// Each test gets a world of its own in new network, mount and pid
// namespaces: the test binary runs the test again inside `unshare`, where
// every daemon listens on its own loopback address on port 53 and
// /etc/resolv.conf names Unbound. The tier needs root and the Debian
// packages in aptInstall. Missing packages fail it; only -short or a
// refusal to create namespaces skips it.
package realdns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// The environment a test runs with inside its namespaces.
const (
	// worldEnv names the test a child process runs inside its world.
	worldEnv = "PERSIST_REALDNS_WORLD"
	// caddyEnv holds the path of the Caddy binary the parent built.
	caddyEnv = "PERSIST_REALDNS_CADDY"
)

// aptInstall installs what the tier runs.
const aptInstall = "DEBIAN_FRONTEND=noninteractive apt-get install -y bind9 bind9-utils bind9-dnsutils nsd unbound iproute2"

// tools are the programs a world runs, all from the packages in aptInstall.
var tools = []string{"named", "nsupdate", "dnssec-keygen", "dnssec-signzone", "nsd", "nsd-control", "unbound", "ip"}

var caddyBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv(worldEnv) != "" {
		caddyBin = os.Getenv(caddyEnv)
		return m.Run()
	}
	if caddytest.ShortMode() {
		return m.Run()
	}
	// one build serves every test and every world
	bin, remove, err := caddytest.Build("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer remove()
	caddyBin = bin
	return m.Run()
}

// inWorld runs body inside a world serving zones. Called by the test
// binary as started by `go test`, it runs the same test again in new
// namespaces, streams that run's output into this test's log, and fails
// when it fails; called inside the namespaces, it builds the world and
// runs body there.
func inWorld(t *testing.T, zones []zone, body func(w *world)) {
	if os.Getenv(worldEnv) == t.Name() {
		body(newWorld(t, zones))
		return
	}
	if testing.Short() {
		t.Skip("real-DNS test: runs DNS daemons and the Caddy binary; skipped with -short")
	}
	t.Parallel()
	requireNamespaces(t)
	requireTools(t)
	runInNamespaces(t)
}

var (
	namespacesOnce sync.Once
	namespacesErr  error
	namespacesOut  string
)

// requireNamespaces skips the test where this machine refuses to create
// the namespaces, as it does for a user without root, and fails it for any
// other trouble with unshare.
func requireNamespaces(t *testing.T) {
	t.Helper()
	namespacesOnce.Do(func() {
		out, err := exec.Command("unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "true").CombinedOutput()
		namespacesErr, namespacesOut = err, strings.TrimSpace(string(out))
	})
	var exitErr *exec.ExitError
	switch {
	case namespacesErr == nil:
	case errors.As(namespacesErr, &exitErr) && strings.Contains(namespacesOut, "Operation not permitted"):
		t.Skipf("real-DNS tier skipped: this machine refuses new namespaces (run as root): %s", namespacesOut)
	default:
		t.Fatalf("unshare --net --mount --pid: %v: %s", namespacesErr, namespacesOut)
	}
}

// requireTools fails the test, with the command that mends it, when a DNS
// program is not installed.
func requireTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, name := range tools {
		if _, err := lookTool(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the real-DNS tier needs %s; install them as root with:\n\t%s", strings.Join(missing, ", "), aptInstall)
	}
}

// lookTool finds a program on PATH or in /usr/sbin, where the daemons
// live but which a non-login PATH may lack.
func lookTool(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	return exec.LookPath(filepath.Join("/usr/sbin", name))
}

// runInNamespaces runs this test alone in a child test binary that is pid
// 1 of a new pid namespace, so when it ends, or unshare is killed, the
// kernel ends every daemon it started.
func runInNamespaces(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	args := []string{"--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
		os.Args[0], "-test.run=^" + t.Name() + "$", "-test.v"}
	if deadline, ok := t.Deadline(); ok {
		// the child times out first, so its stacks reach this log
		args = append(args, "-test.timeout="+time.Until(deadline.Add(-5*time.Second)).Round(time.Second).String())
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(), worldEnv+"="+t.Name(), caddyEnv+"="+caddyBin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for lines.Scan() {
		t.Log(lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the test failed in its namespaces (%v); its output is above", err)
	}
}
