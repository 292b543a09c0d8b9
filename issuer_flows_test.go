package persist

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func TestIssueSANsAcrossTwoDomains(t *testing.T) {
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

func TestIssueWithReusedAuthorization(t *testing.T) {
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

func TestIssueRefusesEachKindOfMismatch(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)
	ours := "pebble.letsencrypt.org; accounturi=" + acctURL

	cases := []struct {
		name   string
		value  string
		kind   record.MismatchKind
		reason string
	}{
		{"accounturi", "pebble.letsencrypt.org; accounturi=https://elsewhere.example/acct/1; policy=wildcard", record.MismatchAccount, "accounturi is"},
		{"issuer", "letsencrypt.org; accounturi=" + acctURL + "; policy=wildcard", record.MismatchIssuer, "not one this CA offers"},
		{"policy", ours, record.MismatchPolicy, "policy=wildcard is absent"},
		{"expired", ours + "; policy=wildcard; persistUntil=1000000000", record.MismatchExpired, "has passed"},
		{"malformed", ours + "; policy=wildcard;", record.MismatchMalformed, "trailing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := "mismatch-" + c.name + ".test"
			setTXT(t, record.Name(base), c.value)
			_, err := iss.Issue(context.Background(), newCSR(t, "*."+base))
			var recErr *RecordError
			if !errors.As(err, &recErr) {
				t.Fatalf("error = %v, want a RecordError", err)
			}
			if recErr.Status() != record.StatusMismatch || !recErr.Verdict.Has(c.kind) || len(recErr.Verdict.Mismatches) != 1 {
				t.Fatalf("verdict = %+v, want only a %s mismatch", recErr.Verdict, c.kind)
			}
			if !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), "publish: "+record.ZoneLine(base, ours+"; policy=wildcard")) {
				t.Errorf("error %q lacks the reason %q or the record to publish", err, c.reason)
			}
		})
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
}

func TestIssueAcceptsPublishedForms(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	ours := "pebble.letsencrypt.org; accounturi=" + iss.accountURL(t)

	t.Run("value split into two strings", func(t *testing.T) {
		// an unknown tag makes the value longer than one 255-octet string;
		// the test DNS server then serves it as two
		long := ours + "; note=" + strings.Repeat("x", 260)
		setTXT(t, record.Name("split.test"), long)
		ans, err := iss.resolver.LookupTXT(context.Background(), record.Name("split.test"))
		if err != nil || len(ans.Values) != 1 || ans.Values[0] != long {
			t.Fatalf("lookup = %+v, %v", ans, err)
		}
		if _, err := iss.Issue(context.Background(), newCSR(t, "split.test")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another CA's record beside ours", func(t *testing.T) {
		setTXT(t, record.Name("two.test"), "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1", ours)
		if _, err := iss.Issue(context.Background(), newCSR(t, "two.test")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CNAME at the record name", func(t *testing.T) {
		dns, _, _ := acmetest.DNS()
		dns.AddDNSCNAMERecord(record.Name("alias.test"), "persist-target.delegated.test.")
		t.Cleanup(func() { dns.DeleteDNSCNAMERecord(record.Name("alias.test")) })
		setTXT(t, "persist-target.delegated.test", ours+"; policy=wildcard")
		ans, err := iss.resolver.LookupTXT(context.Background(), record.Name("alias.test"))
		if err != nil || len(ans.CNAMEs) != 1 || ans.CNAMEs[0] != "persist-target.delegated.test" || len(ans.Values) != 1 {
			t.Fatalf("lookup = %+v, %v", ans, err)
		}
		if _, err := iss.Issue(context.Background(), newCSR(t, "*.alias.test", "alias.test")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestIssueServfailIsADNSError(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	dns, _, _ := acmetest.DNS()
	dns.AddDNSServFailRecord(record.Name("servfail.test"))
	t.Cleanup(func() { dns.DeleteDNSServFailRecord(record.Name("servfail.test")) })

	_, err := iss.Issue(context.Background(), newCSR(t, "servfail.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || recErr.Status() != record.StatusDNSError {
		t.Fatalf("error = %v, want a dns-error RecordError", err)
	}
	var dnsErr *dnslookup.Error
	if !errors.As(err, &dnsErr) || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("error %q does not carry the DNS failure", err)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
}

func TestAccountSurvivesRestart(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	first := newTestIssuer(t, ca, dir, nil).accountURL(t)
	second := newTestIssuer(t, ca, dir, nil).accountURL(t)
	if first != second {
		t.Errorf("account URL changed across a restart: %s then %s", first, second)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}

func TestAccountKeyFindsTheSameAccountOnAFreshMachine(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	first := newTestIssuer(t, ca, t.TempDir(), nil)
	url := first.accountURL(t)
	keyPEM, err := first.storage.Load(context.Background(), locateAccount(ca.URL, first.Email).Key)
	if err != nil {
		t.Fatal(err)
	}

	fresh := t.TempDir()
	pinned := newTestIssuer(t, ca, fresh, func(iss *Issuer) { iss.AccountKey = string(keyPEM) })
	if got := pinned.accountURL(t); got != url {
		t.Errorf("account_key gave %s, want %s", got, url)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
	// the account is now stored on the fresh machine too
	stored, err := pinned.storage.Load(context.Background(), locateAccount(ca.URL, pinned.Email).Reg)
	if err != nil || !bytes.Contains(stored, []byte(url)) {
		t.Errorf("stored registration = %s, %v", stored, err)
	}
}

func TestInstancesSharingStorageRegisterOneAccount(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	issuers := []*testIssuer{newTestIssuer(t, ca, dir, nil), newTestIssuer(t, ca, dir, nil), newTestIssuer(t, ca, dir, nil)}
	urls := make([]string, len(issuers))
	var wg sync.WaitGroup
	for i, iss := range issuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct, err := iss.accounts.get(context.Background(), true)
			if err != nil {
				t.Error(err)
				return
			}
			urls[i] = acct.Location
		}()
	}
	wg.Wait()
	if urls[0] == "" || urls[0] != urls[1] || urls[1] != urls[2] {
		t.Errorf("account URLs = %v", urls)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}

// rewriteDirectory returns a wrapper that edits the directory's meta.
func rewriteDirectory(edit func(meta map[string]any)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/dir" {
				next.ServeHTTP(w, r)
				return
			}
			rec := &bufferedResponse{header: http.Header{}}
			next.ServeHTTP(rec, r)
			var dir map[string]any
			if err := json.Unmarshal(rec.body.Bytes(), &dir); err == nil {
				meta, _ := dir["meta"].(map[string]any)
				if meta == nil {
					meta = map[string]any{}
				}
				edit(meta)
				dir["meta"] = meta
			}
			body, _ := json.Marshal(dir)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.status)
			w.Write(body)
		})
	}
}

// stripIssuerNames removes caaIdentities from the directory, so issuer
// names are known only from challenges and the solver must check.
var stripIssuerNames = rewriteDirectory(func(meta map[string]any) { delete(meta, "caaIdentities") })

type bufferedResponse struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) { b.status = code }

var _ io.Writer = (*bufferedResponse)(nil)

func TestSolverChecksAgainstTheChallengesIssuerNames(t *testing.T) {
	ca := startCA(t, acmetest.Options{Wrap: stripIssuerNames})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)

	_, err := iss.Issue(context.Background(), newCSR(t, "solver.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
		t.Fatalf("error = %v, want a missing RecordError", err)
	}
	if !strings.Contains(err.Error(), "pebble.letsencrypt.org; accounturi="+acctURL) {
		t.Errorf("error %q lacks the record with the challenge's issuer name", err)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("the CA received %d challenge POSTs", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("orders = %d; without directory names the order is needed to learn them", n)
	}

	iss.publish(t, "solver.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "solver.test")); err != nil {
		t.Fatal(err)
	}
}

func TestVanishedAccountIsReplacedLoudlyAndKept(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	oldURL := iss.accountURL(t)
	iss.publish(t, "vanish.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "vanish.test")); err != nil {
		t.Fatal(err)
	}
	loc := locateAccount(ca.URL, iss.Email)
	oldKey, _ := iss.storage.Load(context.Background(), loc.Key)

	ca.Reset() // the CA forgets every account
	_, err := iss.Issue(context.Background(), newCSR(t, "vanish.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || !recErr.Verdict.Has(record.MismatchAccount) {
		t.Fatalf("error = %v, want an accounturi mismatch for the old record", err)
	}
	newURL := iss.accountURL(t)
	if newURL == oldURL {
		t.Fatal("the account was not replaced")
	}

	first := iss.logs.FilterMessageSnippet("no longer exists").All()
	replaced := iss.logs.FilterMessageSnippet("replaced the vanished").All()
	if len(first) != 1 || len(replaced) != 1 {
		t.Fatalf("logs: %d 'no longer exists', %d 'replaced'", len(first), len(replaced))
	}
	fields := replaced[0].ContextMap()
	if fields["old_account_url"] != oldURL || fields["new_account_url"] != newURL {
		t.Errorf("log fields = %v", fields)
	}
	if recs, _ := fields["records"].([]any); len(recs) != 1 || !strings.Contains(recs[0].(string), newURL) {
		t.Errorf("logged records = %v", fields["records"])
	}

	// the old key is set aside, not lost
	keys, err := iss.storage.List(context.Background(), filepath.Dir(loc.Key), false)
	if err != nil {
		t.Fatal(err)
	}
	var kept bool
	for _, k := range keys {
		if strings.Contains(k, ".key.vanished-") {
			data, _ := iss.storage.Load(context.Background(), k)
			kept = bytes.Equal(data, oldKey)
		}
	}
	if !kept {
		t.Errorf("the old key is not kept among %v", keys)
	}

	iss.publish(t, "vanish.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "vanish.test")); err != nil {
		t.Fatal(err)
	}
}

func TestPreCheckRefusesIPAddresses(t *testing.T) {
	iss := &Issuer{}
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
	if !info.SuggestedWindow.Start.Before(leaf.NotAfter) {
		t.Errorf("renewal window %+v", info.SuggestedWindow)
	}
	if err := iss.Revoke(context.Background(), certmagic.CertificateResource{CertificatePEM: cert.Certificate}, 0); err != nil {
		t.Fatal(err)
	}
	if n := ca.Counts.Get(acmetest.KindRevoke + " 200"); n != 1 {
		t.Errorf("revocations = %d", n)
	}
}

// The wait for a record ends by the issuer's clock, so the propagation
// deadline moves with a controlled clock as every other time does.
func TestPropagationDeadlineFollowsTheIssuersClock(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now()}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.now = clock.Now
		iss.PropagationTimeout = caddy.Duration(time.Hour)
	})
	iss.accountURL(t)
	csr := newCSR(t, "deadline.test")

	done := make(chan error, 1)
	go func() {
		_, err := iss.Issue(context.Background(), csr)
		done <- err
	}()
	// the first look finds nothing and logs the record to publish
	for len(iss.logs.FilterMessageSnippet("record missing").All()) == 0 {
		select {
		case err := <-done:
			t.Fatalf("Issue returned before the hour passed: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	clock.Advance(time.Hour)
	select {
	case err := <-done:
		var recErr *RecordError
		if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
			t.Errorf("error = %v, want the record missing", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("an hour passed on the issuer's clock, and the wait went on")
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders without a record", n)
	}
}
