package persist

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func TestIssueWildcardAndApexWithOneRecord(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "wild.test", true)

	cert, err := iss.Issue(context.Background(), newCSR(t, "*.wild.test", "wild.test"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyIssued(t, ca, cert.Certificate, "*.wild.test", "wild.test")
	if err := leaf.VerifyHostname("anything.wild.test"); err != nil {
		t.Error(err)
	}
	if got := ca.Counts.Get(acmetest.KindChallenge); got != 2 {
		t.Errorf("challenge POSTs = %d, want 2 (apex and wildcard authorizations)", got)
	}
}

func TestIssueSANsAcrossTwoDomains(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "one.test", false)
	iss.publish(t, "www.two.test", false)

	cert, err := iss.Issue(context.Background(), newCSR(t, "one.test", "www.two.test"))
	if err != nil {
		t.Fatal(err)
	}
	verifyIssued(t, ca, cert.Certificate, "one.test", "www.two.test")
}

func TestIssueRecordAbsentPostsNoChallenge(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)

	_, err := iss.Issue(context.Background(), newCSR(t, "*.absent.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) {
		t.Fatalf("error = %v, want a RecordError", err)
	}
	if recErr.Status() != record.StatusMissing {
		t.Errorf("status = %s", recErr.Status())
	}
	want := `_validation-persist.absent.test. IN TXT "pebble.letsencrypt.org; accounturi=` + acctURL + `; policy=wildcard"`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the record %q", err, want)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the CA received %d orders", n)
	}
}

func TestIssueWithReusedAuthorization(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{AuthzReuse: 100})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "reuse.test", false)

	if _, err := iss.Issue(context.Background(), newCSR(t, "reuse.test")); err != nil {
		t.Fatal(err)
	}
	posts := ca.Counts.Get(acmetest.KindChallenge)
	cert, err := iss.Issue(context.Background(), newCSR(t, "reuse.test"))
	if err != nil {
		t.Fatal(err)
	}
	verifyIssued(t, ca, cert.Certificate, "reuse.test")
	if got := ca.Counts.Get(acmetest.KindChallenge); got != posts {
		t.Errorf("the second order posted %d challenges; its authorization was already valid", got-posts)
	}
	if got := ca.Counts.Get(acmetest.KindNewOrder); got != 2 {
		t.Errorf("orders = %d, want 2", got)
	}
}

// Every other signed request is refused for its nonce, as a CA behind
// several frontends may. (Pebble's own rejection is random, and once in
// a few hundred runs refused one request more times than acmez retries.)
func TestIssueSurvivesHalfTheNoncesRejected(t *testing.T) {
	t.Parallel()
	var signed atomic.Int64
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && signed.Add(1)%2 == 1 {
				acmetest.WriteProblem(w, http.StatusBadRequest, acme.ProblemTypeBadNonce, "rejected by the test")
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "nonce.test", true)
	cert, err := iss.Issue(context.Background(), newCSR(t, "*.nonce.test", "nonce.test"))
	if err != nil {
		t.Fatal(err)
	}
	verifyIssued(t, ca, cert.Certificate, "*.nonce.test", "nonce.test")
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 400"); n != 1 {
		t.Errorf("registrations refused for their nonce = %d, want 1", n)
	}
}

func TestPreCheckRefusesIPAddresses(t *testing.T) {
	t.Parallel()
	iss := &Issuer{}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := iss.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"192.0.2.1", "2001:db8::1"} {
		if err := iss.PreCheck(context.Background(), []string{name}, false); err == nil || !strings.Contains(err.Error(), "IP address") {
			t.Errorf("PreCheck(%s) = %v", name, err)
		}
	}
	if err := iss.PreCheck(context.Background(), []string{"example.com", "*.example.com"}, false); err != nil {
		t.Errorf("PreCheck(domains) = %v", err)
	}
}

// stubIssuer stands for whatever issuer follows persist in a config.
type stubIssuer struct{ issued []string }

func (s *stubIssuer) IssuerKey() string { return "stub" }

func (s *stubIssuer) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	s.issued = append(s.issued, csr.DNSNames...)
	return nil, errors.New("stub issuer reached")
}

func TestFallsBackToTheNextIssuer(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.PropagationTimeout = caddy.Duration(200 * time.Millisecond) })
	next := &stubIssuer{}
	iss.magic.Issuers = []certmagic.Issuer{iss.Issuer, next}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := iss.magic.ObtainCertSync(ctx, "fallback.test")
	if err == nil || !strings.Contains(err.Error(), "stub issuer reached") {
		t.Fatalf("error = %v, want the stub issuer's", err)
	}
	if len(next.issued) != 1 || next.issued[0] != "fallback.test" {
		t.Errorf("the next issuer saw %v", next.issued)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("persist placed %d orders without a record", n)
	}
}

func TestRevokeAndRenewalInfoUseTheAccount(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "revoke.test", false)
	cert, err := iss.Issue(context.Background(), newCSR(t, "revoke.test"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyIssued(t, ca, cert.Certificate, "revoke.test")
	info, err := iss.GetRenewalInfo(context.Background(), certmagic.Certificate{Certificate: tls.Certificate{Leaf: leaf}})
	if err != nil {
		t.Fatal(err)
	}
	if w := info.SuggestedWindow; w.Start.IsZero() || !w.End.After(w.Start) || !w.Start.Before(leaf.NotAfter) {
		t.Errorf("renewal window %+v", info.SuggestedWindow)
	}
	if n := ca.Counts.Get(acmetest.KindRenewal + " 200"); n == 0 {
		t.Error("no renewal information was fetched from the CA")
	}
	if err := iss.Revoke(context.Background(), certmagic.CertificateResource{CertificatePEM: cert.Certificate}, 0); err != nil {
		t.Fatal(err)
	}
	if n := ca.Counts.Get(acmetest.KindRevoke + " 200"); n != 1 {
		t.Errorf("revocations = %d", n)
	}
}

// outage makes the CA unreachable while down is set: connections are
// dropped without an answer.
type outage struct{ down atomic.Bool }

func (o *outage) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.down.Load() {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestCertmagicRetryOutlastsACADowntime(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for certmagic's first retry, a minute; skipped with -short")
	}
	o := &outage{}
	ca := startCA(t, acmetest.Options{Wrap: o.wrap})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)
	iss.publish(t, "outage.test", false)

	// certmagic says when an attempt has failed and it will try again:
	// the outage ends then, before its first retry, a minute later
	core, certmagicLogs := observer.New(zap.InfoLevel)
	iss.magic.Logger = zap.New(core)
	o.down.Store(true)
	start := time.Now()
	// non-interactive obtaining retries on certmagic's schedule until it
	// succeeds; it returns then
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- iss.magic.ObtainCertAsync(ctx, "outage.test") }()
	for certmagicLogs.FilterMessage("will retry").Len() == 0 {
		select {
		case err := <-done:
			t.Fatalf("obtaining ended during the outage, without a retry: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	o.down.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("no certificate three minutes after the outage began: %v", err)
	}
	if !iss.storage.Exists(context.Background(), certmagic.StorageKeys.SiteCert(iss.IssuerKey(), "outage.test")) {
		t.Fatal("the certificate is not in storage")
	}
	t.Logf("certificate stored %s after the outage began", time.Since(start).Round(time.Second))
	if got := iss.accountURL(t); got != acctURL {
		t.Errorf("account changed from %s to %s", acctURL, got)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}

func TestCAFaultsGiveClearErrorsAndLeaveStorageIntact(t *testing.T) {
	t.Parallel()
	// acmez itself retries a 500 twice; the fault outlasts that
	cases := []struct {
		name  string
		times int32
		kind  string
		fault func(w http.ResponseWriter)
		want  string
	}{
		{"500 on newOrder", 3, acmetest.KindNewOrder, func(w http.ResponseWriter) {
			acmetest.WriteProblem(w, http.StatusInternalServerError, acme.ProblemTypeServerInternal, "database on fire")
		}, "database on fire"},
		{"malformed JSON on finalize", 1, acmetest.KindFinalize, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"status": "valid", "certificate": `))
		}, "finaliz"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wrap, hits := failFirst(c.times, c.kind, c.fault)
			ca := startCA(t, acmetest.Options{Wrap: wrap})
			iss := newTestIssuer(t, ca, t.TempDir(), nil)
			iss.publish(t, "fault.test", false)
			loc := iss.accountFiles()
			keyBefore, _ := iss.storage.Load(context.Background(), loc.Key)
			regBefore, _ := iss.storage.Load(context.Background(), loc.Reg)

			err := iss.magic.ObtainCertSync(context.Background(), "fault.test")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("first attempt: %v, want an error saying %q", err, c.want)
			}
			if hits.Load() == 0 {
				t.Fatal("the fault was never injected")
			}
			if iss.storage.Exists(context.Background(), certmagic.StorageKeys.SiteCert(iss.IssuerKey(), "fault.test")) {
				t.Error("a certificate was stored by the failed attempt")
			}
			if err := iss.magic.ObtainCertSync(context.Background(), "fault.test"); err != nil {
				t.Fatalf("retry: %v", err)
			}
			keyAfter, _ := iss.storage.Load(context.Background(), loc.Key)
			regAfter, _ := iss.storage.Load(context.Background(), loc.Reg)
			if !bytes.Equal(keyBefore, keyAfter) || !bytes.Equal(regBefore, regAfter) {
				t.Error("the account files changed")
			}
		})
	}
}
