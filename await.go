package persist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// RecordError says that a record does not authorize the account, and what
// to publish instead. It is returned before the CA is asked to validate.
type RecordError struct {
	// Domain is the base domain the record sits under.
	Domain string
	// DNSErr is set when the lookup itself failed.
	DNSErr error
	// verdict is the outcome of the check, which did not pass.
	verdict failedVerdict
	// want is the record to publish. It is kept rather than its text:
	// the on-demand permission caches a refusal per name, and a flood of
	// names makes a million of them.
	want record.Record
	// lag, when set, names the servers that fail while others pass.
	lag *laggingServers
}

// laggingServers are the nameservers or resolvers that fail while others
// serve a passing record or fail otherwise; the verdict is on the first
// of them. With dnssec, they are the servers whose answer does not verify
// from the zone's DS down: the CA's validating resolver answers SERVFAIL,
// whatever the record says.
type laggingServers struct {
	servers []string
	dnssec  *dnslookup.DNSSECError
}

// Servers are the servers that fail while others do not, if any.
func (e *RecordError) Servers() []string {
	if e.lag == nil {
		return nil
	}
	return e.lag.servers
}

// dnssecFailure is why a validating resolver refuses the answer, if it
// does.
func (e *RecordError) dnssecFailure() *dnslookup.DNSSECError {
	if e.lag == nil {
		return nil
	}
	return e.lag.dnssec
}

// Status is the kind of failure: missing, mismatch, dns-error or dnssec.
func (e *RecordError) Status() RecordStatus {
	switch {
	case e.DNSErr != nil:
		return record.StatusDNSError
	case e.dnssecFailure() != nil:
		return record.StatusDNSSEC
	}
	return e.verdict.status()
}

// Reason explains the failure in one line.
func (e *RecordError) Reason() string {
	if e.DNSErr != nil {
		return e.DNSErr.Error()
	}
	if d := e.dnssecFailure(); d != nil {
		return dnssecReason(e.Servers(), d)
	}
	if servers := e.Servers(); len(servers) > 0 {
		return fmt.Sprintf("at %s: %s (the CA may reach any of them, so each must serve a passing record)", strings.Join(servers, ", "), e.verdict.Reason())
	}
	return e.verdict.Reason()
}

func (e *RecordError) Error() string { return recordLine(e.report(), false) }

// Publish is the value to publish; empty when the CA's issuer domain
// name is unknown.
func (e *RecordError) Publish() string {
	value, err := e.want.Value()
	if err != nil {
		return ""
	}
	return value
}

// ZoneLine is the record to publish as a zone file line; empty when the
// CA's issuer domain name is unknown.
func (e *RecordError) ZoneLine() string {
	value := e.Publish()
	if value == "" {
		return ""
	}
	return record.ZoneLine(e.Domain, value)
}

// report is the failure as the report of a checked record.
func (e *RecordError) report() RecordReport {
	return RecordReport{
		Domain:     e.Domain,
		RecordName: record.Name(e.Domain),
		Value:      e.Publish(),
		ZoneLine:   e.ZoneLine(),
		Status:     e.Status(),
		Reason:     e.Reason(),
	}
}

func (e *RecordError) Unwrap() error {
	if d := e.dnssecFailure(); d != nil && e.DNSErr == nil {
		return d
	}
	return e.DNSErr
}

// newRecordError describes a failed check of exp.
func newRecordError(exp record.Expectation, v record.Verdict, dnsErr error) *RecordError {
	return &RecordError{Domain: exp.Domain, verdict: failedVerdict{Mismatches: v.Mismatches}, want: exp.Want(v), DNSErr: dnsErr}
}

// failedVerdict is what a RecordError keeps of a verdict: a record that
// fails has no matched value and no warnings, and is missing unless
// something published mismatches; the smaller error is what the
// on-demand permission caches per refused name.
type failedVerdict struct {
	Mismatches []record.Mismatch
}

func (v failedVerdict) status() record.Status {
	if len(v.Mismatches) > 0 {
		return record.StatusMismatch
	}
	return record.StatusMissing
}

func (v failedVerdict) full() record.Verdict {
	return record.Verdict{Status: v.status(), Mismatches: v.Mismatches}
}

// Reason explains the failure in one line.
func (v failedVerdict) Reason() string { return v.full().Reason() }

// Has reports whether the verdict includes a mismatch of kind.
func (v failedVerdict) Has(kind record.MismatchKind) bool { return v.full().Has(kind) }

// checkBeforeOrder confirms every record of the order is published, and
// that CAA lets this account through, when the issuer domain names are
// known before an order. Otherwise the solver checks, with the names the
// challenge offers. A negative propagation_timeout turns the check off.
func (iss *Issuer) checkBeforeOrder(ctx context.Context, order *orderState) error {
	if iss.PropagationTimeout < 0 || order.in.Offered == nil {
		return nil
	}
	stepAside := func(ctx context.Context) error { return iss.stepAside(ctx, order.plan, true) }
	waited := time.Now()
	err := iss.awaitRecords(ctx, order.in, order.plan, order.plan.Bases, true, order.started.Add(time.Duration(iss.PropagationTimeout)), stepAside)
	iss.metrics.ObserveWait(iss.CA, time.Since(waited))
	order.caaChecked = err == nil
	return err
}

// awaitRecords checks the record of each base until all pass or the
// deadline comes, and then reports every record that still fails. With
// withCAA, the CAA policy of each base is judged too, until it allows the
// names: a policy that forbids them ends the wait at once, since waiting
// does not change it, while a CAA lookup that fails is waited out like a
// record's. While records fail, stepAside (when not nil) may end the wait
// with its error.
func (iss *Issuer) awaitRecords(ctx context.Context, in recordInputs, plan judge.Plan, bases []string, withCAA bool, deadline time.Time, stepAside func(context.Context) error) error {
	pending := bases
	var caaDue []string
	if withCAA {
		caaDue = bases
	}
	var failures []error
	for looks := 1; ; looks++ {
		failures = failures[:0]
		var caaStill []string
		for _, base := range caaDue {
			err := iss.checkCAA(ctx, in, base, plan.Plain[base], plan.Wildcard[base])
			var caaErr *CAAError
			if err != nil && (!errors.As(err, &caaErr) || !caaErr.mayPass()) {
				return err
			}
			if err != nil {
				failures = append(failures, err)
				caaStill = append(caaStill, base)
			}
		}
		caaDue = caaStill
		var still []string
		for _, base := range pending {
			err := iss.checkRecord(ctx, in, base, plan.Wildcard[base])
			var recErr *RecordError
			if err != nil && !errors.As(err, &recErr) {
				return err
			}
			if err != nil {
				failures = append(failures, err)
				still = append(still, base)
			}
		}
		if len(still) == 0 && len(caaDue) == 0 {
			return nil
		}
		pending = still
		if stepAside != nil {
			if err := stepAside(ctx); err != nil {
				return err
			}
		}
		wait := nextLookIn(looks, iss.checkInterval)
		if wait > deadline.Sub(iss.now()) {
			return errors.Join(failures...)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return errors.Join(append(failures, ctx.Err())...)
		case <-timer.C:
		}
	}
}

// nextLookIn is the pause after the first looks at the records. The
// second look comes an eighth of the interval after the first, the others
// an interval apart, until the next would come after the deadline. A
// record published as soon as the log names it is then seen within a
// fraction of a second, and a wait that never sees it makes as many looks
// as a fixed interval with a look at the deadline would: the early look
// takes the deadline's place (over a 2-minute wait at 2s, 61 either way).
func nextLookIn(looks int, interval time.Duration) time.Duration {
	if looks == 1 {
		return interval / 8
	}
	return interval
}

// checkRecord judges the record at base once, reusing a passing answer of
// the last few seconds, and logs what the operator needs to know. A
// record that does not pass is a *RecordError; any other error means the
// expectation could not be built, and waiting will not change it.
func (iss *Issuer) checkRecord(ctx context.Context, in recordInputs, base string, wildcard bool) error {
	j, err := iss.judge.Record(ctx, in.Inputs, base, wildcard, judge.RecentPassWillDo)
	if err != nil {
		return err
	}
	if !j.Passed() {
		recErr := recordFailure(j)
		iss.notices.failure(recErr)
		return recErr
	}
	iss.notices.expiry(base, *j.Verdict.Matched)
	iss.notices.leniency(j)
	return nil
}

// recordFailure describes a judgement that did not pass, with the record
// to publish.
func recordFailure(j judge.Judgement) *RecordError {
	e := newRecordError(j.Exp, j.Verdict, j.LookupErr)
	switch {
	case j.DNSSEC != nil && j.LookupErr == nil:
		e.lag = &laggingServers{servers: j.DNSSECAt, dnssec: j.DNSSEC}
	case len(j.Behind) > 0:
		e.lag = &laggingServers{servers: j.Behind}
	}
	return e
}
