// Package e2e runs the real Caddy binary, built from cmd/caddy, against
// Pebble and challtestsrv hosted in the test process.
package e2e

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	// the plugin the binary is built with: go test reruns these tests,
	// rather than report a cached pass, when its code changes
	_ "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

var (
	caddyBin    string
	testDNSAddr string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return caddytest.RunWithCaddy(m, "..", "./cmd/caddy", func(bin, dnsAddr string) {
		caddyBin, testDNSAddr = bin, dnsAddr
	})
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: runs the Caddy binary; skipped with -short")
	}
}

// env is one test's world: a CA, a folder for config and storage, and
// free ports for Caddy.
type env struct {
	t       *testing.T
	ca      *acmetest.CA
	dir     string
	storage string
	admin   string
	http    int
	https   int
	// otherCAs are CAs besides ca whose certificates handshakes trust.
	otherCAs []*acmetest.CA
	// extraEnv is added to the environment of every caddy command.
	extraEnv []string
}

func newEnv(t *testing.T, opts acmetest.Options) *env {
	t.Helper()
	skipShort(t)
	ca, err := acmetest.StartCA(opts, testDNSAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	dir := t.TempDir()
	return &env{
		t:       t,
		ca:      ca,
		dir:     dir,
		storage: filepath.Join(dir, "storage"),
		admin:   "127.0.0.1:" + strconv.Itoa(acmetest.FreePortForTest(t)),
		http:    acmetest.FreePortForTest(t),
		https:   acmetest.FreePortForTest(t),
	}
}

// globals is the global options block every test Caddyfile starts with.
func (e *env) globals(extra string) string {
	return fmt.Sprintf(`{
	admin %s
	http_port %d
	https_port %d
	storage file_system %s
	skip_install_trust
	%s
}
`, e.admin, e.http, e.https, e.storage, extra)
}

// issuerBlock is a persist issuer block pointing at the test CA and DNS,
// with the extra subdirectives added.
func (e *env) issuerBlock(extra string) string {
	return issuerBlockFor(e.ca, extra)
}

// issuerBlockFor is issuerBlock for any test CA.
func issuerBlockFor(ca *acmetest.CA, extra string) string {
	if !strings.Contains(extra, "propagation_timeout") {
		extra += "\n\t\tpropagation_timeout 20s"
	}
	return fmt.Sprintf(`issuer persist %s {
		email ops@example.test
		trusted_roots %s
		resolvers %s
		%s
	}`, ca.URL, ca.TLSRootsFile, testDNSAddr, extra)
}

// persistSite writes a Caddyfile with the test globals and one site, whose
// names use the persist issuer (with extra subdirectives) and respond.
func (e *env) persistSite(sites, issuerExtra, respond string) string {
	return e.write("Caddyfile", e.globals("")+sites+` {
	tls {
		`+e.issuerBlock(issuerExtra)+`
	}
	respond "`+respond+`"
}
`)
}

func (e *env) write(name, content string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// result is a finished command.
type result struct {
	stdout, stderr string
	code           int
}

// caddy runs the binary to completion.
func (e *env) caddy(args ...string) result {
	e.t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	res := caddytest.Run(e.t, cmd)
	return result{stdout: res.Stdout, stderr: res.Stderr, code: res.Code}
}

func (e *env) environ() []string {
	return append(append(os.Environ(),
		"HOME="+e.dir,
		"XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(e.dir, "data"),
	), e.extraEnv...)
}

// server is a running `caddy run`.
type server struct {
	*caddytest.Process
	logs *caddytest.Buffer
}

// start runs `caddy run` with args and waits for its admin endpoint.
func (e *env) start(args ...string) *server {
	e.t.Helper()
	cmd := exec.Command(caddyBin, append([]string{"run"}, args...)...)
	cmd.Dir = e.dir
	cmd.Env = e.environ()
	p := caddytest.StartCaddy(e.t, cmd, e.admin)
	return &server{Process: p, logs: p.Logs}
}

// kill ends the server at once, as a crash or an OOM kill would.
func (s *server) kill() { s.Kill() }

func (s *server) stop() { s.Stop() }

// waitLog waits until the server's log contains substr.
func (s *server) waitLog(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	s.WaitLog(t, 0, timeout, substr)
}

// handshake connects to the HTTPS port with SNI, verifies the chain
// against the roots of the env's CAs, and returns the leaf and the
// response body.
func (e *env) handshake(t *testing.T, sni string, timeout time.Duration) (*x509.Certificate, string) {
	t.Helper()
	roots := x509.NewCertPool()
	for _, ca := range append([]*acmetest.CA{e.ca}, e.otherCAs...) {
		roots.AddCert(ca.Root())
	}
	return caddytest.Handshake(t, e.https, sni, roots, timeout)
}
