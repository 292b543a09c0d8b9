package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// publishFigures are what a record published while the issuer waits for
// it costs: the time from publishing it to the certificate, and the TXT
// queries the issuer made while it waited.
type publishFigures struct {
	toCertificate time.Duration
	lookups       int
}

// measurePublish asks the persist issuer for a certificate whose record
// is not published, publishes the record as soon as the issuer has looked
// for it once (as an operator reading the log would, only faster), and
// measures how long the certificate then takes.
func measurePublish(ctx context.Context, e *env, p *persistContender) (publishFigures, error) {
	base := "late." + benchZone
	if err := p.Prepare(ctx, nil); err != nil {
		return publishFigures{}, err
	}
	defer p.Finish([]string{base})
	e.resetCounts()
	done := make(chan error, 1)
	go func() { done <- p.Obtain(ctx, base) }()
	// the forwarder counts the issuer's queries: the first TXT query is
	// its first look
	for e.fwd.snapshot().byType["client TXT"] == 0 {
		select {
		case err := <-done:
			return publishFigures{}, fmt.Errorf("obtaining ended before the issuer looked for the record: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	if err := publishRecords([]string{base}, p.record); err != nil {
		return publishFigures{}, err
	}
	published := time.Now()
	if err := <-done; err != nil {
		return publishFigures{}, err
	}
	return publishFigures{toCertificate: time.Since(published), lookups: e.fwd.snapshot().byType["client TXT"]}, nil
}

func printPublish(w io.Writer, f publishFigures) {
	fmt.Fprintf(w, "\nA record published while the persist issuer waits (right after its first look): the certificate %s after publishing; the issuer's TXT queries: %d\n",
		roundDuration(f.toCertificate), f.lookups)
}
