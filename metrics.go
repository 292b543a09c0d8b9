package persist

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dnspersist/caddy-persist/internal/promreg"
)

// outcome is how an on-demand permission check ended. It is a byte
// rather than its label because every cached decision holds one.
type outcome uint8

// Outcomes of an on-demand permission check.
const (
	outcomeNone outcome = iota // a decision not counted, such as an aborted lookup
	outcomeAllowed
	outcomeDeniedMissing
	outcomeDeniedMismatch
	outcomeDeniedCAA
	// outcomeDeniedDNSSEC is a name whose record or CAA answer, in a
	// signed zone, does not verify: the CA's resolver would answer
	// SERVFAIL.
	outcomeDeniedDNSSEC
	outcomeDNSError
	outcomeCacheHit
)

// outcomeLabels are the outcomes as metric labels.
var outcomeLabels = [...]string{
	outcomeNone:           "",
	outcomeAllowed:        "allowed",
	outcomeDeniedMissing:  "denied_missing",
	outcomeDeniedMismatch: "denied_mismatch",
	outcomeDeniedCAA:      "denied_caa",
	outcomeDeniedDNSSEC:   "denied_dnssec",
	outcomeDNSError:       "dns_error",
	outcomeCacheHit:       "cache_hit",
}

func (o outcome) String() string { return outcomeLabels[o] }

// persistMetrics are the plugin's Prometheus metrics, registered in the
// config's registry so they appear on Caddy's /metrics endpoints.
type persistMetrics struct {
	permissionChecks *prometheus.CounterVec
	// byOutcome are permissionChecks' counters, looked up once: a cached
	// decision then costs no label lookup
	byOutcome       [len(outcomeLabels)]prometheus.Counter
	recordsExpiring prometheus.Counter
}

// countCheck counts an on-demand permission check with its outcome.
func (m *persistMetrics) countCheck(o outcome) {
	m.byOutcome[o].Inc()
}

// newPersistMetrics registers the metrics in reg, or finds them there when
// another persist module of the same config registered them first.
func newPersistMetrics(reg prometheus.Registerer) *persistMetrics {
	m := &persistMetrics{
		permissionChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy",
			Subsystem: "persist",
			Name:      "permission_checks_total",
			Help:      "On-demand permission checks of dns-persist-01 records, by outcome.",
		}, []string{"outcome"}),
		recordsExpiring: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "caddy",
			Subsystem: "persist",
			Name:      "records_expiring_total",
			Help:      "Checks that found a passing dns-persist-01 record whose persistUntil is less than 30 days away.",
		}),
	}
	if reg != nil {
		m.permissionChecks = promreg.Register(reg, m.permissionChecks)
		m.recordsExpiring = promreg.Register(reg, m.recordsExpiring)
	}
	// outcomeNone is never counted, and gets no series
	for o := outcomeAllowed; int(o) < len(m.byOutcome); o++ {
		m.byOutcome[o] = m.permissionChecks.WithLabelValues(o.String())
	}
	return m
}
