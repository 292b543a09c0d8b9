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
		if n := c.Len(); n > 3 {
			t.Fatalf("%d entries, bound 3", n)
		}
		if v, ok := c.Get("k"+strconv.Itoa(i), now); !ok || v != i {
			t.Errorf("the newest key k%d is missing", i)
		}
	}
	// the entry used least recently goes first: here the expired one
	c = NewExpiring[int](2)
	c.Put("old", 0, now, now.Add(time.Second))
	c.Put("live", 1, now, now.Add(time.Hour))
	c.Put("new", 2, now.Add(2*time.Second), now.Add(time.Hour))
	if _, ok := c.Get("live", now.Add(3*time.Second)); !ok {
		t.Fatal("a live entry was dropped while an expired one could go")
	}
	if _, ok := c.index["old"]; ok || c.Len() != 2 {
		t.Fatalf("entries after a put into a full map: %v", c.index)
	}
}

// Keys in steady use stay while a flood of new keys passes through a full
// map: each Put drops the key used least recently.
func TestExpiringKeepsKeysInUseUnderAFlood(t *testing.T) {
	now := time.Now()
	c := NewExpiring[int](100)
	for i := range 10 {
		c.Put("tenant"+strconv.Itoa(i), i, now, now.Add(time.Hour))
	}
	for i := range 10_000 {
		c.Put("flood"+strconv.Itoa(i), i, now, now.Add(time.Hour))
		if i%50 == 0 {
			// the tenants are asked for more often than 90 flood names
			// arrive
			for j := range 10 {
				if v, ok := c.Get("tenant"+strconv.Itoa(j), now); !ok || v != j {
					t.Fatalf("tenant%d was dropped by flood name %d", j, i)
				}
			}
		}
		if n := c.Len(); n > 100 {
			t.Fatalf("%d entries, bound 100", n)
		}
	}
	if _, ok := c.Get("flood0", now); ok {
		t.Error("the first flood name, unused since, is still there")
	}
	// an expired entry is dropped when asked for, and its slot reused
	c.Put("brief", 1, now, now.Add(time.Second))
	if _, ok := c.Get("brief", now.Add(time.Second)); ok || c.Len() != 99 {
		t.Errorf("an expired entry was returned or kept (%d entries)", c.Len())
	}
	slots := len(c.slots)
	c.Put("next", 1, now, now.Add(time.Hour))
	if len(c.slots) != slots {
		t.Errorf("a new entry took a new slot (%d, was %d) while one was free", len(c.slots), slots)
	}
}

// Put costs the same in a full map however large the map is: compare the
// ns/op of the sizes (go test -bench ExpiringPut ./internal/cache).
func BenchmarkExpiringPut(b *testing.B) {
	for _, size := range []int{10_000, 100_000, 1_000_000} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			now := time.Now()
			c := NewExpiring[int](size)
			for i := range size {
				c.Put("fill"+strconv.Itoa(i), i, now, now.Add(time.Hour))
			}
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = "new" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c.Put(keys[i], i, now, now.Add(time.Hour))
			}
		})
	}
}
