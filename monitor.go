package persist

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/judge"
)

// Records are checked at issuance and renewal, and also once a day, so
// that a record removed or nearing its persistUntil is noticed before a
// renewal fails.
const (
	monitorFirstDelay = time.Minute
	monitorInterval   = 24 * time.Hour
	// monitorFirstSpread is how long the first pass after a config loads
	// takes: a new config has a new metrics registry, whose record series
	// should not wait a day to be set again.
	monitorFirstSpread = 10 * time.Minute
)

// startMonitor checks the records of the names this issuer serves once a
// day, until the config is unloaded. Each day's pass is spread over the
// day, a base domain at a time, so that a platform serving thousands of
// names makes a lookup every minute or so, not thousands at one instant;
// the first, which sets the metrics of a config just loaded, is spread
// over monitorFirstSpread.
func (iss *Issuer) startMonitor(ctx caddy.Context) {
	go func() {
		timer := time.NewTimer(monitorFirstDelay)
		defer timer.Stop()
		spread := monitorFirstSpread
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
				started := time.Now()
				iss.checkServedRecords(ctx, ctx, spread)
				timer.Reset(max(monitorInterval-time.Since(started), 0))
				spread = monitorInterval
			}
		}
	}()
}

// checkServedRecords looks up the record of every name this issuer serves
// in the running config, one base domain after another, spread evenly
// over spread; checkRecord logs what needs attention. It never registers
// an account: without one there is no record to check yet.
func (iss *Issuer) checkServedRecords(ctx context.Context, running caddy.Context, spread time.Duration) {
	sets, err := servedNames(running, nil, nil)
	if err != nil {
		iss.logger.Warn("daily record check skipped: the names this issuer serves could not be listed", zap.Error(err))
		return
	}
	var names []string
	for _, set := range sets {
		if set.Issuer == iss {
			names = set.Names
		}
	}
	if len(names) == 0 {
		return
	}
	in, err := iss.recordInputs(ctx, false)
	if errors.Is(err, account.ErrNoAccountYet) {
		return
	}
	if err != nil {
		iss.logger.Warn("daily record check skipped", zap.Error(err))
		return
	}
	if e := iss.notOffered.last(ctx); e != nil {
		iss.logger.Warn("daily record check: the CA did not offer dns-persist-01 when last asked, so no certificate comes from this issuer",
			zap.String("ca", iss.CA),
			zap.Time("observed_at", e.ObservedAt),
			zap.Strings("offered", e.Offered),
			zap.String("what_to_do", notOfferedAdvice))
	}
	plan, err := judge.PlanNames(names)
	if err != nil {
		iss.logger.Warn("daily record check skipped: fix the name in the config", zap.Error(err))
		return
	}
	gap := spread / time.Duration(len(plan.Bases))
	for i, base := range plan.Bases {
		if i > 0 && gap > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
		}
		if i > 0 {
			// the pass spans the day, and the account may have been
			// rolled over or replaced since it began; the directory
			// and the account are cached, so this costs no round trip
			if in, err = iss.recordInputs(ctx, false); err != nil {
				iss.logger.Warn("daily record check stopped", zap.String("domain", base), zap.Error(err))
				return
			}
		}
		// a record that fails is logged by checkRecord itself
		err := iss.checkRecord(ctx, in, base, plan.Wildcard[base])
		var recErr *RecordError
		if err != nil && !errors.As(err, &recErr) {
			iss.logger.Warn("daily record check skipped", zap.String("domain", base), zap.Error(err))
		}
		// and CAA that forbids issuance, by checkCAA
		_ = iss.checkCAA(ctx, in, base, plan.Plain[base], plan.Wildcard[base])
	}
}
