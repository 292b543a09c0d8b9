package persist

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"golang.org/x/sync/errgroup"

	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// RecordReport is one record to publish and, after a check, what is
// published. The `caddy persist` commands and the admin API print it.
type RecordReport struct {
	// Domain is the base domain the record authorizes.
	Domain string `json:"domain"`
	// Names are the configured or requested names this record serves.
	Names []string `json:"names"`
	// RecordName is where the record goes, without a trailing dot.
	RecordName string `json:"record_name"`
	// Value is the TXT value to publish.
	Value string `json:"value"`
	// ZoneLine is the same record as a zone file line, with strings over
	// 255 octets split.
	ZoneLine         string `json:"zone_line"`
	IssuerDomainName string `json:"issuer_domain_name"`
	AccountURL       string `json:"account_url"`
	CADirectory      string `json:"ca_directory"`
	Draft            string `json:"draft"`
	// Wildcard is set when the record carries policy=wildcard: a name is
	// *.<domain>, or the config obtains *.<domain> with this account too.
	Wildcard bool `json:"wildcard"`
	// PersistUntil is the configured persist_until (RFC 3339), if any.
	PersistUntil string `json:"persist_until,omitempty"`
	// NotServed, from the admin API, are the names of Names the running
	// config does not serve yet: the record is for a config not loaded
	// yet, and takes effect once Caddy loads it.
	NotServed []string `json:"not_served,omitempty"`

	// Status, Reason and Published are filled in by a check. Status is
	// "ok", "missing", "mismatch", "dns-error", "dnssec" or "expiring",
	// or "not-offered" when the CA was seen offering no dns-persist-01.
	Status    RecordStatus `json:"status,omitempty"`
	Reason    string       `json:"reason,omitempty"`
	Published []string     `json:"published,omitempty"`
	// Warnings, after a check, say what a passing record relies on that
	// Let's Encrypt accepts and stricter CAs refuse, each naming the
	// canonical value to publish instead.
	Warnings []string `json:"warnings,omitempty"`
	// PreviousKey, after a check, is set when the passing record is a -02
	// value made with a key the account had before a rollover: CAs keep
	// accepting it, and Value is the record to publish in its place.
	PreviousKey bool `json:"previous_key,omitempty"`
	// PublishAt, after a check, is where the record is published when
	// RecordName is an alias (a CNAME): the end of the chain, which the
	// check and the CA follow.
	PublishAt string `json:"publish_at,omitempty"`
	// Behind, after a check, are the nameservers that do not serve a
	// passing record while others do: the record is published, and they
	// have yet to catch up.
	Behind []string `json:"behind,omitempty"`
	// Stale, after a check, are the published values that name this
	// issuer's account as it was: made with a key it had before a
	// rollover, or naming an account it used before.
	Stale []StaleValue `json:"stale,omitempty"`
	// When Status is "not-offered", RecordStatus is the status of the
	// record itself, and NotOffered what the CA offered instead.
	RecordStatus RecordStatus      `json:"record_status,omitempty"`
	NotOffered   *NotOfferedReport `json:"not_offered,omitempty"`

	// CAA, when asked for, are the CAA records that lock Domain to this
	// account and to dns-persist-01, as zone file lines.
	CAA []string `json:"caa,omitempty"`
	// CAACheck, after a check, is what the CAA policy of Domain says of
	// this CA, account and method.
	CAACheck *CAAReport `json:"caa_check,omitempty"`
}

// RecordStatus is what a check found of a record: "ok", "missing",
// "mismatch", "dns-error", "dnssec", "expiring" or "not-offered".
type RecordStatus = record.Status

// CAAReport is the CAA policy of a domain as a check found it.
type CAAReport struct {
	// Status is allowed, forbidden, dns-error or dnssec.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// FoundAt is where the forbidding CAA records are, Found the records.
	FoundAt string   `json:"found_at,omitempty"`
	Found   []string `json:"found,omitempty"`
	// Servers serve the forbidding records, when others serve another
	// policy.
	Servers []string `json:"servers,omitempty"`
	// Warnings say what allowing records rely on that Let's Encrypt
	// accepts and stricter CAs may not.
	Warnings []string `json:"warnings,omitempty"`
	// Publish are the CAA records to publish instead, when not allowed.
	Publish []string `json:"publish,omitempty"`
}

// caaReport turns a CAA judgement into a report.
func caaReport(j judge.CAAJudgement) *CAAReport {
	r := &CAAReport{Status: caaAllowed}
	if !j.Allowed() {
		r = caaFailure(j).report()
	}
	r.Warnings = j.Warnings
	return r
}

// NotOfferedReport is the last time the CA offered no dns-persist-01 in
// an authorization: no certificate comes from it, whatever is published,
// until an order finds the challenge offered.
type NotOfferedReport struct {
	ObservedAt time.Time `json:"observed_at"`
	// Identifier is the name whose authorization lacked the challenge.
	Identifier string `json:"identifier"`
	// Offered are the challenge types it offered instead.
	Offered []string `json:"offered"`
}

// statusNotOffered is a check's status for every record of a CA that
// does not offer dns-persist-01.
const statusNotOffered record.Status = "not-offered"

// markNotOffered turns a checked report into one saying the CA does not
// offer the challenge, keeping what the record itself is.
func (r *RecordReport) markNotOffered(e *ChallengeNotOfferedError) {
	itself := string(r.Status)
	if r.Reason != "" {
		itself += ": " + r.Reason
	}
	r.RecordStatus = r.Status
	r.Status = statusNotOffered
	r.Reason = e.summary() + "; to obtain certificates, " + notOfferedAdvice + "; the record itself: " + itself
	r.NotOffered = &NotOfferedReport{ObservedAt: e.ObservedAt, Identifier: e.Identifier, Offered: e.Offered}
}

// StaleValue is a published value that names the issuer's account as it
// was (see judge.Stale).
type StaleValue = judge.Stale

// inspectOptions say what a report holds besides the records.
type inspectOptions struct {
	// check adds the status of what is published, CAA included.
	check bool
	// caa adds the CAA records to publish.
	caa bool
	// account, when set, is the account the records name instead of the
	// issuer's: a replacement's, before the switch to it.
	account *acme.Account
	// register registers the issuer's account if there is none, for
	// `caddy persist records` run on the config in its own process. A
	// report does not otherwise: it changes nothing, and a missing
	// account is account.ErrNoAccountYet.
	register bool
}

// inspectWith builds a report for each record the names need. Issuer names come
// from the directory (or issuer_domain_name), never from an order, so
// nothing is spent at the CA. A report changes nothing, at the CA or in
// storage (see account.Keeper.Peek), unless asked to register the account.
// With check, the reports also carry the status of what is published;
// without it, DNS is still read to keep the issuer name a published record
// already uses.
func (iss *Issuer) inspectWith(ctx context.Context, names []string, opts inspectOptions) ([]RecordReport, error) {
	plan, err := judge.PlanNames(names)
	if err != nil {
		return nil, &inputError{err}
	}
	in, err := iss.directoryInputs(ctx)
	if err != nil {
		return nil, err
	}
	acct := opts.account
	if acct == nil {
		// what another instance changed shows at once
		iss.accounts.Refresh()
		get := iss.accounts.Peek
		if opts.register {
			get = func(ctx context.Context) (acme.Account, error) { return iss.accounts.Get(ctx, true) }
		}
		current, err := get(ctx)
		if err != nil {
			return nil, err
		}
		acct = &current
	}
	iss.useAccount(ctx, &in, *acct)
	if in.Dir.Draft == record.Draft02 {
		if err := iss.accounts.ConfirmValid(ctx, in.Account); err != nil {
			return nil, err
		}
	}

	var notOffered *ChallengeNotOfferedError
	var former []acme.Account
	if opts.check {
		notOffered = iss.notOffered.last(ctx)
		// only a check reads what is published; accounts whose files
		// cannot be read are no reason to fail it
		former, _ = iss.accounts.Former(ctx)
	}
	// each base is looked up at once with others, within a bound, and
	// reported in the plan's order
	reports := make([]RecordReport, len(plan.Bases))
	// the first error ends the report, and the lookups still running
	group, groupCtx := errgroup.WithContext(ctx)
	group.SetLimit(maxConcurrentReports)
	for i, base := range plan.Bases {
		group.Go(func() error {
			r, err := iss.reportOn(groupCtx, in, plan, base, opts, notOffered, former)
			reports[i] = r
			return err
		})
	}
	if err := group.Wait(); err != nil {
		return nil, err
	}
	return reports, nil
}

// maxConcurrentReports bounds the lookups of one report, as
// max_concurrent_lookups bounds the on-demand permission's.
const maxConcurrentReports = DefaultMaxConcurrentLookups

// reportOn builds the report of the record at base.
func (iss *Issuer) reportOn(ctx context.Context, in recordInputs, plan judge.Plan, base string, opts inspectOptions, notOffered *ChallengeNotOfferedError, former []acme.Account) (RecordReport, error) {
	j, err := iss.judge.Record(ctx, in.Inputs, base, plan.Wildcard[base], judge.Fresh)
	if err != nil {
		return RecordReport{}, err
	}
	want := j.Exp.Want(j.Verdict)
	value, err := want.Value()
	if err != nil {
		return RecordReport{}, fmt.Errorf("building the record for %s: %v", base, err)
	}
	r := RecordReport{
		Domain:           base,
		Names:            namesUnder(plan, base),
		RecordName:       record.Name(base),
		Value:            value,
		ZoneLine:         record.ZoneLine(base, value),
		IssuerDomainName: want.IssuerDomainName,
		AccountURL:       in.Account.Location,
		CADirectory:      iss.CA,
		Draft:            in.Dir.Draft.String(),
		Wildcard:         want.Wildcard,
	}
	if until := iss.judge.Spec.PersistUntil; !until.IsZero() {
		r.PersistUntil = until.Format(time.RFC3339)
	}
	if opts.check {
		r.Published = j.Published
		r.Stale = iss.judge.Stale(in.Inputs, j, former)
		if views := j.Answer.Views; len(views) > 0 && len(views[0].CNAMEs) > 0 {
			r.PublishAt = views[0].CNAMEs[len(views[0].CNAMEs)-1]
		}
		if !j.Passed() {
			r.Behind = j.Behind
		}
		r.Status, r.Reason = checkStatus(j, iss.now())
		if j.Passed() {
			r.Warnings = warningDetails(j.Verdict)
			r.PreviousKey = j.Verdict.PreviousKey
			iss.notices.expiry(base, *j.Verdict.Matched)
			iss.notices.leniency(j)
		}
		if notOffered != nil {
			r.markNotOffered(notOffered)
		}
		r.CAACheck = caaReport(iss.judge.CAA(ctx, in.Inputs, base, plan.Plain[base], plan.Wildcard[base]))
	}
	if opts.caa {
		r.CAA = caaRecords(in, base, plan.Wildcard[base])
	}
	return r, nil
}

// checkStatus turns a judge.Judgement into a report's status and reason.
func checkStatus(j judge.Judgement, now time.Time) (record.Status, string) {
	if !j.Passed() {
		failure := recordFailure(j)
		return failure.Status(), failure.Reason()
	}
	if left, soon := j.Verdict.Matched.ExpiresSoon(now); soon {
		return record.StatusExpiring, fmt.Sprintf("persistUntil in %d days (%s)", int(left.Hours()/24), j.Verdict.Matched.PersistUntil.Format(time.RFC3339))
	}
	return record.StatusOK, ""
}

// namesUnder are the names under base, lowercased, sorted, once each.
func namesUnder(plan judge.Plan, base string) []string {
	out := make([]string, 0, len(plan.Under[base]))
	for _, n := range plan.Under[base] {
		out = append(out, strings.ToLower(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// inputError is a report request about names that are not valid.
type inputError struct{ error }

func (e *inputError) Unwrap() error { return e.error }

// inspectAll reports on every served set, merging sets of issuers that
// share an identity.
func inspectAll(ctx context.Context, sets []servedSet, opts inspectOptions) ([]RecordReport, error) {
	var merged []servedSet
	for _, set := range sets {
		i := slices.IndexFunc(merged, func(m servedSet) bool { return m.Issuer.identity == set.Issuer.identity })
		if i < 0 {
			merged = append(merged, servedSet{Issuer: set.Issuer, Names: slices.Clone(set.Names)})
			continue
		}
		merged[i].Names = append(merged[i].Names, set.Names...)
	}
	var all []RecordReport
	for _, set := range merged {
		if len(set.Names) == 0 {
			continue
		}
		reports, err := set.Issuer.inspectWith(ctx, set.Names, opts)
		if err != nil {
			return all, err
		}
		all = append(all, reports...)
	}
	return all, nil
}
