package dnslookup

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/fakedns"
)

// authoritativeResolver returns a resolver that discovers zones and
// nameservers through recursive and asks the nameservers at authoritative's
// port: the two roles of DNS servers, kept on two servers so that a test
// sees which one was asked for the record.
func authoritativeResolver(t testing.TB, recursive, authoritative *fakedns.Server) *Resolver {
	t.Helper()
	_, port, _ := net.SplitHostPort(authoritative.Addr)
	return New(Options{Recursive: []string{recursive.Addr}, NameserverPort: port})
}

// onlyView returns the one view of an answer from servers that agree.
func onlyView(t *testing.T, ans Answer) View {
	t.Helper()
	if len(ans.Views) != 1 {
		t.Fatalf("answer has %d views, want 1: %+v", len(ans.Views), ans)
	}
	return ans.Views[0]
}

func TestLookupAsksTheAuthoritativeServersOncePerCheckWhenWarm(t *testing.T) {
	recursive, srv := fakedns.StartForTest(t), fakedns.StartForTest(t)
	recursive.AddZone("auth.test")
	srv.AddZone("auth.test")
	srv.SetTXT("_validation-persist.www.auth.test", "ca.example; accounturi=https://ca/1")
	r := authoritativeResolver(t, recursive, srv)

	ans, err := r.LookupTXT(context.Background(), "_validation-persist.www.auth.test")
	if err != nil || len(onlyView(t, ans).Values) != 1 {
		t.Fatalf("lookup = %+v, %v", ans, err)
	}
	// found through the zone's SOA, its NS record and the NS glue
	if recursive.QueriesFor("_validation-persist.www.auth.test", dns.TypeSOA) != 1 || recursive.QueriesFor("ns1.auth.test", dns.TypeA) != 0 {
		t.Errorf("discovery did not go through SOA and NS glue")
	}
	if recursive.QueriesFor("auth.test", dns.TypeNS) != 1 {
		t.Errorf("NS queries = %d, want 1", recursive.QueriesFor("auth.test", dns.TypeNS))
	}
	if n := recursive.QueriesFor("_validation-persist.www.auth.test", dns.TypeTXT); n != 0 {
		t.Errorf("the recursive server was asked for the record %d times; the authoritative one must be", n)
	}
	recursive.ResetCounts()
	srv.ResetCounts()
	for range 3 {
		if _, err := r.LookupTXT(context.Background(), "_validation-persist.www.auth.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Queries(); n != 3 {
		t.Errorf("three warm checks made %d queries, want 3", n)
	}
	if n := recursive.Queries(); n != 0 {
		t.Errorf("three warm checks asked the recursive server %d times, want 0", n)
	}
}

func TestLookupFollowsCNAMEIntoAnotherZone(t *testing.T) {
	recursive, srv := fakedns.StartForTest(t), fakedns.StartForTest(t)
	for _, zone := range []string{"customer.test", "delegate.test"} {
		recursive.AddZone(zone)
		srv.AddZone(zone)
	}
	srv.SetFollowCNAME(false)
	srv.SetCNAME("_validation-persist.customer.test", "customer.records.delegate.test")
	srv.SetTXT("customer.records.delegate.test", "ca.example; accounturi=https://ca/1")
	r := authoritativeResolver(t, recursive, srv)

	ans, err := r.LookupTXT(context.Background(), "_validation-persist.customer.test")
	if err != nil {
		t.Fatal(err)
	}
	if v := onlyView(t, ans); len(v.Values) != 1 || !slices.Equal(v.CNAMEs, []string{"customer.records.delegate.test"}) {
		t.Errorf("answer = %+v", ans)
	}
}

func TestLookupMissingIsNotAnError(t *testing.T) {
	srv := fakedns.StartForTest(t)
	srv.AddZone("empty.test")
	r := New(Options{Resolvers: []string{srv.Addr}})
	ans, err := r.LookupTXT(context.Background(), "_validation-persist.nowhere.empty.test")
	if err != nil || len(onlyView(t, ans).Values) != 0 {
		t.Errorf("NXDOMAIN gave %+v, %v; want no records and no error", ans, err)
	}
}

// quickTimeout is the query timeout of a lookup that only waits out a
// server that never answers.
const quickTimeout = 300 * time.Millisecond

func TestLookupFaultsAreBoundedDNSErrors(t *testing.T) {
	srv := fakedns.StartForTest(t)
	srv.AddZone("fault.test")
	// the silent server is waited out with a short timeout; the others
	// answer, with the default timeout, as a busy machine can be slow to
	// answer even on loopback
	patient := New(Options{Resolvers: []string{srv.Addr}})
	quick := New(Options{Resolvers: []string{srv.Addr}, QueryTimeout: quickTimeout})
	hundredAndOne := make([]string, 101)
	for i := range hundredAndOne {
		hundredAndOne[i] = "other.example; accounturi=https://x/" + strings.Repeat("n", i%10)
	}
	// 100 records of 600 octets: a TXT answer of about 60 KiB
	huge := make([]string, 100)
	for i := range huge {
		huge[i] = strings.Repeat("h", 600)
	}

	cases := []struct {
		name     string
		setup    func(name string)
		contains string
		// waits is what the lookup waits out: the bound below adds slack
		// that catches a lookup that never ends, not a busy machine
		waits time.Duration
	}{
		{"servfail", func(n string) { srv.SetFault(n, fakedns.ServFail) }, "SERVFAIL", 0},
		{"refused", func(n string) { srv.SetFault(n, fakedns.Refused) }, "REFUSED", 0},
		// a try over UDP and one over TCP, each bounded by the option
		{"timeout", func(n string) { srv.SetFault(n, fakedns.Silent) }, "no answer over tcp within " + quickTimeout.String(), 2 * quickTimeout},
		{"truncated", func(n string) { srv.SetFault(n, fakedns.TruncateAlways) }, "truncated even over TCP", 0},
		{"too many records", func(n string) { srv.SetTXT(n, hundredAndOne...) }, "101 TXT records", 0},
		{"64 KiB answer", func(n string) { srv.SetTXT(n, huge...) }, "refusing more than 16384", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "_validation-persist." + strings.ReplaceAll(c.name, " ", "-") + ".fault.test"
			c.setup(name)
			r := patient
			if c.waits > 0 {
				r = quick
			}
			start := time.Now()
			_, err := r.LookupTXT(context.Background(), name)
			var dnsErr *Error
			if !errors.As(err, &dnsErr) || !strings.Contains(err.Error(), c.contains) {
				t.Fatalf("error = %v, want an Error containing %q", err, c.contains)
			}
			if took, bound := time.Since(start), c.waits+20*time.Second; took > bound {
				t.Errorf("took %s, more than %s", took, bound)
			}
		})
	}
}

func TestLookupRetriesTruncatedUDPOverTCP(t *testing.T) {
	srv := fakedns.StartForTest(t)
	srv.AddZone("tc.test")
	srv.SetTXT("_validation-persist.tc.test", "ca.example; accounturi=https://ca/1")
	srv.SetFault("_validation-persist.tc.test", fakedns.TruncateUDP)
	r := New(Options{Resolvers: []string{srv.Addr}})
	ans, err := r.LookupTXT(context.Background(), "_validation-persist.tc.test")
	if err != nil || len(onlyView(t, ans).Values) != 1 {
		t.Fatalf("lookup = %+v, %v", ans, err)
	}
	if n := srv.QueriesFor("_validation-persist.tc.test", dns.TypeTXT); n != 2 {
		t.Errorf("queries = %d, want 2 (UDP, then TCP)", n)
	}
}

func TestRecentKeepsOnlyAnswersWithRecordsForAFewSeconds(t *testing.T) {
	srv := fakedns.StartForTest(t)
	srv.AddZone("recent.test")
	srv.SetTXT("_validation-persist.found.recent.test", "ca.example; accounturi=https://ca/1")
	now := time.Unix(1800000000, 0)
	r := New(Options{Resolvers: []string{srv.Addr}, Now: func() time.Time { return now }})
	for _, name := range []string{"_validation-persist.found.recent.test", "_validation-persist.absent.recent.test"} {
		if _, err := r.LookupTXT(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	if ans, ok := r.Recent("_validation-persist.found.recent.test"); !ok || len(onlyView(t, ans).Values) != 1 {
		t.Errorf("the answer with a record is not recent: %+v, %v", ans, ok)
	}
	if _, ok := r.Recent("_validation-persist.absent.recent.test"); ok {
		t.Error("an answer without records is kept as recent")
	}
	now = now.Add(recentTTL)
	if _, ok := r.Recent("_validation-persist.found.recent.test"); ok {
		t.Errorf("the answer is still recent after %s", recentTTL)
	}
}
