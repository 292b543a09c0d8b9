package camodel

import (
	"strconv"
	"strings"
	"time"
)

// Row is one hand-written case: a record value and how each CA and the
// plugin's check judge it. Values are as the parsers receive them; where
// DNS would deliver another string (a tab or a non-ASCII byte arrives as a
// \DDD escape, see OverDNS), a row nearby shows that string too.
type Row struct {
	Name string
	// Value holds {account}, {future} and {past}: see Expand.
	Value string
	// Wildcard is set when the name validated is *.<domain>.
	Wildcard bool
	// Whether each accepts the record.
	Boulder, Pebble, Plugin bool
	// Warning is the kind of warning the plugin gives about a record it
	// passes, or "" for none.
	Warning string
}

// Expand fills in the account URL and dates: {future} is a year after
// now, {past} a day before it.
func (r Row) Expand(account string, now time.Time) string {
	return strings.NewReplacer(
		"{account}", account,
		"{future}", strconv.FormatInt(now.AddDate(1, 0, 0).Unix(), 10),
		"{past}", strconv.FormatInt(now.AddDate(0, 0, -1).Unix(), 10),
	).Replace(r.Value)
}

// The kinds of warning, as internal/record names them.
const (
	warnIssuer = "issuer_spelling"
	warnTag    = "tag_syntax"
	warnSign   = "persist_until_sign"
)

// Table returns the hand-written cases. The Boulder and Pebble columns
// are what their code does (read in va/dns_persist.go and va/va.go); the
// plugin passes what Boulder passes, warning where Pebble or the RFC's
// syntax would refuse, except a duplicate tag Boulder does not know,
// which the drafts say should be malformed.
func Table() []Row {
	const ok, no = true, false
	const base = Issuer + "; accounturi={account}; policy=wildcard"
	return []Row{
		// the canonical forms
		{"canonical", base, true, ok, ok, ok, ""},
		{"canonical with persistUntil", base + "; persistUntil={future}", true, ok, ok, ok, ""},
		{"canonical, exact name only", Issuer + "; accounturi={account}", false, ok, ok, ok, ""},
		{"A-label issuer", IDNIssuer + "; accounturi={account}; policy=wildcard", true, ok, ok, ok, ""},

		// the issuer domain name: Boulder normalizes, Pebble compares bytes
		{"issuer in another case", "Pebble.LetsEncrypt.org; accounturi={account}; policy=wildcard", true, ok, no, ok, warnIssuer},
		{"issuer with a trailing dot", Issuer + ".; accounturi={account}; policy=wildcard", true, ok, no, ok, warnIssuer},
		{"issuer upper-cased with a trailing dot", "PEBBLE.LETSENCRYPT.ORG.; accounturi={account}; policy=wildcard", true, ok, no, ok, warnIssuer},
		{"issuer as a U-label", IDNULabel + "; accounturi={account}; policy=wildcard", true, ok, no, ok, warnIssuer},
		{"issuer as an upper-case U-label", "BÜCHER.example; accounturi={account}; policy=wildcard", true, ok, no, ok, warnIssuer},
		{"issuer with ideographic full stops", "pebble\u3002letsencrypt\u3002org; accounturi={account}; policy=wildcard", true, ok, no, ok, warnIssuer},
		{"issuer as a U-label, as DNS delivers it", `b\195\188cher.example; accounturi={account}; policy=wildcard`, true, no, no, no, ""},
		{"issuer with two trailing dots", Issuer + "..; accounturi={account}; policy=wildcard", true, no, no, no, ""},
		{"another CA's issuer", "letsencrypt.org; accounturi={account}; policy=wildcard", true, no, no, no, ""},
		{"no issuer", "; accounturi={account}; policy=wildcard", true, no, no, no, ""},

		// tags: an unrecognized parameter is ignored, whatever its tag
		{"tag with an underscore", base + "; x_y=1", true, ok, ok, ok, warnTag},
		{"tag with a space", base + "; bad tag=1", true, ok, ok, ok, warnTag},
		{"tag '*' with an empty value", base + "; *=", true, ok, ok, ok, warnTag},
		{"tag with a leading hyphen", base + "; -bad=1", true, ok, ok, ok, warnTag},
		{"non-ASCII tag", base + "; é=1", true, ok, ok, ok, warnTag},
		{"accounturi spelled with U+0130, which strings.ToLower folds", Issuer + "; ACCOUNTUR\u0130={account}; policy=wildcard", true, ok, ok, ok, warnTag},
		{"valid unknown tag", base + "; x-future=1", true, ok, ok, ok, ""},
		{"tags in other cases", Issuer + "; AccountURI={account}; POLICY=WildCard", true, ok, ok, ok, ""},
		{"empty tag", base + "; =1", true, no, no, no, ""},
		{"parameter without '='", base + "; ext", true, no, no, no, ""},

		// persistUntil: strconv.ParseInt at both CAs
		{"persistUntil with '+'", base + "; persistUntil=+{future}", true, ok, ok, ok, warnSign},
		{"persistUntil with leading zeros", base + "; persistUntil=000{future}", true, ok, ok, ok, ""},
		{"persistUntil passed", base + "; persistUntil={past}", true, no, no, no, ""},
		{"persistUntil zero", base + "; persistUntil=0", true, no, no, no, ""},
		{"persistUntil -1", base + "; persistUntil=-1", true, no, no, no, ""},
		{"persistUntil at Go's zero time, which Boulder reads as none", base + "; persistUntil=-62135596800", true, ok, no, ok, warnSign},
		{"persistUntil empty", base + "; persistUntil=", true, no, no, no, ""},
		{"persistUntil '+' alone", base + "; persistUntil=+", true, no, no, no, ""},
		{"persistUntil past int64", base + "; persistUntil=9223372036854775808", true, no, no, no, ""},
		{"persistUntil max int64, which overflows Go's time into the past", base + "; persistUntil=9223372036854775807", true, no, no, no, ""},
		{"persistUntil in hex", base + "; persistUntil=0x7fffffff", true, no, no, no, ""},
		{"persistUntil as RFC 3339", base + "; persistUntil=2030-01-01T00:00:00Z", true, no, no, no, ""},

		// duplicates
		{"duplicate unknown tag", base + "; ext=; ext=", true, ok, no, no, ""},
		{"duplicate unknown tag in two cases", base + "; ext=1; EXT=2", true, ok, no, no, ""},
		{"duplicate tag outside the syntax", base + "; x_y=1; x_y=1", true, ok, no, no, ""},
		{"duplicate accounturi", base + "; accounturi={account}", true, no, no, no, ""},
		{"duplicate policy", base + "; POLICY=wildcard", true, no, no, no, ""},
		{"duplicate persistUntil", base + "; persistUntil={future}; persistUntil={future}", true, no, no, no, ""},

		// whitespace: RFC 5234 WSP (space and tab) is trimmed
		{"spaces everywhere", "  " + Issuer + "  ;  accounturi = {account}  ;  policy = wildcard  ", true, ok, ok, ok, ""},
		{"no spaces", Issuer + ";accounturi={account};policy=wildcard", true, ok, ok, ok, ""},
		{"tabs after ';'", Issuer + ";\taccounturi={account};\tpolicy=wildcard", true, ok, ok, ok, ""},
		{"tabs after ';', as DNS delivers them", Issuer + `;\009accounturi={account};\009policy=wildcard`, true, no, no, no, ""},
		{"no-break space after ';'", Issuer + ";\u00a0accounturi={account}; policy=wildcard", true, no, no, no, ""},
		{"space inside a value", base + "; ext=a b", true, no, no, no, ""},
		{"newline inside a value", base + "; ext=a\nb", true, no, no, no, ""},

		// empty parameters and values
		{"empty parameter", Issuer + ";; accounturi={account}; policy=wildcard", true, no, no, no, ""},
		{"trailing ';'", base + ";", true, no, no, no, ""},
		{"trailing '; '", base + "; ", true, no, no, no, ""},
		{"empty unknown value", base + "; ext=", true, ok, ok, ok, ""},
		{"empty accounturi", Issuer + "; accounturi=; policy=wildcard", true, no, no, no, ""},
		{"no accounturi", Issuer + "; policy=wildcard", true, no, no, no, ""},
		{"issuer alone", Issuer, false, no, no, no, ""},

		// non-ASCII and control characters in values
		{"non-ASCII value", base + "; ext=é", true, no, no, no, ""},
		{"non-ASCII value, as DNS delivers it", base + `; ext=\195\169`, true, ok, ok, ok, ""},
		{"DEL in a value", base + "; ext=\x7f", true, no, no, no, ""},
		{"non-ASCII in accounturi", Issuer + "; accounturi={account}é; policy=wildcard", true, no, no, no, ""},

		// policy: case-insensitive; any other value counts as none
		{"policy upper-cased", Issuer + "; accounturi={account}; policy=WILDCARD", true, ok, ok, ok, ""},
		{"policy empty, for a wildcard", Issuer + "; accounturi={account}; policy=", true, no, no, no, ""},
		{"policy empty, for the exact name", Issuer + "; accounturi={account}; policy=", false, ok, ok, ok, ""},
		{"policy other, for the exact name", Issuer + "; accounturi={account}; policy=other", false, ok, ok, ok, ""},
		{"policy other, for a wildcard", Issuer + "; accounturi={account}; policy=other", true, no, no, no, ""},
		{"policy with a space", Issuer + "; accounturi={account}; policy=wild card", false, no, no, no, ""},
		{"no policy, for a wildcard", Issuer + "; accounturi={account}", true, no, no, no, ""},

		// the account
		{"another account", Issuer + "; accounturi=https://other.example/acct/1; policy=wildcard", true, no, no, no, ""},
		{"account URL with a trailing slash", Issuer + "; accounturi={account}/; policy=wildcard", true, no, no, no, ""},
	}
}
