package dnslookup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/fakedns"
)

// zoneOnGroup serves zone from the servers at the given indexes of group,
// and has recursive name exactly those as its nameservers.
func zoneOnGroup(recursive *fakedns.Server, group []*fakedns.Server, zone string, at ...int) {
	var servers []*fakedns.Server
	for _, i := range at {
		servers = append(servers, group[i])
	}
	fakedns.ServeZone(recursive, zone, servers...)
}

// groupResolver is a resolver configured by opts that discovers zones
// through recursive and asks the group's servers, which share a port.
func groupResolver(t testing.TB, recursive *fakedns.Server, group []*fakedns.Server, opts Options) *Resolver {
	t.Helper()
	_, port, _ := net.SplitHostPort(group[0].Addr)
	opts.Recursive, opts.NameserverPort = []string{recursive.Addr}, port
	return New(opts)
}

// silentTimeout is the query timeout of tests with a server that never
// answers, which each lookup waits out twice, over UDP and over TCP. A
// lookup that also needs an answer from another server gives it as long,
// so it stays well above what a loaded machine takes on loopback.
const silentTimeout = time.Second

func allIndexes(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

const ours = "ca.example; accounturi=https://ca/1"

func TestLookupAsksEveryNameserverOnce(t *testing.T) {
	for _, n := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d nameservers", n), func(t *testing.T) {
			recursive := fakedns.StartForTest(t)
			group := fakedns.StartGroupForTest(t, n)
			zoneOnGroup(recursive, group, "every.test", allIndexes(n)...)
			name := "_validation-persist.every.test"
			for _, s := range group {
				s.SetTXT(name, ours)
			}
			ans, err := groupResolver(t, recursive, group, Options{}).LookupTXT(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			view := onlyView(t, ans)
			if len(view.Servers) != n || !slices.Equal(view.Values, []string{ours}) {
				t.Errorf("view = %+v, want %d servers serving the record", view, n)
			}
			for i, s := range group {
				if q := s.QueriesFor(name, dns.TypeTXT); q != 1 {
					t.Errorf("nameserver %d was asked %d times, want once", i+1, q)
				}
				if label := fmt.Sprintf("ns%d.every.test (%s)", i+1, s.Addr); !slices.Contains(view.Servers, label) {
					t.Errorf("servers %v do not name %s", view.Servers, label)
				}
			}
		})
	}
}

func TestLookupKeepsEachServersAnswer(t *testing.T) {
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 3)
	zoneOnGroup(recursive, group, "lag.test", 0, 1, 2)
	name := "_validation-persist.lag.test"
	group[0].SetTXT(name, ours)
	group[2].SetTXT(name, ours, "other.example; accounturi=https://other/2")
	r := groupResolver(t, recursive, group, Options{})

	ans, err := r.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Views) != 3 {
		t.Fatalf("views = %+v, want three: the record, nothing, two records", ans.Views)
	}
	for i, want := range [][]string{{ours}, nil, {ours, "other.example; accounturi=https://other/2"}} {
		v := ans.Views[i]
		if !slices.Equal(v.Values, want) || len(v.Servers) != 1 || !strings.HasPrefix(v.Servers[0], fmt.Sprintf("ns%d.lag.test ", i+1)) {
			t.Errorf("view %d = %+v, want %q from ns%d", i, v, want, i+1)
		}
	}

	// servers that serve the same records in another order agree
	group[1].SetTXT(name, "other.example; accounturi=https://other/2", ours)
	group[0].SetTXT(name, ours, "other.example; accounturi=https://other/2")
	ans, err = r.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if v := onlyView(t, ans); len(v.Servers) != 3 {
		t.Errorf("servers in agreement = %v, want all three", v.Servers)
	}
}

func TestLookupSkipsAServerThatDoesNotAnswer(t *testing.T) {
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 2)
	zoneOnGroup(recursive, group, "dead.test", 0, 1)
	name := "_validation-persist.dead.test"
	group[0].SetTXT(name, ours)
	group[1].SetFault(name, fakedns.Silent)
	core, logs := observer.New(zap.DebugLevel)
	r := groupResolver(t, recursive, group, Options{Logger: zap.New(core), QueryTimeout: silentTimeout})

	for range 2 {
		ans, err := r.LookupTXT(context.Background(), name)
		if err != nil {
			t.Fatalf("one silent nameserver of two failed the lookup: %v", err)
		}
		if v := onlyView(t, ans); !slices.Equal(v.Values, []string{ours}) {
			t.Errorf("view = %+v", v)
		}
		if len(ans.Unanswered) != 1 || !strings.HasPrefix(ans.Unanswered[0].Server, "ns2.dead.test ") {
			t.Errorf("unanswered = %+v, want ns2", ans.Unanswered)
		}
	}
	skipped := logs.FilterMessageSnippet("did not answer").All()
	if len(skipped) != 1 {
		t.Fatalf("logged %d skips over two lookups, want 1 (once an hour)", len(skipped))
	}
	if server := skipped[0].ContextMap()["server"]; !strings.HasPrefix(fmt.Sprint(server), "ns2.dead.test ") {
		t.Errorf("the log names %v, want ns2", server)
	}

	// a lame server, which answers without authority, is skipped too
	group[1].SetFault(name, fakedns.Lame)
	ans, err := r.LookupTXT(context.Background(), name)
	if err != nil || len(ans.Views) != 1 || len(ans.Unanswered) != 1 || !errors.Is(ans.Unanswered[0].Err, errNotAuthoritative) {
		t.Errorf("with ns2 lame: %+v, %v; want the record from ns1 and ns2 skipped as lame", ans, err)
	}

	// with every server silent there is nothing to judge by
	group[0].SetFault(name, fakedns.ServFail)
	_, err = r.LookupTXT(context.Background(), name)
	var dnsErr *Error
	if !errors.As(err, &dnsErr) || !strings.Contains(err.Error(), "no server answered") || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("error = %v, want an Error saying no server answered", err)
	}
}

func TestLookupAsksEveryServerAtEachAliasHop(t *testing.T) {
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 4)
	zoneOnGroup(recursive, group, "customer.test", 0, 1)
	zoneOnGroup(recursive, group, "provider.test", 2, 3)
	name := "_validation-persist.customer.test"
	for _, s := range group[:2] {
		s.SetCNAME(name, "customer.provider.test")
	}
	group[2].SetTXT("customer.provider.test", ours)
	r := groupResolver(t, recursive, group, Options{})

	ans, err := r.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Views) != 2 {
		t.Fatalf("views = %+v, want the provider's two servers apart", ans.Views)
	}
	for i, v := range ans.Views {
		if !slices.Equal(v.CNAMEs, []string{"customer.provider.test"}) || len(v.Servers) != 1 || !strings.HasPrefix(v.Servers[0], fmt.Sprintf("ns%d.provider.test ", i+1)) {
			t.Errorf("view %d = %+v", i, v)
		}
	}
	if len(ans.Views[0].Values) != 1 || len(ans.Views[1].Values) != 0 {
		t.Errorf("values = %q and %q, want the record at ns1 only", ans.Views[0].Values, ans.Views[1].Values)
	}
	for i, s := range group {
		if s.Queries() == 0 {
			t.Errorf("server %d was never asked", i+1)
		}
	}
}

func TestLookupAsksEveryConfiguredResolver(t *testing.T) {
	a, b := fakedns.StartForTest(t), fakedns.StartForTest(t)
	name := "_validation-persist.resolvers.test"
	for _, s := range []*fakedns.Server{a, b} {
		s.AddZone("resolvers.test")
	}
	a.SetTXT(name, ours)
	r := New(Options{Resolvers: []string{a.Addr, b.Addr}})
	ans, err := r.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Views) != 2 || !slices.Equal(ans.Views[0].Servers, []string{a.Addr}) || !slices.Equal(ans.Views[1].Servers, []string{b.Addr}) || len(ans.Views[1].Values) != 0 {
		t.Errorf("views = %+v, want the record at %s and none at %s", ans.Views, a.Addr, b.Addr)
	}
}

// TestZoneIsFoundInOneQuestion: a negative answer names the zone by its
// SOA record, so finding the zone of a name three labels below it costs
// one SOA query, and the names above it, which a CAA lookup climbs
// through, cost none.
func TestZoneIsFoundInOneQuestion(t *testing.T) {
	t.Parallel()
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 1)
	zoneOnGroup(recursive, group, "soa.test", 0)
	name := "_validation-persist.a.b.soa.test"
	group[0].SetTXT(name, ours)
	r := groupResolver(t, recursive, group, Options{})
	soaQueries := func() int {
		n := 0
		for _, q := range []string{name, "a.b.soa.test", "b.soa.test", "soa.test"} {
			n += recursive.QueriesFor(q, dns.TypeSOA)
		}
		return n
	}
	if _, err := r.LookupTXT(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if n := soaQueries(); n != 1 {
		t.Errorf("finding the zone of %s took %d SOA queries, want 1", name, n)
	}
	if _, err := r.LookupCAA(context.Background(), "a.b.soa.test"); err != nil {
		t.Fatal(err)
	}
	if n := soaQueries(); n != 1 {
		t.Errorf("the CAA lookup of a.b.soa.test asked %d more SOA queries, want none", n-1)
	}
}
