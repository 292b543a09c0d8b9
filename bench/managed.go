package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"
)

// managedFigures are what certificates cost once obtained: the heap each
// holds while certmagic manages it, and the CPU the process spends while
// nothing is issued.
type managedFigures struct {
	certs      int
	heapPer    float64 // bytes per managed certificate
	idle       time.Duration
	idleCPU    time.Duration
	obtainWall time.Duration
}

// measureManaged obtains certificates for n bases with the persist
// issuer, has certmagic manage them as Caddy does, and measures the heap
// they hold, then the CPU spent over idle with nothing to do.
func measureManaged(ctx context.Context, p *persistContender, n, concurrency int, idle time.Duration) (managedFigures, error) {
	bases := make([]string, n)
	for i := range bases {
		bases[i] = fmt.Sprintf("m%d.%s", i, benchZone)
	}
	runtime.GC()
	baseline := readHeap()
	if err := p.Prepare(ctx, bases); err != nil {
		return managedFigures{}, err
	}
	defer p.Finish(bases)
	names := p.Names(bases)
	start := time.Now()
	if _, err := obtainAll(ctx, p, names, concurrency); err != nil {
		return managedFigures{}, err
	}
	f := managedFigures{certs: len(names), idle: idle, obtainWall: time.Since(start)}
	// stored certificates are loaded, not obtained again
	if err := p.cfg.ManageSync(ctx, names); err != nil {
		return managedFigures{}, fmt.Errorf("managing the certificates: %v", err)
	}
	runtime.GC()
	f.heapPer = float64(int64(readHeap())-int64(baseline)) / float64(len(names))
	cpu0 := cpuTime()
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return managedFigures{}, ctx.Err()
	}
	f.idleCPU = cpuTime() - cpu0
	return f, nil
}

func printManaged(w io.Writer, f managedFigures) {
	fmt.Fprintf(w, "\nManaged certificates (persist): %d obtained in %s, then managed by certmagic as Caddy does\n", f.certs, roundDuration(f.obtainWall))
	fmt.Fprintf(w, "  heap per managed certificate: %.1f KiB (after a GC, above the heap before)\n", f.heapPer/1024)
	fmt.Fprintf(w, "  CPU while idle for %s: %s (%.2f%% of one core)\n", f.idle, roundDuration(f.idleCPU), 100*f.idleCPU.Seconds()/f.idle.Seconds())
}
