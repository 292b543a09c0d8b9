package realdns

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	persist "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// A world has its own network namespace, so Caddy takes the usual ports.
const (
	adminAddr = "127.0.0.1:2019"
	httpsAddr = "127.0.0.1:443"
)

// caddyfile writes a Caddyfile serving sites with the persist issuer in
// its default configuration: no resolvers, so the issuer asks the zones'
// nameservers, found through /etc/resolv.conf.
func (w *world) caddyfile(sites string) string {
	w.t.Helper()
	path := filepath.Join(w.dir, "Caddyfile")
	writeFile(w.t, path, fmt.Sprintf(`{
	admin %s
	storage file_system %s
	skip_install_trust
}

%s {
	tls {
		issuer persist %s {
			email ops@example.test
			trusted_roots %s
		}
	}
	respond "hello from {host}"
}
`, adminAddr, filepath.Join(w.dir, "storage"), sites, w.ca.URL, w.ca.TLSRootsFile))
	return path
}

func (w *world) caddyEnviron() []string {
	return append(os.Environ(),
		"HOME="+w.dir,
		"XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(w.dir, "data"),
	)
}

// caddy runs the binary to completion.
func (w *world) caddy(args ...string) caddytest.Result {
	w.t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir, cmd.Env = w.dir, w.caddyEnviron()
	return caddytest.Run(w.t, cmd)
}

// records runs `caddy persist records` and returns the one record the
// config needs.
func (w *world) records(cfg string) persist.RecordReport {
	w.t.Helper()
	return w.recordsN(cfg, 1)[0]
}

// recordsN runs `caddy persist records` and returns the n records the
// config needs.
func (w *world) recordsN(cfg string, n int) []persist.RecordReport {
	w.t.Helper()
	res := w.caddy("persist", "records", "--config", cfg, "--format", "json")
	var recs []persist.RecordReport
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &recs) != nil || len(recs) != n {
		w.t.Fatalf("caddy persist records: exit %d, want %d records\n%s\n%s", res.Code, n, res.Stdout, res.Stderr)
	}
	return recs
}

// startCaddy runs `caddy run` with the config and waits for its admin
// endpoint.
func (w *world) startCaddy(cfg string) *caddytest.Process {
	w.t.Helper()
	cmd := exec.Command(caddyBin, "run", "--config", cfg)
	cmd.Dir, cmd.Env = w.dir, w.caddyEnviron()
	return caddytest.StartCaddy(w.t, cmd, adminAddr)
}

// certificate waits for a verified TLS handshake with sni and returns the
// certificate Caddy served.
func (w *world) certificate(sni string, timeout time.Duration) *x509.Certificate {
	w.t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(w.ca.Root())
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	var lastErr error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		conn, err := tls.DialWithDialer(dialer, "tcp", httpsAddr, &tls.Config{ServerName: sni, RootCAs: roots})
		if err == nil {
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			return leaf
		}
		lastErr = err
		time.Sleep(250 * time.Millisecond)
	}
	w.t.Fatalf("no verified TLS handshake with SNI %s within %s: %v", sni, timeout, lastErr)
	return nil
}
