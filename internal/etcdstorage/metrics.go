package etcdstorage

import (
	"errors"
	"io/fs"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dnspersist/caddy-persist/internal/promreg"
)

// storageMetrics count the storage's operations and its waits for locks,
// on Caddy's /metrics endpoints.
type storageMetrics struct {
	operations *prometheus.CounterVec
	lockWait   prometheus.Histogram
}

// newStorageMetrics registers the metrics in reg, or finds them there.
func newStorageMetrics(reg prometheus.Registerer) *storageMetrics {
	m := &storageMetrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy",
			Subsystem: "etcd_storage",
			Name:      "operations_total",
			Help:      "Storage operations on etcd, by operation and result (ok, not_found, error).",
		}, []string{"operation", "result"}),
		lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "caddy",
			Subsystem: "etcd_storage",
			Name:      "lock_wait_seconds",
			Help:      "Time from asking for a lock to holding it.",
			Buckets:   []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60},
		}),
	}
	if reg == nil {
		return m
	}
	m.operations = promreg.Register(reg, m.operations)
	m.lockWait = promreg.Register(reg, m.lockWait)
	return m
}

// count counts one operation with its outcome, *err; deferred, it sees
// the error the operation returns.
func (m *storageMetrics) count(op string, err *error) {
	result := "ok"
	switch {
	case errors.Is(*err, fs.ErrNotExist):
		result = "not_found"
	case *err != nil:
		result = "error"
	}
	m.operations.WithLabelValues(op, result).Inc()
}
