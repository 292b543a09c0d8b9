package dnslookup

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/fakedns"
)

// caaWorld serves zone from one authoritative server, found through
// recursive, which also answers for the names above the zone. The
// resolver's clock stands still until the test moves it.
func caaWorld(t *testing.T, zone string) (*fakedns.Server, *fakedns.Server, *Resolver, *time.Time) {
	t.Helper()
	recursive, srv := fakedns.StartForTest(t), fakedns.StartForTest(t)
	recursive.AddZone(zone)
	srv.AddZone(zone)
	_, port, _ := net.SplitHostPort(srv.Addr)
	now := time.Now()
	r := New(Options{Recursive: []string{recursive.Addr}, NameserverPort: port, Now: func() time.Time { return now }})
	return recursive, srv, r, &now
}

func onlySet(t *testing.T, ans CAAAnswer) CAASet {
	t.Helper()
	if len(ans.Sets) != 1 {
		t.Fatalf("answer has %d sets, want 1: %+v", len(ans.Sets), ans)
	}
	return ans.Sets[0]
}

func TestLookupCAAFindsTheFirstRRsetUpTheTree(t *testing.T) {
	recursive, srv, r, now := caaWorld(t, "climb.caatest")
	srv.SetCAA(t, "climb.caatest", `0 issue "ca.example"`)
	recursive.SetCAA(t, "caatest", `0 issue "tld.example"`)

	set := onlySet(t, lookupCAA(t, r, "a.b.climb.caatest"))
	if set.Name != "climb.caatest" || len(set.CAA) != 1 || set.CAA[0].Value != "ca.example" {
		t.Errorf("set = %+v, want the record at climb.caatest", set)
	}

	// records at the name itself hide its parents', and the name is
	// always asked afresh
	srv.SetCAA(t, "a.b.climb.caatest", `0 issue "ca.example"`)
	if set := onlySet(t, lookupCAA(t, r, "a.b.climb.caatest")); set.Name != "a.b.climb.caatest" {
		t.Errorf("set = %+v, want the record just published at the name", set)
	}
	srv.SetCAA(t, "a.b.climb.caatest")

	// a parent's answer is kept for a few seconds
	srv.SetCAA(t, "b.climb.caatest", `0 issuewild ";"`)
	if set := onlySet(t, lookupCAA(t, r, "a.b.climb.caatest")); set.Name != "climb.caatest" {
		t.Errorf("set = %+v, want the kept answers of the parents", set)
	}
	*now = now.Add(recentTTL + time.Second)
	ans := lookupCAA(t, r, "a.b.climb.caatest")
	if set := onlySet(t, ans); set.Name != "b.climb.caatest" || set.CAA[0].Tag != "issuewild" {
		t.Errorf("set = %+v, want the record at b.climb.caatest", set)
	}
	if !slices.Equal(ans.Asked, []string{"a.b.climb.caatest", "b.climb.caatest"}) {
		t.Errorf("asked %v; the climb must stop at the first RRset", ans.Asked)
	}
}

func TestLookupCAAWithNoneAnywhere(t *testing.T) {
	recursive, srv, r, now := caaWorld(t, "none.caatest2")
	ans := lookupCAA(t, r, "www.none.caatest2")
	t.Logf("cold: %d queries at the nameserver, %d at the recursive server", srv.Queries(), recursive.Queries())
	if set := onlySet(t, ans); set.Name != "" || len(set.CAA) != 0 {
		t.Errorf("set = %+v, want none", set)
	}
	if !slices.Equal(ans.Asked, []string{"www.none.caatest2", "none.caatest2", "caatest2"}) {
		t.Errorf("asked %v, want every name up to the TLD", ans.Asked)
	}

	if n := srv.QueriesFor("caatest2", dns.TypeCAA); n != 0 {
		t.Errorf("the nameserver was asked about the TLD above its zone %d times", n)
	}

	// warm: the name is asked again, its parent only once it is some
	// seconds old, the TLD above the zone not for minutes
	recursive.ResetCounts()
	srv.ResetCounts()
	lookupCAA(t, r, "www.none.caatest2")
	if n := srv.Queries(); n != 1 {
		t.Errorf("a warm check asked the nameserver %d times, want 1 (www)", n)
	}
	*now = now.Add(recentTTL + time.Second)
	lookupCAA(t, r, "www.none.caatest2")
	if n := srv.Queries(); n != 3 {
		t.Errorf("a warm check after %s asked the nameserver %d times in all, want 3 (www twice, the zone apex once)", recentTTL, n)
	}
	if n := recursive.Queries(); n != 0 {
		t.Errorf("a warm check asked the recursive server %d times, want 0: the answer above the zone is kept", n)
	}
}

func TestLookupCAAFollowsACNAMEAtTheName(t *testing.T) {
	_, srv, r, _ := caaWorld(t, "alias.caatest3")
	srv.SetFollowCNAME(true)
	srv.SetCNAME("www.alias.caatest3", "cdn.alias.caatest3")
	srv.SetCAA(t, "cdn.alias.caatest3", `0 issue "cdn-ca.example"`)
	srv.SetCAA(t, "alias.caatest3", `0 issue "ca.example"`)

	set := onlySet(t, lookupCAA(t, r, "www.alias.caatest3"))
	if set.Name != "www.alias.caatest3" || set.CAA[0].Value != "cdn-ca.example" || !slices.Equal(set.CNAMEs, []string{"cdn.alias.caatest3"}) {
		t.Errorf("set = %+v, want the alias target's records, found for www", set)
	}
}

func TestLookupCAAKeepsEachServersRRset(t *testing.T) {
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 2)
	zoneOnGroup(recursive, group, "split.caatest4", 0, 1)
	group[0].SetCAA(t, "www.split.caatest4", `0 issue "ca.example"`)
	group[1].SetCAA(t, "split.caatest4", `0 issue "other.example"`)
	group[0].SetCAA(t, "split.caatest4", `0 issue "other.example"`)

	ans := lookupCAA(t, groupResolver(t, recursive, group, Options{}), "www.split.caatest4")
	if len(ans.Sets) != 2 || ans.Sets[0].Name != "www.split.caatest4" || ans.Sets[1].Name != "split.caatest4" {
		t.Fatalf("sets = %+v, want the name's at one server and the parent's at the other", ans.Sets)
	}
}

func TestLookupCAAFailureIsADNSError(t *testing.T) {
	_, srv, r, _ := caaWorld(t, "fail.caatest5")
	srv.SetFault("fail.caatest5.", fakedns.ServFail)
	_, err := r.LookupCAA(context.Background(), "www.fail.caatest5")
	var lookupErr *Error
	if !errors.As(err, &lookupErr) {
		t.Fatalf("err = %v, want a lookup error", err)
	}
}

func lookupCAA(t *testing.T, r *Resolver, name string) CAAAnswer {
	t.Helper()
	ans, err := r.LookupCAA(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

func TestLookupCAAAsksTheRecursiveServersAboveTheZone(t *testing.T) {
	recursive, srv, r, _ := caaWorld(t, "tld.caatest6")
	recursive.SetCAA(t, "caatest6", `0 issue ";"`)
	set := onlySet(t, lookupCAA(t, r, "tld.caatest6"))
	if set.Name != "caatest6" || set.CAA[0].Value != ";" || !slices.Equal(set.Servers, []string{recursive.Addr}) {
		t.Errorf("set = %+v, want the TLD's record from the recursive server", set)
	}
	if n := srv.QueriesFor("caatest6", dns.TypeCAA); n != 0 {
		t.Errorf("the zone's nameserver was asked about the TLD %d times", n)
	}
}
