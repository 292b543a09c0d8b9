package persist

// This file holds everything about the syntax of the dns-persist-01 record:
// where it lives, how its value is built and parsed, how it is split into
// DNS character-strings, and how draft -02 hashes the account URI. The rest
// of the plugin treats record values as opaque strings and goes through here.

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// RecordLabel is the label prepended to a domain to form the name of its
// dns-persist-01 record.
const RecordLabel = "_validation-persist"

// Draft identifies the version of draft-ietf-acme-dns-persist a CA speaks.
type Draft int

const (
	// Draft01 puts the plain account URL in the record. Let's Encrypt
	// staging and Pebble speak it.
	Draft01 Draft = 1
	// Draft02 puts a hash of the domain, account key and account URL in
	// the record, and announces itself in the directory's meta.
	Draft02 Draft = 2
)

// String returns the draft's name as it appears in output, e.g. "draft-01".
func (d Draft) String() string {
	return fmt.Sprintf("draft-%02d", int(d))
}

// Limits from RFC 1035 and the dns-persist-01 drafts.
const (
	maxDomainOctets   = 253
	maxLabelOctets    = 63
	maxStringOctets   = 255 // one TXT character-string
	maxIssuerNames    = 10
	maxRecordsPerName = 100
)

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
	if err := checkIssuerDomainName(r.IssuerDomainName); err != nil {
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

// ParseError says why a published value is malformed.
type ParseError struct {
	Value  string
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("malformed record %q: %s", e.Value, e.Reason)
}

// ParseRecord parses and lints a TXT value (the character-strings of one
// record, already joined). It follows RFC 8659 section 4.2 and the drafts:
// tags are case-insensitive, a duplicate tag, an empty parameter or a
// trailing ";" is malformed, values hold no spaces and no ";", accounturi is
// mandatory and persistUntil is base-10 UNIX seconds.
func ParseRecord(value string) (Record, error) {
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
	if err := checkIssuerDomainName(rec.IssuerDomainName); err != nil {
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

// IssuerOf returns the issuer-domain-name at the start of a value without
// parsing the rest, so that records meant for other CAs can be skipped the
// way a CA skips them.
func IssuerOf(value string) string {
	issuer, _, _ := strings.Cut(value, ";")
	return trimWSP(issuer)
}

func trimWSP(s string) string {
	return strings.Trim(s, " \t")
}

// checkIssuerDomainName enforces RFC 8659's issuer-domain-name syntax plus
// the drafts' lowercase, no-trailing-dot rule, since CAs compare it exactly.
func checkIssuerDomainName(name string) error {
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

// BaseDomain returns the domain whose record authorizes name: the name
// itself, or for "*.example.com" the parent "example.com". The result is a
// lowercase A-label without a trailing dot; wildcard reports the "*.".
func BaseDomain(name string) (base string, wildcard bool, err error) {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name, wildcard = rest, true
	}
	base, err = NormalizeDomain(name)
	return base, wildcard, err
}

// NormalizeDomain turns a domain name into the form records and hashes use:
// a lowercase A-label without a trailing dot, within RFC 1035's limits.
func NormalizeDomain(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", errors.New("domain name is empty")
	}
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("domain name %q: a wildcard may only be the whole leftmost label", name)
	}
	ascii, err := idna.Lookup.ToASCII(strings.ToLower(name))
	if err != nil {
		return "", fmt.Errorf("domain name %q is not a valid internationalized domain name: %v", name, err)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > maxDomainOctets {
		return "", fmt.Errorf("domain name %q is %d octets long; the limit is %d", ascii, len(ascii), maxDomainOctets)
	}
	for _, label := range strings.Split(ascii, ".") {
		if label == "" {
			return "", fmt.Errorf("domain name %q has an empty label", ascii)
		}
		if len(label) > maxLabelOctets {
			return "", fmt.Errorf("domain name %q has a label of %d octets; the limit is %d", ascii, len(label), maxLabelOctets)
		}
	}
	return ascii, nil
}

// RecordName returns the owner name of the record for a base domain (see
// BaseDomain), without a trailing dot.
func RecordName(base string) string {
	return RecordLabel + "." + base
}

// SplitStrings splits a value into the character-strings of one TXT record,
// each at most 255 octets. Resolvers join them back without a separator.
func SplitStrings(value string) []string {
	if value == "" {
		return []string{""}
	}
	var out []string
	for len(value) > maxStringOctets {
		out = append(out, value[:maxStringOctets])
		value = value[maxStringOctets:]
	}
	return append(out, value)
}

// ZoneLine renders the record as one line of a zone file, for example
// `_validation-persist.example.com. IN TXT "letsencrypt.org; accounturi=..."`.
func ZoneLine(base, value string) string {
	var b strings.Builder
	b.WriteString(RecordName(base))
	b.WriteString(". IN TXT")
	for _, s := range SplitStrings(value) {
		b.WriteString(` "`)
		for i := 0; i < len(s); i++ {
			if s[i] == '"' || s[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// AnyDomain is the domain input of a draft -02 hash that is valid for
// every domain.
const AnyDomain = "*"

// HashedAccountURI computes the draft -02 accounturi:
//
//	prefix + "sha-256/" + base64url(SHA-256(len(d) || d || thumbprint || accountURL))
//
// where d is the record's base domain (or AnyDomain) and thumbprint is the
// RFC 7638 thumbprint of the account's current key.
func HashedAccountURI(prefix, domain, thumbprint, accountURL string) (string, error) {
	d := domain
	if d != AnyDomain {
		var err error
		if d, err = NormalizeDomain(domain); err != nil {
			return "", err
		}
	}
	if thumbprint == "" || accountURL == "" {
		return "", errors.New("hashing the accounturi needs the account key thumbprint and URL")
	}
	h := sha256.New()
	h.Write([]byte{byte(len(d))})
	h.Write([]byte(d))
	h.Write([]byte(thumbprint))
	h.Write([]byte(accountURL))
	return prefix + "sha-256/" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// checkIssuerNames validates a CA's list of issuer domain names: the drafts
// call a list that is empty or longer than ten malformed.
func checkIssuerNames(names []string) error {
	if len(names) == 0 {
		return errors.New("the CA offers no issuer domain names")
	}
	if len(names) > maxIssuerNames {
		return fmt.Errorf("the CA offers %d issuer domain names; more than %d is malformed", len(names), maxIssuerNames)
	}
	for _, n := range names {
		if err := checkIssuerDomainName(n); err != nil {
			return fmt.Errorf("the CA offers a bad issuer domain name: %v", err)
		}
	}
	return nil
}
