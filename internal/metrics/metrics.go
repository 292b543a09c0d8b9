// Package metrics is the plugin's Prometheus series, registered in the
// registry of a Caddy config, which its modules share: on-demand
// permission checks, each configured record's state (as judge finds it),
// orders by outcome, the wait before an order, and account changes.
package metrics

import (
	"sync"
	"time"

	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dnspersist/caddy-persist/internal/promreg"
)

// Outcome is how an on-demand permission check ended. It is a byte
// rather than its label because every cached decision holds one.
type Outcome uint8

// Outcomes of an on-demand permission check.
const (
	OutcomeNone Outcome = iota // a decision not counted, such as an aborted lookup
	OutcomeAllowed
	OutcomeDeniedMissing
	OutcomeDeniedMismatch
	OutcomeDeniedCAA
	// OutcomeDeniedDNSSEC is a name whose record or CAA answer, in a
	// signed zone, does not verify: the CA's resolver would answer
	// SERVFAIL.
	OutcomeDeniedDNSSEC
	OutcomeDNSError
	OutcomeCacheHit
)

// outcomeLabels are the outcomes as metric labels.
var outcomeLabels = [...]string{
	OutcomeNone:           "",
	OutcomeAllowed:        "allowed",
	OutcomeDeniedMissing:  "denied_missing",
	OutcomeDeniedMismatch: "denied_mismatch",
	OutcomeDeniedCAA:      "denied_caa",
	OutcomeDeniedDNSSEC:   "denied_dnssec",
	OutcomeDNSError:       "dns_error",
	OutcomeCacheHit:       "cache_hit",
}

func (o Outcome) String() string { return outcomeLabels[o] }

// Metrics are the plugin's Prometheus metrics, registered in the
// config's registry so they appear on Caddy's /metrics endpoints.
type Metrics struct {
	permissionChecks *prometheus.CounterVec
	// byOutcome are permissionChecks' counters, looked up once: a cached
	// decision then costs no label lookup
	byOutcome       [len(outcomeLabels)]prometheus.Counter
	recordsExpiring prometheus.Counter

	// recordStatus is 1 for the status of each configured record, by
	// issuer (its CA) and record name; recordPersistUntil is the
	// persistUntil of a passing record that has one (see Records).
	recordStatus       *statusGauge
	recordPersistUntil *prometheus.GaugeVec
	// orders counts what became of each certificate Caddy asked an
	// issuer for: issued, or held back and why (orderOutcome).
	orders *prometheus.CounterVec
	// recordWait is how long the wait for the records before an order
	// took, whether they passed or the wait gave up.
	recordWait *prometheus.HistogramVec
	// accountChanges counts the account's changes by action.
	accountChanges *prometheus.CounterVec
}

// CountCheck counts an on-demand permission check with its outcome.
func (m *Metrics) CountCheck(o Outcome) {
	m.byOutcome[o].Inc()
}

// persistOpts names a series of the plugin, caddy_persist_<name>.
func persistOpts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: "caddy", Subsystem: "persist", Name: name, Help: help}
}

// New registers the metrics in reg, or finds them there when
// another persist module of the same config registered them first.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		permissionChecks: prometheus.NewCounterVec(prometheus.CounterOpts(persistOpts("permission_checks_total", "On-demand permission checks of dns-persist-01 records, by outcome.")), []string{"outcome"}),
		recordsExpiring:  prometheus.NewCounter(prometheus.CounterOpts(persistOpts("records_expiring_total", "Checks that found a passing dns-persist-01 record whose persistUntil is less than 30 days away."))),
	}
	m.recordStatus = &statusGauge{
		vec:   prometheus.NewGaugeVec(prometheus.GaugeOpts(persistOpts("record_status", "1 for the status of each dns-persist-01 record the config's names need, as the last check found it: ok, missing, mismatch, expired, dnssec, caa, dns-error or not-offered.")), []string{"issuer", "record_name", "status"}),
		shown: make(map[[2]string]string),
	}
	m.recordPersistUntil = prometheus.NewGaugeVec(prometheus.GaugeOpts(persistOpts("record_persist_until_timestamp_seconds", "The persistUntil of each passing dns-persist-01 record that has one, in UNIX seconds: after it, CAs refuse the record.")), []string{"issuer", "record_name"})
	m.orders = prometheus.NewCounterVec(prometheus.CounterOpts(persistOpts("orders_total", "Certificates asked of a persist issuer, by outcome: issued, or held back because of the record (missing, mismatch, expired, dnssec, dns-error), CAA (caa), a CA that does not offer dns-persist-01 (not-offered), or the CA (ca-error).")), []string{"issuer", "outcome"})
	m.recordWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy",
		Subsystem: "persist",
		Name:      "record_wait_seconds",
		Help:      "How long the wait for every record (and CAA) to pass before an order took.",
		Buckets:   prometheus.ExponentialBuckets(0.01, 4, 9),
	}, []string{"issuer"})
	m.accountChanges = prometheus.NewCounterVec(prometheus.CounterOpts(persistOpts("account_changes_total", "Changes to the ACME account the records name, by action: rollover, replace, switch, deactivate or import.")), []string{"action"})
	if reg != nil {
		m.permissionChecks = promreg.Register(reg, m.permissionChecks)
		m.recordsExpiring = promreg.Register(reg, m.recordsExpiring)
		m.recordStatus = promreg.Register(reg, m.recordStatus)
		m.recordPersistUntil = promreg.Register(reg, m.recordPersistUntil)
		m.orders = promreg.Register(reg, m.orders)
		m.recordWait = promreg.Register(reg, m.recordWait)
		m.accountChanges = promreg.Register(reg, m.accountChanges)
	}
	// every action has its series from the start, so that increase()
	// sees the first change
	for _, action := range accountChangeActions {
		m.accountChanges.WithLabelValues(action)
	}
	// OutcomeNone is never counted, and gets no series
	for o := OutcomeAllowed; int(o) < len(m.byOutcome); o++ {
		m.byOutcome[o] = m.permissionChecks.WithLabelValues(o.String())
	}
	return m
}

// accountChangeActions are the changes accountChanges counts.
var accountChangeActions = []string{"rollover", "replace", "switch", "deactivate", "import"}

// The words of the record states and order outcomes, shared by the
// metrics, the docs and the alert rules in examples/.
const (
	OrderIssued  = "issued"
	OrderCAError = "ca-error"
)

// orderOutcomes are every outcome orders_total counts.
var orderOutcomes = []string{OrderIssued, judge.StateMissing, judge.StateMismatch, judge.StateExpired, judge.StateDNSSEC, judge.StateCAA, judge.StateDNSError, judge.StateNotOffered, OrderCAError}

// IssuerSeries gives the issuer's order outcomes their series from the
// start, so that increase() sees the first of each.
func (m *Metrics) IssuerSeries(issuer string) {
	for _, o := range orderOutcomes {
		m.orders.WithLabelValues(issuer, o)
	}
}

// statusGauge is record_status: for each issuer (CA) and record name,
// one series, whose status label is the record's last status. Every
// issuer of the config shares it, since two of the same CA (two sites
// with different tls options, say) show the same records.
type statusGauge struct {
	vec   *prometheus.GaugeVec
	mu    sync.Mutex
	shown map[[2]string]string
}

// show makes status the record's one series.
func (g *statusGauge) show(issuer, name, status string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := [2]string{issuer, name}
	old, ok := g.shown[key]
	if ok && old == status {
		return
	}
	if ok {
		g.vec.DeleteLabelValues(issuer, name, old)
	}
	g.vec.WithLabelValues(issuer, name, status).Set(1)
	g.shown[key] = status
}

func (g *statusGauge) Describe(ch chan<- *prometheus.Desc) { g.vec.Describe(ch) }
func (g *statusGauge) Collect(ch chan<- prometheus.Metric) { g.vec.Collect(ch) }

// Records keeps, for each record the config's names need, what the
// checks found of it, and shows it as recordStatus: one series per record,
// whose status label changes as the record does. Every check of the
// issuer goes through it (judge, judgeCAA, the CA's offer), but only the
// config's own names get series: an on-demand tenant's name stays out of
// the labels, so a million tenants add none.
type Records struct {
	metrics *Metrics
	issuer  string
	// configured reports whether base is a base domain of the config's
	// names for this issuer.
	configured func(base string) bool

	mu         sync.Mutex
	byBase     map[string]*recordState
	notOffered bool
}

// recordState is what the checks last found of one record: the record's
// own verdict, and CAA's.
type recordState struct {
	record, caa string
}

// Records keeps the states of the records of issuer; configured says
// which base domains are the config's own.
func (m *Metrics) Records(issuer string, configured func(base string) bool) *Records {
	return &Records{metrics: m, issuer: issuer, configured: configured, byBase: make(map[string]*recordState)}
}

// Judged takes in a check of the record at base.
func (s *Records) Judged(base string, j judge.Judgement) {
	if s == nil || !s.configured(base) {
		return
	}
	name := record.Name(base)
	if j.Passed() && !j.Verdict.Matched.PersistUntil.IsZero() {
		s.metrics.recordPersistUntil.WithLabelValues(s.issuer, name).Set(float64(j.Verdict.Matched.PersistUntil.Unix()))
	} else {
		s.metrics.recordPersistUntil.DeleteLabelValues(s.issuer, name)
	}
	s.update(base, func(st *recordState) { st.record = j.State() })
}

// CAAJudged takes in a check of the CAA policy of base.
func (s *Records) CAAJudged(base string, j judge.CAAJudgement) {
	if s == nil || !s.configured(base) {
		return
	}
	s.update(base, func(st *recordState) { st.caa = j.State() })
}

// ChallengeOffered takes in whether the CA offers dns-persist-01: when it
// does not, every record of the issuer shows not-offered.
func (s *Records) ChallengeOffered(offered bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notOffered = !offered
	for base, st := range s.byBase {
		s.show(base, st)
	}
}

func (s *Records) update(base string, change func(*recordState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.byBase[base]
	if st == nil {
		st = new(recordState)
		s.byBase[base] = st
	}
	change(st)
	s.show(base, st)
}

// show sets the record's series to its status, the record's own first,
// then CAA's; a record not checked yet has none.
func (s *Records) show(base string, st *recordState) {
	status := st.record
	switch {
	case st.record == "":
		return
	case s.notOffered:
		status = judge.StateNotOffered
	case st.record == judge.StateOK && st.caa != "":
		status = st.caa
	}
	s.metrics.recordStatus.show(s.issuer, record.Name(base), status)
}

// RecordExpiring counts a check that found a passing record whose
// persistUntil is less than 30 days away.
func (m *Metrics) RecordExpiring() { m.recordsExpiring.Inc() }

// CountOrder counts an attempt at a certificate asked of issuer with its
// outcome: OrderIssued, a judge state that held it back, or OrderCAError.
// An empty outcome is none.
func (m *Metrics) CountOrder(issuer, outcome string) {
	if outcome != "" {
		m.orders.WithLabelValues(issuer, outcome).Inc()
	}
}

// ObserveWait records how long the wait for the records before an order
// took.
func (m *Metrics) ObserveWait(issuer string, d time.Duration) {
	m.recordWait.WithLabelValues(issuer).Observe(d.Seconds())
}

// AccountChanged counts a change to the account: rollover, replace,
// switch, deactivate or import.
func (m *Metrics) AccountChanged(action string) {
	m.accountChanges.WithLabelValues(action).Inc()
}
