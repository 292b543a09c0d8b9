package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// The targets, checked against the medians and printed with the
// numbers measured. They are reported, never asserted: timings on a shared
// machine are too noisy to fail a build on.
const (
	maxPersistOverFloor = 1.10
	// warmChecksDNSQueries is what one record check may cost in DNS
	// queries once the resolver's caches are warm.
	warmCheckDNSQueries = 1.0
	// caaParentsKept is how long the resolver keeps the CAA answers of a
	// name's parents (dnslookup's recentTTL).
	caaParentsKept = "10s"
)

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// printTargets prints every target that the contenders run allow to judge.
// results maps N to the summaries of that N.
func printTargets(w io.Writer, ns []int, results map[int]map[string]summary) {
	fmt.Fprintln(w, "\nTargets (medians; PASS/MISS is reported, not enforced):")
	for _, n := range ns {
		sums := results[n]
		floor, haveFloor := sums["floor"]
		p, havePersist := sums["persist"]
		if !havePersist {
			continue
		}
		if haveFloor && (n >= 10) {
			r := float64(p.wall) / float64(floor.wall)
			fmt.Fprintf(w, "  persist/floor wall at N=%d: %.3f (target <= %.2f) %s\n", n, r, maxPersistOverFloor, verdict(r <= maxPersistOverFloor))
		} else if haveFloor {
			r := float64(p.wall) / float64(floor.wall)
			fmt.Fprintf(w, "  persist/floor wall at N=%d: %.3f (no target at this N)\n", n, r)
		}
		if h, ok := sums["http-01"]; ok {
			// http-01 obtains N certificates where persist obtains 2N
			// (it cannot do wildcards), so they are compared per
			// certificate: throughput (wall / certificates) decides,
			// latency (one certificate, start to end) is shown beside it
			r := float64(p.perCert) / float64(h.perCert)
			fmt.Fprintf(w, "  persist vs http-01 at N=%d, wall per certificate: %s vs %s = %.3f (target <= 1) %s; latency p50 %s vs %s; whole workload: persist %s for %d certs, http-01 %s for %d\n",
				n, roundDuration(p.perCert), roundDuration(h.perCert), r, verdict(r <= 1),
				roundDuration(p.latencyP50), roundDuration(h.latencyP50),
				roundDuration(p.wall), p.certs, roundDuration(h.wall), h.certs)
		}
		if d, ok := sums["dns-01"]; ok {
			r := float64(d.wall) / float64(p.wall)
			fmt.Fprintf(w, "  persist beats dns-01 at N=%d by %.2fx in wall time (%s vs %s, same %d certs) %s\n",
				n, r, roundDuration(p.wall), roundDuration(d.wall), p.certs, verdict(r > 1))
		}
		if haveFloor {
			same := math.Abs(p.acmeFixedPerCert-floor.acmeFixedPerCert) < 0.005
			fmt.Fprintf(w, "  ACME requests per certificate at N=%d: persist %.2f, floor %.2f; leaving out authz, order and nonce fetches, whose number depends on timing: persist %.2f, floor %.2f (target: equal) %s\n",
				n, p.acmePerCert, floor.acmePerCert, p.acmeFixedPerCert, floor.acmeFixedPerCert, verdict(same))
		}
		// every persist certificate here is one order with one base, so
		// one record check, which asks at most one query (none when the
		// issuer reuses a passing answer from moments before), and one
		// CAA check, which asks at the name and, every few seconds, at
		// each parent
		txt := p.dnsByType["client TXT"]
		fmt.Fprintf(w, "  persist client TXT queries per certificate at N=%d, one record check each (resolvers configured): %.2f (target <= %.0f per check with a warm cache) %s\n",
			n, txt, warmCheckDNSQueries, verdict(txt <= warmCheckDNSQueries))
		fmt.Fprintf(w, "  persist client CAA queries per certificate at N=%d, one CAA check each (resolvers configured): %.2f (at <base>.%s: the name, and its %d parents at most once per %s)\n",
			n, p.dnsByType["client CAA"], benchZone, strings.Count(benchZone, ".")+1, caaParentsKept)
	}
	fmt.Fprintln(w, "  (DNS queries per check in authoritative-discovery mode: go test -run '^$' -bench 'Check(Warm|Cold)' ./internal/dnslookup)")
}
