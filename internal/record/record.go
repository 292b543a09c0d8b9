// Package record is the dns-persist-01 TXT record: where it lives, how its
// value is written and read, how draft -02 hashes the account, and whether
// what is published authorizes an account (Evaluate). It knows nothing of
// Caddy, certmagic or ACME clients; the plugin treats record values as
// opaque strings and comes here for everything else.
package record

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Label is prepended to a domain to form the name of its record.
const Label = "_validation-persist"

// Name returns the owner name of the record for a base domain (see
// BaseDomain), without a trailing dot.
func Name(base string) string {
	return Label + "." + base
}

// Limits from RFC 1035 and the dns-persist-01 drafts.
const (
	maxDomainOctets = 253
	maxLabelOctets  = 63
	maxStringOctets = 255 // one TXT character-string
	maxIssuerNames  = 10
)

// ExpiryWarning is how close persistUntil may come before a passing record
// is reported as expiring: after it, the CA refuses the record.
const ExpiryWarning = 30 * 24 * time.Hour

// Record is one parsed dns-persist-01 TXT record value (an RFC 8659
// issue-value). Tags other than the ones below are ignored, as CAs do.
type Record struct {
	// IssuerDomainName names the CA, e.g. "letsencrypt.org", in canonical
	// form: parse normalizes other spellings to it.
	IssuerDomainName string
	// AccountURI is the account URL (drafts -00/-01) or its hash (-02).
	AccountURI string
	// Wildcard is true when the record carries policy=wildcard, which lets
	// it authorize *.<domain> and subdomains as well as <domain> itself.
	Wildcard bool
	// PersistUntil, when not zero, is the moment after which CAs reject the
	// record. Only whole seconds are representable.
	PersistUntil time.Time
}

// Value returns the record's TXT value, for example
// "letsencrypt.org; accounturi=https://acme.example/acct/1; policy=wildcard".
func (r Record) Value() (string, error) {
	if err := CheckIssuerDomainName(r.IssuerDomainName); err != nil {
		return "", err
	}
	if r.AccountURI == "" {
		return "", errors.New("accounturi is empty")
	}
	if err := checkParamValue("accounturi", r.AccountURI); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(r.IssuerDomainName)
	b.WriteString("; accounturi=")
	b.WriteString(r.AccountURI)
	if r.Wildcard {
		b.WriteString("; policy=wildcard")
	}
	if !r.PersistUntil.IsZero() {
		if r.PersistUntil.Unix() < 0 {
			return "", fmt.Errorf("persistUntil %s is before 1970", r.PersistUntil.UTC().Format(time.RFC3339))
		}
		b.WriteString("; persistUntil=")
		b.WriteString(strconv.FormatInt(r.PersistUntil.Unix(), 10))
	}
	return b.String(), nil
}

// ExpiresSoon returns how long the record has until its persistUntil, and
// whether that is less than ExpiryWarning. A record without persistUntil
// never expires.
func (r Record) ExpiresSoon(now time.Time) (left time.Duration, soon bool) {
	if r.PersistUntil.IsZero() {
		return 0, false
	}
	left = r.PersistUntil.Sub(now)
	return left, left < ExpiryWarning
}

// ParseError says why a published value is malformed.
type ParseError struct {
	Value  string
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("malformed record %q: %s", e.Value, e.Reason)
}

// parse reads a TXT value: the character-strings of one record, already
// joined, as miekg/dns presents them (a tab or a non-ASCII byte arrives as
// a \DDD escape, at CAs built on it too). It reads RFC 8659 section 4.2 as
// Let's Encrypt's VA does. Tags are case-insensitive. Malformed are: an
// empty parameter or a trailing ";", a parameter without "=" or with an
// empty tag, a value holding a space, ";", a control or a non-ASCII
// character, a missing or empty accounturi, and a persistUntil that is not
// a base-10 integer.
//
// Where Let's Encrypt is more lenient than other CAs, parse accepts too,
// and returns the warnings Evaluate gives about a passing record:
//   - the issuer-domain-name is normalized (case, Unicode form, A-label,
//     trailing dot);
//   - a parameter whose tag breaks RFC 8659's syntax is ignored as
//     unrecognized;
//   - persistUntil may carry a sign.
//
// One rule is stricter than Let's Encrypt's, as the drafts recommend: any
// duplicate tag is malformed, not only a duplicate recognized one.
func parse(value string) (Record, []Warning, error) {
	fail := func(format string, args ...any) (Record, []Warning, error) {
		return Record{}, nil, &ParseError{Value: value, Reason: fmt.Sprintf(format, args...)}
	}
	var rec Record
	var warnings []Warning
	note := func(kind WarningKind, format string, args ...any) {
		warnings = append(warnings, Warning{kind, fmt.Sprintf(format, args...)})
	}

	issuer, params, hasParams := strings.Cut(value, ";")
	published := trimWSP(issuer)
	if published == "" {
		return fail("issuer domain name is empty")
	}
	name, err := normalizeIssuer(published)
	if err != nil {
		return fail("issuer domain name %q is not a valid domain name", published)
	}
	rec.IssuerDomainName = name
	if name != published {
		note(WarningIssuerSpelling, "the issuer domain name %q is accepted by Let's Encrypt, which normalizes it to %q, but CAs that compare it exactly (Pebble) refuse the record", published, name)
	}
	if !hasParams {
		return fail("no accounturi parameter")
	}

	seen := make(map[string]bool)
	for _, param := range strings.Split(params, ";") {
		param = trimWSP(param)
		if param == "" {
			return fail("empty parameter or trailing ';'")
		}
		tag, val, ok := strings.Cut(param, "=")
		if !ok {
			return fail("parameter %q is not tag=value", param)
		}
		tag, val = trimWSP(tag), trimWSP(val)
		if tag == "" {
			return fail("parameter %q has an empty tag", param)
		}
		// strings.ToLower, not an ASCII fold, because that is what CAs
		// match tags with, even tags that are not ASCII
		key := strings.ToLower(tag)
		if seen[key] {
			return fail("duplicate %s parameter", tag)
		}
		seen[key] = true
		if err := checkParamValue(tag, val); err != nil {
			return fail("%v", err)
		}
		if !isLDHToken(tag) {
			note(WarningTagSyntax, "the parameter %q has a tag outside RFC 8659's syntax; Let's Encrypt and Pebble ignore it as unrecognized, but a CA that enforces the syntax refuses the record", param)
		}
		switch key {
		case "accounturi":
			if val == "" {
				return fail("accounturi is empty")
			}
			rec.AccountURI = val
		case "policy":
			// the drafts say any other policy value is treated as absent
			rec.Wildcard = strings.EqualFold(val, "wildcard")
		case "persistuntil":
			secs, err := strconv.ParseInt(val, 10, 64)
			if errors.Is(err, strconv.ErrRange) {
				return fail("persistUntil %q is out of range", val)
			}
			if err != nil {
				return fail("persistUntil %q is not base-10 UNIX seconds", val)
			}
			rec.PersistUntil = time.Unix(secs, 0).UTC()
			switch {
			case rec.PersistUntil.IsZero():
				// the zero time.Time: Let's Encrypt reads it as no
				// persistUntil at all, and so does Record
				note(WarningPersistUntilSign, "persistUntil %q is the first instant of year 1, which Let's Encrypt takes for no persistUntil, but which Pebble takes for a date long passed and refuses", val)
			case val[0] == '+' || val[0] == '-':
				note(WarningPersistUntilSign, "persistUntil %q has a sign; Let's Encrypt and Pebble read it, but a CA that expects only digits refuses the record", val)
			}
		}
	}
	if rec.AccountURI == "" {
		return fail("no accounturi parameter")
	}
	if canonical, err := rec.Value(); err == nil {
		for i := range warnings {
			warnings[i].Detail += fmt.Sprintf("; publish %q instead", canonical)
		}
	}
	return rec, warnings, nil
}

// issuerOf returns the issuer-domain-name at the start of a value without
// parsing the rest, so that records meant for other CAs can be skipped the
// way a CA skips them.
func issuerOf(value string) string {
	issuer, _, _ := strings.Cut(value, ";")
	return trimWSP(issuer)
}

// normalizeIssuer returns the canonical form of an issuer-domain-name,
// which every CA accepts. A name already in it is returned as is, without
// the cost of IDNA.
func normalizeIssuer(published string) (string, error) {
	if CheckIssuerDomainName(published) == nil {
		return published, nil
	}
	name, err := NormalizeDomain(published)
	if err != nil {
		return "", err
	}
	return name, CheckIssuerDomainName(name)
}

func trimWSP(s string) string {
	return strings.Trim(s, " \t")
}

// CheckIssuerDomainName enforces RFC 8659's issuer-domain-name syntax plus
// the drafts' lowercase, no-trailing-dot rule: the canonical form, which
// every CA accepts, whether it normalizes the name or compares it exactly.
func CheckIssuerDomainName(name string) error {
	if name == "" {
		return errors.New("issuer domain name is empty")
	}
	if strings.HasSuffix(name, ".") {
		return fmt.Errorf("issuer domain name %q must not end with a dot", name)
	}
	if strings.ToLower(name) != name {
		return fmt.Errorf("issuer domain name %q must be lowercase", name)
	}
	if len(name) > maxDomainOctets {
		return fmt.Errorf("issuer domain name is longer than %d octets", maxDomainOctets)
	}
	for rest, more := name, true; more; {
		var label string
		label, rest, more = strings.Cut(rest, ".")
		if len(label) > maxLabelOctets || !isLDHToken(label) {
			return fmt.Errorf("issuer domain name %q is not a valid domain name", name)
		}
	}
	return nil
}

// isLDHToken reports whether s matches RFC 8659's label and tag production:
// letters and digits, with inner hyphens.
func isLDHToken(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func checkParamValue(tag, val string) error {
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c < 0x21 || c > 0x7e || c == ';' {
			return fmt.Errorf("value of %s holds a space, ';', a control or a non-ASCII character", tag)
		}
	}
	return nil
}
