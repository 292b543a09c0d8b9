package persist

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dnspersist/caddy-persist/internal/promreg"
)

// Outcomes of an on-demand permission check, as metric labels.
const (
	outcomeAllowed        = "allowed"
	outcomeDeniedMissing  = "denied_missing"
	outcomeDeniedMismatch = "denied_mismatch"
	outcomeDeniedCAA      = "denied_caa"
	// outcomeDeniedDNSSEC is a name whose record or CAA answer, in a
	// signed zone, does not verify: the CA's resolver would answer
	// SERVFAIL.
	outcomeDeniedDNSSEC = "denied_dnssec"
	outcomeDNSError     = "dns_error"
	outcomeCacheHit     = "cache_hit"
)

// persistMetrics are the plugin's Prometheus metrics, registered in the
// config's registry so they appear on Caddy's /metrics endpoints.
type persistMetrics struct {
	permissionChecks *prometheus.CounterVec
	recordsExpiring  prometheus.Counter
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
	if reg == nil {
		return m
	}
	m.permissionChecks = promreg.Register(reg, m.permissionChecks)
	m.recordsExpiring = promreg.Register(reg, m.recordsExpiring)
	return m
}
