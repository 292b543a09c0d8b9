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
	// Wildcard is set when a requested name is *.<Domain>.
	Wildcard bool
	// PersistUntil is the configured persist_until, zero if none.
	PersistUntil time.Time
}

// Mismatch is one reason a published record does not authorize us.
type Mismatch struct {
	Kind   MismatchKind
	Detail string
}

// Verdict is the outcome of comparing published values to an Expectation.
type Verdict struct {
	Status Status
	// Matched is the record that passes, when Status is StatusOK.
	Matched *Record
	// Mismatches explain a StatusMismatch, most relevant first.
	Mismatches []Mismatch
	// IssuerDomainName is the issuer domain name to publish: the
	// configured one, else the first offered name a published record
	// already uses, else the first offered name.
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
// strings already joined) authorizes the expected account at time now.
// Records naming an issuer the CA does not offer are skipped, as the CA
// skips them; the order of checks after that follows the CA's own.
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
	for _, value := range values {
		issuer := issuerOf(value)
		if !slices.Contains(exp.Offered, issuer) {
			if slices.Contains(exp.Offered, strings.ToLower(issuer)) {
				add(5, MismatchIssuer, "issuer domain name %q must be lowercase", issuer)
			} else {
				add(5, MismatchIssuer, "issuer domain name %q is not one this CA offers (%s)", issuer, strings.Join(exp.Offered, ", "))
			}
			continue
		}
		rec, err := Parse(value)
		if err != nil {
			add(0, MismatchMalformed, "%v", err)
			continue
		}
		if !slices.Contains(exp.AccountURIs, rec.AccountURI) {
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
		v.Status, v.Matched = StatusOK, &rec
		return v
	}
	v.Status = StatusMismatch
	for _, group := range byRelevance {
		v.Mismatches = append(v.Mismatches, group...)
	}
	return v
}

func chooseIssuer(exp Expectation, values []string) string {
	if exp.Preferred != "" {
		return exp.Preferred
	}
	for _, offered := range exp.Offered {
		for _, value := range values {
			if issuerOf(value) == offered {
				return offered
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
		Wildcard:         exp.Wildcard,
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
