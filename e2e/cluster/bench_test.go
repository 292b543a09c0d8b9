package cluster

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// benchNames is how many names BenchmarkTwentyNames obtains.
const benchNames = 20

// BenchmarkTwentyNames measures a cluster obtaining certificates for 20
// names, on 1 instance and on 3 sharing the etcd storage: the time from
// `caddy run` until every instance serves every name, the storage
// operations per certificate (counted by the storage, all instances
// together, start-up included), and the time spent waiting for locks.
// Run it alone: go test -run '^$' -bench TwentyNames -benchtime 1x ./e2e/cluster/
func BenchmarkTwentyNames(b *testing.B) {
	for _, instances := range []int{1, 3} {
		b.Run(fmt.Sprintf("instances=%d", instances), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				c := newCluster(b, instances, acmetest.Options{})
				var names []string
				for i := range benchNames {
					names = append(names, fmt.Sprintf("b%d.bench.test", i))
				}
				cfg := c.caddyfile("Caddyfile", "15s", "", c.site(strings.Join(names, ", ")))
				c.publishRecords(c.nodes[0], "--config", cfg)
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for _, n := range c.nodes {
					c.start(n, cfg)
				}
				for _, n := range c.nodes {
					for _, name := range names {
						wg.Go(func() {
							if _, err := c.tryHandshake(n, name, 2*time.Minute); err != nil {
								b.Error(err)
							}
						})
					}
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				c.report(b, elapsed)
			}
		})
	}
}

// report logs and reports the figures of one run.
func (c *cluster) report(b *testing.B, elapsed time.Duration) {
	ops := make(map[string]float64)
	var total float64
	var waits []float64
	for _, n := range c.nodes {
		_, metrics := adminGet(b, n, "/metrics")
		for _, line := range strings.Split(metrics, "\n") {
			rest, ok := strings.CutPrefix(line, "caddy_etcd_storage_operations_total{")
			if !ok {
				continue
			}
			labels, value, _ := strings.Cut(rest, "} ")
			v, _ := strconv.ParseFloat(value, 64)
			op := strings.TrimSuffix(strings.TrimPrefix(strings.Split(labels, ",")[0], `operation="`), `"`)
			ops[op] += v
			total += v
		}
		for _, line := range strings.Split(n.proc.Logs.String(), "\n") {
			if strings.Contains(line, `"acquired lock"`) && strings.Contains(line, "issue_cert_") {
				waits = append(waits, parseLockLine(b, line).Waited)
			}
		}
	}
	sort.Float64s(waits)
	var sum float64
	for _, w := range waits {
		sum += w
	}
	mean, max := 0.0, 0.0
	if len(waits) > 0 {
		mean, max = sum/float64(len(waits)), waits[len(waits)-1]
	}
	orders := c.ca.Counts.Get(acmetest.KindNewOrder + " 201")
	b.ReportMetric(elapsed.Seconds(), "s/all-served")
	b.ReportMetric(total/benchNames, "storage-ops/cert")
	b.ReportMetric(mean*1000, "ms-lock-wait-mean")
	b.ReportMetric(max*1000, "ms-lock-wait-max")
	b.Logf("%d instances, %d names: every instance served every name %s after start; %d orders; storage operations %v (%.0f, %.1f per certificate); %d issuance locks taken, wait mean %.1f ms, max %.1f ms",
		len(c.nodes), benchNames, elapsed.Round(time.Millisecond), orders, ops, total, total/benchNames, len(waits), mean*1000, max*1000)
}
