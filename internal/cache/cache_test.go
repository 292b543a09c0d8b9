package cache

import (
	"strconv"
	"testing"
	"time"
)

func TestExpiringCacheExpiresAndStaysBounded(t *testing.T) {
	now := time.Now()
	c := NewExpiring[int](3)
	c.Put("a", 1, now, now.Add(time.Minute))
	if v, ok := c.Get("a", now.Add(59*time.Second)); !ok || v != 1 {
		t.Errorf("before expiry: %v, %v", v, ok)
	}
	if _, ok := c.Get("a", now.Add(time.Minute)); ok {
		t.Error("an entry was returned at its expiry")
	}

	// full of live entries: a new key still gets in, the map stays at 3
	for i := range 10 {
		c.Put("k"+strconv.Itoa(i), i, now, now.Add(time.Hour))
		if len(c.entries) > 3 {
			t.Fatalf("%d entries, bound 3", len(c.entries))
		}
		if v, ok := c.Get("k"+strconv.Itoa(i), now); !ok || v != i {
			t.Errorf("the newest key k%d is missing", i)
		}
	}
	// expired entries go first; other entries go in map order, which
	// changes from run to run, so one try could pass by chance
	for range 100 {
		c = NewExpiring[int](2)
		c.Put("old", 0, now, now.Add(time.Second))
		c.Put("live", 1, now, now.Add(time.Hour))
		c.Put("new", 2, now.Add(2*time.Second), now.Add(time.Hour))
		if _, ok := c.Get("live", now.Add(3*time.Second)); !ok {
			t.Fatal("a live entry was dropped while an expired one could go")
		}
		if _, ok := c.entries["old"]; ok || len(c.entries) != 2 {
			t.Fatalf("entries after a put into a full map: %v", c.entries)
		}
	}
}
