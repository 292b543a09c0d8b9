// Command charts draws the charts of BENCHMARKS.md from the benchmarks'
// own output in bench/results: the CSV files of `go run ./bench -csv`,
// `go run ./bench/scale -csv` and `go run ./bench/size -csv`, and the
// output of the Go benchmarks of the flood and the cluster. It is a module
// of its own, so that gonum's plotting library stays out of the plugin's
// dependencies (`go mod why -m gonum.org/v1/plot` in the module root says
// so). From the module root:
//
//	(cd bench/charts && go run . -dir ../results)
package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func main() {
	dir := flag.String("dir", "../results", "the folder of the benchmarks' output, where the charts are written too")
	flag.Parse()
	charts := []struct {
		name string
		draw func(dir string) (*plot.Plot, error)
	}{
		{"issuance", issuance},
		{"scale", scale},
		{"flood", flood},
		{"cluster", cluster},
		{"size", size},
	}
	for _, c := range charts {
		p, err := c.draw(*dir)
		if err != nil {
			fail(fmt.Errorf("%s: %v", c.name, err))
		}
		out := filepath.Join(*dir, c.name+".svg")
		if err := p.Save(16*vg.Centimeter, 9*vg.Centimeter, out); err != nil {
			fail(err)
		}
		fmt.Println("wrote", out)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "charts:", err)
	os.Exit(1)
}

// readCSV reads a CSV file with a header into rows keyed by column name.
func readCSV(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(records) < 2 {
		return nil, fmt.Errorf("%s has no rows", path)
	}
	var rows []map[string]string
	for _, rec := range records[1:] {
		row := make(map[string]string)
		for i, col := range records[0] {
			row[col] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func number(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		fail(fmt.Errorf("%q is not a number", s))
	}
	return v
}

// benchMetrics reads `go test -bench` output: for each benchmark line,
// its name (without the -GOMAXPROCS suffix) and its metrics by unit.
func benchMetrics(path string) (map[string]map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]map[string]float64)
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		fields := strings.Fields(lines.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		metrics := out[name]
		if metrics == nil {
			metrics = make(map[string]float64)
			out[name] = metrics
		}
		for i := 2; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				metrics[fields[i+1]] = v
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no benchmark results", path)
	}
	return out, lines.Err()
}

// bars draws groups of bars: one bar per series in each group, labelled
// on the X axis by groups.
func bars(title, yLabel string, groups []string, series []string, values [][]float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	width := vg.Points(18)
	if len(series) == 1 {
		width = vg.Points(48)
	}
	for i, name := range series {
		b, err := plotter.NewBarChart(plotter.Values(values[i]), width)
		if err != nil {
			return nil, err
		}
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(i)
		b.Offset = vg.Length(float64(i)-float64(len(series)-1)/2) * width
		p.Add(b)
		if len(series) > 1 {
			p.Legend.Add(name, b)
		}
	}
	p.Legend.Top = true
	p.NominalX(groups...)
	return p, nil
}

// issuance: the wall time per certificate of each contender at each N,
// from `go run ./bench -csv issuance.csv`.
func issuance(dir string) (*plot.Plot, error) {
	rows, err := readCSV(filepath.Join(dir, "issuance.csv"))
	if err != nil {
		return nil, err
	}
	var ns []string
	contenders := []string{"floor", "persist", "http-01", "dns-01"}
	values := make([][]float64, len(contenders))
	for _, r := range rows {
		label := "N=" + r["n"]
		if len(ns) == 0 || ns[len(ns)-1] != label {
			ns = append(ns, label)
			for i := range values {
				values[i] = append(values[i], 0)
			}
		}
		for i, c := range contenders {
			if r["contender"] == c {
				values[i][len(ns)-1] = 1000 * number(r["per_cert_s"])
			}
		}
	}
	p, err := bars("Wall time per certificate, by number of base domains", "ms per certificate", ns, contenders, values)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// scale: the time of caddy adapt, records and check at N bases, from
// `go run ./bench/scale -csv scale.csv`.
func scale(dir string) (*plot.Plot, error) {
	rows, err := readCSV(filepath.Join(dir, "scale.csv"))
	if err != nil {
		return nil, err
	}
	p := plot.New()
	p.Title.Text = "caddy persist records and check at N base domains"
	p.X.Label.Text = "base domains (each with its wildcard)"
	p.Y.Label.Text = "seconds"
	var lines []any
	for _, col := range []struct{ key, name string }{{"adapt_s", "caddy adapt"}, {"records_s", "records"}, {"check_s", "check"}} {
		xys := make(plotter.XYs, len(rows))
		for i, r := range rows {
			xys[i].X, xys[i].Y = number(r["n"]), number(r[col.key])
		}
		lines = append(lines, col.name, xys)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, err
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Min = 0
	return p, nil
}

// flood: a tenant's permission check, cached, alone and under a flood of
// a million random names, from the Go benchmarks' output.
func flood(dir string) (*plot.Plot, error) {
	floodOut, err := benchMetrics(filepath.Join(dir, "flood.txt"))
	if err != nil {
		return nil, err
	}
	cachedOut, err := benchMetrics(filepath.Join(dir, "cached.txt"))
	if err != nil {
		return nil, err
	}
	f, c := floodOut["BenchmarkPermissionFlood"], cachedOut["BenchmarkPermissionCached"]
	if f == nil || c == nil {
		return nil, errors.New("no BenchmarkPermissionFlood or BenchmarkPermissionCached result")
	}
	p, err := bars(fmt.Sprintf("A tenant's cached check during a flood (heap %.0f MiB with %.0f decisions)", f["heap-MiB-full"], f["cached-decisions"]),
		"µs", []string{"alone", "flooded, p50", "flooded, p99"}, []string{"check"},
		[][]float64{{c["ns/op"] / 1000, f["tenant-p50-µs"], f["tenant-p99-µs"]}})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// cluster: the time until 20 names are served, on one instance and on
// three sharing etcd, from the cluster tier's Go benchmark.
func cluster(dir string) (*plot.Plot, error) {
	out, err := benchMetrics(filepath.Join(dir, "cluster.txt"))
	if err != nil {
		return nil, err
	}
	var groups []string
	var values []float64
	for _, n := range []string{"1", "3"} {
		m := out["BenchmarkTwentyNames/instances="+n]
		if m == nil {
			return nil, fmt.Errorf("no result for %s instances", n)
		}
		groups = append(groups, n+" instance"+map[bool]string{true: "s"}[n != "1"])
		values = append(values, m["s/all-served"])
	}
	return bars("Until 20 names are served: Caddy instances sharing etcd", "seconds", groups, []string{"time"}, [][]float64{values})
}

// size: Caddy's binary with and without the plugin, from
// `go run ./bench/size -csv size.csv`.
func size(dir string) (*plot.Plot, error) {
	rows, err := readCSV(filepath.Join(dir, "size.csv"))
	if err != nil {
		return nil, err
	}
	var groups []string
	var values []float64
	for _, r := range rows {
		groups = append(groups, r["binary"])
		values = append(values, number(r["bytes"])/(1<<20))
	}
	p, err := bars("Binary size, built as xcaddy builds", "MiB", groups, []string{"size"}, [][]float64{values})
	if err != nil {
		return nil, err
	}
	p.Y.Min = 0
	return p, nil
}
