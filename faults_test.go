package persist

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func TestIssueSurvivesHalfTheNoncesRejected(t *testing.T) {
	ca := startCA(t, acmetest.Options{NonceReject: 50})
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
	if testing.Short() {
		t.Skip("waits for certmagic's first retry, a minute; skipped with -short")
	}
	o := &outage{}
	ca := startCA(t, acmetest.Options{Wrap: o.wrap})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)
	iss.publish(t, "outage.test", false)

	o.down.Store(true)
	start := time.Now()
	time.AfterFunc(20*time.Second, func() { o.down.Store(false) })
	// non-interactive obtaining retries on certmagic's schedule until it
	// succeeds; it returns then
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := iss.magic.ObtainCertAsync(ctx, "outage.test"); err != nil {
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

// failFirst answers the first n requests of a kind with a fault, then
// lets the CA answer.
func failFirst(n int32, kind string, fault func(w http.ResponseWriter)) (func(http.Handler) http.Handler, *atomic.Int32) {
	var hits atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if acmetest.KindOf(r) == kind && hits.Add(1) <= n {
				fault(w)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, &hits
}

func TestCAFaultsGiveClearErrorsAndLeaveStorageIntact(t *testing.T) {
	// acmez itself retries a 500 twice; the fault outlasts that
	cases := []struct {
		name  string
		times int32
		kind  string
		fault func(w http.ResponseWriter)
		want  string
	}{
		{"500 on newOrder", 3, acmetest.KindNewOrder, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"database on fire"}`))
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
			loc := locateAccount(ca.URL, iss.Email)
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

func TestDNSFaultsDuringTheCheckPostNoChallenge(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	fake := fakedns.StartForTest(t)
	fake.AddZone("dnsfault.test")
	huge := make([]string, 100)
	for i := range huge {
		huge[i] = strings.Repeat("h", 600)
	}
	cases := []struct {
		name  string
		setup func(record string)
		want  string
	}{
		{"servfail", func(r string) { fake.SetFault(r, fakedns.ServFail) }, "SERVFAIL"},
		{"timeout", func(r string) { fake.SetFault(r, fakedns.Silent) }, "no answer over tcp within"},
		{"truncated", func(r string) { fake.SetFault(r, fakedns.TruncateAlways) }, "truncated even over TCP"},
		{"64KiB", func(r string) { fake.SetTXT(r, huge...) }, "refusing more than"},
	}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.Resolvers = []string{fake.Addr}
		iss.PropagationTimeout = caddy.Duration(time.Second)
	})
	iss.accountURL(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := c.name + ".dnsfault.test"
			c.setup(record.Name(base))
			start := time.Now()
			_, err := iss.Issue(context.Background(), newCSR(t, base))
			var recErr *RecordError
			if !errors.As(err, &recErr) || recErr.Status() != record.StatusDNSError || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want a dns-error saying %q", err, c.want)
			}
			if took := time.Since(start); took > 4*dnslookup.QueryTimeout {
				t.Errorf("took %s", took)
			}
		})
	}
	if n := ca.Counts.Get(acmetest.KindChallenge) + ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("the CA received %d orders and challenges", n)
	}
}

func TestTwoInstancesOnOneStorageRegisterOnceAndOrderOncePerName(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	a := newTestIssuer(t, ca, dir, nil)
	b := newTestIssuer(t, ca, dir, nil)
	names := []string{"one.shared.test", "two.shared.test", "three.shared.test"}
	// the record needs the account URL, which neither instance has yet;
	// publish after the first registration, as an operator would
	url := a.accountURL(t)
	a.accounts.forget()
	for _, n := range names {
		setTXT(t, record.Name(n), "pebble.letsencrypt.org; accounturi="+url)
	}
	// a second storage-sharing pair starting from nothing
	fresh := t.TempDir()
	c := newTestIssuer(t, ca, fresh, nil)
	d := newTestIssuer(t, ca, fresh, nil)

	var wg sync.WaitGroup
	for _, inst := range []*testIssuer{a, b} {
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := inst.magic.ObtainCertSync(context.Background(), n); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	var urls [2]string
	for i, inst := range []*testIssuer{c, d} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct, err := inst.accounts.get(context.Background(), true)
			if err != nil {
				t.Error(err)
				return
			}
			urls[i] = acct.Location
		}()
	}
	wg.Wait()
	ordered := ca.Counts.Ordered()
	for _, n := range names {
		if ordered[n] != 1 {
			t.Errorf("%s was ordered %d times, want 1", n, ordered[n])
		}
	}
	if urls[0] == "" || urls[0] != urls[1] {
		t.Errorf("instances starting together got accounts %v", urls)
	}
	// one account for the first storage, one for the second
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 2 {
		t.Errorf("registrations = %d, want 2 (one per storage)", n)
	}
}

func TestUnusableAccountStopsIssuingAndKeepsTheFiles(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(loc accountLocation, dir string) string
		wantKey string
	}{
		{"corrupt JSON", func(loc accountLocation, dir string) string {
			os.WriteFile(filepath.Join(dir, loc.Reg), []byte("{not json"), 0o600)
			return loc.Reg
		}, "corrupt account JSON"},
		{"truncated JSON", func(loc accountLocation, dir string) string {
			data, _ := os.ReadFile(filepath.Join(dir, loc.Reg))
			os.WriteFile(filepath.Join(dir, loc.Reg), data[:len(data)/2], 0o600)
			return loc.Reg
		}, "corrupt account JSON"},
		{"unreadable key", func(loc accountLocation, dir string) string {
			os.WriteFile(filepath.Join(dir, loc.Key), []byte("-----BEGIN EC PRIVATE KEY-----\ngarbage\n-----END EC PRIVATE KEY-----\n"), 0o600)
			return loc.Key
		}, "unreadable private key"},
		{"lost key", func(loc accountLocation, dir string) string {
			os.Remove(filepath.Join(dir, loc.Key))
			return loc.Key
		}, "account key is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ca := startCA(t, acmetest.Options{})
			dir := t.TempDir()
			first := newTestIssuer(t, ca, dir, nil)
			oldURL := first.accountURL(t)
			loc := locateAccount(ca.URL, first.Email)
			damaged := c.damage(loc, dir)
			before := snapshot(t, dir)

			iss := newTestIssuer(t, ca, dir, nil)
			_, err := iss.Issue(context.Background(), newCSR(t, "unusable.test"))
			var serr *StorageError
			if !errors.As(err, &serr) || serr.Key != damaged || !strings.Contains(err.Error(), damaged) || !strings.Contains(err.Error(), c.wantKey) {
				t.Fatalf("error = %v, want a StorageError naming %s", err, damaged)
			}
			if !strings.Contains(err.Error(), "README") {
				t.Errorf("the error does not point to the recovery steps: %v", err)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("storage changed:\nbefore %s\nafter  %s", before, after)
			}
			if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
				t.Errorf("registrations = %d, want 1", n)
			}

			// the deliberate way out: a damaged registration beside a
			// readable key is rebuilt from the CA, keeping the account; a
			// damaged or lost key means a new account
			repl := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.NewAccountIfMissing = true })
			_, err = repl.Issue(context.Background(), newCSR(t, "unusable.test"))
			var recErr *RecordError
			if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
				t.Fatalf("after the repair: %v, want the record missing", err)
			}
			newURL := repl.accountURL(t)
			if damaged == loc.Reg {
				if newURL != oldURL {
					t.Errorf("the account changed from %s to %s though the CA still knew its key", oldURL, newURL)
				}
				if n := len(repl.logs.FilterMessageSnippet("rebuilt an unusable account registration").All()); n != 1 {
					t.Errorf("%d 'rebuilt' log entries", n)
				}
				if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
					t.Errorf("registrations = %d, want 1", n)
				}
			} else {
				entries := repl.logs.FilterMessageSnippet("republish these records").All()
				if len(entries) != 1 {
					t.Fatalf("%d 'republish' log entries", len(entries))
				}
				f := entries[0].ContextMap()
				recs, _ := f["records"].([]any)
				if newURL == oldURL || f["old_account_url"] != oldURL || f["new_account_url"] != newURL || len(recs) != 1 || !strings.Contains(recs[0].(string), newURL) {
					t.Errorf("log fields = %v", f)
				}
			}
			set := 0
			for _, name := range listFiles(t, filepath.Join(dir, filepath.Dir(loc.Key))) {
				if strings.Contains(name, ".unusable-") {
					set++
				}
			}
			if set == 0 {
				t.Error("the unusable files were not kept")
			}
		})
	}
}

// snapshot describes every file under dir, with its contents.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.Contains(path, "/locks/") {
			return nil
		}
		data, _ := os.ReadFile(path)
		b.WriteString(path + "=" + string(data) + ";")
		return nil
	})
	return b.String()
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestAccountKeyIsStoredPrivately(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	iss := newTestIssuer(t, ca, dir, nil)
	iss.accountURL(t)
	info, err := os.Stat(filepath.Join(dir, locateAccount(ca.URL, iss.Email).Key))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("account key mode = %o, want 600", mode)
	}
}

func TestPlainHTTPDirectoryOnlyForInternalHosts(t *testing.T) {
	for ca, ok := range map[string]bool{
		"https://acme.example.com/directory":  true,
		"http://acme.example.com/directory":   false,
		"http://127.0.0.1:14000/dir":          true,
		"http://localhost:14000/dir":          true,
		"http://[::1]:14000/dir":              true,
		"http://10.1.2.3/dir":                 true,
		"http://ca.internal/dir":              true,
		"ftp://acme.example.com/directory":    false,
		"acme-v02.api.letsencrypt.org/direct": false,
	} {
		err := (&Issuer{CA: ca, now: time.Now}).Validate()
		if (err == nil) != ok {
			t.Errorf("Validate(ca=%s) = %v, want ok=%v", ca, err, ok)
		}
	}
}

func TestCAOfferingTooManyIssuerNamesIsRefused(t *testing.T) {
	names := []string{"a.example", "b.example", "c.example", "d.example", "e.example", "f.example", "g.example", "h.example", "i.example", "j.example", "k.example"}
	ca := startCA(t, acmetest.Options{IssuerNames: names})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	_, err := iss.Issue(context.Background(), newCSR(t, "many.test"))
	if err == nil || !strings.Contains(err.Error(), "11 issuer domain names") {
		t.Fatalf("error = %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders", n)
	}
}

func TestLostRegistrationIsRebuiltFromTheCA(t *testing.T) {
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	url := newTestIssuer(t, ca, dir, nil).accountURL(t)
	loc := locateAccount(ca.URL, "ops@example.test")
	if err := os.Remove(filepath.Join(dir, loc.Reg)); err != nil {
		t.Fatal(err)
	}
	iss := newTestIssuer(t, ca, dir, nil)
	if got := iss.accountURL(t); got != url {
		t.Errorf("account %s after losing the registration, want %s", got, url)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, loc.Reg)); err != nil {
		t.Errorf("the registration was not rebuilt: %v", err)
	}
}
