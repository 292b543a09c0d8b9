package dnslookup

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// Micro-benchmarks of the record check: one lookup and its evaluation.
// They report figures, the DNS queries each check costs among them, and
// never assert timings; `go run ./bench` measures whole issuances.
//
//	go test -run '^$' -bench . -benchmem ./internal/dnslookup

// benchRecords are what a checked name holds: another CA's record, which
// the check skips as a CA does, then ours in its longest common form
// (wildcard policy and a persistUntil in 2028).
var benchRecords = []string{
	"ca.example.net; accounturi=https://ca.example.net/acct/42",
	"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1234567890; policy=wildcard; persistUntil=1830297600",
}

func benchExpectation(domain string) record.Expectation {
	return record.Expectation{
		Domain:      domain,
		Offered:     []string{"letsencrypt.org"},
		AccountURIs: []string{"https://acme-v02.api.letsencrypt.org/acme/acct/1234567890"},
		Wildcard:    true,
	}
}

// nameserverCounts are the zone sizes the benchmarks measure: every
// nameserver is asked at each check.
var nameserverCounts = []int{1, 2, 4}

// benchCases are the zones the benchmarks measure: unsigned, and signed
// (a KSK and a ZSK, NSEC), whose DNSSEC is judged at each check.
func benchCases(b *testing.B, run func(b *testing.B, signed bool, n int)) {
	for _, signed := range []bool{false, true} {
		kind := "unsigned"
		if signed {
			kind = "signed"
		}
		for _, n := range nameserverCounts {
			b.Run(fmt.Sprintf("%s/ns=%d", kind, n), func(b *testing.B) { run(b, signed, n) })
		}
	}
}

// benchZone is a zone served by n nameservers, found through a recursive
// server of its own, so that the queries of both roles are counted.
type benchZone struct {
	recursive *fakedns.Server
	group     []*fakedns.Server
}

func newBenchZone(b *testing.B, zone string, n int, signed bool) *benchZone {
	z := &benchZone{recursive: fakedns.StartForTest(b), group: fakedns.StartGroupForTest(b, n)}
	zoneOnGroup(z.recursive, z.group, zone, allIndexes(n)...)
	if signed {
		fakedns.SignedZone(b, z.recursive, zone, z.group, nil)
	}
	return z
}

func (z *benchZone) setTXT(name string, values ...string) {
	for _, s := range z.group {
		s.SetTXT(name, values...)
	}
}

func (z *benchZone) resolver(b *testing.B) *Resolver {
	return groupResolver(b, z.recursive, z.group, Options{})
}

func (z *benchZone) resetCounts() {
	z.recursive.ResetCounts()
	for _, s := range z.group {
		s.ResetCounts()
	}
}

// queries returns the queries of both roles since the last reset.
func (z *benchZone) queries() int {
	n := z.recursive.Queries()
	for _, s := range z.group {
		n += s.Queries()
	}
	return n
}

// BenchmarkCheckWarm is one check of a record (one lookup and its
// evaluation) by a resolver that finds the zone's authoritative servers
// itself and has found them already, as every check after the first, for
// zones of 1, 2 and 4 nameservers, unsigned and signed. It reports the
// DNS queries each check costs.
func BenchmarkCheckWarm(b *testing.B) {
	benchCases(b, func(b *testing.B, signed bool, n int) {
		z := newBenchZone(b, "warm.test", n, signed)
		name := record.Name("www.warm.test")
		z.setTXT(name, benchRecords...)
		r := z.resolver(b)
		exp := benchExpectation("www.warm.test")
		ctx := context.Background()
		if _, err := r.LookupTXT(ctx, name); err != nil {
			b.Fatal(err)
		}
		z.resetCounts()

		b.ReportAllocs()
		for b.Loop() {
			checkOnce(b, ctx, r, name, exp)
		}
		b.ReportMetric(float64(z.queries())/float64(b.N), "queries/op")
	})
}

// coldRun makes names unique across the runs of BenchmarkCheckCold, which
// share nothing but are easier to read in a server's counts apart.
var coldRun atomic.Int64

// BenchmarkCheckCold is the first check of a name by a fresh resolver:
// finding the zone (SOA queries up the name), its nameservers (NS, with
// glue for IPv4, a query for IPv6) and its DS records, then, for a
// signed zone, each server's DNSKEY RRset, and the record at each
// server, for zones of 1, 2 and 4 nameservers, unsigned and signed. Each
// iteration uses a new resolver and a name never looked up before, so
// nothing is cached.
func BenchmarkCheckCold(b *testing.B) {
	benchCases(b, func(b *testing.B, signed bool, n int) {
		z := newBenchZone(b, "cold.test", n, signed)
		run := coldRun.Add(1)
		names := make([]string, b.N)
		for i := range names {
			names[i] = fmt.Sprintf("c%d-%d.cold.test", run, i)
			z.setTXT(record.Name(names[i]), benchRecords...)
		}
		ctx := context.Background()
		z.resetCounts()

		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			checkOnce(b, ctx, z.resolver(b), record.Name(names[i]), benchExpectation(names[i]))
		}
		b.StopTimer()
		b.ReportMetric(float64(z.queries())/float64(b.N), "queries/op")
	})
}

// checkOnce looks name up and judges it in 2027, before the record's
// persistUntil.
func checkOnce(b *testing.B, ctx context.Context, r *Resolver, name string, exp record.Expectation) {
	ans, err := r.LookupTXT(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	in2027 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, view := range ans.Views {
		if view.DNSSEC != nil {
			b.Fatalf("at %v: %v", view.Servers, view.DNSSEC)
		}
		if v := record.Evaluate(exp, view.Values, in2027); v.Status != record.StatusOK {
			b.Fatalf("verdict at %v: %s: %s", view.Servers, v.Status, v.Reason())
		}
	}
}
