package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

// startNonOfferingCA starts a CA whose authorizations lack dns-persist-01
// while offering is false, as Let's Encrypt production's do today.
func startNonOfferingCA(t *testing.T) (*acmetest.CA, *atomic.Bool) {
	t.Helper()
	var offering atomic.Bool
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		stripped := acmetest.WithoutChallenge(acme.ChallengeTypeDNSPersist01)(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if offering.Load() {
				next.ServeHTTP(w, r)
				return
			}
			stripped.ServeHTTP(w, r)
		})
	}})
	return ca, &offering
}

func TestCANotOfferingTheChallengeFailsAtOnceAndIsRemembered(t *testing.T) {
	t.Parallel()
	ca, offering := startNonOfferingCA(t)
	clock := &controlledClock{now: time.Now()}
	dir := t.TempDir()
	iss := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.now = clock.Now })
	iss.publish(t, "nooffer.test", false)
	accounts := storagetest.Snapshot(t, filepath.Join(dir, "acme"))
	ctx := context.Background()

	_, err := iss.Issue(ctx, newCSR(t, "nooffer.test"))
	var notOffered *ChallengeNotOfferedError
	if !errors.As(err, &notOffered) {
		t.Fatalf("Issue = %v, want a ChallengeNotOfferedError", err)
	}
	if !slices.Equal(sorted(notOffered.Offered), []string{"dns-01", "dns-account-01", "http-01", "tls-alpn-01"}) {
		t.Errorf("offered = %v", notOffered.Offered)
	}
	for _, want := range []string{ca.URL, "did not offer dns-persist-01", "offered: ", "http-01", "docs/several-cas.md", `"issuer acme"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	wantOneOrderNoChallenge(t, ca)
	if logged := iss.logs.FilterMessageSnippet("does not offer dns-persist-01").Len(); logged != 1 {
		t.Errorf("logged the CA not offering %d times, want 1", logged)
	}
	if got := storagetest.Snapshot(t, filepath.Join(dir, "acme")); got != accounts {
		t.Error("remembering the CA touched the account files")
	}
	stored := filepath.Join(dir, "persist", certmagic.StorageKeys.Safe(iss.IssuerKey()), "dns-persist-01-not-offered.json")
	if _, err := os.Stat(stored); err != nil {
		t.Fatalf("the observation is not in storage: %v", err)
	}

	// within the hour: neither this instance nor another sharing the
	// storage places an order
	other := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.now = clock.Now })
	clock.Advance(notOfferedTTL - time.Second)
	for name, i := range map[string]*testIssuer{"this instance": iss, "another instance": other} {
		if _, err := i.Issue(ctx, newCSR(t, "nooffer.test")); !errors.As(err, &notOffered) {
			t.Errorf("%s: Issue = %v", name, err)
		}
		if err := i.PreCheck(ctx, []string{"nooffer.test"}, false); !errors.As(err, &notOffered) {
			t.Errorf("%s: PreCheck = %v", name, err)
		}
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("orders = %d within the hour, want still 1", n)
	}

	// after the hour the CA is asked again
	clock.Advance(time.Second)
	if err := iss.PreCheck(ctx, []string{"nooffer.test"}, false); err != nil {
		t.Errorf("PreCheck after the hour = %v", err)
	}
	if _, err := iss.Issue(ctx, newCSR(t, "nooffer.test")); !errors.As(err, &notOffered) {
		t.Errorf("Issue after the hour = %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 2 {
		t.Errorf("orders = %d after the hour, want 2", n)
	}

	// once the CA offers it, the next order succeeds and the
	// observation is gone
	offering.Store(true)
	clock.Advance(notOfferedTTL)
	cert, err := iss.Issue(ctx, newCSR(t, "nooffer.test"))
	if err != nil {
		t.Fatalf("Issue once the CA offers dns-persist-01: %v", err)
	}
	verifyIssued(t, ca, cert.Certificate, "nooffer.test")
	if _, err := os.Stat(stored); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the observation is still stored: %v", err)
	}
	if e := other.notOffered.last(ctx); e != nil {
		t.Errorf("another instance still knows %v", e)
	}
}

func TestCertmagicMovesOnFromACANotOfferingTheChallenge(t *testing.T) {
	t.Parallel()
	without, _ := startNonOfferingCA(t)
	with := startCA(t, acmetest.Options{})
	first := newTestIssuer(t, without, t.TempDir(), nil)
	second := newTestIssuer(t, with, t.TempDir(), nil)
	magic := first.magic
	magic.Issuers = []certmagic.Issuer{first.Issuer, second.Issuer}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for i, name := range []string{"first.next.test", "second.next.test"} {
		// both records are published: only the first CA's challenge is missing
		setTXT(t, record.Name(name), first.recordValue(t, false), second.recordValue(t, false))
		if err := magic.ObtainCertSync(ctx, name); err != nil {
			t.Fatalf("obtaining %s: %v", name, err)
		}
		if ok := magic.Storage.Exists(ctx, certmagic.StorageKeys.SiteCert(second.IssuerKey(), name)); !ok {
			t.Errorf("%s: no certificate from the second issuer", name)
		}
		if n := without.Counts.Get(acmetest.KindNewOrder); n != 1 {
			t.Errorf("%s: orders at the CA without dns-persist-01 = %d, want 1", name, n)
		}
		if n := with.Counts.Get(acmetest.KindNewOrder); n != i+1 {
			t.Errorf("%s: orders at the second CA = %d, want %d", name, n, i+1)
		}
	}
	if skipped := first.logs.FilterMessageSnippet("skipping this issuer").Len(); skipped != 1 {
		t.Errorf("the refusal was logged %d times, want 1", skipped)
	}
}

func TestCheckSaysTheCADoesNotOffer(t *testing.T) {
	t.Parallel()
	ca, _ := startNonOfferingCA(t)
	storage := t.TempDir()
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	body := persistSiteCaddyfile(storage, ca, "check.nooffer.test")
	if err := os.WriteFile(caddyfile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	running := provisionCaddyfile(t, body)
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	iss := &testIssuer{Issuer: sets[0].Issuer, logs: observeLogs(sets[0].Issuer)}
	iss.publish(t, "check.nooffer.test", false)
	ctx := context.Background()

	if _, err := iss.Issue(ctx, newCSR(t, "check.nooffer.test")); err == nil {
		t.Fatal("Issue succeeded at a CA without dns-persist-01")
	}

	// `caddy persist check` is another process: it knows from storage
	run := func(format string) (int, string) {
		cmd := persistSubcommand("check", "", "", cmdPersistCheck)
		cmd.Flags().Set("config", caddyfile)
		cmd.Flags().Set("format", format)
		var out, errOut bytes.Buffer
		code, err := runPersistCommand(caddycmd.Flags{FlagSet: cmd.Flags()}, true, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "1 of 1 dns-persist-01 records are not ok") {
			t.Errorf("check error = %v", err)
		}
		return code, out.String()
	}
	code, line := run("zone")
	if code == 0 {
		t.Error("check exited 0")
	}
	for _, want := range []string{"_validation-persist.check.nooffer.test: not-offered: CA " + ca.URL + " did not offer dns-persist-01 at ",
		"offered: ", "tls-alpn-01", `"issuer acme"`, "the record itself: ok"} {
		if !strings.Contains(line, want) {
			t.Errorf("check line %q does not say %q", line, want)
		}
	}
	if strings.Contains(line, "publish:") {
		t.Errorf("check line %q asks to publish a record that is ok", line)
	}

	_, out := run("json")
	var reports []RecordReport
	if err := json.Unmarshal([]byte(out), &reports); err != nil || len(reports) != 1 {
		t.Fatalf("json %q: %v", out, err)
	}
	r := reports[0]
	if r.Status != statusNotOffered || r.RecordStatus != record.StatusOK || r.NotOffered == nil ||
		r.NotOffered.Identifier != "check.nooffer.test" || !slices.Contains(r.NotOffered.Offered, "http-01") || r.NotOffered.ObservedAt.IsZero() {
		t.Errorf("json report %+v", r)
	}

	iss.checkServedRecords(ctx, running, 0)
	daily := iss.logs.FilterMessageSnippet("daily record check: the CA did not offer dns-persist-01").All()
	if len(daily) != 1 || daily[0].ContextMap()["ca"] != ca.URL {
		t.Errorf("daily check logged %v", daily)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("orders = %d, want 1: the checks place none", n)
	}
}

func TestAFutureObservationStopsNoOrder(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	iss := newTestIssuer(t, ca, dir, nil)
	iss.publish(t, "future.test", false)
	ctx := context.Background()
	forged, _ := json.Marshal(notOfferedFile{CA: ca.URL, ObservedAt: time.Now().Add(24 * time.Hour), Identifier: "future.test", Offered: []string{"http-01"}})
	if err := iss.storage.Store(ctx, notOfferedKey(iss.IssuerKey()), forged); err != nil {
		t.Fatal(err)
	}
	if err := iss.PreCheck(ctx, []string{"future.test"}, false); err != nil {
		t.Errorf("PreCheck = %v", err)
	}
	if _, err := iss.Issue(ctx, newCSR(t, "future.test")); err != nil {
		t.Errorf("Issue = %v", err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestOneAuthorizationWithoutTheChallengeFailsTheOrderBeforeAnyWait(t *testing.T) {
	t.Parallel()
	// issuer names only from challenges, so the records are awaited in
	// the solver's Present, during the order
	stripForB := acmetest.RewriteResponses(acmetest.KindAuthz, func(authz map[string]any) {
		if id, _ := authz["identifier"].(map[string]any); id["value"] == "b.mixed.test" {
			acmetest.WithoutType(authz, acme.ChallengeTypeDNSPersist01)
		}
	})
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler { return stripIssuerNames(stripForB(next)) }})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.PropagationTimeout = caddy.Duration(time.Minute) })
	// a.mixed.test's record is missing: awaiting it would take the minute
	iss.publish(t, "b.mixed.test", false)

	_, err := iss.Issue(context.Background(), newCSR(t, "a.mixed.test", "b.mixed.test"))
	var notOffered *ChallengeNotOfferedError
	if !errors.As(err, &notOffered) || notOffered.Identifier != "b.mixed.test" {
		t.Fatalf("Issue = %v, want a ChallengeNotOfferedError for b.mixed.test", err)
	}
	if n := iss.logs.FilterMessageSnippet("record missing").Len(); n != 0 {
		t.Errorf("a.mixed.test's record was awaited (%d notices) though the order could not succeed", n)
	}
	wantOneOrderNoChallenge(t, ca)
}

// wantOneOrderNoChallenge checks that the CA saw one order and no
// challenge POST: the order failed before any validation was asked for.
func wantOneOrderNoChallenge(t *testing.T, ca *acmetest.CA) {
	t.Helper()
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Errorf("challenge POSTs = %d, want 0", n)
	}
}
