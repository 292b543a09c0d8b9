package persist

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/cache"
	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/record"
	"github.com/miekg/dns"
)

// benchPermission sets up a permission whose issuer asks a local fake DNS
// server, with an account registered at an in-process Pebble.
func benchPermission(b *testing.B) (*Permission, func(name string)) {
	b.Helper()
	ca := startCA(b, acmetest.Options{})
	fake := fakedns.StartForTest(b)
	fake.AddZone("bench.test")
	iss := newTestIssuer(b, ca, b.TempDir(), func(iss *Issuer) { iss.Resolvers = []string{fake.Addr} })
	value := "pebble.letsencrypt.org; accounturi=" + iss.accountURL(b)
	p, _, _ := newTestPermission(b, iss.Issuer, nil)
	// warm the directory and account
	p.CertificateAllowed(context.Background(), "warmup.bench.test")
	return p, func(name string) { fake.SetTXT(record.Name(name), value) }
}

// BenchmarkPermissionCached measures checks answered from the cache.
func BenchmarkPermissionCached(b *testing.B) {
	p, publish := benchPermission(b)
	publish("cached.bench.test")
	ctx := context.Background()
	if err := p.CertificateAllowed(ctx, "cached.bench.test"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.CertificateAllowed(ctx, "cached.bench.test"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPermissionUncached measures checks of names never seen before,
// each needing one TXT lookup at the local DNS server.
func BenchmarkPermissionUncached(b *testing.B) {
	p, publish := benchPermission(b)
	ctx := context.Background()
	names := make([]string, b.N)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.bench.test", i)
		publish(names[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, name := range names {
		if err := p.CertificateAllowed(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPermissionCache10k measures the heap that 10,000 cached names
// hold, allowed and denied alike.
func BenchmarkPermissionCache10k(b *testing.B) {
	p, publish := benchPermission(b)
	ctx := context.Background()
	names := make([]string, 10000)
	for i := range names {
		names[i] = fmt.Sprintf("m%05d.bench.test", i)
		if i%2 == 0 {
			publish(names[i])
		}
	}
	var heapMB float64
	for range b.N {
		p.decisions = cache.NewExpiring[decision](maxCachedDecisions)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, name := range names {
			p.CertificateAllowed(ctx, name)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heapMB = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
	}
	b.ReportMetric(heapMB, "heap-MiB/10k-names")
	b.ReportMetric(0, "ns/op")
}

// floodDNS answers the permission's lookups without keeping anything: the
// tenants' records, and no record at every other name. A flood of a
// million names through a server that logs its queries would measure the
// log.
type floodDNS struct {
	addr    string
	records map[string]string
}

func startFloodDNS(b *testing.B, records map[string]string) *floodDNS {
	b.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	f := &floodDNS{addr: pc.LocalAddr().String(), records: records}
	srv := &dns.Server{PacketConn: pc, Handler: f}
	go srv.ActivateAndServe()
	b.Cleanup(func() { srv.Shutdown() })
	return f
}

func (f *floodDNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	name := strings.ToLower(q.Question[0].Name)
	switch value, ok := f.records[name]; {
	case ok && q.Question[0].Qtype == dns.TypeTXT:
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{value}})
	case !ok && q.Question[0].Qtype == dns.TypeTXT:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// BenchmarkPermissionFlood: a million random names from 64 goroutines
// while 1,000 tenants, whose decisions are cached, keep asking. It reports
// the tenants' latency (p50, p99), the flood's allocations per name and
// the heap the full decision cache holds. Run it once:
//
//	go test -run '^$' -bench PermissionFlood -benchtime 1x .
func BenchmarkPermissionFlood(b *testing.B) {
	const (
		tenants   = 1000
		flood     = 1_000_000
		flooders  = 64
		askEveryN = 1000 // tenant checks: one per this many flood names
	)
	ca := startCA(b, acmetest.Options{})
	probe := newTestIssuer(b, ca, b.TempDir(), nil)
	value := "pebble.letsencrypt.org; accounturi=" + probe.accountURL(b)
	records := make(map[string]string, tenants)
	names := make([]string, tenants)
	for i := range names {
		names[i] = fmt.Sprintf("t%04d.tenant.flood.test", i)
		records[dns.Fqdn(record.Name(names[i]))] = value
	}
	srv := startFloodDNS(b, records)
	iss := newTestIssuer(b, ca, probe.storage.Path, func(iss *Issuer) { iss.Resolvers = []string{srv.addr} })
	p, _, _ := newTestPermission(b, iss.Issuer, nil)
	ctx := context.Background()
	for _, name := range names {
		if err := p.CertificateAllowed(ctx, name); err != nil {
			b.Fatalf("tenant %s: %v", name, err)
		}
	}

	for range b.N {
		p.decisions = cache.NewExpiring[decision](maxCachedDecisions)
		for _, name := range names {
			p.CertificateAllowed(ctx, name)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)

		var next atomic.Int64
		var latencies []time.Duration
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range flooders {
			wg.Go(func() {
				var mine []time.Duration
				// the name costs one allocation, as a name read from a
				// ClientHello does, so allocs/flood-name are the check's
				var buf []byte
				for {
					i := next.Add(1)
					if i > flood {
						break
					}
					buf = append(strconv.AppendUint(append(buf[:0], 'r'), rand.Uint64(), 16), '-')
					buf = append(strconv.AppendInt(buf, i, 10), ".flood.test"...)
					p.CertificateAllowed(ctx, string(buf))
					if i%askEveryN == 0 {
						asked := time.Now()
						if err := p.CertificateAllowed(ctx, names[int(i/askEveryN)%tenants]); err != nil {
							b.Errorf("a tenant was denied during the flood: %v", err)
						}
						mine = append(mine, time.Since(asked))
					}
				}
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		took := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)

		slices.Sort(latencies)
		pct := func(q float64) float64 {
			return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds())
		}
		b.ReportMetric(pct(0.50), "tenant-p50-µs")
		b.ReportMetric(pct(0.99), "tenant-p99-µs")
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/flood, "allocs/flood-name")
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MiB-full")
		b.ReportMetric(float64(p.decisions.Len()), "cached-decisions")
		b.ReportMetric(float64(flood)/took.Seconds(), "flood-names/s")
		b.ReportMetric(0, "ns/op")
	}
}
