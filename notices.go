package persist

import (
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/cache"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/metrics"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// What the log says about the checks of records and CAA. The operator
// learns there what to publish, so each notice carries the fields of the
// failure's report (see render.go); each is rate-limited, since checks
// repeat every few seconds while an order waits and once a day after.

// noticeLog is where the issuer's checks say what the operator needs to
// know.
type noticeLog struct {
	logger *zap.Logger
	// board rate-limits the notices, and the not-offered refusal.
	board   *cache.NoticeBoard
	metrics *metrics.Metrics
	now     func() time.Time
}

// failure logs the record to publish, at most once an hour for the
// same name, status and value. A record refused by DNSSEC is logged with
// the servers whose answer does not verify and the broken link instead.
func (n *noticeLog) failure(e *RecordError) {
	r := e.report()
	key := strings.Join([]string{r.RecordName, string(r.Status), r.ZoneLine, strings.Join(e.Servers(), ","), brokenLink(e.dnssecFailure())}, "|")
	if !n.board.Due(key, time.Hour) {
		return
	}
	fields := []zap.Field{
		zap.String("record_name", r.RecordName),
		zap.String("record_value", r.Value),
		zap.String("zone_line", r.ZoneLine),
		zap.String("status", string(r.Status)),
		zap.String("reason", r.Reason),
	}
	if d := e.dnssecFailure(); d != nil {
		n.logger.Warn("dns-persist-01 record fails DNSSEC validation: the CA's resolver would answer SERVFAIL; no order is placed until the zone's signatures or DS records are fixed",
			append(fields, zap.Strings("servers", e.Servers()), zap.String("dnssec_zone", d.Zone), zap.String("dnssec_link", d.Link))...)
		return
	}
	msg := "dns-persist-01 record missing; publish it once and certificates follow"
	switch {
	case len(e.Servers()) > 0:
		msg = "dns-persist-01 record not yet served by every nameserver; waiting for them before asking the CA"
	case r.Status == record.StatusMismatch:
		msg = mismatchMessage(e.verdict.Mismatches)
	case r.Status == record.StatusDNSError:
		msg = "dns-persist-01 record could not be checked: DNS lookup failed"
	}
	n.logger.Warn(msg, append(fields, zap.Strings("servers_behind", e.Servers()))...)
}

// mismatchMessage says what is wrong with the published records, by the
// mismatch that concerns this account's own record first: beside a record
// of an old account or of another CA, ours may just lack policy=wildcard.
func mismatchMessage(mismatches []record.Mismatch) string {
	has := func(kind record.MismatchKind) bool {
		return slices.ContainsFunc(mismatches, func(m record.Mismatch) bool { return m.Kind == kind })
	}
	switch {
	case has(record.MismatchPolicy):
		return "dns-persist-01 record lacks policy=wildcard, which a wildcard certificate needs; publish the record below"
	case has(record.MismatchExpired):
		return "dns-persist-01 record is past its persistUntil; publish the record below"
	case has(record.MismatchPersistUntil):
		return "dns-persist-01 record's persistUntil is not the configured persist_until; publish the record below"
	case has(record.MismatchMalformed):
		return "dns-persist-01 record is malformed; publish the record below"
	case has(record.MismatchAccount):
		return "dns-persist-01 record names another ACME account; publish the record below, which names this one"
	case has(record.MismatchIssuer):
		return "dns-persist-01 record names an issuer domain name this CA does not offer; publish the record below"
	}
	return "dns-persist-01 record does not authorize this order; publish the record below"
}

// brokenLink names a broken DNSSEC link for the rate limit of its
// notices, so that another link of the same servers is said at once.
func brokenLink(e *dnslookup.DNSSECError) string {
	if e == nil {
		return ""
	}
	return e.Zone + " " + e.Link
}

// expiry warns at each check when the passing record's persistUntil
// is near, since after it the CA refuses the record.
func (n *noticeLog) expiry(base string, rec record.Record) {
	left, soon := rec.ExpiresSoon(n.now())
	if !soon {
		return
	}
	if n.metrics != nil {
		n.metrics.RecordExpiring()
	}
	n.logger.Warn("dns-persist-01 record expires soon; publish it with a later persistUntil",
		zap.String("record_name", record.Name(base)),
		zap.Time("persist_until", rec.PersistUntil),
		zap.Int("days_left", int(left.Hours()/24)))
}

// leniency warns that a passing record relies on what Let's Encrypt
// accepts and stricter CAs refuse (see record.Warning), with the canonical
// record to publish instead. The record works, so this is said at most
// once an hour for the same name and published value.
func (n *noticeLog) leniency(j judge.Judgement) {
	v := j.Verdict
	if !j.Passed() || len(v.Warnings) == 0 {
		return
	}
	name := record.Name(j.Exp.Domain)
	if !n.board.Due("lenient|"+name+"|"+v.MatchedValue, time.Hour) {
		return
	}
	// a record that passes always builds: its persistUntil is ahead
	canonical, _ := v.Matched.Value()
	zoneLine := record.ZoneLine(j.Exp.Domain, canonical)
	for _, w := range v.Warnings {
		n.logger.Warn("dns-persist-01 record passes by Let's Encrypt's rules, which stricter CAs do not share; publish it in canonical form",
			zap.String("record_name", name),
			zap.String("published_value", v.MatchedValue),
			zap.String("record_value", canonical),
			zap.String("zone_line", zoneLine),
			zap.String("warning_kind", string(w.Kind)),
			zap.String("warning", w.Detail))
	}
}

// caa logs a CAA policy that keeps the issuer from ordering, at most
// once an hour for the same domain and records.
func (n *noticeLog) caa(e *CAAError) {
	r := e.report()
	key := strings.Join([]string{"caa", e.Domain, r.Status, strings.Join(r.Found, ","), strings.Join(e.Servers, ","), brokenLink(e.dnssec)}, "|")
	if !n.board.Due(key, time.Hour) {
		return
	}
	if e.DNSErr != nil {
		n.logger.Warn("CAA could not be checked: DNS lookup failed; a CA refuses to issue while it cannot read CAA",
			zap.String("domain", e.Domain), zap.Error(e.DNSErr))
		return
	}
	if e.dnssec != nil {
		n.logger.Warn("CAA answer fails DNSSEC validation: the CA's resolver would answer SERVFAIL, and a CA refuses to issue while it cannot read CAA; no order is placed until the zone's signatures or DS records are fixed",
			zap.String("domain", e.Domain),
			zap.String("reason", r.Reason),
			zap.Strings("servers", e.Servers),
			zap.String("dnssec_zone", e.dnssec.Zone),
			zap.String("dnssec_link", e.dnssec.Link))
		return
	}
	n.logger.Error("CAA forbids this CA, account or method; no order is placed until the CAA records change",
		zap.String("domain", e.Domain),
		zap.String("found_at", r.FoundAt),
		zap.Strings("caa_found", r.Found),
		zap.String("reason", r.Reason),
		zap.Strings("servers", r.Servers),
		zap.Strings("caa_publish", r.Publish))
}

// caaLeniency warns, once a day per domain and warnings, that CAA
// allows this account only by Let's Encrypt's reading of the records.
func (n *noticeLog) caaLeniency(j judge.CAAJudgement) {
	if len(j.Warnings) == 0 || !n.board.Due("caa-lenient|"+j.Domain+"|"+strings.Join(j.Warnings, "|"), 24*time.Hour) {
		return
	}
	n.logger.Warn("CAA allows this account by Let's Encrypt's reading, which stricter CAs may not share",
		zap.String("domain", j.Domain), zap.Strings("warnings", j.Warnings), zap.Strings("caa_records", caaZoneLines(j.Domain, j.Publish)))
}
