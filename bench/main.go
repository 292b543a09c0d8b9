// Command bench compares the cost of obtaining certificates with this
// plugin's dns-persist-01 issuer against the protocol's floor (acmez alone),
// certmagic's http-01 and certmagic's dns-01, all against one Pebble and one
// challtestsrv in this process. See BENCHMARKS.md.
//
//	go run ./bench                 # N = 1, 10, 50
//	go run ./bench -n 1 -reps 1    # what CI runs
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

type options struct {
	ns          []int
	reps        int
	concurrency int
	only        []string
	cpuProfile  string
	memProfile  string
	managed     int
	idle        time.Duration
	// csv, when set, is a file the figures are also written to, one row
	// per N and contender, for the charts of BENCHMARKS.md
	csv string
}

// allContenders is the order contenders are listed in; each repetition
// starts one further along it, so none is always first or last.
var allContenders = []string{"floor", "persist", "http-01", "dns-01"}

func main() {
	opts, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags() (options, error) {
	var opts options
	ns := flag.String("n", "1,10,50", "comma-separated workloads: numbers of base domains")
	flag.IntVar(&opts.reps, "reps", 0, "repetitions per workload (default: 5, or 3 for N >= 50)")
	flag.IntVar(&opts.concurrency, "concurrency", 8, "certificates obtained at once, for every contender")
	only := flag.String("only", "", "comma-separated contenders to run (default: "+strings.Join(allContenders, ",")+")")
	flag.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed runs to this file (best with -only)")
	flag.StringVar(&opts.memProfile, "memprofile", "", "write a heap profile to this file at the end")
	flag.IntVar(&opts.managed, "managed", 0, "after the workloads, obtain certificates for this many bases with persist, have certmagic manage them, and measure their heap and the CPU while idle")
	flag.DurationVar(&opts.idle, "idle", 30*time.Second, "with -managed: how long to measure the CPU while idle")
	flag.StringVar(&opts.csv, "csv", "", "also write the figures to this CSV file, one row per N and contender (bench/charts reads it)")
	flag.Parse()

	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return opts, fmt.Errorf("-n: %q is not a positive number", f)
		}
		opts.ns = append(opts.ns, n)
	}
	opts.only = allContenders
	if *only != "" {
		opts.only = nil
		for _, name := range strings.Split(*only, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(allContenders, name) {
				return opts, fmt.Errorf("-only: unknown contender %q (have %s)", name, strings.Join(allContenders, ", "))
			}
			opts.only = append(opts.only, name)
		}
	}
	if opts.concurrency < 1 {
		return opts, fmt.Errorf("-concurrency must be at least 1")
	}
	return opts, nil
}

func repsFor(opts options, n int) int {
	switch {
	case opts.reps > 0:
		return opts.reps
	case n >= 50:
		return 3
	default:
		return 5
	}
}

func run(opts options) error {
	// certmagic throttles each ACME account to 10 orders per 10s; that
	// guards real CAs, and would measure the throttle rather than the
	// issuer here. Zero events in a zero window turns it off (a huge
	// limit would not: its ring buffer is allocated up front). The persist
	// issuer does not go through it.
	certmagic.RateLimitEvents = 0
	certmagic.RateLimitEventsWindow = 0

	tmp, err := os.MkdirTemp("", "persist-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if err := startQuietCaddy(); err != nil {
		return fmt.Errorf("loading the quiet Caddy config: %v", err)
	}
	e, err := startEnv(tmp)
	if err != nil {
		return err
	}
	defer e.Close()

	printMachine("start")
	ctx := context.Background()
	contenders := make(map[string]contender)
	for _, name := range opts.only {
		c := newContender(e, name)
		defer c.Close()
		start := time.Now()
		if err := c.WarmUp(ctx); err != nil {
			return fmt.Errorf("%s: warm-up: %v", name, err)
		}
		fmt.Fprintf(os.Stderr, "warmed up %s in %s\n", name, roundDuration(time.Since(start)))
		contenders[name] = c
	}

	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	results := make(map[int]map[string]summary)
	runID := 0
	for _, n := range opts.ns {
		reps := repsFor(opts, n)
		samples := make(map[string][]sample)
		for rep := range reps {
			for i := range opts.only {
				name := opts.only[(rep+i)%len(opts.only)]
				runID++
				bases := make([]string, n)
				for j := range bases {
					bases[j] = fmt.Sprintf("b%d-%d.%s", runID, j, benchZone)
				}
				s, err := runOnce(ctx, e, contenders[name], bases, opts.concurrency)
				if err != nil {
					return err
				}
				samples[name] = append(samples[name], s)
				fmt.Fprintf(os.Stderr, "N=%d rep %d/%d %-8s %3d certs in %s\n", n, rep+1, reps, name, s.certs, roundDuration(s.wall))
			}
		}
		results[n] = make(map[string]summary)
		for name, ss := range samples {
			results[n][name] = summarize(ss)
		}
	}

	printMachine("end")
	for _, n := range opts.ns {
		printTable(os.Stdout, n, opts.concurrency, allContenders, results[n])
	}
	printTargets(os.Stdout, opts.ns, results)
	if opts.csv != "" {
		if err := writeCSV(opts.csv, opts.ns, results); err != nil {
			return err
		}
	}

	if p, ok := contenders["persist"].(*persistContender); ok {
		f, err := measurePublish(ctx, e, p)
		if err != nil {
			return fmt.Errorf("publishing while the issuer waits: %v", err)
		}
		printPublish(os.Stdout, f)
	}
	if opts.managed > 0 {
		p, ok := contenders["persist"].(*persistContender)
		if !ok {
			return fmt.Errorf("-managed needs the persist contender")
		}
		f, err := measureManaged(ctx, p, opts.managed, opts.concurrency, opts.idle)
		if err != nil {
			return fmt.Errorf("managed certificates: %v", err)
		}
		printManaged(os.Stdout, f)
	}

	if opts.memProfile != "" {
		f, err := os.Create(opts.memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	return nil
}

func newContender(e *env, name string) contender {
	switch name {
	case "floor":
		return newFloor(e)
	case "persist":
		return newPersist(e)
	case "http-01":
		return newHTTP01(e)
	default:
		return newDNS01(e)
	}
}

// printMachine notes the machine and its load, since every figure depends
// on them.
func printMachine(when string) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("# %s: %s, GOMAXPROCS=%d, NumCPU=%d, loadavg %s\n",
		when, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), strings.TrimSpace(string(load)))
}
