package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// publishFromRecords runs `caddy persist records --format json` and
// publishes every record it prints, as the operator would.
func (e *env) publishFromRecords(t *testing.T, args ...string) []recordJSON {
	t.Helper()
	res := e.caddy(append([]string{"persist", "records", "--format", "json"}, args...)...)
	if res.code != 0 {
		t.Fatalf("caddy persist records: exit %d\n%s", res.code, res.stderr)
	}
	recs := decodeRecords(t, res.stdout)
	for _, r := range recs {
		if err := acmetest.SetTXT(r.RecordName, r.Value); err != nil {
			t.Fatal(err)
		}
		name := r.RecordName
		t.Cleanup(func() { acmetest.SetTXT(name) })
	}
	return recs
}

func TestCaddyfileFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.persistSite("*.example.test, example.test", "", "hello from {host}")
	recs := e.publishFromRecords(t, "--config", cfg)
	if len(recs) != 1 || !recs[0].Wildcard {
		t.Fatalf("records = %+v", recs)
	}
	e.start("--config", cfg)
	leaf, body := e.handshake(t, "anything.example.test", time.Minute)
	if !slices.Contains(leaf.DNSNames, "*.example.test") {
		t.Errorf("certificate covers %v, want *.example.test", leaf.DNSNames)
	}
	if body != "hello from anything.example.test" {
		t.Errorf("response %q", body)
	}
	if _, body := e.handshake(t, "example.test", time.Minute); body != "hello from example.test" {
		t.Errorf("apex response %q", body)
	}

	// the check agrees once the records are out
	if res := e.caddy("persist", "check", "--config", cfg); res.code != 0 || !strings.Contains(res.stdout, ": ok") {
		t.Errorf("persist check against the running setup: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
}

func TestJSONConfigFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := fmt.Sprintf(`{
	"admin": {"listen": %q},
	"storage": {"module": "file_system", "root": %q},
	"apps": {
		"http": {
			"http_port": %d,
			"https_port": %d,
			"servers": {
				"main": {
					"listen": [":%d"],
					"routes": [{
						"match": [{"host": ["*.json.test", "json.test"]}],
						"handle": [{"handler": "static_response", "body": "json says hi"}],
						"terminal": true
					}]
				}
			}
		},
		"tls": {
			"automation": {
				"policies": [{
					"subjects": ["*.json.test", "json.test"],
					"issuers": [{
						"module": "persist",
						"ca": %q,
						"email": "ops@example.test",
						"trusted_roots_pem_files": [%q],
						"resolvers": [%q],
						"propagation_timeout": "20s"
					}]
				}]
			}
		}
	}
}`, e.admin, e.storage, e.http, e.https, e.https, e.ca.URL, e.ca.TLSRootsFile, testDNSAddr)
	path := e.write("caddy.json", cfg)
	recs := e.publishFromRecords(t, "--config", path)
	if len(recs) != 1 || recs[0].Domain != "json.test" || !recs[0].Wildcard {
		t.Fatalf("records = %+v", recs)
	}
	e.start("--config", path)
	leaf, body := e.handshake(t, "deep.json.test", time.Minute)
	if !slices.Contains(leaf.DNSNames, "*.json.test") || body != "json says hi" {
		t.Errorf("names %v, body %q", leaf.DNSNames, body)
	}
}

func TestAdaptAndListModules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.write("Caddyfile", e.globals("")+`
example.test {
	tls {
		`+e.issuerBlock("")+`
	}
}
`)
	res := e.caddy("adapt", "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stdout, `"module":"persist"`) {
		t.Errorf("caddy adapt: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	res = e.caddy("list-modules")
	if res.code != 0 || !slices.Contains(strings.Fields(res.stdout), "tls.issuance.persist") || !slices.Contains(strings.Fields(res.stdout), "admin.api.persist") {
		t.Errorf("caddy list-modules lacks the persist modules:\n%s", res.stdout)
	}
}

func TestRestartReusesCertificateAndAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.persistSite("restart.test", "", "hi")
	e.publishFromRecords(t, "--config", cfg)
	first := e.start("--config", cfg)
	leaf1, _ := e.handshake(t, "restart.test", time.Minute)
	first.stop()
	orders := e.ca.Counts.Get(acmetest.KindNewOrder)
	accounts := e.ca.Counts.Get(acmetest.KindNewAccount + " 201")

	e.start("--config", cfg)
	leaf2, _ := e.handshake(t, "restart.test", time.Minute)
	if !leaf1.Equal(leaf2) {
		t.Error("the restarted server serves another certificate")
	}
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != orders {
		t.Errorf("the restart placed %d new orders", n-orders)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != accounts || accounts != 1 {
		t.Errorf("registrations: %d before the restart, %d after; want 1", accounts, n)
	}
}

// logEntry finds the first JSON log line whose message contains msg.
func logEntry(logs, msg string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var entry map[string]any
		if json.Unmarshal(sc.Bytes(), &entry) == nil {
			if m, _ := entry["msg"].(string); strings.Contains(m, msg) {
				return entry
			}
		}
	}
	return nil
}

func TestRecordPublishedWhileCaddyWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.persistSite("*.late.test", "propagation_timeout 90s", "late but here")
	srv := e.start("--config", cfg)
	srv.waitLog(t, "record missing", 30*time.Second)
	entry := logEntry(srv.logs.String(), "record missing")
	name, _ := entry["record_name"].(string)
	value, _ := entry["record_value"].(string)
	zone, _ := entry["zone_line"].(string)
	if name != "_validation-persist.late.test" || !strings.HasSuffix(value, "; policy=wildcard") || !strings.Contains(zone, value) {
		t.Fatalf("the log entry does not give the record: %v", entry)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders were placed before the record was published", n)
	}
	if err := acmetest.SetTXT(name, value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(name) })
	_, body := e.handshake(t, "now.late.test", time.Minute)
	if body != "late but here" {
		t.Errorf("body %q", body)
	}
	if n := e.ca.Counts.Get(acmetest.KindChallenge + " 200"); n != 1 {
		t.Errorf("challenge POSTs = %d, want exactly 1", n)
	}
}

func TestFallbackToInternalIssuerSaysWhy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.write("Caddyfile", e.globals("")+`
fallback.test {
	tls {
		`+e.issuerBlock("propagation_timeout 2s")+`
		issuer internal
	}
	respond "internal"
}
`)
	srv := e.start("--config", cfg)
	srv.waitLog(t, "could not get certificate from issuer", 30*time.Second)
	entry := logEntry(srv.logs.String(), "could not get certificate from issuer")
	if msg, _ := entry["error"].(string); !strings.Contains(msg, "_validation-persist.fallback.test: missing") || !strings.Contains(msg, "publish:") {
		t.Errorf("the log does not say why persist was skipped: %v", entry)
	}

	rootPEM := waitFile(t, filepath.Join(e.storage, "pki", "authorities", "local", "root.crt"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.https), &tls.Config{ServerName: "fallback.test", RootCAs: roots})
		if err == nil {
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			if !slices.Contains(leaf.DNSNames, "fallback.test") {
				t.Errorf("internal certificate names %v", leaf.DNSNames)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake with the internal issuer's certificate: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("persist placed %d orders without a record", n)
	}
}

func waitFile(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			if block, _ := pem.Decode(data); block != nil {
				return data
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestGlobalCertIssuer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	cfg := e.write("Caddyfile", e.globals("cert_issuer "+strings.TrimPrefix(e.issuerBlock(""), "issuer "))+`
global.test, *.global.test {
	respond "global issuer"
}
`)
	recs := e.publishFromRecords(t, "--config", cfg)
	if len(recs) != 1 || recs[0].Domain != "global.test" || !recs[0].Wildcard {
		t.Fatalf("records = %+v", recs)
	}
	e.start("--config", cfg)
	if _, body := e.handshake(t, "x.global.test", time.Minute); body != "global issuer" {
		t.Errorf("body %q", body)
	}
	if res := e.caddy("persist", "check", "--config", cfg); res.code != 0 {
		t.Errorf("check: exit %d\n%s", res.code, res.stdout)
	}
}
