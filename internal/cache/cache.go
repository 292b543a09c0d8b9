// Package cache holds the bounded, expiring maps the plugin keeps in
// memory: on-demand decisions, wildcard grants, recent DNS answers,
// nameservers, and the rate limits of repeated log entries.
package cache

import (
	"sync"
	"time"
)

// Expiring is a map whose entries expire, bounded in size so that a flood
// of keys (random SNI names, say) cannot grow it without limit. It is safe
// for concurrent use.
type Expiring[V any] struct {
	mu      sync.Mutex
	max     int
	entries map[string]entry[V]
}

type entry[V any] struct {
	value   V
	expires time.Time
}

// NewExpiring returns an empty map that holds at most max entries.
func NewExpiring[V any](max int) *Expiring[V] {
	return &Expiring[V]{max: max, entries: make(map[string]entry[V])}
}

// Get returns the value under key unless it has expired by now.
func (c *Expiring[V]) Get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Put stores value under key until expires. A full map first drops its
// expired entries, then arbitrary ones.
func (c *Expiring[V]) Put(key string, value V, now, expires time.Time) {
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
	c.entries[key] = entry[V]{value: value, expires: expires}
}
