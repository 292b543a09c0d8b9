// Package acmetest runs Let's Encrypt's test CA (Pebble) and test DNS server
// (challtestsrv) inside a Go process, for the plugin's tests, benchmarks and
// demo.
package acmetest

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// DefaultIssuerName is the issuer domain name Pebble offers unless told
// otherwise.
const DefaultIssuerName = "pebble.letsencrypt.org"

// Options configure a CA.
type Options struct {
	// IssuerNames are Pebble's caaIdentities, offered in dns-persist-01
	// challenges. Default: DefaultIssuerName.
	IssuerNames []string
	// AuthzReuse is the percentage of orders that reuse a valid
	// authorization. Default 0, as Let's Encrypt does for dns-persist-01.
	AuthzReuse int
	// EABKeys, when set, makes the CA require external account binding
	// with these key IDs and base64url MAC keys.
	EABKeys map[string]string
	// Wrap, when set, wraps Pebble's handler, e.g. to inject faults.
	Wrap func(http.Handler) http.Handler
	// Logger receives Pebble's log. Default: discarded.
	Logger *log.Logger
	// HTTPPort is the port Pebble's VA connects to for http-01 challenges,
	// where the client's challenge server listens. Default 0: no http-01
	// validation can succeed, which dns-persist-01 tests do not need.
	HTTPPort int
	// Profiles, when set, are the ACME profiles the CA offers besides
	// "default", by name, with the validity of the certificates each
	// issues (whole seconds). Pebble gives an order that names no profile
	// a random one, so set this only where orders name theirs.
	Profiles map[string]time.Duration
}

// CA is a running Pebble. Its directory URL stays the same across Reset.
type CA struct {
	// URL is the ACME directory URL.
	URL string
	// TLSRootsFile is a PEM file holding the certificate the CA's HTTPS
	// endpoint presents, for trusted_roots.
	TLSRootsFile string
	// Counts records the requests the CA received.
	Counts *Counter

	opts    Options
	dnsAddr string
	server  *httptest.Server
	handler atomic.Pointer[http.Handler]
	// orderMu keeps new orders and authorization requests apart.
	orderMu sync.Mutex
	ca      atomic.Pointer[ca.CAImpl]
}

// envMu serializes construction, since Pebble reads its knobs from the
// environment.
var envMu sync.Mutex

// StartCA starts Pebble with challtestsrv (see DNS) as its resolver. The
// caller must Close it. tmpDir receives the TLS roots file.
func StartCA(opts Options, dnsAddr, tmpDir string) (*CA, error) {
	if len(opts.IssuerNames) == 0 {
		opts.IssuerNames = []string{DefaultIssuerName}
	}
	if opts.Logger == nil {
		opts.Logger = log.New(io.Discard, "", 0)
	}
	c := &CA{opts: opts, dnsAddr: dnsAddr, Counts: NewCounter()}
	c.Reset()
	c.server = httptest.NewUnstartedServer(c.Counts.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Pebble v2.10.3 can deadlock when these run at once: its
		// authorization handler holds an authorization's lock while it
		// waits for the database's read lock, which a waiting new order
		// (adding a challenge) holds back, while another new order holds
		// the read lock and waits for that authorization's. One at a
		// time, they cannot: this cost hundreds of concurrent on-demand
		// issuances a ten-minute hang, now and then.
		if kind := KindOf(r); kind == KindNewOrder || kind == KindAuthz {
			c.orderMu.Lock()
			defer c.orderMu.Unlock()
		}
		(*c.handler.Load()).ServeHTTP(w, r)
	})))
	c.server.StartTLS()
	c.URL = c.server.URL + wfe.DirectoryPath

	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.server.Certificate().Raw})
	c.TLSRootsFile = filepath.Join(tmpDir, "pebble-tls-root.pem")
	if err := os.WriteFile(c.TLSRootsFile, certPEM, 0o644); err != nil {
		c.server.Close()
		return nil, err
	}
	return c, nil
}

// StartCAForTest starts a CA for a test, with the process's challtestsrv
// (DNS) as its resolver, and closes it when the test ends.
func StartCAForTest(t testing.TB, opts Options) *CA {
	t.Helper()
	_, dnsAddr, err := DNS()
	if err != nil {
		t.Fatal(err)
	}
	c, err := StartCA(opts, dnsAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Reset replaces the CA with a fresh one at the same URL: every account,
// order and authorization is forgotten, as when a CA loses its database.
func (c *CA) Reset() {
	envMu.Lock()
	defer envMu.Unlock()
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	// Pebble rejects a share of good nonces unless told not to; at
	// random, which would make tests flake (a test that wants nonces
	// rejected refuses them itself, in turn)
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	os.Setenv("PEBBLE_AUTHZREUSE", strconv.Itoa(c.opts.AuthzReuse))

	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "The default profile"}}
	for name, validity := range c.opts.Profiles {
		profiles[name] = ca.Profile{Description: "The " + name + " profile", ValidityPeriod: uint64(validity / time.Second)}
	}
	authority := ca.New(c.opts.Logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(c.opts.Logger, c.opts.HTTPPort, 0, false, c.dnsAddr, store)
	for id, key := range c.opts.EABKeys {
		if err := store.AddExternalAccountKeyByID(id, key); err != nil {
			panic(err)
		}
	}
	front := wfe.New(c.opts.Logger, store, validator, authority, c.opts.IssuerNames, false, len(c.opts.EABKeys) > 0, 0, 0)
	var h http.Handler = front.Handler()
	if c.opts.Wrap != nil {
		h = c.opts.Wrap(h)
	}
	c.handler.Store(&h)
	c.ca.Store(authority)
}

// Root returns the root certificate the CA issues under, for verifying
// HTTPClient is a client that trusts the CA's HTTPS endpoint, for a test
// to speak ACME to it directly.
func (c *CA) HTTPClient() *http.Client {
	return c.server.Client()
}

// issued chains.
func (c *CA) Root() *x509.Certificate {
	return c.ca.Load().GetRootCert(0).Cert
}

// Close stops the CA.
func (c *CA) Close() {
	c.server.Close()
}

// Counter counts requests by kind ("new-account", "new-order",
// "challenge", ...) and by kind and response status ("new-account 201").
type Counter struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
	// ordered counts the identifiers of new orders.
	ordered map[string]int
	// replaces holds the replaces field of each new order, in arrival
	// order.
	replaces []string
}

// NewCounter returns an empty counter.
func NewCounter() *Counter {
	return &Counter{counts: make(map[string]int), ordered: make(map[string]int)}
}

// Wrap counts the requests h serves.
func (c *Counter) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := KindOf(r)
		var order NewOrder
		if kind == KindNewOrder {
			order = ReadNewOrder(r)
		}
		c.mu.Lock()
		for _, id := range order.Identifiers {
			c.ordered[id.Value]++
		}
		if kind == KindNewOrder {
			c.replaces = append(c.replaces, order.Replaces)
		}
		c.counts[kind]++
		c.total++
		c.mu.Unlock()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		c.mu.Lock()
		c.counts[kind+" "+strconv.Itoa(sw.status)]++
		c.mu.Unlock()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection, e.g. to
// hijack it.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Get returns how many requests of kind were seen.
func (c *Counter) Get(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[kind]
}

// Total returns how many requests were seen.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Reset forgets every count.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = make(map[string]int)
	c.ordered = make(map[string]int)
	c.replaces = nil
	c.total = 0
}

// Ordered returns how many new orders named each identifier.
func (c *Counter) Ordered() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.ordered))
	for k, v := range c.ordered {
		out[k] = v
	}
	return out
}

// Replaces returns the replaces field (an ARI certificate ID) of every
// new order in the order they came, "" for an order without one.
func (c *Counter) Replaces() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.replaces)
}

// NewOrder is what a newOrder request's payload says.
type NewOrder struct {
	Identifiers []struct {
		Value string `json:"value"`
	} `json:"identifiers"`
	Replaces string `json:"replaces"`
	// Account is the account URL that signed the request (the JWS kid).
	Account string `json:"-"`
}

// acmeAlgorithms are the JWS algorithms ACME clients sign with.
var acmeAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.EdDSA}

// ReadNewOrder reads a newOrder request's JWS, without verifying it (Pebble
// does), leaving the body for Pebble to read.
func ReadNewOrder(r *http.Request) NewOrder {
	var order NewOrder
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return order
	}
	jws, err := jose.ParseSignedJSON(string(body), acmeAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return order
	}
	json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &order)
	order.Account = jws.Signatures[0].Protected.KeyID
	return order
}

// Request kinds.
const (
	KindDirectory  = "directory"
	KindNonce      = "nonce"
	KindNewAccount = "new-account"
	KindAccount    = "account"
	KindNewOrder   = "new-order"
	KindOrder      = "order"
	KindAuthz      = "authz"
	KindChallenge  = "challenge"
	KindFinalize   = "finalize"
	KindCert       = "cert"
	KindRenewal    = "renewal-info"
	KindRevoke     = "revoke"
	KindKeyChange  = "key-change"
	KindOther      = "other"
)

// KindOf tells what kind of ACME request r is.
func KindOf(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == wfe.DirectoryPath:
		return KindDirectory
	case p == "/nonce-plz":
		return KindNonce
	case p == "/sign-me-up":
		return KindNewAccount
	case strings.HasPrefix(p, "/my-account/"):
		return KindAccount
	case p == "/order-plz":
		return KindNewOrder
	case strings.HasPrefix(p, "/my-order/"):
		return KindOrder
	case strings.HasPrefix(p, "/authZ/"):
		return KindAuthz
	case strings.HasPrefix(p, "/chalZ/"):
		return KindChallenge
	case strings.HasPrefix(p, "/finalize-order/"):
		return KindFinalize
	case strings.HasPrefix(p, "/certZ/"):
		return KindCert
	case strings.HasPrefix(p, "/draft-ietf-acme-ari"):
		return KindRenewal
	case p == "/revoke-cert":
		return KindRevoke
	case p == "/rollover-account-key":
		return KindKeyChange
	}
	return KindOther
}

var (
	dnsOnce sync.Once
	dnsSrv  *challtestsrv.ChallSrv
	dnsAddr string
	dnsErr  error
)

// DNS returns the process's one challtestsrv and its address. It can only
// be one: challtestsrv registers on miekg/dns's global handler.
func DNS() (*challtestsrv.ChallSrv, string, error) {
	dnsOnce.Do(func() {
		var port int
		port, dnsErr = FreePort()
		if dnsErr != nil {
			return
		}
		dnsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		dnsSrv, dnsErr = challtestsrv.New(challtestsrv.Config{
			DNSAddrs: []string{dnsAddr},
			Log:      log.New(io.Discard, "", 0),
		})
		if dnsErr != nil {
			return
		}
		dnsSrv.Run()
		dnsErr = waitForDNS(dnsAddr)
	})
	return dnsSrv, dnsAddr, dnsErr
}
