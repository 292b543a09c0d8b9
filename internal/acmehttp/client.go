// Package acmehttp builds the HTTP client the plugin talks to CAs with, so
// that the benchmark's floor pays exactly the transport costs the issuer
// pays.
package acmehttp

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"

	"github.com/caddyserver/certmagic"
)

// NewClient returns a client for ACME requests that trusts roots, or the
// system's roots when roots is nil.
func NewClient(roots *x509.CertPool) *http.Client {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 2 * time.Minute}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: 2 * time.Second,
		ForceAttemptHTTP2:     true,
		// orders run side by side; over HTTP/1.1 the default of two idle
		// connections per host meant a TLS handshake for most requests
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	if roots != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return &http.Client{Transport: transport, Timeout: certmagic.HTTPTimeout}
}
