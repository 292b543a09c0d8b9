// Package cache holds the bounded, expiring maps the plugin keeps in
// memory: on-demand decisions, wildcard grants, recent DNS answers,
// nameservers, and the rate limits of repeated log entries.
package cache

import (
	"sync"
	"time"
)

// Expiring is a map whose entries expire, bounded in size so that a flood
// of keys (random SNI names, say) cannot grow it without limit. Once full,
// a new key takes the place of the entry used least recently, so keys in
// steady use (the names of known tenants) stay while a flood passes
// through. Every operation costs the same however many entries it holds.
// It is safe for concurrent use.
type Expiring[V any] struct {
	mu    sync.Mutex
	max   int
	index map[string]int32
	// slots hold the entries in a list by use, linked by position: a
	// slot per entry, no allocation per entry, and no pointers for the
	// collector to follow but the keys' and values'
	slots []slot[V]
	// lru and mru are the ends of the list; free heads the slots that
	// expired entries left, linked through next. Each is -1 when none.
	lru, mru, free int32
}

type slot[V any] struct {
	key        string
	value      V
	expires    int64 // Unix nanoseconds
	prev, next int32
}

const none = -1

// NewExpiring returns an empty map that holds at most max entries.
func NewExpiring[V any](max int) *Expiring[V] {
	return &Expiring[V]{max: max, index: make(map[string]int32), lru: none, mru: none, free: none}
}

// Get returns the value under key unless it has expired by now.
func (c *Expiring[V]) Get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[key]
	if !ok {
		var zero V
		return zero, false
	}
	if c.slots[i].expires <= now.UnixNano() {
		c.remove(i)
		var zero V
		return zero, false
	}
	c.touch(i)
	return c.slots[i].value, true
}

// Put stores value under key until expires. A full map first drops its
// least recently used entry, which an expired one soon becomes.
func (c *Expiring[V]) Put(key string, value V, now, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[key]; ok {
		c.slots[i].value, c.slots[i].expires = value, expires.UnixNano()
		c.touch(i)
		return
	}
	if c.max <= 0 {
		return
	}
	if len(c.index) >= c.max {
		c.remove(c.lru)
	}
	i := c.free
	if i != none {
		c.free = c.slots[i].next
	} else {
		c.slots = append(c.slots, slot[V]{})
		i = int32(len(c.slots) - 1)
	}
	c.slots[i] = slot[V]{key: key, value: value, expires: expires.UnixNano(), prev: none, next: none}
	c.index[key] = i
	c.link(i)
}

// Len returns how many entries the map holds, expired ones included until
// they are dropped.
func (c *Expiring[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

// touch makes slot i the most recently used.
func (c *Expiring[V]) touch(i int32) {
	if c.mru == i {
		return
	}
	c.unlink(i)
	c.link(i)
}

// link puts slot i at the most recently used end.
func (c *Expiring[V]) link(i int32) {
	c.slots[i].prev, c.slots[i].next = c.mru, none
	if c.mru != none {
		c.slots[c.mru].next = i
	}
	c.mru = i
	if c.lru == none {
		c.lru = i
	}
}

// unlink takes slot i out of the list by use.
func (c *Expiring[V]) unlink(i int32) {
	s := &c.slots[i]
	if s.prev != none {
		c.slots[s.prev].next = s.next
	} else {
		c.lru = s.next
	}
	if s.next != none {
		c.slots[s.next].prev = s.prev
	} else {
		c.mru = s.prev
	}
}

// remove drops the entry in slot i and keeps the slot for the next one.
func (c *Expiring[V]) remove(i int32) {
	c.unlink(i)
	delete(c.index, c.slots[i].key)
	// the cleared slot keeps no key or value alive
	c.slots[i] = slot[V]{prev: none, next: c.free}
	c.free = i
}
