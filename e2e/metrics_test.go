package e2e

import (
	"encoding/json"
	"maps"
	"regexp"

	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mholt/acmez/v3/acme"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// rulesFile is the alert rules operators load, which the promtool tier
// tests against the series this test scrapes.
const rulesFile = "../examples/monitoring/persist-rules.yml"

// scrape reads the running Caddy's /metrics.
func (e *env) scrape(t *testing.T) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(page)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return string(page), families
}

// value is the value of the series of family name with exactly the
// labels given among its own, or -1 when there is none.
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
series:
	for _, m := range f.GetMetric() {
		have := make(map[string]string)
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue series
			}
		}
		return m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return -1
}

// statusOf is the status the record's series shows, "" without one.
func statusOf(families map[string]*dto.MetricFamily, issuer, recordName string) string {
	for _, m := range families["caddy_persist_record_status"].GetMetric() {
		have := make(map[string]string)
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if have["issuer"] == issuer && have["record_name"] == recordName && m.GetGauge().GetValue() == 1 {
			return have["status"]
		}
	}
	return ""
}

// A Caddy with metrics on shows each record's state as the checks find
// it, and what became of each certificate: a published record is ok, and
// after it is deleted and `caddy persist check` runs, missing; a record
// never published holds its order back; a CA that offers no
// dns-persist-01 shows as not-offered. The page passes promtool, and the
// alert rules in examples/ fire on these very series.
func TestMetricsShowRecordsAndOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, acmetest.Options{})
	quiet, err := acmetest.StartCA(acmetest.Options{IssuerNames: []string{"quiet-ca.test"}, Wrap: acmetest.WithoutChallenge(acme.ChallengeTypeDNSPersist01)}, testDNSAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(quiet.Close)
	e.otherCAs = append(e.otherCAs, quiet)
	until := time.Now().Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	cfg := e.write("Caddyfile", e.globals("metrics")+`
ok.mon.test {
	tls {
		`+e.issuerBlock("persist_until "+until.Format(time.RFC3339))+`
	}
	respond "ok"
}

fine.mon.test {
	tls {
		`+e.issuerBlock("persist_until "+until.Format(time.RFC3339))+`
	}
	respond "fine"
}

held.mon.test {
	tls {
		`+e.issuerBlock("propagation_timeout 1s")+`
	}
	respond "held"
}

quiet.mon.test {
	tls {
		`+issuerBlockFor(quiet, "")+`
	}
	respond "quiet"
}
`)
	res := e.caddy("persist", "records", "--config", cfg, "--format", "json")
	recs := decodeRecords(t, res.stdout)
	if res.code != 0 || len(recs) != 4 {
		t.Fatalf("records (exit %d): %+v\n%s", res.code, recs, res.stderr)
	}
	byDomain := make(map[string]recordJSON)
	for _, r := range recs {
		byDomain[r.Domain] = r
	}
	for _, domain := range []string{"ok.mon.test", "fine.mon.test", "quiet.mon.test"} {
		if err := acmetest.SetTXT(byDomain[domain].RecordName, byDomain[domain].Value); err != nil {
			t.Fatal(err)
		}
	}
	okName, fineName := byDomain["ok.mon.test"].RecordName, byDomain["fine.mon.test"].RecordName
	t.Cleanup(func() {
		acmetest.SetTXT(okName)
		acmetest.SetTXT(fineName)
		acmetest.SetTXT(byDomain["quiet.mon.test"].RecordName)
	})

	srv := e.start("--config", cfg)
	e.handshake(t, "ok.mon.test", 30*time.Second)
	e.handshake(t, "fine.mon.test", 30*time.Second)
	// certmagic logs each failed attempt once the issuer has returned,
	// and so once it has counted the attempt's outcome
	for _, name := range []string{"held.mon.test", "quiet.mon.test"} {
		srv.WaitLog(t, 0, 60*time.Second, `"could not get certificate from issuer"`, `"identifier":"`+name+`"`)
	}
	_, families := e.scrape(t)
	for _, want := range []struct{ issuer, outcome string }{{e.ca.URL, "missing"}, {quiet.URL, "not-offered"}} {
		if got := value(families, "caddy_persist_orders_total", map[string]string{"issuer": want.issuer, "outcome": want.outcome}); got < 1 {
			t.Errorf("orders of %s held back as %s: %v, want at least 1", want.issuer, want.outcome, got)
		}
	}
	if got := statusOf(families, e.ca.URL, okName); got != "ok" {
		t.Errorf("the published record shows %q, want ok", got)
	}
	if got := value(families, "caddy_persist_record_persist_until_timestamp_seconds", map[string]string{"issuer": e.ca.URL, "record_name": okName}); got != float64(until.Unix()) {
		t.Errorf("persistUntil series %v, want %d", got, until.Unix())
	}
	if got := value(families, "caddy_persist_orders_total", map[string]string{"issuer": e.ca.URL, "outcome": "issued"}); got != 2 {
		t.Errorf("issued orders: %v, want 2", got)
	}
	if got := statusOf(families, e.ca.URL, byDomain["held.mon.test"].RecordName); got != "missing" {
		t.Errorf("the record never published shows %q, want missing", got)
	}
	if got := statusOf(families, quiet.URL, byDomain["quiet.mon.test"].RecordName); got != "not-offered" {
		t.Errorf("the record of the CA without dns-persist-01 shows %q, want not-offered", got)
	}

	before := families
	if err := acmetest.SetTXT(okName); err != nil {
		t.Fatal(err)
	}
	if check := e.caddy("persist", "check", "--config", cfg); check.code == 0 || !strings.Contains(check.stdout, okName+" (ca "+e.ca.URL+"): missing") {
		t.Fatalf("check after deleting the record: exit %d\n%s\n%s", check.code, check.stdout, check.stderr)
	}
	page, families := e.scrape(t)
	scraped := time.Now()
	if got := statusOf(families, e.ca.URL, okName); got != "missing" {
		t.Errorf("after the record was deleted and checked, it shows %q, want missing", got)
	}
	for name, f := range families {
		if strings.HasPrefix(name, "caddy_persist_") && strings.Contains(fmt.Sprint(f), "tenant") {
			t.Errorf("a series names a name the config does not list: %s", name)
		}
	}

	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			caddytest.SkipTier(t, "promtool tier: needs promtool, from Debian's prometheus package (apt-get install prometheus)")
		}
		runPromtool(t, promtool, page, "", "check", "metrics")
		runPromtool(t, promtool, "", "", "check", "rules", rulesFile)
		tests := filepath.Join(t.TempDir(), "persist-rules-test.yml")
		held, refused := byDomain["held.mon.test"].RecordName, byDomain["quiet.mon.test"].RecordName
		record := func(issuer, name string) map[string]string {
			return map[string]string{"issuer": issuer, "record_name": name}
		}
		// fine.mon.test stays ok, and e.ca issued; none of their alerts
		// may fire, nor any before its hour
		expected := ruleExpectations(t, []firing{
			{"PersistRecordNotOK", "30m", nil},
			{"PersistRecordNotOK", "70m", []map[string]string{record(e.ca.URL, okName), record(e.ca.URL, held), record(quiet.URL, refused)}},
			{"PersistRecordExpiresSoon", "10m", []map[string]string{record(e.ca.URL, fineName)}},
			{"PersistOrdersHeldBack", "5h", nil},
			{"PersistOrdersHeldBack", "7h10m", []map[string]string{{"issuer": e.ca.URL}, {"issuer": quiet.URL}}},
			{"PersistChallengeNotOffered", "10m", []map[string]string{{"issuer": quiet.URL}}},
		})
		writeRuleTests(t, tests, families, scraped, expected)
		runPromtool(t, promtool, "", "", "test", "rules", tests)

		// the dashboard's queries parse, as recording rules promtool
		// checks, and name only series the plugin serves
		var rules strings.Builder
		rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
		for i, expr := range dashboardQueries(t) {
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %q\n", i, expr)
		}
		asRules := filepath.Join(t.TempDir(), "dashboard-rules.yml")
		if err := os.WriteFile(asRules, []byte(rules.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		runPromtool(t, promtool, "", "", "check", "rules", asRules)
	})

	// the rules and the dashboard name only series this Caddy serves
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	named := seriesNamed.FindAllString(string(rules)+strings.Join(dashboardQueries(t), "\n"), -1)
	if len(named) < 5 {
		t.Fatalf("found %d series names in the rules and the dashboard", len(named))
	}
	for _, name := range named {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if families[family] == nil && before[family] == nil {
			t.Errorf("%s, in the rules or the dashboard, is not a series Caddy serves", name)
		}
	}
}

// seriesNamed finds the plugin's series names in a query.
var seriesNamed = regexp.MustCompile(`caddy_persist_[a-z_]+`)

// dashboardQueries are the PromQL queries of the Grafana dashboard in
// examples/.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../examples/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dashboard); err != nil {
		t.Fatal(err)
	}
	var queries []string
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			queries = append(queries, target.Expr)
		}
	}
	return queries
}

// firing is an alert expected at a time, once for each set of labels.
type firing struct {
	alert, at string
	labels    []map[string]string
}

// ruleExpectations writes the alert_rule_test entries of firings, with
// each alert's severity and annotations as the rules file gives them,
// its label templates filled in.
func ruleExpectations(t *testing.T, firings []firing) string {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range firings {
		fmt.Fprintf(&b, "\n      - eval_time: %s\n        alertname: %s\n        exp_alerts:", f.at, f.alert)
		if len(f.labels) == 0 {
			b.WriteString(" []")
		}
		found := false
		for _, g := range file.Groups {
			for _, r := range g.Rules {
				if r.Alert != f.alert {
					continue
				}
				found = true
				for _, labels := range f.labels {
					all := maps.Clone(labels)
					maps.Copy(all, r.Labels)
					annotations := make(map[string]string)
					for k, text := range r.Annotations {
						for name, v := range labels {
							text = strings.ReplaceAll(text, "{{ $labels."+name+" }}", v)
						}
						annotations[k] = text
					}
					l, _ := json.Marshal(all)
					a, _ := json.Marshal(annotations)
					fmt.Fprintf(&b, "\n          - exp_labels: %s\n            exp_annotations: %s", l, a)
				}
			}
		}
		if !found {
			t.Fatalf("the rules file has no alert %s", f.alert)
		}
	}
	return b.String() + "\n"
}

// writeRuleTests writes a promtool rule test whose input series are the
// plugin's series as scraped at scraped, read on as the next hours would
// go: gauges as they are; orders held back growing by one every six
// hours, as certmagic's retries come at their sparsest, and orders issued
// standing still. Timestamps move to promtool's clock, which starts at 0:
// a persistUntil keeps its distance from the scrape.
func writeRuleTests(t *testing.T, path string, families map[string]*dto.MetricFamily, scraped time.Time, expected string) {
	t.Helper()
	var series []string
	names := make([]string, 0, len(families))
	for name := range families {
		if strings.HasPrefix(name, "caddy_persist_") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	format := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, name := range names {
		f := families[name]
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			outcome := ""
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				if l.GetName() == "outcome" {
					outcome = l.GetValue()
				}
			}
			id := name + "{" + strings.Join(labels, ",") + "}"
			var values string
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				v := m.GetGauge().GetValue()
				if strings.HasSuffix(name, "_timestamp_seconds") {
					v -= float64(scraped.Unix())
				}
				values = format(v) + "x600"
			case dto.MetricType_COUNTER:
				v := m.GetCounter().GetValue()
				values = format(v) + "x600"
				if name == "caddy_persist_orders_total" && outcome != "issued" && v > 0 {
					values = fmt.Sprintf("%sx359 %sx359 %sx359", format(v), format(v+1), format(v+2))
				}
			default:
				continue
			}
			series = append(series, fmt.Sprintf("      - series: '%s'\n        values: '%s'", id, values))
		}
	}
	for _, family := range []string{"caddy_persist_record_status{", "caddy_persist_record_persist_until_timestamp_seconds{", "caddy_persist_orders_total{"} {
		if !slices.ContainsFunc(series, func(s string) bool { return strings.Contains(s, family) }) {
			t.Fatalf("the scrape has no %s} series to test the rules on", family)
		}
	}
	abs, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("rule_files:\n  - %q\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n%s\n    alert_rule_test:%s", abs, strings.Join(series, "\n"), expected)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("promtool rule test:\n%s", content)
}

// runPromtool runs promtool with stdin, and fails the test if it fails.
func runPromtool(t *testing.T, promtool, stdin, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
