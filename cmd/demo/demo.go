package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	_ "github.com/caddyserver/caddy/v2/modules/logging"
	"github.com/letsencrypt/challtestsrv"
	"github.com/miekg/dns"

	_ "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

type timing struct {
	title string
	took  time.Duration
}

// demo holds the demo's state from step to step.
type demo struct {
	dir       string
	ca        *acmetest.CA
	dnsAddr   string
	adminAddr string
	httpPort  int
	httpsPort int
	rootFile  string
	record    struct{ name, value, zoneLine, account string }
	leaf      *x509.Certificate
	// publishedAt is when the record went into DNS
	publishedAt time.Time
	stepNo      int
	timings     []timing
	started     bool
}

func newDemo() (*demo, error) {
	dir, err := os.MkdirTemp("", "caddy-persist-demo-")
	if err != nil {
		return nil, err
	}
	return &demo{dir: dir}, nil
}

func (d *demo) close() {
	if d.started {
		caddy.Stop()
	}
	if d.ca != nil {
		d.ca.Close()
	}
	os.RemoveAll(d.dir)
}

func (d *demo) startInfrastructure() error {
	_, addr, err := acmetest.DNS()
	if err != nil {
		return err
	}
	d.dnsAddr = addr
	d.ca, err = acmetest.StartCA(acmetest.Options{}, addr, d.dir)
	if err != nil {
		return err
	}
	d.rootFile = filepath.Join(d.dir, "pebble-root.pem")
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.ca.Root().Raw})
	if err := os.WriteFile(d.rootFile, rootPEM, 0o644); err != nil {
		return err
	}
	say("   ACME directory: %s (issuer domain name %q)", d.ca.URL, acmetest.DefaultIssuerName)
	say("   DNS server:     %s (the CA and Caddy both ask it)", addr)
	return nil
}

func (d *demo) startCaddy() error {
	var err error
	for _, p := range []*int{&d.httpPort, &d.httpsPort} {
		if *p, err = acmetest.FreePort(); err != nil {
			return err
		}
	}
	adminPort, err := acmetest.FreePort()
	if err != nil {
		return err
	}
	d.adminAddr = "127.0.0.1:" + strconv.Itoa(adminPort)
	logFile := filepath.Join(d.dir, "caddy.log")

	cfg := map[string]any{
		"admin":   map[string]any{"listen": d.adminAddr},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(d.dir, "storage")},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer": map[string]any{"output": "file", "filename": logFile},
		}}},
		"apps": map[string]any{
			"http": map[string]any{
				"http_port":  d.httpPort,
				"https_port": d.httpsPort,
				"servers": map[string]any{"demo": map[string]any{
					"listen": []string{"127.0.0.1:" + strconv.Itoa(d.httpsPort)},
					"routes": []any{map[string]any{
						"match":    []any{map[string]any{"host": []string{"*.demo.test", "demo.test"}}},
						"handle":   []any{map[string]any{"handler": "static_response", "body": "Hello from {http.request.host}, served by Caddy with a certificate obtained through dns-persist-01.\n"}},
						"terminal": true,
					}},
				}},
			},
			"tls": map[string]any{"automation": map[string]any{"policies": []any{map[string]any{
				"subjects": []string{"*.demo.test", "demo.test"},
				"issuers": []any{map[string]any{
					"module":                  "persist",
					"ca":                      d.ca.URL,
					"email":                   "demo@demo.test",
					"trusted_roots_pem_files": []string{d.ca.TLSRootsFile},
					"resolvers":               []string{d.dnsAddr},
					"propagation_timeout":     "2m",
				}},
			}}}},
		},
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := caddy.Load(body, true); err != nil {
		return err
	}
	d.started = true
	say("   Caddy serves *.demo.test and demo.test on 127.0.0.1:%d; its log is in %s", d.httpsPort, logFile)
	say("   No DNS credentials are configured: Caddy cannot write to DNS at all.")
	return nil
}

func (d *demo) showRecords() error {
	// reading the records never creates the account: as
	// `caddy persist records` does the first time, ask for it
	created, err := http.Post("http://"+d.adminAddr+"/persist/account/register", "application/json", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(created.Body)
	created.Body.Close()
	if created.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API answered POST /persist/account/register with %d: %s", created.StatusCode, answer)
	}
	resp, err := http.Get("http://" + d.adminAddr + "/persist/records")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API answered %d: %s", resp.StatusCode, body)
	}
	var records []struct {
		RecordName string `json:"record_name"`
		Value      string `json:"value"`
		ZoneLine   string `json:"zone_line"`
		AccountURL string `json:"account_url"`
	}
	if err := json.Unmarshal(body, &records); err != nil {
		return err
	}
	if len(records) != 1 {
		return fmt.Errorf("expected one record for demo.test and *.demo.test, got %d", len(records))
	}
	r := records[0]
	d.record.name, d.record.value, d.record.zoneLine, d.record.account = r.RecordName, r.Value, r.ZoneLine, r.AccountURL
	say("   Caddy registered ACME account %s (POST /persist/account/register) and asks for this one record:", r.AccountURL)
	say("")
	say("     %s", r.ZoneLine)
	say("")
	say("   One record covers demo.test and *.demo.test (policy=wildcard), for every renewal to come.")
	return nil
}

func (d *demo) publish() error {
	if err := acmetest.SetTXT(d.record.name, d.record.value); err != nil {
		return err
	}
	d.publishedAt = time.Now()
	say("   Published %s in the demo DNS server, standing in for you.", d.record.name)
	say("   In production you publish it once at your DNS host, by hand or with your DNS tooling.")
	return nil
}

func (d *demo) awaitCertificate() error {
	roots := x509.NewCertPool()
	roots.AddCert(d.ca.Root())
	deadline := time.Now().Add(3 * time.Minute)
	for {
		conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(d.httpsPort), &tls.Config{ServerName: "hello.demo.test", RootCAs: roots})
		if err == nil {
			served := time.Since(d.publishedAt)
			d.leaf = conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			say("   Caddy confirmed the record, the CA validated it, and the certificate is in place,")
			say("   %s after the record was published; Caddy asked DNS for the record %d times in all", served.Round(time.Millisecond), d.clientLookups())
			say("   (the records it showed, then its waits for demo.test and *.demo.test; the CA's queries aside).")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no certificate after 3 minutes: %v (see the Caddy log)", err)
		}
		// a short pause: the time to the certificate is measured by it
		time.Sleep(20 * time.Millisecond)
	}
}

// clientLookups counts Caddy's TXT queries for the record: every query for
// it but the CA's validations (one per challenge), each of which asks from
// three perspectives.
func (d *demo) clientLookups() int {
	srv, _, err := acmetest.DNS()
	if err != nil {
		return 0
	}
	n := 0
	for _, ev := range srv.RequestHistory(d.record.name, challtestsrv.DNSRequestEventType) {
		if q, ok := ev.(challtestsrv.DNSRequestEvent); ok && q.Question.Qtype == dns.TypeTXT {
			n++
		}
	}
	return n - caValidationLookups*d.ca.Counts.Get(acmetest.KindChallenge)
}

// caValidationLookups is how many TXT queries one validation by Pebble
// makes: it asks from three perspectives at once.
const caValidationLookups = 3

func (d *demo) fetch() error {
	roots := x509.NewCertPool()
	roots.AddCert(d.ca.Root())
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(d.httpsPort))
			},
		},
	}
	resp, err := client.Get("https://hello.demo.test/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	say("   HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	return nil
}

func (d *demo) summary() {
	say("\nThe certificate")
	say("   names:   %s", strings.Join(d.leaf.DNSNames, ", "))
	say("   issuer:  %s", d.leaf.Issuer.CommonName)
	say("   expires: %s (in %d days)", d.leaf.NotAfter.UTC().Format(time.RFC3339), int(time.Until(d.leaf.NotAfter).Hours()/24))
	say("\nHow long each step took")
	var total time.Duration
	for i, t := range d.timings {
		say("   %d. %-72s %8s", i+1, t.title, t.took.Round(time.Millisecond))
		total += t.took
	}
	say("      %-72s %8s", "total", total.Round(time.Millisecond))
}

func (d *demo) printHowToReach() {
	say("\nThe server keeps running. Reach it with:")
	say("   curl --cacert %s --resolve hello.demo.test:%d:127.0.0.1 https://hello.demo.test:%d/", d.rootFile, d.httpsPort, d.httpsPort)
	say("   curl http://%s/persist/check     # the record's status, from Caddy's admin API", d.adminAddr)
	say("Press Ctrl-C to stop.")
}
