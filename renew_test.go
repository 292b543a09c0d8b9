package persist

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// stored returns the certificate certmagic keeps for name under the
// issuer's key, and the ACME metadata saved with it.
func (ti *testIssuer) stored(t testing.TB, name string) (*x509.Certificate, acme.Certificate) {
	t.Helper()
	ctx := context.Background()
	certPEM, err := ti.storage.Load(ctx, certmagic.StorageKeys.SiteCert(ti.IssuerKey(), name))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := firstCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	metaJSON, err := ti.storage.Load(ctx, certmagic.StorageKeys.SiteMeta(ti.IssuerKey(), name))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		IssuerData acme.Certificate `json:"issuer_data"`
	}
	if err := json.Unmarshal(metaJSON, &meta); err != nil {
		t.Fatal(err)
	}
	return leaf, meta.IssuerData
}

func ariID(t testing.TB, leaf *x509.Certificate) string {
	t.Helper()
	id, err := acme.ARIUniqueIdentifier(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func renew(t testing.TB, ti *testIssuer, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ti.magic.RenewCertSync(ctx, name, true); err != nil {
		t.Fatalf("renewing %s: %v", name, err)
	}
}

func obtain(t testing.TB, ti *testIssuer, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ti.magic.ObtainCertSync(ctx, name); err != nil {
		t.Fatalf("obtaining %s: %v", name, err)
	}
}

func TestRenewalNamesTheReplacedCertificate(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "ari.test", false)

	obtain(t, iss, "ari.test")
	first, _ := iss.stored(t, "ari.test")
	renew(t, iss, "ari.test")
	second, meta := iss.stored(t, "ari.test")

	want := []string{"", ariID(t, first)}
	if got := ca.Counts.Replaces(); !slices.Equal(got, want) {
		t.Errorf("replaces of the new orders at the CA = %q, want %q (none on the first obtain, the first certificate on renewal)", got, want)
	}
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("the renewal stored the same certificate")
	}
	if meta.CA != ca.URL {
		t.Errorf("stored CA = %q", meta.CA)
	}
	if iss.logs.FilterMessage("renewing with ARI replaces").Len() != 1 {
		t.Error("the renewal did not log that it names the replaced certificate")
	}
}

func TestRenewalDoesNotNameAnotherCAsCertificate(t *testing.T) {
	t.Parallel()
	caA := startCA(t, acmetest.Options{})
	caB := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	issA := newTestIssuer(t, caA, dir, nil)
	issA.publish(t, "other-ca.test", false)
	obtain(t, issA, "other-ca.test")

	// the certificate appears under B's key, as a copied storage would
	// put it
	issB := newTestIssuer(t, caB, dir, nil)
	from := filepath.Join(dir, certmagic.StorageKeys.CertsSitePrefix(issA.IssuerKey(), "other-ca.test"))
	to := filepath.Join(dir, certmagic.StorageKeys.CertsSitePrefix(issB.IssuerKey(), "other-ca.test"))
	copyDir(t, from, to)
	issB.publish(t, "other-ca.test", false)

	renew(t, issB, "other-ca.test")
	if got := caB.Counts.Replaces(); !slices.Equal(got, []string{""}) {
		t.Errorf("replaces sent to CA B = %q, want one order without", got)
	}
	if issB.logs.FilterMessage("the stored certificate is from another CA or ACME account; ordering without ARI replaces").Len() != 1 {
		t.Error("no log says why the order goes without replaces")
	}
	if _, meta := issB.stored(t, "other-ca.test"); meta.CA != caB.URL {
		t.Errorf("stored CA after renewal = %q, want B's", meta.CA)
	}
}

func TestRenewalDoesNotNameAnotherAccountsCertificate(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	first := newTestIssuer(t, ca, dir, nil)
	first.publish(t, "other-acct.test", false)
	obtain(t, first, "other-acct.test")

	// another email is another account at the same CA, whose certificates
	// share the CA's folder
	second := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.Email = "other@example.test" })
	second.publish(t, "other-acct.test", false)
	renew(t, second, "other-acct.test")

	if got := ca.Counts.Replaces(); !slices.Equal(got, []string{"", ""}) {
		t.Errorf("replaces at the CA = %q, want none: the CA lets only the account that obtained a certificate replace it", got)
	}
}

// refuseFirstReplacing answers the first new order that carries replaces
// with an ACME problem, as a CA that will not take the field does.
func refuseFirstReplacing(problemType string, status int) (func(http.Handler) http.Handler, *atomic.Int32) {
	var refused atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if acmetest.KindOf(r) == acmetest.KindNewOrder && acmetest.ReadNewOrder(r).Replaces != "" && refused.Add(1) == 1 {
				acmetest.WriteProblem(w, status, problemType, "refused by the test")
				return
			}
			next.ServeHTTP(w, r)
		})
	}, &refused
}

func TestRenewalRetriesOnceWithoutReplacesWhenRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		problem string
		status  int
	}{
		// acmez's own retry, which the renewal relies on
		{acme.ProblemTypeAlreadyReplaced, http.StatusConflict},
		// the issuer's
		{acme.ProblemTypeMalformed, http.StatusBadRequest},
	} {
		t.Run(tc.problem[len(acme.ProblemTypeNamespace):], func(t *testing.T) {
			wrap, refused := refuseFirstReplacing(tc.problem, tc.status)
			ca := startCA(t, acmetest.Options{Wrap: wrap})
			iss := newTestIssuer(t, ca, t.TempDir(), nil)
			iss.publish(t, "refused.test", false)
			obtain(t, iss, "refused.test")
			first, _ := iss.stored(t, "refused.test")

			renew(t, iss, "refused.test")
			want := []string{"", ariID(t, first), ""}
			if got := ca.Counts.Replaces(); !slices.Equal(got, want) {
				t.Errorf("replaces of the new orders = %q, want %q: the refused order, then one without", got, want)
			}
			if n := refused.Load(); n != 1 {
				t.Errorf("orders carrying replaces = %d, want 1", n)
			}
			second, _ := iss.stored(t, "refused.test")
			if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
				t.Error("the renewal stored no new certificate")
			}
		})
	}
}

// TestRenewalOrdersOnceWhenItsOrderFailsLater: a renewal whose order
// the CA created, and which then fails (here at finalize, with a problem
// of the type a refused replaces would carry), is not ordered again
// without replaces: the CA took the field.
func TestRenewalOrdersOnceWhenItsOrderFailsLater(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() && acmetest.KindOf(r) == acmetest.KindFinalize {
				acmetest.WriteProblem(w, http.StatusBadRequest, acme.ProblemTypeMalformed, "refused by the test")
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	iss.publish(t, "later.test", false)
	obtain(t, iss, "later.test")
	first, _ := iss.stored(t, "later.test")

	failing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := iss.magic.RenewCertSync(ctx, "later.test", true); err == nil {
		t.Fatal("the renewal succeeded though finalize failed")
	}
	if got, want := ca.Counts.Replaces(), []string{"", ariID(t, first)}; !slices.Equal(got, want) {
		t.Errorf("replaces of the new orders = %q, want %q: one renewal order, not another without replaces", got, want)
	}
}

func TestRefusesReplaces(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		// acmez orders again without replaces itself
		{"alreadyReplaced", acme.Problem{Type: acme.ProblemTypeAlreadyReplaced}, false},
		{"wrapped malformed", fmt.Errorf("creating new order: %w", acme.Problem{Type: acme.ProblemTypeMalformed}), true},
		{"unauthorized", acme.Problem{Type: acme.ProblemTypeUnauthorized}, true},
		{"failed validation", acme.Problem{Type: acme.ProblemTypeUnauthorized, Resource: acme.Authorization{}}, false},
		{"rate limited", acme.Problem{Type: acme.ProblemTypeRateLimited}, false},
		{"not a problem", os.ErrDeadlineExceeded, false},
	} {
		if got := refusesReplaces(tc.err); got != tc.want {
			t.Errorf("%s: refusesReplaces = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestShortLivedRenewalsWithOneRecord renews a certificate of a
// short-lived profile twice, driven by certmagic as Caddy drives it, with
// the record published once: the same account every time, no DNS write,
// every renewal order naming the certificate it replaces.
func TestShortLivedRenewalsWithOneRecord(t *testing.T) {
	t.Parallel()
	const validity = 10 * time.Minute
	ca := startCA(t, acmetest.Options{Profiles: map[string]time.Duration{"shortlived": validity}})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.Profile = "shortlived" })
	const name = "short.test"
	value := iss.publish(t, name, false)
	writes := acmetest.TXTWrites(record.Name(name))
	acctURL := iss.accountURL(t)

	obtain(t, iss, name)
	var leaves []*x509.Certificate
	for i := 0; ; i++ {
		leaf, meta := iss.stored(t, name)
		leaves = append(leaves, leaf)
		// Pebble, as X.509, counts the last second in: notAfter is
		// notBefore + validity - 1s
		if got := leaf.NotAfter.Sub(leaf.NotBefore); got != validity-time.Second {
			t.Errorf("certificate %d is valid for %s, want the profile's %s", i, got, validity)
		}
		if meta.Account != acctURL {
			t.Errorf("certificate %d was obtained by %s, want %s", i, meta.Account, acctURL)
		}
		if i == 2 {
			break
		}
		renew(t, iss, name)
	}

	want := []string{"", ariID(t, leaves[0]), ariID(t, leaves[1])}
	if got := ca.Counts.Replaces(); !slices.Equal(got, want) {
		t.Errorf("replaces of the new orders = %q, want %q", got, want)
	}
	if n := acmetest.TXTWrites(record.Name(name)) - writes; n != 0 {
		t.Errorf("%d DNS writes after the record was published", n)
	}
	srv, _, _ := acmetest.DNS()
	if got := srv.GetDNSTXTRecords(record.Name(name) + "."); !slices.Equal(got, []string{value}) {
		t.Errorf("the record is now %q, want the one published %q", got, value)
	}
	// each order is validated anew, against the one record; only Pebble
	// reuses a valid authorization now and then even when told not to
	// (its test is rand.Intn(100) > 0, false one time in a hundred)
	if n := ca.Counts.Get(acmetest.KindChallenge); n < 1 || n > 3 {
		t.Errorf("challenges = %d, want 3 (one per order), or fewer only by Pebble's reuse", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("accounts registered = %d, want 1", n)
	}
	if leaves[1].SerialNumber.Cmp(leaves[0].SerialNumber) == 0 || leaves[2].SerialNumber.Cmp(leaves[1].SerialNumber) == 0 {
		t.Error("a renewal stored no new certificate")
	}
	t.Logf("3 orders, replaces %q, %d DNS writes, validity %s", ca.Counts.Replaces(), acmetest.TXTWrites(record.Name(name))-writes, leaves[2].NotAfter.Sub(leaves[2].NotBefore))
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
