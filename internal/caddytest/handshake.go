package caddytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Handshake connects to Caddy's HTTPS port on loopback with SNI, verifies
// the chain against roots, and returns the leaf and the response body. It
// tries again until timeout, then fails the test.
func Handshake(t testing.TB, port int, sni string, roots *x509.CertPool, timeout time.Duration) (*x509.Certificate, string) {
	t.Helper()
	leaf, body, err := HandshakeWithin(port, sni, roots, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, body
}

// HandshakeWithin is Handshake returning the error, for goroutines other
// than the test's.
func HandshakeWithin(port int, sni string, roots *x509.CertPool, timeout time.Duration) (*x509.Certificate, string, error) {
	var lastErr error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		leaf, body, err := TryHandshake(port, sni, roots)
		if err == nil {
			return leaf, body, nil
		}
		lastErr = err
		time.Sleep(250 * time.Millisecond)
	}
	return nil, "", fmt.Errorf("no verified TLS handshake with SNI %s on port %d within %s: %v", sni, port, timeout, lastErr)
}

// TryHandshake is one attempt of Handshake.
func TryHandshake(port int, sni string, roots *x509.CertPool) (*x509.Certificate, string, error) {
	var leaf *x509.Certificate
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				ServerName: sni,
				RootCAs:    roots,
				VerifyConnection: func(cs tls.ConnectionState) error {
					leaf = cs.PeerCertificates[0]
					return nil
				},
			},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
			},
		},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + sni + "/")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return leaf, string(body), err
}
