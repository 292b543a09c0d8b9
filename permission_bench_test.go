package persist

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/cache"
	"github.com/dnspersist/caddy-persist/internal/fakedns"
	"github.com/dnspersist/caddy-persist/internal/record"
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
	b.ReportMetric(heapMB, "heap-MB/10k-names")
	b.ReportMetric(0, "ns/op")
}
