package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// sample is what one timed run of one contender measured.
type sample struct {
	certs int
	wall  time.Duration
	acme  int // requests counted at Pebble's handler
	// acmeByKind splits acme by endpoint ("new-order", "authz", ...).
	acmeByKind map[string]int
	dnsClient  int // queries from the ACME client side
	dnsCA      int // queries from Pebble's VA
	dnsByType  map[string]int
	cpu        time.Duration
	peakHeap   uint64 // bytes above the heap left after a GC before the run
	// latencies holds how long each certificate took, from the call to
	// Obtain to its return; it is not affected by how certificates fall
	// into waves of concurrency.
	latencies []time.Duration
}

// heapSampleInterval is how often the heap is sampled during a run.
const heapSampleInterval = 5 * time.Millisecond

// runOnce obtains certificates for bases with c, concurrency at a time,
// and measures it. Preparing and cleaning up are not timed.
func runOnce(ctx context.Context, e *env, c contender, bases []string, concurrency int) (sample, error) {
	names := c.Names(bases)
	if err := c.Prepare(ctx, bases); err != nil {
		return sample{}, fmt.Errorf("%s: preparing: %v", c.Name(), err)
	}
	defer c.Finish(bases)

	heap := startHeapSampler(heapSampleInterval)
	e.resetCounts()
	cpu0 := cpuTime()
	start := time.Now()
	latencies, err := obtainAll(ctx, c, names, concurrency)
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	peak := heap.Stop()
	if err != nil {
		return sample{}, err
	}
	dnsCounts := e.fwd.snapshot()
	return sample{
		certs:      len(names),
		wall:       wall,
		acme:       e.ca.Counts.Total(),
		acmeByKind: acmeCountsByKind(e),
		dnsClient:  dnsCounts.client,
		dnsCA:      dnsCounts.ca,
		dnsByType:  dnsCounts.byType,
		cpu:        cpu,
		peakHeap:   peak,
		latencies:  latencies,
	}, nil
}

// obtainAll obtains every name, at most concurrency at once, and returns
// how long each took. It stops at the first failure: a benchmark that lost
// a certificate measured nothing.
func obtainAll(ctx context.Context, c contender, names []string, concurrency int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan string)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, len(names))
	)
	for range min(concurrency, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				start := time.Now()
				if err := c.Obtain(ctx, name); err != nil {
					cancel(fmt.Errorf("%s: obtaining %s: %w", c.Name(), name, err))
					continue
				}
				took := time.Since(start)
				mu.Lock()
				latencies = append(latencies, took)
				mu.Unlock()
			}
		}()
	}
	for _, name := range names {
		select {
		case work <- name:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	return latencies, context.Cause(ctx)
}

// acmeKinds are the request kinds the CA counter tells apart.
var acmeKinds = []string{
	acmetest.KindDirectory, acmetest.KindNonce, acmetest.KindNewAccount, acmetest.KindAccount,
	acmetest.KindNewOrder, acmetest.KindAuthz, acmetest.KindChallenge, acmetest.KindFinalize,
	acmetest.KindOrder, acmetest.KindCert, acmetest.KindRenewal, acmetest.KindRevoke, acmetest.KindOther,
}

func acmeCountsByKind(e *env) map[string]int {
	m := make(map[string]int)
	for _, k := range acmeKinds {
		if n := e.ca.Counts.Get(k); n > 0 {
			m[k] = n
		}
	}
	return m
}
