package persist

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// Every decision about a record takes one road: the inputs (directory,
// issuer names, account), then the expectation for a base domain, then
// the published values (a lookup, or a passing answer from moments ago),
// then the verdict. Issuance, the solver, the on-demand permission,
// wildcard grants, reports and the daily check all decide through judge;
// zoneLines only renders the records to publish.

// recordInputs is what writing or checking a record needs besides its
// domain.
type recordInputs struct {
	client *acmez.Client
	dir    caDirectory
	// offered are the issuer domain names records may use.
	offered []string
	acct    acme.Account
	// challengeURI is the accounturi a -01 challenge names, which the CA
	// validates the record against instead of the account URL: the
	// challenge's in the solver, else the one challenges last named
	// (Keeper.ChallengeURI); empty when none names one.
	challengeURI string
	// previous, for a -02 CA, are the thumbprints of acct's earlier
	// keys: the CA keeps accepting records hashed with them.
	previous []string
}

// recordInputs gathers the inputs known without placing an order: the
// directory, the issuer names it offers (or issuer_domain_name), and the
// account. With register, an account is registered if there is none;
// without, a missing account is account.ErrNoAccountYet.
func (iss *Issuer) recordInputs(ctx context.Context, register bool) (recordInputs, error) {
	in, err := iss.directoryInputs(ctx)
	if err != nil {
		return in, err
	}
	acct, err := iss.accounts.Get(ctx, register)
	if err != nil {
		return in, err
	}
	iss.useAccount(ctx, &in, acct)
	return in, nil
}

// directoryInputs are the inputs but the account: the directory and the
// issuer names it offers, or issuer_domain_name.
func (iss *Issuer) directoryInputs(ctx context.Context) (recordInputs, error) {
	if err := iss.spec.passed(iss.now()); err != nil {
		return recordInputs{}, err
	}
	client, dir, err := iss.client.directory(ctx)
	if err != nil {
		return recordInputs{}, err
	}
	in := recordInputs{client: client, dir: dir, offered: iss.spec.offered(dir)}
	if in.offered == nil {
		return in, fmt.Errorf("the directory of %s names no issuer domain names (neither meta.issuerDomainNames nor meta.caaIdentities), so the record cannot be written before an order; set issuer_domain_name to the name your CA documents for dns-persist-01", iss.CA)
	}
	return in, nil
}

// useAccount makes acct the account of in, with the accounturi its
// challenges last named and, for a -02 CA, the thumbprints of its
// previous keys. Those thumbprints only let more records pass, so a file
// of them that cannot be read is no reason to stop: records made with
// the current key still pass, and the others fail as if it were empty.
func (iss *Issuer) useAccount(ctx context.Context, in *recordInputs, acct acme.Account) {
	in.acct, in.previous = acct, nil
	in.challengeURI = iss.accounts.ChallengeURI(ctx, acct)
	if in.dir.Draft != record.Draft02 {
		return
	}
	previous, err := iss.accounts.PreviousThumbprints(ctx, acct)
	if err != nil {
		iss.logger.Warn("could not read the thumbprints of the account's previous keys; draft -02 records made with those keys fail the check until they can be read",
			zap.String("account_url", acct.Location), zap.Error(err))
	}
	in.previous = previous
}

// recordSpec is what the config says of every record the issuer needs:
// the issuer domain name it prefers, persist_until, and the wildcards
// served beside their apex.
type recordSpec struct {
	// ca is the directory URL, for errors.
	ca string
	// preferred is issuer_domain_name, if set.
	preferred    string
	persistUntil time.Time
	// wildcardBases are the base domains whose wildcard the config
	// obtains with this issuer's account and settings: Caddy orders the
	// apex and the wildcard as two certificates, and the record each
	// asks for must be the one both need. Nil when unknown (no config).
	wildcardBases func() map[string]bool
}

// passed is the error of a persist_until in the past: every CA refuses
// the records it makes, so none is printed and no order is placed. The
// config still loads, so that valid certificates keep being served.
func (s recordSpec) passed(now time.Time) error {
	if s.persistUntil.IsZero() || !now.After(s.persistUntil) {
		return nil
	}
	return &persistUntilPassedError{until: s.persistUntil}
}

// persistUntilPassedError is a persist_until in the past.
type persistUntilPassedError struct{ until time.Time }

func (e *persistUntilPassedError) Error() string {
	return fmt.Sprintf("persist_until %s has passed, and CAs refuse records past their persistUntil: set a later persist_until (or remove it) in the config, reload a running Caddy, and publish the records caddy persist records prints then", e.until.UTC().Format(time.RFC3339))
}

// offered returns the issuer domain names known without an order: the
// directory's, else the configured one. Nil means only the challenge will
// tell.
func (s recordSpec) offered(dir caDirectory) []string {
	if len(dir.IssuerNames) > 0 {
		return dir.IssuerNames
	}
	if s.preferred != "" {
		return []string{s.preferred}
	}
	return nil
}

// expectation builds what the record at base must say for the account of
// in, given the issuer domain names it offers.
func (s recordSpec) expectation(in recordInputs, base string, wildcard bool) (record.Expectation, error) {
	exp := record.Expectation{
		Domain:       base,
		Offered:      in.offered,
		Preferred:    s.preferred,
		Wildcard:     wildcard,
		PersistUntil: s.persistUntil,
	}
	if s.wildcardBases != nil {
		exp.PublishWildcard = s.wildcardBases()[base]
	}
	if exp.Preferred != "" && !slices.Contains(in.offered, exp.Preferred) {
		return exp, fmt.Errorf("issuer_domain_name %q is not offered by %s, which offers %v; set one of those or remove issuer_domain_name", exp.Preferred, s.ca, in.offered)
	}
	if in.challengeURI != "" && in.dir.Draft != record.Draft02 {
		exp.AccountURIs = []string{in.challengeURI}
		return exp, nil
	}
	uris, err := accountURIs(in.dir, in.acct, base)
	if err != nil {
		return exp, err
	}
	exp.AccountURIs = uris
	for _, thumbprint := range in.previous {
		previous, err := hashedAccountURIs(in.dir, thumbprint, in.acct.Location, base)
		if err != nil {
			return exp, err
		}
		exp.PreviousAccountURIs = append(exp.PreviousAccountURIs, previous...)
	}
	return exp, nil
}

// zoneLines renders, without looking anything up, the records an order's
// names need, as zone file lines. They need the issuer domain names;
// without them the list is empty.
func (s recordSpec) zoneLines(plan orderPlan, in recordInputs) []string {
	if in.offered == nil {
		return nil
	}
	var lines []string
	for _, base := range plan.bases {
		exp, err := s.expectation(in, base, plan.wildcard[base])
		if err != nil {
			continue
		}
		if value, err := exp.Want(record.Verdict{}).Value(); err == nil {
			lines = append(lines, record.ZoneLine(base, value))
		}
	}
	return lines
}

// accountURIs lists the accounturi values the CA accepts for acct at base,
// the one to publish first. Draft -02 also accepts the hash made for every
// domain.
func accountURIs(dir caDirectory, acct acme.Account, base string) ([]string, error) {
	if dir.Draft != record.Draft02 {
		return []string{acct.Location}, nil
	}
	thumbprint, err := acct.Thumbprint()
	if err != nil {
		return nil, fmt.Errorf("computing the account key thumbprint: %v", err)
	}
	return hashedAccountURIs(dir, thumbprint, acct.Location, base)
}

// hashedAccountURIs are the -02 values of the key with thumbprint for the
// account at accountURL: the one for base, then the one for every domain.
func hashedAccountURIs(dir caDirectory, thumbprint, accountURL, base string) ([]string, error) {
	perDomain, err := record.HashedAccountURI(dir.HashPrefix, base, thumbprint, accountURL)
	if err != nil {
		return nil, err
	}
	anyDomain, err := record.HashedAccountURI(dir.HashPrefix, record.AnyDomain, thumbprint, accountURL)
	if err != nil {
		return nil, err
	}
	return []string{perDomain, anyDomain}, nil
}

// judgement is the verdict on one base domain's record and what it rests
// on.
type judgement struct {
	exp    record.Expectation
	answer dnslookup.Answer
	// verdict is on what every server serves: when they differ, on the
	// first view that does not pass, whose servers are behind.
	verdict record.Verdict
	// published are the values the verdict is on.
	published []string
	// behind names the servers that fail while others pass.
	behind []string
	// dnssec, when set, is why the CA's validating resolver refuses the
	// answer of the servers dnssecAt, whatever the record says.
	dnssec   *dnslookup.DNSSECError
	dnssecAt []string
	// lookupErr is set when DNS could not be asked; verdict is then empty.
	lookupErr error
}

func (j judgement) passed() bool {
	return j.lookupErr == nil && j.dnssec == nil && j.verdict.Status == record.StatusOK
}

// failure describes a judgement that did not pass, with the record to
// publish.
func (j judgement) failure() *RecordError {
	e := newRecordError(j.exp, j.verdict, j.lookupErr)
	switch {
	case j.dnssec != nil && j.lookupErr == nil:
		e.lag = &laggingServers{servers: j.dnssecAt, dnssec: j.dnssec}
	case len(j.behind) > 0:
		e.lag = &laggingServers{servers: j.behind}
	}
	return e
}

// answerAge says whether judge may decide on an answer it already has.
type answerAge int

const (
	// freshAnswer always asks DNS: for the on-demand permission, grants
	// and reports, which have their own caches or must show what is
	// published now.
	freshAnswer answerAge = iota
	// recentPassWillDo uses a passing answer from the last few seconds
	// without asking DNS again, so that an issuance right after an
	// on-demand check costs one lookup, not two.
	recentPassWillDo
)

// judge decides whether the record at base authorizes the account of in,
// for the names under base (wildcard when *.base is among them). The error
// is for an expectation that cannot be built (a configuration the CA does
// not fit); a failed lookup is part of the judgement.
func (iss *Issuer) judge(ctx context.Context, in recordInputs, base string, wildcard bool, age answerAge) (judgement, error) {
	exp, err := iss.spec.expectation(in, base, wildcard)
	if err != nil {
		return judgement{}, err
	}
	j := judgement{exp: exp}
	name := record.Name(base)
	if age == recentPassWillDo {
		if ans, ok := iss.resolver.Recent(name); ok {
			if j.answer = ans; j.evaluate(iss.now()) {
				iss.states.judged(base, j)
				return j, nil
			}
		}
	}
	j.answer, j.lookupErr = iss.resolver.LookupTXT(ctx, name)
	if j.lookupErr == nil {
		j.evaluate(iss.now())
	}
	iss.states.judged(base, j)
	return j, nil
}

// evaluate judges what each server serves, and passes only when every
// server that answered serves a passing record whose chain of signatures,
// in a signed zone, verifies: the CA's resolver may reach any of them, so
// a server that lags behind the others fails the check until it catches
// up. The verdict is then the first failing one, or the first refused by
// DNSSEC, which the operator must mend where a lagging server catches up
// by itself.
func (j *judgement) evaluate(now time.Time) bool {
	views := j.answer.Views
	verdicts := make([]record.Verdict, len(views))
	firstFailed := -1
	j.behind, j.dnssec, j.dnssecAt = nil, nil, nil
	for i, view := range views {
		verdicts[i] = record.Evaluate(j.exp, view.Values, now)
		if verdicts[i].Status == record.StatusOK && view.DNSSEC == nil {
			continue
		}
		if firstFailed < 0 || view.DNSSEC != nil && views[firstFailed].DNSSEC == nil {
			firstFailed = i
		}
		j.behind = append(j.behind, view.Servers...)
	}
	switch {
	case len(views) == 0:
		j.verdict, j.published = record.Evaluate(j.exp, nil, now), nil
	case firstFailed >= 0:
		j.verdict, j.published = verdicts[firstFailed], views[firstFailed].Values
		j.dnssec, j.dnssecAt = views[firstFailed].DNSSEC, views[firstFailed].Servers
	default:
		j.verdict, j.published = verdicts[0], views[0].Values
	}
	if len(views) < 2 || firstFailed >= 0 && len(j.behind) == countServers(views) {
		// the servers agree, or none passes: naming them adds nothing,
		// and no server is behind the others
		j.behind = nil
	}
	return j.verdict.Status == record.StatusOK && j.dnssec == nil
}

func countServers(views []dnslookup.View) int {
	n := 0
	for _, v := range views {
		n += len(v.Servers)
	}
	return n
}
