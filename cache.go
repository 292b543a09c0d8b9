package persist

import (
	"sync"
	"time"
)

// expiring is a bounded map whose entries expire. The permission's
// decisions, the wildcard grants, the resolver's recent answers and
// nameservers, and the log rate limits all keep one.
type expiring[V any] struct {
	mu      sync.Mutex
	max     int
	entries map[string]expiringEntry[V]
}

type expiringEntry[V any] struct {
	value   V
	expires time.Time
}

func newExpiring[V any](max int) *expiring[V] {
	return &expiring[V]{max: max, entries: make(map[string]expiringEntry[V])}
}

// get returns the value under key unless it has expired by now.
func (c *expiring[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// put stores value under key until expires. A full map first drops its
// expired entries, then arbitrary ones, so a flood of keys (random SNI
// names, say) cannot grow it without bound.
func (c *expiring[V]) put(key string, value V, now, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = expiringEntry[V]{value: value, expires: expires}
}
