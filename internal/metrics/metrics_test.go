package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// series returns the value of every series of the metric name in reg
// whose labels include want, keyed by its other labels (name=value,
// joined by ",").
func series(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok {
					if v != l.GetValue() {
						continue metrics
					}
					continue
				}
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			value := m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[strings.Join(key, ",")] = value
		}
	}
	return out
}

// Two issuers of one CA (two sites with different tls options) show the
// same records: the record keeps one series, the status the last check
// found, whichever issuer made it.
func TestTwoIssuersOfOneCAShowOneSeriesPerRecord(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	all := func(string) bool { return true }
	a := New(reg).Records("https://ca.test/dir", all)
	b := New(reg).Records("https://ca.test/dir", all)
	missing := judge.Judgement{Verdict: record.Verdict{Status: record.StatusMissing}}
	ok := judge.Judgement{Verdict: record.Verdict{Status: record.StatusOK, Matched: &record.Record{}}}
	for _, step := range []struct {
		states *Records
		j      judge.Judgement
		want   string
	}{{a, missing, judge.StateMissing}, {b, ok, judge.StateOK}, {a, missing, judge.StateMissing}, {a, missing, judge.StateMissing}, {b, ok, judge.StateOK}} {
		step.states.Judged("one.test", step.j)
		got := series(t, reg, "caddy_persist_record_status", map[string]string{"record_name": "_validation-persist.one.test"})
		if len(got) != 1 || got["issuer=https://ca.test/dir,status="+step.want] != 1 {
			t.Fatalf("after a check finding %s, the series are %v", step.want, got)
		}
	}
}
