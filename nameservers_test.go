package persist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// twoNameservers gives iss a resolver without `resolvers`, as by default,
// that finds zone's two authoritative nameservers through a recursive
// server of its own. Pebble still validates through the test DNS server.
func twoNameservers(t *testing.T, iss *testIssuer, zone string) []*fakedns.Server {
	t.Helper()
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 2)
	fakedns.ServeZone(recursive, zone, group...)
	_, port, _ := net.SplitHostPort(group[0].Addr)
	iss.judge.Resolver = dnslookup.New(dnslookup.Options{Recursive: []string{recursive.Addr}, NameserverPort: port, QueryTimeout: iss.queryTimeout, Logger: iss.logger, Now: iss.now})
	return group
}

func TestIssueWaitsForEveryNameserver(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) {
		iss.PropagationTimeout = caddy.Duration(time.Minute)
	})
	ours := "pebble.letsencrypt.org; accounturi=" + iss.accountURL(t) + "; policy=wildcard"
	name := record.Name("lagging.test")
	group := twoNameservers(t, iss, "lagging.test")
	setTXT(t, name, ours)
	group[0].SetTXT(name, ours)

	done := make(chan error, 1)
	go func() {
		_, err := iss.Issue(context.Background(), newCSR(t, "*.lagging.test", "lagging.test"))
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for iss.logs.FilterMessageSnippet("not yet served by every nameserver").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the lagging nameserver; logs: %v", iss.logs.All())
		}
		time.Sleep(20 * time.Millisecond)
	}
	entry := iss.logs.FilterMessageSnippet("not yet served by every nameserver").All()[0]
	behind := fmt.Sprint(entry.ContextMap()["servers_behind"])
	if !strings.Contains(behind, "ns2.lagging.test ("+group[1].Addr+")") || strings.Contains(behind, "ns1.") {
		t.Errorf("servers_behind = %s, want ns2 alone", behind)
	}
	// the checks go on while ns2 lags, and the CA is not asked
	before := group[1].QueriesFor(name, dns.TypeTXT)
	for group[1].QueriesFor(name, dns.TypeTXT) < before+3 {
		select {
		case err := <-done:
			t.Fatalf("the issuance ended while ns2 lagged: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the issuer stopped looking at ns2 while it lagged")
		}
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n != 0 {
		t.Fatalf("the CA was asked to validate %d times while ns2 lacked the record", n)
	}

	group[1].SetTXT(name, ours)
	if err := <-done; err != nil {
		t.Fatalf("once ns2 caught up: %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindChallenge); n == 0 {
		t.Error("the certificate came without a challenge POST")
	}
}

func TestRecordErrorNamesTheServersBehind(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	acctURL := iss.accountURL(t)
	name := record.Name("split.test")
	group := twoNameservers(t, iss, "split.test")
	group[0].SetTXT(name, "pebble.letsencrypt.org; accounturi="+acctURL)
	group[1].SetTXT(name, "pebble.letsencrypt.org; accounturi=https://elsewhere.example/acct/1")

	in, err := iss.recordInputs(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	err = iss.checkRecord(context.Background(), in, "split.test", false)
	var recErr *RecordError
	if !errors.As(err, &recErr) {
		t.Fatalf("error = %v, want a RecordError", err)
	}
	if recErr.Status() != record.StatusMismatch || !recErr.verdict.Has(record.MismatchAccount) {
		t.Errorf("verdict = %+v, want ns2's accounturi mismatch", recErr.verdict)
	}
	if !slices.Equal(recErr.Servers(), []string{"ns2.split.test (" + group[1].Addr + ")"}) || !strings.Contains(err.Error(), "at ns2.split.test") {
		t.Errorf("error %q (servers %v) does not name ns2 alone", err, recErr.Servers())
	}

	// the report shows what the lagging server serves
	reports, err := iss.inspect(context.Background(), []string{"split.test"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if r := reports[0]; r.Status != record.StatusMismatch || !slices.Equal(r.Published, []string{"pebble.letsencrypt.org; accounturi=https://elsewhere.example/acct/1"}) || !strings.Contains(r.Reason, "ns2.split.test") {
		t.Errorf("report = %+v", r)
	}

	group[1].SetTXT(name, "pebble.letsencrypt.org; accounturi="+acctURL)
	if err := iss.checkRecord(context.Background(), in, "split.test", false); err != nil {
		t.Errorf("both servers serve the record: %v", err)
	}
}
