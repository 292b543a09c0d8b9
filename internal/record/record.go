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
	// IssuerDomainName names the CA, e.g. "letsencrypt.org".
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

// Parse parses and lints a TXT value (the character-strings of one record,
// already joined). It follows RFC 8659 section 4.2 and the drafts: tags are
// case-insensitive, a duplicate tag, an empty parameter or a trailing ";"
// is malformed, values hold no spaces and no ";", accounturi is mandatory
// and persistUntil is base-10 UNIX seconds.
func Parse(value string) (Record, error) {
	fail := func(format string, args ...any) (Record, error) {
		return Record{}, &ParseError{Value: value, Reason: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(value); i++ {
		if value[i] >= 0x80 {
			return fail("contains non-ASCII bytes; records must be plain ASCII")
		}
	}

	issuer, params, _ := strings.Cut(value, ";")
	var rec Record
	rec.IssuerDomainName = trimWSP(issuer)
	if err := CheckIssuerDomainName(rec.IssuerDomainName); err != nil {
		return fail("%v", err)
	}
	if !strings.Contains(value, ";") {
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
		if !isLDHToken(tag) {
			return fail("parameter %q has an invalid tag", param)
		}
		key := strings.ToLower(tag)
		if seen[key] {
			return fail("duplicate %s parameter", tag)
		}
		seen[key] = true
		if err := checkParamValue(tag, val); err != nil {
			return fail("%v", err)
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
			if val == "" || strings.Trim(val, "0123456789") != "" {
				return fail("persistUntil %q is not base-10 UNIX seconds", val)
			}
			secs, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fail("persistUntil %q is out of range", val)
			}
			rec.PersistUntil = time.Unix(secs, 0).UTC()
		}
	}
	if rec.AccountURI == "" {
		return fail("no accounturi parameter")
	}
	return rec, nil
}

// issuerOf returns the issuer-domain-name at the start of a value without
// parsing the rest, so that records meant for other CAs can be skipped the
// way a CA skips them.
func issuerOf(value string) string {
	issuer, _, _ := strings.Cut(value, ";")
	return trimWSP(issuer)
}

func trimWSP(s string) string {
	return strings.Trim(s, " \t")
}

// CheckIssuerDomainName enforces RFC 8659's issuer-domain-name syntax plus
// the drafts' lowercase, no-trailing-dot rule, since CAs compare it exactly.
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
	for _, label := range strings.Split(name, ".") {
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
			return fmt.Errorf("value of %s holds a space, ';' or a control character", tag)
		}
	}
	return nil
}
