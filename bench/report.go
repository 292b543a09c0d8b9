package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// summary is the median of each figure over a contender's runs at one N.
// Each figure's median is taken on its own.
type summary struct {
	reps        int
	certs       int
	wall        time.Duration
	perCert     time.Duration
	latencyP50  time.Duration // over every certificate of every run
	latencyP90  time.Duration
	acmePerCert float64
	// acmeFixedPerCert leaves out the requests whose number depends on
	// timing: authorization and order fetches (how many polls until the
	// CA is done) and nonce fetches (how often concurrent requests find
	// the client's nonce pool empty).
	acmeFixedPerCert float64
	acmeByKind       map[string]float64 // mean per certificate
	dnsPerCert       float64
	dnsClientPerCert float64
	dnsCAPerCert     float64
	cpu              time.Duration
	peakHeap         uint64
	// dnsByType is the mean per certificate of each query type and side.
	dnsByType map[string]float64
}

func summarize(samples []sample) summary {
	s := summary{reps: len(samples), dnsByType: make(map[string]float64), acmeByKind: make(map[string]float64)}
	if len(samples) == 0 {
		return s
	}
	s.certs = samples[0].certs
	per := func(n, certs int) float64 { return float64(n) / float64(certs) }
	s.wall = medianDuration(samples, func(x sample) time.Duration { return x.wall })
	s.perCert = medianDuration(samples, func(x sample) time.Duration { return x.wall / time.Duration(x.certs) })
	var all []time.Duration
	for _, x := range samples {
		all = append(all, x.latencies...)
	}
	s.latencyP50, s.latencyP90 = percentile(all, 0.5), percentile(all, 0.9)
	s.cpu = medianDuration(samples, func(x sample) time.Duration { return x.cpu })
	s.acmePerCert = median(samples, func(x sample) float64 { return per(x.acme, x.certs) })
	s.acmeFixedPerCert = median(samples, func(x sample) float64 {
		k := x.acmeByKind
		return per(x.acme-k[acmetest.KindAuthz]-k[acmetest.KindOrder]-k[acmetest.KindNonce], x.certs)
	})
	s.dnsPerCert = median(samples, func(x sample) float64 { return per(x.dnsClient+x.dnsCA, x.certs) })
	s.dnsClientPerCert = median(samples, func(x sample) float64 { return per(x.dnsClient, x.certs) })
	s.dnsCAPerCert = median(samples, func(x sample) float64 { return per(x.dnsCA, x.certs) })
	s.peakHeap = uint64(median(samples, func(x sample) float64 { return float64(x.peakHeap) }))
	for _, x := range samples {
		for k, n := range x.dnsByType {
			s.dnsByType[k] += per(n, x.certs) / float64(len(samples))
		}
		for k, n := range x.acmeByKind {
			s.acmeByKind[k] += per(n, x.certs) / float64(len(samples))
		}
	}
	return s
}

func median(samples []sample, f func(sample) float64) float64 {
	vals := make([]float64, len(samples))
	for i, x := range samples {
		vals[i] = f(x)
	}
	slices.Sort(vals)
	mid := len(vals) / 2
	if len(vals)%2 == 1 {
		return vals[mid]
	}
	return (vals[mid-1] + vals[mid]) / 2
}

// percentile returns the value at fraction p of the sorted durations
// (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[max(i, 0)]
}

func medianDuration(samples []sample, f func(sample) time.Duration) time.Duration {
	return time.Duration(median(samples, func(x sample) float64 { return float64(f(x)) }))
}

// printTable prints one N's summaries, in the contenders' order, with
// ratios to the floor when the floor ran.
func printTable(w io.Writer, n, concurrency int, order []string, sums map[string]summary) {
	fmt.Fprintf(w, "\nN=%d bases (floor, persist, dns-01: <base> and *.<base>, one certificate each; http-01: <base> only), %d at once\n", n, concurrency)
	floor, haveFloor := sums["floor"]
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\tcerts\treps\twall\twall/floor\tper cert\tper cert/floor\tlatency p50\tp90\tACME req/cert\tDNS q/cert\t(client+CA)\tCPU s\tpeak heap MiB\t")
	for _, name := range order {
		s, ok := sums[name]
		if !ok {
			continue
		}
		ratio := func(a, b time.Duration) string {
			if !haveFloor || b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", float64(a)/float64(b))
		}
		// whole workloads compare only when they hold the same certificates
		wallRatio := "-"
		if s.certs == floor.certs {
			wallRatio = ratio(s.wall, floor.wall)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t(%.2f+%.2f)\t%.2f\t%.1f\t\n",
			name, s.certs, s.reps,
			roundDuration(s.wall), wallRatio,
			roundDuration(s.perCert), ratio(s.perCert, floor.perCert),
			roundDuration(s.latencyP50), roundDuration(s.latencyP90),
			s.acmePerCert, s.dnsPerCert, s.dnsClientPerCert, s.dnsCAPerCert,
			s.cpu.Seconds(), float64(s.peakHeap)/(1<<20))
	}
	tw.Flush()

	fmt.Fprintln(w, "ACME requests per certificate by kind (mean):")
	printBreakdown(w, order, sums, func(s summary) map[string]float64 { return s.acmeByKind })
	fmt.Fprintln(w, "DNS queries per certificate by side and type (mean):")
	printBreakdown(w, order, sums, func(s summary) map[string]float64 { return s.dnsByType })
}

func printBreakdown(w io.Writer, order []string, sums map[string]summary, counts func(summary) map[string]float64) {
	for _, name := range order {
		s, ok := sums[name]
		if !ok {
			continue
		}
		m := counts(s)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %.2f", k, m[k])
		}
		fmt.Fprintf(w, "  %-8s %s\n", name, strings.Join(parts, ", "))
	}
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

// writeCSV writes the summaries, one row per N and contender, in the
// order the tables print them: durations in seconds, heap in MiB.
func writeCSV(path string, ns []int, results map[int]map[string]summary) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"n", "contender", "certs", "reps", "wall_s", "per_cert_s", "latency_p50_s", "latency_p90_s", "acme_per_cert", "dns_per_cert", "cpu_s", "peak_heap_mib"})
	for _, n := range ns {
		for _, name := range allContenders {
			s, ok := results[n][name]
			if !ok || s.reps == 0 {
				continue
			}
			seconds := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }
			w.Write([]string{strconv.Itoa(n), name, strconv.Itoa(s.certs), strconv.Itoa(s.reps),
				seconds(s.wall), seconds(s.perCert), seconds(s.latencyP50), seconds(s.latencyP90),
				strconv.FormatFloat(s.acmePerCert, 'f', 2, 64), strconv.FormatFloat(s.dnsPerCert, 'f', 2, 64),
				seconds(s.cpu), strconv.FormatFloat(float64(s.peakHeap)/(1<<20), 'f', 1, 64)})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
