// Package camodel models, for tests, how two CAs judge dns-persist-01 TXT
// records: Let's Encrypt's production CA (Boulder, va/dns_persist.go) and
// its test CA (Pebble v2.10, va/va.go). It is written from a reading of
// their rules and shares no code with internal/record, so that the
// plugin's check can be held against it; Pebble's side is also held
// against Pebble itself in the plugin's tests. It also holds the
// hand-written table of outcomes (Table) and a generated corpus (Corpus).
package camodel

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Challenge is what a CA validates published records against.
type Challenge struct {
	// IssuerNames are the issuer domain names the CA accepts.
	IssuerNames []string
	// AccountURL is the account that asks.
	AccountURL string
	// Wildcard is set when the name validated is *.<domain>.
	Wildcard bool
	// At is the moment of validation.
	At time.Time
}

// CA is one CA's rules, as the ways it departs from the other.
type CA struct {
	Name string
	// NormalizesIssuer: the issuer-domain-name is lowercased,
	// NFC-normalized, turned into an A-label and stripped of a trailing
	// dot before it is compared (Boulder); otherwise it is compared byte
	// for byte (Pebble).
	NormalizesIssuer bool
	// AnyDuplicateTag: a repeated tag of any kind makes a record malformed
	// (Pebble); otherwise only a repeated accounturi, policy or
	// persistUntil does (Boulder).
	AnyDuplicateTag bool
	// ZeroPersistUntilIsAbsent: a persistUntil that falls on Go's zero
	// time (year 1) is taken for none (Boulder tests IsZero); otherwise
	// it is a date long passed (Pebble keeps a pointer).
	ZeroPersistUntilIsAbsent bool
}

// Boulder returns the rules of Let's Encrypt's production CA.
func Boulder() CA {
	return CA{Name: "Boulder", NormalizesIssuer: true, ZeroPersistUntilIsAbsent: true}
}

// Pebble returns the rules of Let's Encrypt's test CA.
func Pebble() CA {
	return CA{Name: "Pebble", AnyDuplicateTag: true}
}

// Accepts reports whether the CA validates ch given the published values
// (one per TXT record, strings joined): whether any of them authorizes it.
func (ca CA) Accepts(ch Challenge, values []string) bool {
	return slices.ContainsFunc(values, func(v string) bool { return ca.authorizes(ch, v) })
}

func (ca CA) authorizes(ch Challenge, value string) bool {
	fields := strings.Split(value, ";")
	issuer := trimWSP(fields[0])
	if ca.NormalizesIssuer {
		issuer = normalizeIssuer(issuer)
	}
	// a record naming another CA, or no CA, is not this CA's to judge
	if issuer == "" || !slices.Contains(ch.IssuerNames, issuer) {
		return false
	}
	p, ok := ca.readParams(fields[1:])
	if !ok {
		return false
	}
	// accounturi is compared as a string, policy case-insensitively
	switch {
	case p.accountURI != ch.AccountURL:
		return false
	case ch.Wildcard && strings.ToLower(p.policy) != "wildcard":
		return false
	case p.hasUntil && ch.At.After(p.until):
		return false
	}
	return true
}

// normalizeIssuer follows the drafts' section 9.2 as Boulder does; a name
// that cannot be normalized matches nothing.
func normalizeIssuer(name string) string {
	ascii, err := idna.Lookup.ToASCII(norm.NFC.String(strings.ToLower(name)))
	if err != nil {
		return ""
	}
	ascii = strings.TrimSuffix(ascii, ".")
	if len(ascii) > 253 {
		return ""
	}
	return ascii
}

type params struct {
	accountURI string
	policy     string
	until      time.Time
	hasUntil   bool
}

// readParams reads the parameters after the issuer; false means the
// record is malformed.
func (ca CA) readParams(fields []string) (params, bool) {
	var p params
	seen := map[string]bool{}
	for _, field := range fields {
		field = trimWSP(field)
		if field == "" { // an empty parameter, or a trailing ';'
			return p, false
		}
		eq := strings.IndexByte(field, '=')
		if eq < 0 {
			return p, false
		}
		tag, value := trimWSP(field[:eq]), trimWSP(field[eq+1:])
		if tag == "" || !valueChars(value) {
			return p, false
		}
		// both CAs fold tags with strings.ToLower, not only ASCII
		lower := strings.ToLower(tag)
		known := lower == "accounturi" || lower == "policy" || lower == "persistuntil"
		if seen[lower] && (known || ca.AnyDuplicateTag) {
			return p, false
		}
		seen[lower] = true
		switch lower {
		case "accounturi":
			if value == "" {
				return p, false
			}
			p.accountURI = value
		case "policy":
			p.policy = value
		case "persistuntil":
			secs, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return p, false
			}
			p.until = time.Unix(secs, 0).UTC()
			p.hasUntil = !(ca.ZeroPersistUntilIsAbsent && p.until.IsZero())
		}
	}
	return p, p.accountURI != ""
}

// valueChars reports whether a value holds only RFC 8659's value
// characters: printable ASCII but space and ';'. Both CAs test runes, so
// invalid UTF-8 fails too.
func valueChars(value string) bool {
	for _, r := range value {
		if r < 0x21 || r > 0x7e || r == ';' {
			return false
		}
	}
	return true
}

// trimWSP trims RFC 5234's WSP, space and tab, as both CAs do.
func trimWSP(s string) string {
	return strings.Trim(s, " \t")
}
