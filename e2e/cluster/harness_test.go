// Package cluster runs three Caddy instances, built with the test-only
// etcd storage, on one Caddyfile against a three-member etcd cluster
// (etcd's server built from its Go module, see internal/etcdtest), with
// Pebble and challtestsrv hosted in the test process. The tests kill etcd
// members and Caddy instances while certificates are obtained.
package cluster

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"

	// the plugin the binary is built with: go test reruns these tests,
	// rather than report a cached pass, when its code changes
	_ "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
	"github.com/dnspersist/caddy-persist/internal/etcdstorage"
	"github.com/dnspersist/caddy-persist/internal/etcdtest"
)

var (
	caddyBin    string
	testDNSAddr string
)

// storagePrefix is the etcd prefix of the instances' storage.
const storagePrefix = "cluster"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return caddytest.RunWithCaddy(m, "../..", "./e2e/cluster/caddy", func(bin, dnsAddr string) {
		caddyBin, testDNSAddr = bin, dnsAddr
	})
}

// cluster is one test's world: an etcd cluster, a CA, and Caddy
// instances sharing one Caddyfile and the etcd storage.
type cluster struct {
	t     testing.TB
	etcd  *etcdtest.Cluster
	ca    *acmetest.CA
	dir   string
	nodes []*node
}

// node is one Caddy instance: its ports, its own data folders, and its
// process once started.
type node struct {
	name  string
	admin string
	http  int
	https int
	dir   string
	proc  *caddytest.Process
}

func newCluster(t testing.TB, instances int, opts acmetest.Options) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster tier: runs etcd and the Caddy binary; skipped with -short")
	}
	etcd := etcdtest.Start(t, 3)
	ca, err := acmetest.StartCA(opts, testDNSAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	c := &cluster{t: t, etcd: etcd, ca: ca, dir: t.TempDir()}
	for i := range instances {
		n := &node{
			name:  "caddy" + strconv.Itoa(i),
			admin: "127.0.0.1:" + strconv.Itoa(acmetest.FreePortForTest(t)),
			http:  acmetest.FreePortForTest(t),
			https: acmetest.FreePortForTest(t),
			dir:   filepath.Join(c.dir, "caddy"+strconv.Itoa(i)),
		}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	return c
}

// caddyfile writes the one Caddyfile of every instance: the ports come
// from each instance's environment, the storage is the etcd cluster with
// the given lock_ttl, and sites follow the global options.
func (c *cluster) caddyfile(name, lockTTL, globals, sites string) string {
	c.t.Helper()
	content := fmt.Sprintf(`{
	admin {$PERSIST_ADMIN}
	http_port {$PERSIST_HTTP_PORT}
	https_port {$PERSIST_HTTPS_PORT}
	storage etcd_test {
		endpoints %s
		prefix %s
		lock_ttl %s
		timeout 3s
	}
	skip_install_trust
	%s
}
%s
`, strings.Join(c.etcd.Endpoints(), " "), storagePrefix, lockTTL, globals, sites)
	path := filepath.Join(c.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// issuerBlock is a persist issuer at the test CA asking the test DNS.
func (c *cluster) issuerBlock(email string) string {
	return fmt.Sprintf(`issuer persist %s {
			email %s
			trusted_roots %s
			resolvers %s
			propagation_timeout 20s
		}`, c.ca.URL, email, c.ca.TLSRootsFile, testDNSAddr)
}

// site is a site block for names with the persist issuer.
func (c *cluster) site(names string) string {
	return c.siteWith(names, "ops@example.test", "")
}

// onDemandSite is the site of every other name, with on-demand TLS
// (global on_demand_tls names the permission).
func (c *cluster) onDemandSite() string {
	return c.siteWith("https://", "ops@example.test", "on_demand")
}

// siteWith is a site block for names with the persist issuer for email,
// and more subdirectives of tls.
func (c *cluster) siteWith(names, email, tls string) string {
	return names + ` {
	tls {
		` + tls + `
		` + c.issuerBlock(email) + `
	}
	respond "{host} from {env.PERSIST_NODE}"
}
`
}

// environ is a node's environment: its ports and its own home.
func (c *cluster) environ(n *node) []string {
	return append(os.Environ(),
		"HOME="+n.dir,
		"XDG_CONFIG_HOME="+filepath.Join(n.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(n.dir, "data"),
		"PERSIST_ADMIN="+n.admin,
		"PERSIST_HTTP_PORT="+strconv.Itoa(n.http),
		"PERSIST_HTTPS_PORT="+strconv.Itoa(n.https),
		"PERSIST_NODE="+n.name,
	)
}

// caddy runs a caddy command as node n would, to completion.
func (c *cluster) caddy(n *node, args ...string) caddytest.Result {
	c.t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = n.dir
	cmd.Env = c.environ(n)
	return caddytest.Run(c.t, cmd)
}

// start runs `caddy run --config cfg` on node n, and returns once the
// config runs: its ports are bound. A Caddy that cannot start (a port
// taken meanwhile) fails the test then, with its log, rather than the
// handshakes later.
func (c *cluster) start(n *node, cfg string) {
	c.t.Helper()
	cmd := exec.Command(caddyBin, "run", "--config", cfg)
	cmd.Dir = n.dir
	cmd.Env = c.environ(n)
	n.proc = caddytest.StartCaddy(c.t, cmd, n.admin)
	n.proc.WaitLog(c.t, 0, time.Minute, "serving initial configuration")
}

// startAll starts every node on cfg at once.
func (c *cluster) startAll(cfg string) {
	c.t.Helper()
	for _, n := range c.nodes {
		c.start(n, cfg)
	}
}

// record is one line of `caddy persist records --format json`.
type record struct {
	Domain     string `json:"domain"`
	RecordName string `json:"record_name"`
	Value      string `json:"value"`
	AccountURL string `json:"account_url"`
}

// publishRecords runs `caddy persist records` as node n and publishes what
// it prints, as the operator would.
func (c *cluster) publishRecords(n *node, args ...string) []record {
	c.t.Helper()
	res := c.caddy(n, append([]string{"persist", "records", "--format", "json"}, args...)...)
	if res.Code != 0 {
		c.t.Fatalf("caddy persist records: exit %d\n%s", res.Code, res.Stderr)
	}
	recs := decodeRecords(c.t, res.Stdout)
	publish(c.t, recs)
	return recs
}

// decodeRecords reads the JSON array of records the command and the admin
// API print.
func decodeRecords(t testing.TB, out string) []record {
	t.Helper()
	var recs []record
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("not a JSON array of records: %v\n%s", err, out)
	}
	return recs
}

// publish sets each record in the test DNS, until the test ends.
func publish(t testing.TB, recs []record) {
	t.Helper()
	for _, r := range recs {
		if err := acmetest.SetTXT(r.RecordName, r.Value); err != nil {
			t.Fatal(err)
		}
		name := r.RecordName
		t.Cleanup(func() { acmetest.SetTXT(name) })
	}
}

// roots are the roots the CA issues under.
func (c *cluster) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Root())
	return pool
}

// handshake waits for a verified handshake with n for sni.
func (c *cluster) handshake(n *node, sni string, timeout time.Duration) *x509.Certificate {
	c.t.Helper()
	leaf, err := c.tryHandshake(n, sni, timeout)
	if err != nil {
		c.t.Fatal(err)
	}
	return leaf
}

// tryHandshake is handshake returning the error, for other goroutines
// than the test's.
func (c *cluster) tryHandshake(n *node, sni string, timeout time.Duration) (*x509.Certificate, error) {
	leaf, body, err := caddytest.HandshakeWithin(n.https, sni, c.roots(), timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	if want := sni + " from " + n.name; body != want {
		return nil, fmt.Errorf("%s answered %q, want %q", n.name, body, want)
	}
	return leaf, nil
}

// storedCerts returns, by storage key, the certificates in the etcd
// storage, read from the cluster directly.
func (c *cluster) storedCerts() map[string][]byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.etcd.Client().Get(ctx, storagePrefix+"/certificates/", clientv3.WithPrefix())
	if err != nil {
		c.t.Fatalf("reading certificates from etcd: %v", err)
	}
	certs := make(map[string][]byte)
	for _, kv := range resp.Kvs {
		if !strings.HasSuffix(string(kv.Key), ".crt") {
			continue
		}
		value, _, err := etcdstorage.DecodeValue(kv.Value)
		if err != nil {
			c.t.Fatalf("%s: %v", kv.Key, err)
		}
		certs[strings.TrimPrefix(string(kv.Key), storagePrefix+"/")] = value
	}
	return certs
}

// checkStored fails the test unless storage holds a certificate for each
// name, with its key and metadata.
func (c *cluster) checkStored(names ...string) {
	c.t.Helper()
	certs := c.storedCerts()
	for _, name := range names {
		safe := certmagic.StorageKeys.Safe(name)
		found := false
		for key := range certs {
			if strings.HasSuffix(key, "/"+safe+"/"+safe+".crt") {
				found = true
			}
		}
		if !found {
			c.t.Errorf("no certificate for %s in storage (have %d certificates)", name, len(certs))
		}
	}
}

// checkOrderedOnce fails the test unless each name was ordered exactly
// once at the CA.
func (c *cluster) checkOrderedOnce(names ...string) {
	c.t.Helper()
	ordered := c.ca.Counts.Ordered()
	for _, name := range names {
		if ordered[name] != 1 {
			c.t.Errorf("%s was ordered %d times, want 1", name, ordered[name])
		}
	}
}

// checkOneAccount fails the test unless exactly one account was
// registered at the CA.
func (c *cluster) checkOneAccount() {
	c.t.Helper()
	if n := c.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		c.t.Errorf("%d accounts registered, want 1", n)
	}
}

// adminGet fetches path from node n's admin endpoint.
// register creates the ACME account through the admin API of n, as an
// operator does once before the first tenant: reading the records does
// not.
func register(t testing.TB, n *node) {
	t.Helper()
	resp, err := http.Post("http://"+n.admin+"/persist/account/register", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST /persist/account/register on %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /persist/account/register on %s: %d %s", n.name, resp.StatusCode, body)
	}
}

func adminGet(t testing.TB, n *node, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
