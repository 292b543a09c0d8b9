// Command legoclient is lego, the ACME client, as the tests that import
// its accounts run it (internal/legotest): with lego's library it
// registers an account at a CA, stores it where and as the lego command
// does, and obtains a certificate with dns-persist-01 through lego's own
// solver, which prints the record to publish and waits for a line on
// standard input once it is published.
//
// It is a module of its own so that lego and its dependencies stay out of
// the plugin's go.mod, and so out of every Caddy built with the plugin.
// It builds on lego's library rather than its command, whose DNS
// providers pull in modules the module proxy does not serve.
package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/dnspersist01"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"
)

func main() {
	var o options
	flag.StringVar(&o.server, "server", "", "ACME directory URL")
	flag.StringVar(&o.email, "email", "", "the account's email")
	flag.StringVar(&o.path, "path", ".lego", "lego's folder (lego --path)")
	flag.StringVar(&o.roots, "roots", "", "PEM file of the roots the CA's HTTPS certificate chains to")
	flag.StringVar(&o.resolver, "resolver", "", "host:port of the DNS server lego checks the record at")
	flag.StringVar(&o.domains, "domains", "", "comma-separated names of the certificate")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "legoclient:", err)
		os.Exit(1)
	}
}

type options struct {
	server, email, path, roots, resolver, domains string
}

func run(ctx context.Context, o options) error {
	if o.server == "" || o.domains == "" || o.resolver == "" {
		return errors.New("-server, -domains and -resolver are required")
	}
	key, err := certcrypto.GeneratePrivateKey(certcrypto.EC256)
	if err != nil {
		return err
	}
	user := &account{ID: o.email, Email: o.email, KeyType: certcrypto.EC256, Server: o.server, Origin: "command", key: key}
	if user.ID == "" {
		user.ID = "noemail@example.com"
	}

	config := lego.NewConfig(user)
	config.CADirURL = o.server
	if o.roots != "" {
		if config.HTTPClient, err = trusting(o.roots); err != nil {
			return err
		}
	}
	client, err := lego.NewClient(config)
	if err != nil {
		return err
	}
	if user.Registration, err = client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	// stored before the order, as the lego command does
	if err := user.save(o.path); err != nil {
		return err
	}
	fmt.Printf("legoclient: registered %s\n", user.Registration.Location)

	dnspersist01.SetDefaultClient(dnspersist01.NewClient(&dnspersist01.Options{
		RecursiveNameservers: []string{o.resolver},
		Timeout:              5 * time.Second,
	}))
	// the test's DNS server answers no SOA or NS queries, so lego checks
	// the record at the resolver only
	if err := client.Challenge.SetDNSPersist01(dnspersist01.DisableAuthoritativeNssPropagationRequirement()); err != nil {
		return err
	}
	res, err := client.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: strings.Split(o.domains, ","), KeyType: certcrypto.EC256, Bundle: true})
	if err != nil {
		return fmt.Errorf("obtaining: %w", err)
	}
	fmt.Printf("legoclient: obtained %s\n", res.CertURL)
	return nil
}

// account is what lego keeps of an account in account.json (its field
// names and JSON keys), with the key kept beside it.
type account struct {
	ID           string                `json:"id"`
	Email        string                `json:"email"`
	KeyType      certcrypto.KeyType    `json:"keyType"`
	Server       string                `json:"server"`
	Origin       string                `json:"origin,omitempty"`
	Registration *acme.ExtendedAccount `json:"registration"`

	key crypto.Signer
}

func (a *account) GetEmail() string                       { return a.Email }
func (a *account) GetRegistration() *acme.ExtendedAccount { return a.Registration }
func (a *account) GetPrivateKey() crypto.Signer           { return a.key }

// save writes the account where the lego command keeps it:
// <path>/accounts/<CA host>_<port>/<id>/account.json and <id>.key, the
// key PEM-encoded by lego's certcrypto, both readable by the owner only.
func (a *account) save(path string) error {
	server, err := url.Parse(a.Server)
	if err != nil {
		return err
	}
	host := strings.NewReplacer(":", "_", "/", "_", `\`, "_").Replace(server.Host)
	dir := filepath.Join(path, "accounts", host, a.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, a.ID+".key"), pem.EncodeToMemory(certcrypto.PEMBlock(a.key)), 0o600); err != nil {
		return err
	}
	data, err := json.MarshalIndent(a, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "account.json"), data, 0o600)
}

// trusting is an HTTP client that trusts the roots in file.
func trusting(file string) (*http.Client, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}, nil
}
