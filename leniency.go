package persist

import (
	"time"

	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// noticeLeniency warns that a passing record relies on what Let's Encrypt
// accepts and stricter CAs refuse (see record.Warning), with the canonical
// record to publish instead. The record works, so this is said at most
// once an hour for the same name and published value.
func (iss *Issuer) noticeLeniency(j judgement) {
	v := j.verdict
	if !j.passed() || len(v.Warnings) == 0 {
		return
	}
	name := record.Name(j.exp.Domain)
	if !iss.notices.Due("lenient|"+name+"|"+v.MatchedValue, time.Hour) {
		return
	}
	// a record that passes always builds: its persistUntil is ahead
	canonical, _ := v.Matched.Value()
	zoneLine := record.ZoneLine(j.exp.Domain, canonical)
	for _, w := range v.Warnings {
		iss.logger.Warn("dns-persist-01 record passes by Let's Encrypt's rules, which stricter CAs do not share; publish it in canonical form",
			zap.String("record_name", name),
			zap.String("published_value", v.MatchedValue),
			zap.String("record_value", canonical),
			zap.String("zone_line", zoneLine),
			zap.String("warning_kind", string(w.Kind)),
			zap.String("warning", w.Detail))
	}
}

// warningDetails lists a verdict's warnings for reports.
func warningDetails(v record.Verdict) []string {
	var out []string
	for _, w := range v.Warnings {
		out = append(out, w.Detail)
	}
	return out
}
