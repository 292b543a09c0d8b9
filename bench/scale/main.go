// Command scale measures how `caddy persist records` and `caddy persist
// check` grow with the names a config serves: one site block listing N
// base names, each with its wildcard, against Pebble and challtestsrv in
// this process (the issuer's resolvers set to challtestsrv), with half
// the records published. It runs the Caddy binary of this checkout with
// --local, as an operator's first run on a new config would. See
// BENCHMARKS.md.
//
//	go run ./bench/scale                      # N = 1000, 4000, 10000
//	go run ./bench/scale -n 200,2000 -reps 3
package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

func main() {
	ns := flag.String("n", "1000,4000,10000", "comma-separated numbers of base names (each served with its wildcard)")
	reps := flag.Int("reps", 1, "timed runs of each command per N; the median is reported")
	csvPath := flag.String("csv", "", "also write the figures to this CSV file, one row per N (bench/charts reads it)")
	flag.Parse()
	var sizes []int
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-n: %q is not a positive number", f))
		}
		sizes = append(sizes, n)
	}
	rows, err := run(sizes, *reps)
	if err != nil {
		fail(err)
	}
	if *csvPath != "" {
		if err := writeCSV(*csvPath, rows); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

// row is one N's figures.
type row struct {
	n int
	// adapt is `caddy adapt` of the same config: Caddy's own cost of
	// reading it, which the commands pay too
	adapt, records, check time.Duration
}

func run(sizes []int, reps int) ([]row, error) {
	bin, err := caddytest.Build(".")
	if err != nil {
		return nil, fmt.Errorf("building Caddy (run from the module root): %v", err)
	}
	tmp, err := os.MkdirTemp("", "persist-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	_, dnsAddr, err := acmetest.DNS()
	if err != nil {
		return nil, err
	}
	ca, err := acmetest.StartCA(acmetest.Options{}, dnsAddr, tmp)
	if err != nil {
		return nil, err
	}
	defer ca.Close()

	var rows []row
	for _, n := range sizes {
		r, err := measure(bin, ca, dnsAddr, tmp, n, reps)
		if err != nil {
			return nil, fmt.Errorf("with %d bases: %v", n, err)
		}
		rows = append(rows, r)
		fmt.Printf("N=%d done: adapt %s, records %s, check %s\n", n, r.adapt.Round(time.Millisecond), r.records.Round(time.Millisecond), r.check.Round(time.Millisecond))
	}
	report(rows)
	return rows, nil
}

// measure writes the config for n bases, registers the account and
// publishes every other base's record, then times each command.
func measure(bin string, ca *acmetest.CA, dnsAddr, tmp string, n, reps int) (row, error) {
	dir := filepath.Join(tmp, "n"+strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return row{}, err
	}
	var names []string
	for i := range n {
		base := fmt.Sprintf("b%05d.n%d.scale.test", i, n)
		names = append(names, base, "*."+base)
	}
	cfg := filepath.Join(dir, "Caddyfile")
	content := fmt.Sprintf(`{
	storage file_system %s
	admin off
}

%s {
	tls {
		issuer persist %s {
			email scale@example.test
			trusted_roots %s
			resolvers %s
		}
	}
	respond "hi"
}
`, filepath.Join(dir, "storage"), strings.Join(names, ", "), ca.URL, ca.TLSRootsFile, dnsAddr)
	if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil {
		return row{}, err
	}

	// the first run registers the account: not timed
	out, _, err := caddy(bin, dir, "persist", "records", "--local", "--config", cfg, "--format", "json")
	if err != nil {
		return row{}, err
	}
	var recs []struct {
		RecordName string `json:"record_name"`
		Value      string `json:"value"`
	}
	if err := json.Unmarshal(out, &recs); err != nil || len(recs) != n {
		return row{}, fmt.Errorf("records printed %d records, want %d (%v)", len(recs), n, err)
	}
	for i, r := range recs {
		if i%2 == 0 {
			if err := acmetest.SetTXT(r.RecordName, r.Value); err != nil {
				return row{}, err
			}
		}
	}

	r := row{n: n}
	r.adapt, err = median(reps, func() error {
		_, _, err := caddy(bin, dir, "adapt", "--config", cfg)
		return err
	})
	if err != nil {
		return row{}, err
	}
	r.records, err = median(reps, func() error {
		_, _, err := caddy(bin, dir, "persist", "records", "--local", "--config", cfg)
		return err
	})
	if err != nil {
		return row{}, err
	}
	r.check, err = median(reps, func() error {
		out, code, err := caddy(bin, dir, "persist", "check", "--local", "--config", cfg)
		// half the records are missing: the check must say so, and fail
		if err != nil || code != 1 {
			return fmt.Errorf("check: want exit 1 with half the records missing, got exit %d, %v", code, err)
		}
		if got := bytes.Count(out, []byte(": ok")); got != (n+1)/2 {
			return fmt.Errorf("check: %d records ok, want %d", got, (n+1)/2)
		}
		return nil
	})
	return r, err
}

// caddy runs the binary and returns its standard output and exit code;
// an error means it could not be run or was killed.
func caddy(bin, dir string, args ...string) ([]byte, int, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		if exit.ExitCode() != 1 || args[1] != "check" {
			return out, exit.ExitCode(), fmt.Errorf("caddy %s: exit %d\n%s", strings.Join(args, " "), exit.ExitCode(), lastLines(stderr.String(), 5))
		}
		return out, 1, nil
	}
	if err != nil {
		return out, -1, fmt.Errorf("caddy %s: %v", strings.Join(args, " "), err)
	}
	return out, 0, nil
}

// median runs f reps times and returns the median duration.
func median(reps int, f func() error) (time.Duration, error) {
	var times []time.Duration
	for range reps {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

func report(rows []row) {
	fmt.Printf("\nN bases (2N names), resolvers set to challtestsrv, half the records published; adapt is `caddy adapt` of the same Caddyfile\n")
	fmt.Printf("%8s %10s %10s %12s %10s %12s\n", "N", "adapt", "records", "per name", "check", "per name")
	for _, r := range rows {
		names := time.Duration(2 * r.n)
		fmt.Printf("%8d %10s %10s %12s %10s %12s\n", r.n, r.adapt.Round(time.Millisecond), r.records.Round(time.Millisecond), (r.records / names).Round(time.Microsecond),
			r.check.Round(time.Millisecond), (r.check / names).Round(time.Microsecond))
	}
	if len(rows) > 1 {
		first, last := rows[0], rows[len(rows)-1]
		ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
		fmt.Printf("time(%d)/time(%d): adapt %.2f, records %.2f, check %.2f; without adapt: records %.2f, check %.2f (linear: %.2f)\n", last.n, first.n,
			ratio(last.adapt, first.adapt), ratio(last.records, first.records), ratio(last.check, first.check),
			ratio(last.records-last.adapt, first.records-first.adapt), ratio(last.check-last.adapt, first.check-first.adapt), float64(last.n)/float64(first.n))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// writeCSV writes the rows, durations in seconds.
func writeCSV(path string, rows []row) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"n", "adapt_s", "records_s", "check_s"})
	for _, r := range rows {
		w.Write([]string{strconv.Itoa(r.n), seconds(r.adapt), seconds(r.records), seconds(r.check)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }
