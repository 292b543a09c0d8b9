package persist

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/letsencrypt/challtestsrv"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// runningCaddy is held by the test whose config Caddy runs.
var runningCaddy sync.Mutex

// onDemandPlatform runs Caddy in this process as a platform serving
// customer domains with on-demand TLS, `permission persist` and a persist
// issuer.
type onDemandPlatform struct {
	ca        *acmetest.CA
	admin     string
	httpsPort int
	roots     *x509.CertPool
}

func startOnDemandPlatform(t *testing.T) *onDemandPlatform {
	t.Helper()
	// Caddy runs one config per process: the platforms of parallel tests
	// take turns
	runningCaddy.Lock()
	t.Cleanup(runningCaddy.Unlock)
	ca := startCA(t, acmetest.Options{})
	p := &onDemandPlatform{ca: ca, admin: "127.0.0.1:" + strconv.Itoa(acmetest.FreePortForTest(t)), httpsPort: acmetest.FreePortForTest(t)}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(ca.Root())
	cfg := map[string]any{
		"admin":   map[string]any{"listen": p.admin},
		"storage": map[string]any{"module": "file_system", "root": t.TempDir()},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"writer": map[string]any{"output": "discard"}}}},
		"apps": map[string]any{
			"http": map[string]any{
				"http_port":  acmetest.FreePortForTest(t),
				"https_port": p.httpsPort,
				"servers": map[string]any{"platform": map[string]any{
					"listen":                  []string{"127.0.0.1:" + strconv.Itoa(p.httpsPort)},
					"routes":                  []any{map[string]any{"handle": []any{map[string]any{"handler": "static_response", "body": "tenant site"}}}},
					"tls_connection_policies": []any{map[string]any{}},
					"automatic_https":         map[string]any{"disable_redirects": true},
				}},
			},
			"tls": map[string]any{"automation": map[string]any{
				"on_demand": map[string]any{"permission": map[string]any{"module": "persist", "cache_ttl": "5m", "negative_ttl": "30s"}},
				"policies": []any{map[string]any{
					"on_demand": true,
					"issuers": []any{map[string]any{
						"module":                  "persist",
						"ca":                      ca.URL,
						"email":                   "platform@example.test",
						"trusted_roots_pem_files": []string{ca.TLSRootsFile},
						"resolvers":               []string{testDNSAddr},
						"propagation_timeout":     "10s",
					}},
				}},
			}},
		},
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	caddyGlobals.Lock()
	err = caddy.Load(body, true)
	caddyGlobals.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		caddyGlobals.Lock()
		defer caddyGlobals.Unlock()
		caddy.Stop()
	})
	// the operator creates the account once, before the first tenant:
	// reading the records does not
	resp, err := http.Post("http://"+p.admin+"/persist/account/register", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /persist/account/register: %d %s", resp.StatusCode, body)
	}
	return p
}

// onboard asks the admin API what a tenant must publish, as a control
// panel would, and returns the account URL the records name.
func (p *onDemandPlatform) onboard(t *testing.T, domain string) RecordReport {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/persist/records?domain=" + domain)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var reports []RecordReport
	if resp.StatusCode != 200 || json.Unmarshal(body, &reports) != nil || len(reports) != 1 {
		t.Fatalf("GET /persist/records?domain=%s: %d %s", domain, resp.StatusCode, body)
	}
	return reports[0]
}

// handshake reports whether a TLS handshake with SNI name completes with a
// certificate for name that verifies to the CA's root.
func (p *onDemandPlatform) handshake(name string) error {
	dialer := &net.Dialer{Timeout: 60 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", "127.0.0.1:"+strconv.Itoa(p.httpsPort), &tls.Config{ServerName: name, RootCAs: p.roots})
	if err != nil {
		return err
	}
	return conn.Close()
}

// pebbleLookups is how many TXT queries one validation by Pebble makes: it
// validates from three perspectives at once.
const pebbleLookups = 3

func txtQueries(srv *challtestsrv.ChallSrv, name string) int {
	n := 0
	for _, ev := range srv.RequestHistory(name, challtestsrv.DNSRequestEventType) {
		if q, ok := ev.(challtestsrv.DNSRequestEvent); ok && q.Question.Qtype == 16 {
			n++
		}
	}
	return n
}

func TestOnDemandPlatformIssuesOnlyForAuthorizedTenants(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("1,000 handshakes; skipped with -short")
	}
	platform := startOnDemandPlatform(t)
	ours := platform.onboard(t, "t0000.tenant.test")
	dnsSrv, _, _ := acmetest.DNS()

	const tenants = 1000
	kind := func(i int) string { return [...]string{"authorized", "foreign", "absent"}[i%3] }
	names := make([]string, tenants)
	for i := range names {
		names[i] = fmt.Sprintf("t%04d.tenant.test", i)
		switch kind(i) {
		case "authorized":
			setTXT(t, record.Name(names[i]), "pebble.letsencrypt.org; accounturi="+ours.AccountURL)
		case "foreign":
			setTXT(t, record.Name(names[i]), "pebble.letsencrypt.org; accounturi=https://elsewhere.example/acct/"+strconv.Itoa(i))
		}
		dnsSrv.ClearRequestHistory(record.Name(names[i]), challtestsrv.DNSRequestEventType)
	}

	results := make([]error, tenants)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = platform.handshake(names[i])
				// a denied name asked again at once is refused from the
				// negative cache: still one TXT query, checked below
				if kind(i) != "authorized" && i < 60 && platform.handshake(names[i]) == nil {
					t.Errorf("%s (%s) got a certificate on a second handshake", names[i], kind(i))
				}
			}
		}()
	}
	for i := range names {
		work <- i
	}
	close(work)
	wg.Wait()

	ordered := platform.ca.Counts.Ordered()
	issued, totalQueries := 0, 0
	for i, name := range names {
		queries := txtQueries(dnsSrv, record.Name(name))
		totalQueries += queries
		switch kind(i) {
		case "authorized":
			if results[i] != nil {
				t.Errorf("%s is authorized but its handshake failed: %v", name, results[i])
			}
			issued++
			if ordered[name] != 1 {
				t.Errorf("%s: %d orders, want 1", name, ordered[name])
			}
			// our check once (the issuer reuses it), then the CA's validation
			if queries-pebbleLookups != 1 {
				t.Errorf("%s: %d TXT queries; ours: %d, want 1", name, queries, queries-pebbleLookups)
			}
		default:
			if results[i] == nil {
				t.Errorf("%s (%s) got a certificate", name, kind(i))
			}
			if ordered[name] != 0 {
				t.Errorf("%s (%s): %d orders placed for a denied name", name, kind(i), ordered[name])
			}
			if queries != 1 {
				t.Errorf("%s (%s): %d TXT queries, want 1: the negative answer is cached", name, kind(i), queries)
			}
		}
	}
	if len(ordered) != 334 {
		t.Errorf("orders named %d identifiers, want 334", len(ordered))
	}
	bound := tenants + pebbleLookups*334
	t.Logf("%d tenants, %d certificates, %d orders, %d TXT queries for tenant records (bound: one per tenant, plus the CA's)", tenants, issued, platform.ca.Counts.Get(acmetest.KindNewOrder), totalQueries)
	if totalQueries > bound {
		t.Errorf("%d TXT queries exceed the bound %d", totalQueries, bound)
	}

	// concurrent handshakes for one new name: one lookup and one order
	burst := "burst.tenant.test"
	setTXT(t, record.Name(burst), "pebble.letsencrypt.org; accounturi="+ours.AccountURL)
	dnsSrv.ClearRequestHistory(record.Name(burst), challtestsrv.DNSRequestEventType)
	errs := make([]error, 20)
	var burstWG sync.WaitGroup
	for i := range errs {
		burstWG.Add(1)
		go func() {
			defer burstWG.Done()
			errs[i] = platform.handshake(burst)
		}()
	}
	burstWG.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("burst handshake: %v", err)
		}
	}
	if n := platform.ca.Counts.Ordered()[burst]; n != 1 {
		t.Errorf("%d orders for %s, want 1", n, burst)
	}
	if n := txtQueries(dnsSrv, record.Name(burst)) - pebbleLookups; n != 1 {
		t.Errorf("Caddy made %d TXT queries for %s, want 1", n, burst)
	}
}

// leafFor completes a handshake with SNI name and returns the certificate.
func (p *onDemandPlatform) leafFor(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p.httpsPort), &tls.Config{ServerName: name, RootCAs: p.roots})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestOnDemandSubdomainsShareTheParentsWildcard(t *testing.T) {
	t.Parallel()
	platform := startOnDemandPlatform(t)
	rec := platform.onboard(t, "wildco.test&domain=*.wildco.test")
	if !rec.Wildcard {
		t.Fatalf("onboarding a domain and its wildcard gave %+v", rec)
	}
	setTXT(t, rec.RecordName, rec.Value)

	for _, sni := range []string{"shop.wildco.test", "blog.wildco.test"} {
		leaf := platform.leafFor(t, sni)
		if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "*.wildco.test" {
			t.Errorf("%s was served %v, want the wildcard", sni, leaf.DNSNames)
		}
	}
	if n := platform.ca.Counts.Ordered()["*.wildco.test"]; n != 1 {
		t.Errorf("%d orders for *.wildco.test, want 1 for all its subdomains", n)
	}
	if leaf := platform.leafFor(t, "wildco.test"); len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "wildco.test" {
		t.Errorf("the apex was served %v", leaf.DNSNames)
	}

	// a parent record without policy=wildcard grants nothing to subdomains
	plain := platform.onboard(t, "plainco.test")
	setTXT(t, plain.RecordName, plain.Value)
	if err := platform.handshake("shop.plainco.test"); err == nil {
		t.Error("a subdomain got a certificate from a parent record without policy=wildcard")
	}
	if n := platform.ca.Counts.Ordered()["shop.plainco.test"] + platform.ca.Counts.Ordered()["*.plainco.test"]; n != 0 {
		t.Errorf("%d orders for plainco.test names", n)
	}
}
