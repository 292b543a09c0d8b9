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
// packages in aptPackages. Without them every test skips with one line
// saying what is missing and how to get it, or fails with that line where
// caddytest.RequireTiersEnv requires every tier; -short skips it too.
package realdns

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	// the plugin the binary is built with: go test reruns these tests,
	// rather than report a cached pass, when its code changes
	_ "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// The environment a test runs with inside its namespaces.
const (
	// worldEnv names the test a child process runs inside its world.
	worldEnv = "PERSIST_REALDNS_WORLD"
	// caddyEnv holds the path of the Caddy binary the parent built.
	caddyEnv = "PERSIST_REALDNS_CADDY"
)

// Set by TestMain before the tests run: the Caddy binary, and whether
// this machine can run the tier.
var (
	caddyBin string
	tier     tierState
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv(probeEnv) != "" {
		return 0
	}
	if os.Getenv(worldEnv) != "" {
		caddyBin = os.Getenv(caddyEnv)
		return m.Run()
	}
	if caddytest.ShortMode() {
		return m.Run()
	}
	// a machine that cannot run the tier does not build Caddy for it
	if tier = checkTier(); tier.skip != "" || tier.trouble != nil {
		return m.Run()
	}
	// one build serves every test and every world: Caddy with the
	// plugin and an RFC 2136 DNS provider, a module of its own (caddy/)
	bin, err := caddytest.BuildModule("caddy", "caddy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
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
	if tier.trouble != nil {
		t.Fatalf("the real-DNS tier cannot run: %v", tier.trouble)
	}
	if tier.skip != "" {
		caddytest.SkipTier(t, tier.skip)
	}
	t.Parallel()
	runInNamespaces(t)
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
	unshare, err := lookTool("unshare")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = childEnviron(worldEnv+"="+t.Name(), caddyEnv+"="+caddyBin)
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

// childEnviron is the environment of a child test binary: this one's,
// with extra. A binary built with -race sleeps a second before it exits
// (GORACE's atexit_sleep_ms) so that reports of races at exit get out;
// a child's races during its test fail that test, and so the parent's,
// and the second would be paid by every test.
func childEnviron(extra ...string) []string {
	env := append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return append(env, extra...)
}
