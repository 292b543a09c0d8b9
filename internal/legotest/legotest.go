// Package legotest runs lego, the ACME client, for the tests that import
// an account another client registered: lego registers at the test CA,
// stores the account in its own layout, and obtains a certificate with
// dns-persist-01, publishing the record it prints through the test.
// lego is built from its Go module in legoclient, a module of its own
// (see Binary).
package legotest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// client is lego, built from the Go module in legoclient beside this
// file, whose main package runs lego's library.
var client = caddytest.Module{
	Dir:     "legoclient",
	Name:    "legoclient",
	Purpose: "the lego client is built from lego's Go module",
}

// Options say what lego does.
type Options struct {
	// Server is the ACME directory URL.
	Server string
	// Email is the account's email; lego names the account after it.
	Email string
	// Path is lego's folder (lego --path), where it keeps the account.
	Path string
	// Roots is a PEM file of the roots of the CA's HTTPS certificate.
	Roots string
	// Resolver is the DNS server lego checks the record at.
	Resolver string
	// Domains are the names of the certificate.
	Domains []string
}

// Obtain runs lego: it registers an account, stores it under o.Path, and
// obtains a certificate for o.Domains. Each record lego asks for is
// handed to publish (its name without the trailing dot, and its value)
// before lego is told to go on. It returns the account URL lego
// registered, and fails the test with lego's output if lego fails.
func Obtain(t testing.TB, o Options, publish func(name, value string)) string {
	t.Helper()
	cmd := exec.Command(client.Path(t),
		"-server", o.Server, "-email", o.Email, "-path", o.Path, "-roots", o.Roots,
		"-resolver", o.Resolver, "-domains", strings.Join(o.Domains, ","))
	// lego's solver looks at the record every second, not every two
	cmd.Env = append(os.Environ(), "DNSPERSIST_MANUAL_POLLING_INTERVAL=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()

	var output strings.Builder
	var accountURL string
	scanner := bufio.NewScanner(stdout)
	for scanner.Scan() {
		line := scanner.Text()
		output.WriteString(line + "\n")
		if url, ok := strings.CutPrefix(line, "legoclient: registered "); ok {
			accountURL = url
		}
		if name, value, ok := recordLine(line); ok {
			publish(name, value)
			// lego reads one line once the record is published
			if _, err := io.WriteString(stdin, "\n"); err != nil {
				t.Errorf("telling lego the record is published: %v", err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lego failed: %v\nstdout:\n%s\nstderr:\n%s", err, output.String(), stderr.String())
	}
	if accountURL == "" {
		t.Fatalf("lego named no account URL:\n%s", output.String())
	}
	return accountURL
}

// recordLine reads the record lego asks for, printed as a zone file line:
//
//	_validation-persist.example.com. IN TXT "<value>"
func recordLine(line string) (name, value string, ok bool) {
	if !strings.Contains(line, " IN TXT ") {
		return "", "", false
	}
	rr, err := dns.NewRR(strings.TrimSpace(line))
	txt, isTXT := rr.(*dns.TXT)
	if err != nil || !isTXT {
		return "", "", false
	}
	return strings.TrimSuffix(txt.Hdr.Name, "."), strings.Join(txt.Txt, ""), true
}
