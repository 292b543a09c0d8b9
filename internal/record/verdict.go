package record

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status sorts the outcome of a record check.
type Status string

// The outcomes of a record check.
const (
	StatusOK       Status = "ok"
	StatusMissing  Status = "missing"
	StatusMismatch Status = "mismatch"
	StatusDNSError Status = "dns-error"
	// StatusDNSSEC is an answer from a signed zone whose chain from the
	// DS down does not verify: the CA's validating resolver answers
	// SERVFAIL in its place, whatever the record says.
	StatusDNSSEC Status = "dnssec"
	// StatusExpiring is a passing record whose persistUntil is less than
	// ExpiryWarning away.
	StatusExpiring Status = "expiring"
)

// MismatchKind says why a published record does not authorize us.
type MismatchKind string

// The reasons a record can fail to match.
const (
	MismatchIssuer       MismatchKind = "issuer"
	MismatchAccount      MismatchKind = "accounturi"
	MismatchPolicy       MismatchKind = "policy"
	MismatchExpired      MismatchKind = "expired"
	MismatchPersistUntil MismatchKind = "persist_until"
	MismatchMalformed    MismatchKind = "malformed"
)

// Expectation is what a record must say for this account to pass.
type Expectation struct {
	// Domain is the base domain the record sits under.
	Domain string
	// Offered lists the issuer domain names the CA accepts.
	Offered []string
	// Preferred is the configured issuer_domain_name, if any.
	Preferred string
	// AccountURIs are the accounturi values the CA accepts for this
	// account; the first is the one to publish.
	AccountURIs []string
	// PreviousAccountURIs are values made with the account's previous
	// keys (draft -02 hashes the key's thumbprint): CAs keep accepting
	// them, so a record naming one passes, flagged PreviousKey.
	PreviousAccountURIs []string
	// Wildcard is set when a requested name is *.<Domain>.
	Wildcard bool
	// PublishWildcard is set when the record to publish carries
	// policy=wildcard though the names checked now do not need it:
	// another certificate of the same account needs *.<Domain>, and one
	// record at the name serves both.
	PublishWildcard bool
	// PersistUntil is the configured persist_until, zero if none.
	PersistUntil time.Time
}

// Mismatch is one reason a published record does not authorize us.
type Mismatch struct {
	Kind   MismatchKind
	Detail string
}

// WarningKind says what a passing record relies on that stricter CAs
// refuse.
type WarningKind string

// The leniencies a passing record may rely on: each is accepted by Let's
// Encrypt, whose rules the check follows where CAs differ.
const (
	// WarningIssuerSpelling is an issuer domain name that is an offered
	// name only once normalized: another case, a trailing dot, a U-label.
	WarningIssuerSpelling WarningKind = "issuer_spelling"
	// WarningTagSyntax is a parameter whose tag breaks RFC 8659's tag
	// syntax, which CAs ignore as unrecognized.
	WarningTagSyntax WarningKind = "tag_syntax"
	// WarningPersistUntilSign is a persistUntil with a leading sign.
	WarningPersistUntilSign WarningKind = "persist_until_sign"
)

// Warning is one way a passing record differs from its canonical form in
// something a stricter CA refuses. Detail says which CAs accept and
// refuse it, and names the canonical value to publish instead.
type Warning struct {
	Kind   WarningKind
	Detail string
}

// Verdict is the outcome of comparing published values to an Expectation.
type Verdict struct {
	Status Status
	// Matched is the record that passes, when Status is StatusOK.
	Matched *Record
	// MatchedValue is Matched as published.
	MatchedValue string
	// Warnings, for a passing record, list what it relies on that Let's
	// Encrypt accepts and stricter CAs refuse. A record that passes at
	// every CA has none, and is chosen over one that has some.
	Warnings []Warning
	// PreviousKey is set when the passing record names the account by a
	// value made with a previous key of the account: it passes, and the
	// record of the current key should replace it. A record made with
	// the current key is chosen over it.
	PreviousKey bool
	// Mismatches explain a StatusMismatch, most relevant first.
	Mismatches []Mismatch
	// IssuerDomainName is the issuer domain name to publish: the
	// configured one, else the first offered name a published record
	// already uses (spelled exactly, else in another spelling), else the
	// first offered name.
	IssuerDomainName string
}

// Reason is a one-line explanation a person can act on.
func (v Verdict) Reason() string {
	switch v.Status {
	case StatusMissing:
		return "no TXT record at the name"
	case StatusMismatch:
		parts := make([]string, len(v.Mismatches))
		for i, m := range v.Mismatches {
			parts[i] = m.Detail
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

// Has reports whether the verdict includes a mismatch of the given kind.
func (v Verdict) Has(kind MismatchKind) bool {
	return slices.ContainsFunc(v.Mismatches, func(m Mismatch) bool { return m.Kind == kind })
}

// Evaluate decides whether any of the published values (one per TXT record,
// strings already joined) authorizes the expected account at time now, by
// Let's Encrypt's rules (see parse). Records whose issuer domain name,
// normalized, is not one the CA offers are skipped, as the CA skips them;
// the order of checks after that follows the CA's own.
func Evaluate(exp Expectation, values []string, now time.Time) Verdict {
	v := Verdict{IssuerDomainName: chooseIssuer(exp, values)}
	if len(values) == 0 {
		v.Status = StatusMissing
		return v
	}

	var byRelevance [6][]Mismatch
	add := func(rank int, kind MismatchKind, format string, args ...any) {
		byRelevance[rank] = append(byRelevance[rank], Mismatch{Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	// a passing record that is not the best kind is kept while a
	// better one may follow: with warnings, or made with a previous key
	var second *Verdict
	secondRank := 0
	for _, value := range values {
		if _, ok := offeredIssuer(exp.Offered, value); !ok {
			add(5, MismatchIssuer, "issuer domain name %q is not one this CA offers (%s)", issuerOf(value), strings.Join(exp.Offered, ", "))
			continue
		}
		rec, warnings, err := parse(value)
		if err != nil {
			add(0, MismatchMalformed, "%v", err)
			continue
		}
		previousKey := !slices.Contains(exp.AccountURIs, rec.AccountURI)
		if previousKey && !slices.Contains(exp.PreviousAccountURIs, rec.AccountURI) {
			add(1, MismatchAccount, "accounturi is %q but this account is %q", rec.AccountURI, exp.AccountURIs[0])
			continue
		}
		if exp.Wildcard && !rec.Wildcard {
			add(2, MismatchPolicy, "policy=wildcard is absent but *.%s is requested", exp.Domain)
			continue
		}
		if !rec.PersistUntil.IsZero() && now.After(rec.PersistUntil) {
			add(3, MismatchExpired, "persistUntil %s has passed", formatPersistUntil(rec.PersistUntil))
			continue
		}
		if !exp.PersistUntil.IsZero() && !rec.PersistUntil.Equal(exp.PersistUntil.Truncate(time.Second)) {
			published := "none"
			if !rec.PersistUntil.IsZero() {
				published = formatPersistUntil(rec.PersistUntil)
			}
			add(4, MismatchPersistUntil, "persistUntil is %s but persist_until is configured as %s", published, formatPersistUntil(exp.PersistUntil))
			continue
		}
		pass := Verdict{Status: StatusOK, Matched: &rec, MatchedValue: value, IssuerDomainName: v.IssuerDomainName, Warnings: warnings, PreviousKey: previousKey}
		// the current key before a previous one, then no warnings first
		rank := 0
		if previousKey {
			rank += 2
		}
		if len(warnings) > 0 {
			rank++
		}
		if rank == 0 {
			return pass
		}
		if second == nil || rank < secondRank {
			second, secondRank = &pass, rank
		}
	}
	if second != nil {
		return *second
	}
	v.Status = StatusMismatch
	for _, group := range byRelevance {
		v.Mismatches = append(v.Mismatches, group...)
	}
	return v
}

// offeredIssuer returns the offered name a value's issuer-domain-name
// stands for: itself, or, for another spelling, the name it normalizes to.
func offeredIssuer(offered []string, value string) (string, bool) {
	name, err := normalizeIssuer(issuerOf(value))
	if err != nil || !slices.Contains(offered, name) {
		return "", false
	}
	return name, true
}

func chooseIssuer(exp Expectation, values []string) string {
	if exp.Preferred != "" {
		return exp.Preferred
	}
	spellings := []func(value string) string{
		issuerOf, // exact: the common case, and it needs no normalizing
		func(value string) string { name, _ := offeredIssuer(exp.Offered, value); return name },
	}
	for _, spelling := range spellings {
		for _, offered := range exp.Offered {
			for _, value := range values {
				if spelling(value) == offered {
					return offered
				}
			}
		}
	}
	if len(exp.Offered) > 0 {
		return exp.Offered[0]
	}
	return ""
}

// Want returns the record to publish for exp, with the issuer domain name
// of verdict v, or, when v chose none (no lookup was possible), the one
// chosen without published records.
func (exp Expectation) Want(v Verdict) Record {
	issuer := v.IssuerDomainName
	if issuer == "" {
		issuer = chooseIssuer(exp, nil)
	}
	rec := Record{
		IssuerDomainName: issuer,
		Wildcard:         exp.Wildcard || exp.PublishWildcard,
		PersistUntil:     exp.PersistUntil.Truncate(time.Second),
	}
	if len(exp.AccountURIs) > 0 {
		rec.AccountURI = exp.AccountURIs[0]
	}
	return rec
}

func formatPersistUntil(t time.Time) string {
	return fmt.Sprintf("%d (%s)", t.Unix(), t.UTC().Format(time.RFC3339))
}
