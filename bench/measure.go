package main

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"time"
)

// cpuTime is the user plus system CPU time of the whole process so far:
// the client under test, but also Pebble and the DNS servers, which run
// in the same process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapMetric is the bytes held by live and not yet swept heap objects,
// what MemStats calls HeapAlloc; reading it does not stop the world.
const heapMetric = "/memory/classes/heap/objects:bytes"

// heapSampler records the highest heap size seen while it runs.
type heapSampler struct {
	baseline uint64
	stop     chan struct{}
	done     sync.WaitGroup
	peak     uint64
}

// startHeapSampler collects garbage, takes the heap size left as the
// baseline, and samples the heap every interval until Stop.
func startHeapSampler(interval time.Duration) *heapSampler {
	runtime.GC()
	h := &heapSampler{stop: make(chan struct{})}
	h.baseline = readHeap()
	h.peak = h.baseline
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
				h.peak = max(h.peak, readHeap())
			}
		}
	}()
	return h
}

// Stop ends the sampling and returns the peak above the baseline.
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	h.peak = max(h.peak, readHeap())
	return h.peak - h.baseline
}

func readHeap() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
